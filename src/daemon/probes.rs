//! Health probes: decides (through the core's `ProbeMonitor`) which peers to probe each second
//! and sends `probe` messages to their mesh address and control port (through the tunnel);
//! for relayed peers also probes the direct path (the peer's endpoint address and control
//! port, outside the tunnel) every 2 s, the evidence that brings them back. Matches replies by
//! id and sender, turns timeouts into failures, and keeps RTT, jitter, loss and link quality
//! for `show`, metrics and the relay score.
//! Policy (when to probe, when a peer is unreachable or relayed) stays in the core.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::discovery::control_socket::ProbeReplyEvent;
use crate::mesh::health::probe::{LinkStats, ProbeNeed, needs_probing};
use crate::mesh::{HealthView, Millis, PeerEntry, ProbeMonitor, ProbeVerdict, WgKey};
use crate::metrics::Metrics;
use crate::proto::keys::base64_key;

/// A probe not answered within this time counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Probes are judged on the 1 s probe tick; one sent a tick ago counts as timed out even when
/// the tick comes this much early (timer jitter), so each failure costs one tick, not two.
pub const EXPIRY_SLACK: Duration = Duration::from_millis(100);
/// A relayed peer's direct path is probed this often.
pub const DIRECT_PROBE_EVERY: Duration = Duration::from_secs(2);

struct Outstanding {
    key: WgKey,
    to: IpAddr,
    sent: Millis,
    /// A probe of a relayed peer's direct path (outside the tunnel).
    direct: bool,
}

/// One probe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeToSend {
    pub peer: WgKey,
    pub to: SocketAddr,
    pub id: u64,
}

/// What the probes due now are, and whether probing must go on.
pub struct DueProbes {
    pub probes: Vec<ProbeToSend>,
    /// When false, the caller can stop ticking until something changes.
    pub still_needed: bool,
}

/// Probe bookkeeping for the daemon.
#[derive(Default)]
pub struct Prober {
    monitor: ProbeMonitor,
    outstanding: BTreeMap<u64, Outstanding>,
    next_id: u64,
    direct_sent: BTreeMap<WgKey, Millis>,
    direct_answered: BTreeMap<WgKey, Millis>,
    /// When the latest answered tunnel probe to each peer was sent.
    answered_sent: BTreeMap<WgKey, Millis>,
    /// The last `expire` failed some tunnel probe.
    expired_any: bool,
}

impl Prober {
    fn track(&mut self, key: WgKey, to: SocketAddr, direct: bool, now: Millis) -> ProbeToSend {
        self.next_id = self.next_id.wrapping_add(1);
        self.outstanding.insert(
            self.next_id,
            Outstanding {
                key,
                to: to.ip(),
                sent: now,
                direct,
            },
        );
        ProbeToSend {
            peer: key,
            to,
            id: self.next_id,
        }
    }

    /// The probes to send now. `suspects`: peers the last device sample saw this node send to
    /// without hearing back. Peers marked temporarily offline are not probed until their
    /// offline time ends.
    pub fn due(
        &mut self,
        peers: &[PeerEntry],
        last_handshake: &BTreeMap<WgKey, Option<Millis>>,
        suspects: &BTreeSet<WgKey>,
        health: &HealthView,
        now: Millis,
    ) -> DueProbes {
        let mut probes = Vec::new();
        let mut still_needed = !self.outstanding.is_empty();
        for p in peers {
            let key = *p.key();
            if health.offline.is_offline(&key, now) {
                continue;
            }
            let relayed = health.relayed.contains_key(&key);
            let need = ProbeNeed {
                last_handshake: last_handshake.get(&key).copied().flatten(),
                relayed,
                suspect: suspects.contains(&key),
                first_seen: p.first_seen,
                relay_leg: p.record.introducer && !health.relayed.is_empty(),
            };
            still_needed |= needs_probing(&need, now);
            if self.monitor.due(key, &need, now) {
                let to = SocketAddr::new(IpAddr::V4(p.record.mesh_ipv4), p.record.control_port);
                probes.push(self.track(key, to, false, now));
            }
            if relayed
                && let Some(endpoint) = p.endpoint_addr()
                && self
                    .direct_sent
                    .get(&key)
                    .is_none_or(|t| now.since(*t) >= DIRECT_PROBE_EVERY)
            {
                self.direct_sent.insert(key, now);
                let to = SocketAddr::new(endpoint.ip(), p.record.control_port);
                probes.push(self.track(key, to, true, now));
            }
        }
        DueProbes {
            probes,
            still_needed,
        }
    }

