//! The daemon's NAT check: a task that asks the STUN servers from the control socket at start,
//! every 60 s, when the main loop reports an address change, and after a wake-up (the wall
//! clock jumped ahead of the monotonic one), and hands each result to the main loop; and
//! [`StunState`], what the main loop keeps of it (the record's STUN candidates and NAT type,
//! and the `show` facts).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::candidates::{is_global_ipv6, merge, stun_candidates};
use super::local::{LocalFacts, now_millis};
use crate::control::report::{CandidateReport, InterfaceReport, NatReport};
use crate::discovery::canonical;
use crate::discovery::control_socket::ControlSocket;
use crate::discovery::stun::check::filtering_test;
use crate::discovery::stun::{CheckInputs, CheckReport, StunClient, run_check};
use crate::metrics::Metrics;
use crate::proto::{EndpointCandidate, EndpointKind, NatType};

/// Periodic re-check.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);
/// How often the task looks for a wake-up (a wall-clock jump).
const WAKE_TICK: Duration = Duration::from_secs(1);
/// A wall clock this far ahead of the monotonic clock means the host slept.
const WAKE_JUMP: Duration = Duration::from_secs(3);
/// Longest a STUN server name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One result of the check task.
#[derive(Debug, Clone)]
pub struct StunResult {
    pub report: Arc<CheckReport>,
    /// `false` for the quick result (mapping only, the previous filtering), `true` once the
    /// filtering test ran too (a check sends both).
    pub complete: bool,
}

/// The running check task. Dropping it stops the task.
pub struct StunTask {
    recheck: Arc<Notify>,
    results: mpsc::Receiver<StunResult>,
    handle: JoinHandle<()>,
}

impl Drop for StunTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl StunTask {
    /// Starts checking `servers` (`HOST:PORT`) from the control socket; `None` without servers
    /// (`--no-stun`). `mesh_interface` is left out of the host's addresses.
    pub fn spawn(
        socket: &ControlSocket,
        servers: &[String],
        mesh_interface: &str,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        if servers.is_empty() {
            return None;
        }
        let recheck = Arc::new(Notify::new());
        let (tx, results) = mpsc::channel(4);
        let handle = tokio::spawn(run(
            StunClient::on_control_socket(socket),
            servers.to_vec(),
            mesh_interface.to_string(),
            recheck.clone(),
            tx,
            metrics,
        ));
        Some(Self {
            recheck,
            results,
            handle,
        })
    }

    /// Asks for a check now (address or route change).
    pub fn recheck(&self) {
        self.recheck.notify_one();
    }

    /// The next result (for `select!`).
    pub async fn next(&mut self) -> Option<StunResult> {
        self.results.recv().await
    }
}

/// Resolves `HOST:PORT` names: every IPv4 and (on a dual-stack socket) IPv6 address, at most
/// two of each per name. Names that fail are logged and skipped.
pub async fn resolve_servers(servers: &[String], ipv6: bool) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    for name in servers {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.as_str())).await {
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.map(canonical).collect();
                let v4 = addrs.iter().filter(|a| a.is_ipv4()).take(2);
                let v6 = addrs.iter().filter(|a| ipv6 && a.is_ipv6()).take(2);
                for a in v4.chain(v6) {
                    if !out.iter().any(|(_, b)| b == a) {
                        out.push((name.clone(), *a));
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(server = %name, error = %e, "STUN server not resolved"),
            Err(_) => tracing::debug!(server = %name, "STUN server name took too long to resolve"),
        }
    }
    out
}

/// The host's addresses (all but loopback and `skip_interface`), and its global IPv6 ones.
pub fn host_addresses(skip_interface: &str) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let mut all = Vec::new();
    if let Ok(list) = nix::ifaddrs::getifaddrs() {
        for ifa in list {
            if ifa.interface_name == skip_interface {
                continue;
            }
            let Some(addr) = ifa.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if !ip.is_loopback() && !all.contains(&ip) {
                all.push(ip);
            }
        }
    }
    let global6 = all
        .iter()
        .filter(|ip| matches!(ip, IpAddr::V6(v6) if is_global_ipv6(v6)))
        .copied()
        .collect();
    (all, global6)
}

/// One full check: mapping from `client`, then the RFC 5780 filtering test on a fresh socket.
/// `quick` gets the mapping result at once (with `previous` filtering), before the filtering
/// test's waits.
pub async fn check_once(
    client: &StunClient,
    servers: &[String],
    mesh_interface: &str,
    previous: Option<crate::mesh::nat_check::Filtering>,
    quick: impl FnOnce(CheckReport),
) -> CheckReport {
    let resolved = resolve_servers(servers, client.local_addr().is_ipv6()).await;
    let (local_ips, global6) = host_addresses(mesh_interface);
    let report = run_check(
        client,
        CheckInputs {
            servers: &resolved,
            local_ips: &local_ips,
            interface_ipv6: global6,
        },
    )
    .await;
    quick(report.clone().with_filtering(previous));
    let filtering = filtering_test(&report.servers).await;
    report.with_filtering(filtering.or(previous))
}

