//! Health probes over the tunnel: decides (through the core's `ProbeMonitor`) which peers to
//! probe each second, sends `probe` messages to their mesh address and control port, matches
//! replies by id and sender, turns timeouts into failures, and keeps the RTTs for `show` and
//! metrics. Policy (when to probe, when a peer is unreachable) stays in the core.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::discovery::control_socket::ProbeReplyEvent;
use crate::mesh::health::probe::{ProbeNeed, needs_probing};
use crate::mesh::{HealthView, Millis, PeerEntry, ProbeMonitor, ProbeVerdict, WgKey};

/// A probe not answered within this time counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

struct Outstanding {
    key: WgKey,
    to: IpAddr,
    sent: Millis,
}

/// Probe bookkeeping for the daemon.
#[derive(Default)]
pub struct Prober {
    monitor: ProbeMonitor,
    outstanding: BTreeMap<u64, Outstanding>,
    next_id: u64,
}

impl Prober {
    /// The probes to send now: (peer, destination, id), and whether any peer still needs
    /// probing (when none does, the caller can stop ticking until something changes).
    /// Peers marked temporarily offline are not probed until their offline time ends.
    pub fn due(
        &mut self,
        peers: &[PeerEntry],
        last_handshake: &BTreeMap<WgKey, Option<Millis>>,
        health: &HealthView,
        now: Millis,
    ) -> (Vec<(WgKey, SocketAddr, u64)>, bool) {
        let mut out = Vec::new();
        let mut any_needed = !self.outstanding.is_empty();
        for p in peers {
            let key = *p.key();
            if health.offline.is_offline(&key, now) {
                continue;
            }
            let need = ProbeNeed {
                last_handshake: last_handshake.get(&key).copied().flatten(),
                relayed: health.relayed.contains_key(&key),
                suspect: false,
                first_seen: p.first_seen,
            };
            any_needed |= needs_probing(&need, now);
            if self.monitor.due(key, &need, now) {
                self.next_id = self.next_id.wrapping_add(1);
                let to = IpAddr::V4(p.record.mesh_ipv4);
                self.outstanding
                    .insert(self.next_id, Outstanding { key, to, sent: now });
                out.push((
                    key,
                    SocketAddr::new(to, p.record.control_port),
                    self.next_id,
                ));
            }
        }
        (out, any_needed)
    }

    /// A reply arrived; returns the peer and RTT when it matches a probe sent to its sender.
    pub fn on_reply(&mut self, ev: &ProbeReplyEvent) -> Option<(WgKey, Duration)> {
        let o = self.outstanding.get(&ev.id)?;
        if ev.from.ip().to_canonical() != o.to {
            return None;
        }
        let o = self.outstanding.remove(&ev.id)?;
        let rtt = ev.received_at.since(o.sent);
        self.monitor.succeeded(o.key, rtt);
        Some((o.key, rtt))
    }

    /// Probes older than the timeout fail; returns the peers that just became unreachable.
    pub fn expire(&mut self, now: Millis) -> Vec<WgKey> {
        let late: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| now.since(o.sent) >= PROBE_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        let mut unreachable = Vec::new();
        for id in late {
            if let Some(o) = self.outstanding.remove(&id)
                && self.monitor.failed(o.key) == ProbeVerdict::Unreachable
            {
                unreachable.push(o.key);
            }
        }
        unreachable
    }

    /// Smoothed RTTs (ms) of the peers measured so far.
    pub fn rtts(&self, peers: &[PeerEntry]) -> BTreeMap<WgKey, f64> {
        peers
            .iter()
            .filter_map(|p| Some((*p.key(), self.monitor.smoothed_rtt_ms(p.key())?)))
            .collect()
    }

    /// Whether probes last judged `key` unreachable.
    pub fn is_unreachable(&self, key: &WgKey) -> bool {
        self.monitor.is_unreachable(key)
    }

    /// Forgets a peer that left the store.
    pub fn forget(&mut self, key: &WgKey) {
        self.monitor.forget(key);
        self.outstanding.retain(|_, o| o.key != *key);
    }
}
