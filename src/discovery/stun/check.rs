//! The NAT check (`wgmesh netcheck` and the daemon's periodic check): Binding requests to every
//! STUN server (latency, public addresses), a second address of an RFC 5780 server when only
//! one server answered, and — when a server supports RFC 5780 — the filtering tests on a fresh
//! socket (a socket that talked to nobody, so no earlier flow lets the answers through). The
//! classification itself is `mesh::nat_check` (pure).

use std::net::{IpAddr, SocketAddr};

use futures_util::future::join_all;
use serde::Serialize;
use tracing::debug;

use super::client::{Exchanged, StunClient, StunError};
use crate::mesh::nat_check::{Filtering, MappingObservation, NatVerdict, classify_nat};

/// What one server said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerResult {
    /// `HOST:PORT` as configured.
    pub server: String,
    pub address: SocketAddr,
    pub reachable: bool,
    pub latency_ms: Option<f64>,
    pub mapped: Option<SocketAddr>,
    /// The server's RFC 5780 alternate address (it can run the filtering tests).
    pub other_address: Option<SocketAddr>,
}

/// One address family's verdict, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyReport {
    pub udp: bool,
    pub public: Option<SocketAddr>,
    pub behind_nat: Option<bool>,
    pub mapping: &'static str,
    pub port_preserved: Option<bool>,
    pub filtering: Option<&'static str>,
    pub nat_type: &'static str,
}

impl FamilyReport {
    fn of(v: &NatVerdict) -> Self {
        Self {
            udp: v.udp_reachable,
            public: v.public,
            behind_nat: v.behind_nat,
            mapping: v.mapping.as_str(),
            port_preserved: v.port_preserved,
            filtering: v.filtering.map(Filtering::as_str),
            nat_type: v.nat_type.as_str(),
        }
    }
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Any server answered over any family.
    pub udp: bool,
    /// The local socket the mapping was learned for.
    pub local: SocketAddr,
    pub ipv4: FamilyReport,
    pub ipv6: FamilyReport,
    /// Global IPv6 addresses on this host's interfaces (candidates without STUN).
    pub interface_ipv6: Vec<IpAddr>,
    pub servers: Vec<ServerResult>,
    /// Mapping test to a server's alternate address (when only one server answered).
    pub alternate: Option<ServerResult>,
    #[serde(skip)]
    pub verdict_v4: NatVerdict,
    #[serde(skip)]
    pub verdict_v6: NatVerdict,
    #[serde(skip)]
    observations_v4: Vec<MappingObservation>,
    #[serde(skip)]
    local_ips: Vec<IpAddr>,
}

impl CheckReport {
    /// The report with the IPv4 verdict re-classified for `filtering` (the RFC 5780 test's
    /// result, or a previous one).
    pub fn with_filtering(mut self, filtering: Option<Filtering>) -> Self {
        self.verdict_v4 = classify_nat(
            self.local.port(),
            &self.local_ips,
            &self.observations_v4,
            filtering,
        );
        self.ipv4 = FamilyReport::of(&self.verdict_v4);
        self
    }
}

/// Inputs of a check.
pub struct CheckInputs<'a> {
    /// Servers: the configured name and the resolved addresses.
    pub servers: &'a [(String, SocketAddr)],
    /// This host's addresses (to tell "no NAT"), and its global IPv6 addresses.
    pub local_ips: &'a [IpAddr],
    pub interface_ipv6: Vec<IpAddr>,
}

fn server_result(server: &str, address: SocketAddr, r: Option<&Exchanged>) -> ServerResult {
    ServerResult {
        server: server.to_string(),
        address,
        reachable: r.is_some(),
        latency_ms: r.map(|e| (e.rtt.as_secs_f64() * 1e6).round() / 1e3),
        mapped: r.map(|e| e.answer.response.mapped),
        other_address: r.and_then(|e| e.answer.response.other_address),
    }
}

