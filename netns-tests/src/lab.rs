//! Namespaces, veth links, recorded PIDs/sockets, and teardown. Everything a test creates is
//! registered in a process-wide list that [`Lab`]'s `Drop`, a panic, or SIGINT/SIGTERM/SIGHUP
//! tears down: recorded PIDs are killed only while they still live in one of our namespaces
//! (guards against PID reuse), then the namespaces (with their nftables tables and links) are
//! deleted and leftover UAPI sockets removed.
#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::{Mutex, Once};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Default)]
struct Registry {
    netns: Vec<String>,
    pids: Vec<u32>,
    sockets: Vec<String>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    netns: Vec::new(),
    pids: Vec::new(),
    sockets: Vec::new(),
});
static SIGNALS: Once = Once::new();

/// Runs a command, returns stdout; panics with stderr on failure (test code).
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command; returns whether it succeeded (output discarded).
pub fn sh_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn netns_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.display().to_string())
}

fn netns_id(name: &str) -> Option<String> {
    // The inode of /var/run/netns/NAME equals the target of /proc/PID/ns/net ("net:[inode]").
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/var/run/netns/{name}"))
        .ok()
        .map(|m| format!("net:[{}]", m.ino()))
}

/// Tears down everything registered. Idempotent.
pub fn cleanup_all() {
    let (netns, pids, sockets) = match REGISTRY.lock() {
        Ok(mut r) => (
            std::mem::take(&mut r.netns),
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.sockets),
        ),
        Err(_) => return,
    };
    let ours: Vec<String> = netns.iter().filter_map(|n| netns_id(n)).collect();
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        for pid in &pids {
            let inside = netns_of(*pid).is_some_and(|n| ours.contains(&n));
            if inside {
                if let Ok(raw) = i32::try_from(*pid) {
                    let _ = kill(Pid::from_raw(raw), sig);
                }
            }
        }
        if sig == Signal::SIGTERM {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    for ns in netns.iter().rev() {
        // processes left in a namespace we created were started by this test
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(raw) = p.parse::<i32>() {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
}

fn install_signal_handlers() {
    SIGNALS.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut i), Ok(mut t), Ok(mut h)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                        signal(SignalKind::hangup()),
                    ) else {
                        return;
                    };
                    tokio::select! { _ = i.recv() => {}, _ = t.recv() => {}, _ = h.recv() => {} }
                    eprintln!("interrupted: tearing down namespaces and processes");
                    cleanup_all();
                    std::process::exit(130);
                });
            });
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            prev(info);
            cleanup_all();
        }));
    });
}

/// A test lab: a unique prefix and the resources created under it.
pub struct Lab {
    pub id: String,
}

impl Lab {
    /// New lab with prefix `wgm<pid>` (unique machine-wide while this process lives).
    pub fn new() -> Self {
        install_signal_handlers();
        Self {
            id: format!("wgm{}", std::process::id() % 100_000),
        }
    }

    /// Real namespace name for a logical one.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.id)
    }

    /// Interface name unique machine-wide (UAPI sockets are shared by all namespaces), ≤ 15.
    pub fn ifname(&self, tag: &str) -> String {
        let mut s = format!("{}{tag}", self.id);
        s.truncate(15);
        s
    }

    /// Creates a namespace (lo up) and registers it.
    pub fn add_ns(&self, name: &str) -> String {
        let ns = self.ns(name);
        if sh_ok("ip", &["netns", "pids", &ns]) {
            let _ = sh_ok("ip", &["netns", "del", &ns]);
        }
        if let Ok(mut r) = REGISTRY.lock() {
            r.netns.push(ns.clone());
        }
        sh("ip", &["netns", "add", &ns]);
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// veth pair between two namespaces with addresses (CIDR), both up.
    pub fn link(&self, ns_a: &str, if_a: &str, addr_a: &str, ns_b: &str, if_b: &str, addr_b: &str) {
        sh(
            "ip",
            &[
                "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns",
                ns_b,
            ],
        );
        for (ns, ifn, addr) in [(ns_a, if_a, addr_a), (ns_b, if_b, addr_b)] {
            sh("ip", &["-n", ns, "addr", "add", addr, "dev", ifn]);
            sh("ip", &["-n", ns, "link", "set", ifn, "up"]);
        }
    }

    /// Records a PID to kill on teardown (only while it is inside one of our namespaces).
    pub fn record_pid(&self, pid: u32) {
        if let Ok(mut r) = REGISTRY.lock() {
            r.pids.push(pid);
        }
    }

    /// Records a UAPI socket path to remove on teardown.
    pub fn record_socket(&self, iface: &str) {
        if let Ok(mut r) = REGISTRY.lock() {
            r.sockets.push(format!("/var/run/wireguard/{iface}.sock"));
        }
    }

    /// Namespaces of this lab that still exist.
    pub fn leftover_netns(&self) -> Vec<String> {
        sh("ip", &["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{}-", self.id)))
            .map(str::to_string)
            .collect()
    }

    /// UAPI sockets of this lab that still exist.
    pub fn leftover_sockets(&self) -> Vec<String> {
        std::fs::read_dir("/var/run/wireguard")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.id))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        cleanup_all();
        if std::env::var_os("WGMESH_KEEP").is_none() {
            remove_scratch_files(&self.id);
        }
    }
}

/// Removes this lab's scratch files from the temp dir (`<id>-*.secret`, `<id>-*.delay`,
/// `<id>-swarm.log`): a test that failed half-way leaves no mesh secret behind. Logs a failing
/// test points at (daemon directories, the coturn log) stay.
fn remove_scratch_files(id: &str) {
    let prefix = format!("{id}-");
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let scratch =
            name.ends_with(".secret") || name.ends_with(".delay") || name.ends_with("-swarm.log");
        if name.starts_with(&prefix) && scratch && entry.path().is_file() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