    /// A reply arrived; returns the peer and RTT when it matches a tunnel probe sent to its
    /// sender (a direct-path answer is only recorded).
    pub fn on_reply(&mut self, ev: &ProbeReplyEvent) -> Option<(WgKey, Duration)> {
        let o = self.outstanding.get(&ev.id)?;
        if ev.from.ip().to_canonical() != o.to.to_canonical() {
            return None;
        }
        let o = self.outstanding.remove(&ev.id)?;
        if o.direct {
            self.direct_answered.insert(o.key, ev.received_at);
            return None;
        }
        let rtt = ev.received_at.since(o.sent);
        self.monitor.succeeded(o.key, rtt);
        self.answered_sent.insert(o.key, o.sent);
        Some((o.key, rtt))
    }

    /// Probes older than the timeout fail. Returns the peers that just became unreachable
    /// (8 failures: temporarily offline) and whether some peer just reached the failures that
    /// move it to a relay.
    pub fn expire(&mut self, now: Millis) -> (Vec<WgKey>, bool) {
        let late: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| now.since(o.sent) + EXPIRY_SLACK >= PROBE_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        let mut unreachable = Vec::new();
        let mut relay_threshold = false;
        self.expired_any = false;
        for id in late {
            let Some(o) = self.outstanding.remove(&id) else {
                continue;
            };
            if o.direct {
                continue;
            }
            self.expired_any = true;
            let verdict = self.monitor.failed(o.key);
            tracing::debug!(peer = %crate::mesh::short_key(&o.key), ?verdict, "probe timed out");
            match verdict {
                ProbeVerdict::Unreachable => unreachable.push(o.key),
                ProbeVerdict::Failing(n) => {
                    relay_threshold |= n == crate::mesh::relay::PROBE_FAILURES_TO_RELAY;
                }
                ProbeVerdict::Reachable => {}
            }
        }
        (unreachable, relay_threshold)
    }

    /// Tunnel probes to `key` that failed in a row.
    pub fn failures_in_a_row(&self, key: &WgKey) -> u32 {
        self.monitor.failures_in_a_row(key)
    }

    /// When a probe of `key`'s direct path (while relayed) was last answered.
    pub fn direct_answered_at(&self, key: &WgKey) -> Option<Millis> {
        self.direct_answered.get(key).copied()
    }

    /// Whether the last [`Self::expire`] failed some tunnel probe (loss changed).
    pub fn expired_any(&self) -> bool {
        self.expired_any
    }

    /// When the latest answered tunnel probe to `key` was sent.
    pub fn answered_sent_at(&self, key: &WgKey) -> Option<Millis> {
        self.answered_sent.get(key).copied()
    }

    /// RTT, jitter, loss and quality of the peers probed so far.
    pub fn stats(&self, peers: &[PeerEntry]) -> BTreeMap<WgKey, LinkStats> {
        peers
            .iter()
            .filter_map(|p| Some((*p.key(), self.monitor.stats(p.key())?)))
            .collect()
    }

    /// The link quality (0..=100) to every peer measured so far.
    pub fn qualities(&self) -> BTreeMap<WgKey, u8> {
        self.monitor.qualities()
    }

    /// Publishes the per-peer link figures as metrics; returns them for `show`.
    pub fn publish(&self, peers: &[PeerEntry], metrics: &Metrics) -> BTreeMap<WgKey, LinkStats> {
        let stats = self.stats(peers);
        let keys: BTreeMap<&WgKey, String> = stats.keys().map(|k| (k, base64_key(k))).collect();
        let family = |f: &dyn Fn(&LinkStats) -> Option<f64>| {
            stats
                .iter()
                .filter_map(|(k, s)| Some((vec![("peer", keys[k].as_str())], f(s)?)))
                .collect::<Vec<_>>()
        };
        metrics.replace(
            "wgmesh_peer_rtt_seconds",
            family(&|s| s.rtt_ms.map(|v| v / 1000.0)),
        );
        metrics.replace(
            "wgmesh_peer_jitter_seconds",
            family(&|s| s.jitter_ms.map(|v| v / 1000.0)),
        );
        metrics.replace("wgmesh_peer_probe_loss_ratio", family(&|s| s.loss));
        metrics.replace(
            "wgmesh_peer_link_quality",
            family(&|s| s.quality.map(f64::from)),
        );
        stats
    }

    /// Whether probes last judged `key` unreachable.
    pub fn is_unreachable(&self, key: &WgKey) -> bool {
        self.monitor.is_unreachable(key)
    }

    /// Forgets a peer that left the store.
    pub fn forget(&mut self, key: &WgKey) {
        self.monitor.forget(key);
        self.outstanding.retain(|_, o| o.key != *key);
        self.direct_sent.remove(key);
        self.direct_answered.remove(key);
        self.answered_sent.remove(key);
    }
}