async fn run(
    client: StunClient,
    servers: Vec<String>,
    mesh_interface: String,
    recheck: Arc<Notify>,
    results: mpsc::Sender<StunResult>,
    metrics: Arc<Metrics>,
) {
    let mut filtering = None;
    let mut reason = "start";
    loop {
        let started = Instant::now();
        let tx = results.clone();
        let report = check_once(&client, &servers, &mesh_interface, filtering, |quick| {
            tracing::debug!(reason, took_ms = started.elapsed().as_millis() as u64, nat = quick.ipv4.nat_type, public = ?quick.ipv4.public, "STUN mapping checked");
            let _ = tx.try_send(StunResult {
                report: Arc::new(quick),
                complete: false,
            });
        })
        .await;
        filtering = report.verdict_v4.filtering;
        tracing::info!(
            reason,
            took_ms = started.elapsed().as_millis() as u64,
            nat = report.ipv4.nat_type,
            mapping = report.ipv4.mapping,
            port_preserved = ?report.ipv4.port_preserved,
            filtering = ?report.ipv4.filtering,
            public = ?report.ipv4.public,
            "NAT checked"
        );
        metrics.inc("wgmesh_stun_checks_total", &[("reason", reason)]);
        for s in &report.servers {
            if let Some(ms) = s.latency_ms {
                metrics.set(
                    "wgmesh_stun_latency_seconds",
                    &[("server", &s.address.to_string())],
                    ms / 1000.0,
                );
            }
        }
        metrics.replace(
            "wgmesh_nat_info",
            vec![(
                vec![
                    ("type", report.ipv4.nat_type),
                    ("mapping", report.ipv4.mapping),
                ],
                1.0,
            )],
        );
        let result = StunResult {
            report: Arc::new(report),
            complete: true,
        };
        if results.send(result).await.is_err() {
            return;
        }
        reason = wait_for_trigger(&recheck).await;
    }
}

/// Waits for the next reason to check: the period, a recheck request, or a wake-up.
async fn wait_for_trigger(recheck: &Notify) -> &'static str {
    let until = Instant::now() + CHECK_EVERY;
    let mut tick = tokio::time::interval(WAKE_TICK);
    let mut last = (Instant::now(), SystemTime::now());
    loop {
        tokio::select! {
            _ = recheck.notified() => return "address-change",
            _ = tokio::time::sleep_until(until.into()) => return "periodic",
            _ = tick.tick() => {
                let now = (Instant::now(), SystemTime::now());
                let mono = now.0.duration_since(last.0);
                let wall = now.1.duration_since(last.1).unwrap_or_default();
                last = now;
                if wall > mono + WAKE_JUMP {
                    return "wake-up";
                }
            }
        }
    }
}

/// What the main loop keeps of the checks.
#[derive(Debug, Default)]
pub struct StunState {
    /// The record's STUN candidates (kind 1).
    pub candidates: Vec<EndpointCandidate>,
    pub nat_type: NatType,
    report: Option<NatReport>,
    public: Option<SocketAddr>,
    checks: u64,
}

impl StunState {
    /// Takes a check's result into the node's facts; returns whether the record changed.
    pub fn update(&mut self, result: &StunResult, facts: &mut LocalFacts) -> bool {
        let report = &result.report;
        if result.complete {
            self.checks += 1;
        }
        self.candidates = stun_candidates(report, facts.wireguard_port);
        self.nat_type = report.verdict_v4.nat_type;
        self.public = report.verdict_v4.public.or(report.verdict_v6.public);
        self.report = Some(NatReport {
            udp: report.udp,
            mapping: report.ipv4.mapping.to_string(),
            port_preserved: report.ipv4.port_preserved,
            filtering: report.ipv4.filtering.map(str::to_string),
            public_ipv6: report.ipv6.public.map(|a| a.to_string()),
            checks: self.checks,
            checked_at_ms: now_millis().0,
        });
        let lan: Vec<EndpointCandidate> = facts
            .endpoints
            .iter()
            .filter(|c| c.kind != EndpointKind::Stun)
            .copied()
            .collect();
        let endpoints = merge(lan, &self.candidates);
        let changed = endpoints != facts.endpoints || self.nat_type != facts.nat_type;
        facts.endpoints = endpoints;
        facts.nat_type = self.nat_type;
        changed
    }

    /// Writes the NAT facts and the record's candidates into `show`'s interface block.
    pub fn fill(&self, interface: &mut InterfaceReport, endpoints: &[EndpointCandidate]) {
        interface.nat_type = self.nat_type.as_str().to_string();
        interface.public_endpoint = self.public.map(|a| a.to_string());
        interface.nat = self.report.clone();
        interface.endpoint_candidates = endpoints
            .iter()
            .map(|c| CandidateReport {
                kind: kind_name(c.kind).to_string(),
                address: c.addr.to_string(),
            })
            .collect();
    }
}

/// The name of a candidate kind in `show`.
pub fn kind_name(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::Lan => "lan",
        EndpointKind::Stun => "stun",
        EndpointKind::Observed => "observed",
        EndpointKind::PublicIpv6 => "public-ipv6",
        EndpointKind::WireguardMapped => "wireguard-mapped",
    }
}
