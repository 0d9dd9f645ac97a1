//! Supervision of the userspace WireGuard process: `wireguard-go -f IFNAME` (Debian package
//! `wireguard-go`). Started once per interface, restarted with back-off when it exits on its
//! own (its device settings are re-sent; peers and addresses come back with the next
//! reconcile), stopped on shutdown. Signals go only to the PID of the child we spawned and
//! have not reaped yet, so a reused PID can never be hit.
#![forbid(unsafe_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::platform::types::DeviceConfig;
use crate::platform::uapi::UapiClient;

/// Environment variable naming the wireguard-go binary (default: `wireguard-go` on PATH).
pub const WIREGUARD_GO_ENV: &str = "WGMESH_WIREGUARD_GO";

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Errors of the wireguard-go supervisor.
#[derive(Debug, thiserror::Error)]
pub enum WireguardGoError {
    #[error(
        "cannot start {program}: {source} (install the `wireguard-go` package, or set \
         WGMESH_WIREGUARD_GO to its path)"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "wireguard-go for {iface} exited during start-up ({status}); is /dev/net/tun available and are you root?"
    )]
    EarlyExit { iface: String, status: String },
    #[error("wireguard-go for {iface} did not open its UAPI socket within {secs} s")]
    NotReady { iface: String, secs: u64 },
    #[error(
        "interface {0} is already served by another WireGuard process (its UAPI socket \
         answers); pick another interface name or stop that process"
    )]
    InUse(String),
    #[error("cannot remove stale UAPI socket {path}: {source}")]
    StaleSocket {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running, supervised wireguard-go.
pub struct WireguardGo {
    iface: String,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    pid: watch::Receiver<Option<u32>>,
    restarts: watch::Receiver<u64>,
}

fn program() -> String {
    std::env::var(WIREGUARD_GO_ENV).unwrap_or_else(|_| "wireguard-go".to_string())
}

fn spawn_child(iface: &str) -> Result<Child, WireguardGoError> {
    let program = program();
    let mut child = Command::new(&program)
        .arg("-f")
        .arg(iface)
        .env("LOG_LEVEL", "error")
        // wireguard-go prints a "use the kernel module" banner unless it believes it is its
        // own daemonized child; wgmesh chose the userspace backend on purpose (and logs why).
        .env("WG_PROCESS_FOREGROUND", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| WireguardGoError::Spawn { program, source })?;
    // wireguard-go logs on stdout and stderr; forward to tracing.
    let out = child.stdout.take();
    let err = child.stderr.take();
    let name = iface.to_string();
    tokio::spawn(async move {
        if let Some(out) = out {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(iface = %name, "wireguard-go: {line}");
            }
        }
    });
    let name = iface.to_string();
    tokio::spawn(async move {
        if let Some(err) = err {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(iface = %name, "wireguard-go: {line}");
            }
        }
    });
    Ok(child)
}

/// Removes a socket file nobody answers on; fails if someone does.
async fn clear_stale_socket(iface: &str, uapi: &UapiClient) -> Result<(), WireguardGoError> {
    let path = uapi.path();
    if !path.exists() {
        return Ok(());
    }
    if uapi.is_alive().await {
        return Err(WireguardGoError::InUse(iface.to_string()));
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WireguardGoError::StaleSocket {
            path: path.display().to_string(),
            source,
        }),
    }
}

async fn wait_ready(
    iface: &str,
    child: &mut Child,
    uapi: &UapiClient,
) -> Result<(), WireguardGoError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(WireguardGoError::EarlyExit {
                iface: iface.to_string(),
                status: status.to_string(),
            });
        }
        if uapi.is_alive().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WireguardGoError::NotReady {
                iface: iface.to_string(),
                secs: READY_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM to our own (unreaped) child, then SIGKILL after a grace period.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

impl WireguardGo {
    /// Starts wireguard-go for `iface` and waits until its UAPI socket answers.
    /// `config` is what is re-sent after a restart (the caller updates it on every
    /// configure).
    pub async fn start(
        iface: &str,
        config: Arc<Mutex<Option<DeviceConfig>>>,
    ) -> Result<Self, WireguardGoError> {
        let uapi = UapiClient::for_interface(iface);
        clear_stale_socket(iface, &uapi).await?;
        let mut child = spawn_child(iface)?;
        if let Err(e) = wait_ready(iface, &mut child, &uapi).await {
            terminate(&mut child).await;
            return Err(e);
        }
        let (pid_tx, pid_rx) = watch::channel(child.id());
        let (restart_tx, restart_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = oneshot::channel();
        let name = iface.to_string();
        let task = tokio::spawn(supervise(
            name, child, uapi, config, stop_rx, pid_tx, restart_tx,
        ));
        Ok(Self {
            iface: iface.to_string(),
            stop: Mutex::new(Some(stop_tx)),
            task: Mutex::new(Some(task)),
            pid: pid_rx,
            restarts: restart_rx,
        })
    }

    /// PID of the current wireguard-go process.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    /// Watch the number of restarts (a change means the device lost its peers).
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarts.clone()
    }

    /// Stops the process (SIGTERM, then SIGKILL) and removes a socket it left behind.
    pub async fn stop(&self) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(task) = task {
            let _ = task.await;
        }
        let uapi = UapiClient::for_interface(&self.iface);
        if uapi.path().exists() && !uapi.is_alive().await {
            let _ = std::fs::remove_file(uapi.path());
        }
    }
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        // Stopping the supervisor drops the Child, whose kill_on_drop kills it.
        if let Ok(mut t) = self.task.lock() {
            if let Some(task) = t.take() {
                task.abort();
            }
        }
    }
}

async fn supervise(
    iface: String,
    mut child: Child,
    uapi: UapiClient,
    config: Arc<Mutex<Option<DeviceConfig>>>,
    mut stop: oneshot::Receiver<()>,
    pid_tx: watch::Sender<Option<u32>>,
    restart_tx: watch::Sender<u64>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = &mut stop => {
                terminate(&mut child).await;
                let _ = pid_tx.send(None);
                return;
            }
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(iface = %iface, %status, "wireguard-go exited; restarting in {backoff:?}");
                let _ = pid_tx.send(None);
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                let restarted = async {
                    clear_stale_socket(&iface, &uapi).await?;
                    let mut c = spawn_child(&iface)?;
                    if let Err(e) = wait_ready(&iface, &mut c, &uapi).await {
                        terminate(&mut c).await;
                        return Err(e);
                    }
                    Ok(c)
                }
                .await;
                match restarted {
                    Ok(c) => {
                        child = c;
                        let _ = pid_tx.send(child.id());
                        let cfg = config.lock().ok().and_then(|c| c.clone());
                        if let Some(cfg) = cfg {
                            if let Err(e) = uapi.configure(&cfg).await {
                                tracing::warn!(iface = %iface, error = %e, "re-configuring restarted wireguard-go failed");
                            }
                        }
                        restart_tx.send_modify(|n| *n += 1);
                        backoff = Duration::from_millis(500);
                    }
                    Err(e) => {
                        tracing::error!(iface = %iface, error = %e, "restarting wireguard-go failed");
                        // child has exited; wait() returns at once again, so we retry after backoff.
                    }
                }
            }
        }
    }
}
