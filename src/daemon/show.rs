//! Builds the `show` report from the daemon's state: the interface block from local facts, and
//! a block per peer joining the store's entry, what WireGuard reports for it, the planner's
//! verdict (direct, LAN or relayed and why) and the measured link (RTT, jitter, loss, quality).

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use crate::control::report::{InterfaceReport, PeerReport, RelayLoadReport, ShowReport};
use crate::mesh::{Millis, PeerEntry, Plan, SkipReason, WgKey};
use crate::platform::DeviceState;
use crate::proto::keys::base64_key;

/// Everything the report needs, gathered by the daemon.
pub struct ShowInputs<'a> {
    pub interface: InterfaceReport,
    pub peers: &'a [PeerEntry],
    pub device: Option<&'a DeviceState>,
    pub plan: &'a Plan,
    pub link: &'a BTreeMap<WgKey, crate::mesh::LinkStats>,
    pub now: Millis,
    pub dead_after: std::time::Duration,
}

fn hostname_of(peers: &[PeerEntry], key: &WgKey) -> String {
    peers
        .iter()
        .find(|p| p.key() == key)
        .map(|p| p.record.hostname.clone())
        .unwrap_or_else(|| crate::mesh::short_key(key))
}

/// The kind of path to a peer, as metrics label it: `direct`, `direct_lan`, `relay`,
/// `offline` or `inactive`.
pub fn path_kind(entry: &PeerEntry, plan: &Plan) -> &'static str {
    match plan.skipped.get(entry.key()) {
        Some(SkipReason::Relayed { .. }) => "relay",
        Some(SkipReason::TemporarilyOffline) => "offline",
        Some(SkipReason::Dead) => "inactive",
        _ if entry.found_by_lan() => "direct_lan",
        _ => "direct",
    }
}

/// Peers counted by [`path_kind`].
pub fn count_paths(peers: &[PeerEntry], plan: &Plan) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for p in peers {
        *counts.entry(path_kind(p, plan)).or_insert(0) += 1;
    }
    counts
}

/// Builds the report.
pub fn build_report(i: ShowInputs<'_>) -> ShowReport {
    let wg: BTreeMap<WgKey, &crate::platform::PeerState> = i
        .device
        .map(|d| d.peers.iter().map(|p| (p.config.public_key, p)).collect())
        .unwrap_or_default();
    let mut peers = Vec::new();
    let mut active = 0;
    for p in i.peers {
        let key = *p.key();
        let alive = p.is_alive(i.now, i.dead_after);
        active += usize::from(alive);
        let state = wg.get(&key);
        let (path, reason) = match i.plan.skipped.get(&key) {
            Some(SkipReason::Relayed { via }) => (
                format!("relay via {}", hostname_of(i.peers, via)),
                Some("direct path unhealthy".to_string()),
            ),
            Some(SkipReason::TemporarilyOffline) => ("offline".to_string(), None),
            Some(SkipReason::Dead) => ("inactive".to_string(), None),
            _ if p.found_by_lan() => ("direct (lan)".to_string(), None),
            _ => ("direct".to_string(), None),
        };
        let link = i.link.get(&key);
        peers.push(PeerReport {
            public_key: base64_key(&key),
            hostname: p.record.hostname.clone(),
            endpoint: state
                .and_then(|s| s.config.endpoint)
                .or_else(|| p.endpoint_addr())
                .map(|e| e.to_string()),
            allowed_ips: state
                .map(|s| s.config.allowed_ips.iter().map(|n| n.to_string()).collect())
                .unwrap_or_default(),
            latest_handshake: state
                .and_then(|s| s.last_handshake)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            transfer_rx: state.map_or(0, |s| s.rx_bytes),
            transfer_tx: state.map_or(0, |s| s.tx_bytes),
            persistent_keepalive: state.and_then(|s| s.config.keepalive()),
            mesh_ipv4: p.record.mesh_ipv4.to_string(),
            mesh_ipv6: Some(p.record.mesh_ipv6.to_string()),
            path,
            relay_reason: reason,
            nat_type: p.record.nat_type.as_str().to_string(),
            discovered_via: p
                .discovered_via
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            last_seen: Some(p.last_seen.0 / 1000),
            rtt_ms: link.and_then(|l| l.rtt_ms),
            active: alive,
            jitter_ms: link.and_then(|l| l.jitter_ms),
            loss: link.and_then(|l| l.loss),
            probes: link.map_or(0, |l| l.probes),
            link_quality: link.and_then(|l| l.quality),
            relay_load: p.record.relay_load.map(|l| RelayLoadReport {
                relayed: l.relayed,
                max: l.max,
            }),
        });
    }
    let mut interface = i.interface;
    interface.peers_active = active;
    interface.peers_total = i.peers.len();
    ShowReport {
        interface,
        peers,
        dht: None,
        registries: Vec::new(),
    }
}