async fn ask(client: &StunClient, to: SocketAddr) -> Option<Exchanged> {
    if !client.can_reach(&to) {
        return None;
    }
    match client.binding(to, false, false, to).await {
        Ok(r) => r,
        Err(e) => {
            debug!(server = %to, error = %e, "STUN request failed");
            None
        }
    }
}

/// Runs the mapping part of the check with `client` (the socket whose mapping is wanted); the
/// filtering test is [`filtering_test`], applied with [`CheckReport::with_filtering`].
pub async fn run_check(client: &StunClient, inputs: CheckInputs<'_>) -> CheckReport {
    let answers = join_all(inputs.servers.iter().map(|(_, a)| ask(client, *a))).await;
    let servers: Vec<ServerResult> = inputs
        .servers
        .iter()
        .zip(&answers)
        .map(|((name, addr), r)| server_result(name, *addr, r.as_ref()))
        .collect();
    let mut v4: Vec<MappingObservation> = Vec::new();
    let mut v6: Vec<MappingObservation> = Vec::new();
    for s in &servers {
        if let Some(mapped) = s.mapped {
            let o = MappingObservation {
                server: s.address,
                mapped,
            };
            if s.address.ip().to_canonical().is_ipv4() {
                v4.push(o);
            } else {
                v6.push(o);
            }
        }
    }
    // One server only (or several names for one address): ask its alternate IP, primary port.
    let mut alternate = None;
    let distinct_v4: std::collections::BTreeSet<IpAddr> =
        v4.iter().map(|o| o.server.ip()).collect();
    if distinct_v4.len() == 1 {
        if let Some(s) = servers
            .iter()
            .find(|s| s.other_address.is_some() && s.address.is_ipv4())
        {
            if let Some(other) = s.other_address {
                let to = SocketAddr::new(other.ip(), s.address.port());
                let r = ask(client, to).await;
                if let Some(e) = &r {
                    v4.push(MappingObservation {
                        server: to,
                        mapped: e.answer.response.mapped,
                    });
                }
                alternate = Some(server_result(&s.server, to, r.as_ref()));
            }
        }
    }
    let port = client.local_addr().port();
    let verdict_v4 = classify_nat(port, inputs.local_ips, &v4, None);
    let verdict_v6 = classify_nat(port, inputs.local_ips, &v6, None);
    CheckReport {
        udp: verdict_v4.udp_reachable || verdict_v6.udp_reachable,
        local: client.local_addr(),
        ipv4: FamilyReport::of(&verdict_v4),
        ipv6: FamilyReport::of(&verdict_v6),
        interface_ipv6: inputs.interface_ipv6,
        servers,
        alternate,
        verdict_v4,
        verdict_v6,
        observations_v4: v4,
        local_ips: inputs.local_ips.to_vec(),
    }
}

/// RFC 5780 §4.4 on a fresh socket: a plain request to open a mapping, then "change IP and
/// port" (an answer means endpoint-independent filtering) and "change port" (an answer means
/// address-dependent). `None` when no IPv4 server supports RFC 5780 or the socket failed.
pub async fn filtering_test(servers: &[ServerResult]) -> Option<Filtering> {
    let s = servers
        .iter()
        .find(|s| s.address.is_ipv4() && s.other_address.is_some_and(|o| o.is_ipv4()))?;
    let other = s.other_address?;
    let (client, _task) = match StunClient::standalone().await {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "no socket for the filtering test");
            return None;
        }
    };
    ask(&client, s.address).await?;
    let both = client.binding(s.address, true, true, other);
    let port_only = client.binding(
        s.address,
        false,
        true,
        SocketAddr::new(s.address.ip(), other.port()),
    );
    let (both, port_only) = tokio::join!(both, port_only);
    let answered = |r: Result<Option<Exchanged>, StunError>| matches!(r, Ok(Some(_)));
    Some(Filtering::from_tests(answered(both), answered(port_only)))
}
