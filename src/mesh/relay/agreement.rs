//! One relay pass over every peer, and the agreement that keeps both sides of a pair on one
//! path. The evidence a pass reads depends on the path: a direct peer is judged by its
//! WireGuard handshake and transfer and by probes through the tunnel (3 failures in a row move
//! it to a relay); a relayed peer by probes to its endpoint outside the tunnel (an answer in
//! the last 10 s counts as a healthy direct path; 3 healthy passes bring it back).
//!
//! Agreement: a node that relays a peer on its own evidence tells the relay every 2 s (the
//! relay passes it on), and the peer relays back through a relay while such notices stay fresh
//! (6 s). A node going direct again says so once, and the peer drops its relay state for the
//! pair at once, so both sides switch together. Notices that come only from the other side's
//! request are never echoed, so two nodes cannot hold each other on a relay.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

use crate::mesh::health::OfflineList;
use crate::mesh::nat::attempt_order;
use crate::mesh::rank::DiscoveryMethod;
use crate::mesh::time::Millis;
use crate::mesh::{PeerEntry, WgKey};
use crate::proto::NatType;

use super::decide::{
    PROBE_FAILURES_TO_RELAY, RelayInputs, RelayVerdict, on_shared_lan, should_relay,
};
use super::select::relay_candidates;
use super::tracker::RelayTracker;

/// A notice from the other side keeps the pair relayed for this long.
pub const NOTICE_FRESH_FOR: Duration = Duration::from_secs(6);
/// A node relaying a peer on its own evidence repeats its notice this often.
pub const NOTICE_EVERY: Duration = Duration::from_secs(2);
/// A peer known this long without any direct handshake is judged unreachable directly.
pub const NO_HANDSHAKE_RELAY_AFTER: Duration = Duration::from_secs(10);
/// A relayed peer's direct path counts as healthy while an endpoint probe was answered within
/// this time.
pub const DIRECT_ANSWER_FRESH_FOR: Duration = Duration::from_secs(10);

/// What the daemon measured about one peer since the last pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerEvidence {
    /// Direct path: the WireGuard handshake, whether rx/tx grew, tunnel probes failed in a row.
    pub last_handshake: Option<Millis>,
    pub transfer_grew: bool,
    pub probe_failures: u32,
    /// Relayed: when a probe to the peer's endpoint (outside the tunnel) was last answered.
    pub direct_answered_at: Option<Millis>,
}

/// This node's side of the decision.
#[derive(Debug, Clone, Copy)]
pub struct LocalRelayFacts<'a> {
    pub key: WgKey,
    pub nat: NatType,
    /// The networks of this node's interfaces (peers on them are never relayed).
    pub networks: &'a [IpNet],
    /// `--force-relay`.
    pub force_relay: bool,
}

/// A notice to send to `relay`: this node reaches `peer` through it (or goes direct again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeToSend {
    pub relay: WgKey,
    pub peer: WgKey,
    pub relayed: bool,
}

/// What a pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Relayed peer → relay (the planner's input).
    pub relayed: BTreeMap<WgKey, WgKey>,
    pub notices: Vec<NoticeToSend>,
}

/// Relay decisions with the pair agreement, across passes.
#[derive(Debug, Clone, Default)]
pub struct RelayAgreement {
    tracker: RelayTracker,
    /// The other side relays this node: peer → (its relay, when its latest notice came).
    asked: BTreeMap<WgKey, (WgKey, Millis)>,
    /// Peers relayed on this node's own evidence → (relay, when last told).
    told: BTreeMap<WgKey, (WgKey, Millis)>,
}

impl RelayAgreement {
    /// A relay said `peer` reaches this node through `relay` (`relayed`), or goes direct again.
    /// Returns whether a pass should run now.
    pub fn on_notice(&mut self, peer: WgKey, relay: WgKey, relayed: bool, now: Millis) -> bool {
        if relayed {
            self.asked.insert(peer, (relay, now)).is_none()
        } else {
            self.asked.remove(&peer);
            // Switch together: drop this side's hysteresis for the pair.
            self.tracker.forget(&peer);
            true
        }
    }

    /// The relay `peer` goes through now.
    pub fn relay_of(&self, peer: &WgKey) -> Option<WgKey> {
        self.tracker.relay_of(peer)
    }

    /// One pass over `peers`.
    pub fn pass(
        &mut self,
        local: &LocalRelayFacts<'_>,
        peers: &[PeerEntry],
        offline: &OfflineList,
        evidence: &BTreeMap<WgKey, PeerEvidence>,
        now: Millis,
    ) -> RelayPass {
        self.asked
            .retain(|_, (_, at)| now.since(*at) < NOTICE_FRESH_FOR);
        self.tracker.prune(now);
        let candidates = relay_candidates(peers, offline, |_| None, |_| (None, 0), now);
        let mut notices = Vec::new();
        for entry in peers {
            let key = *entry.key();
            let ev = evidence.get(&key).copied().unwrap_or_default();
            let relayed_now = self.tracker.relay_of(&key).is_some();
            let (last_handshake, transfer_grew, probe_unreachable) = if relayed_now {
                let answered = ev
                    .direct_answered_at
                    .filter(|t| now.since(*t) < DIRECT_ANSWER_FRESH_FOR);
                (answered, false, answered.is_none())
            } else {
                // Never handshook directly although known for a while: punch sessions re-create
                // the entry every step, so tunnel probes rarely fail three times in a row; the
                // relay must not wait for them.
                let never = ev.last_handshake.is_none()
                    && now.since(entry.first_seen) >= NO_HANDSHAKE_RELAY_AFTER;
                (
                    ev.last_handshake,
                    ev.transfer_grew,
                    ev.probe_failures >= PROBE_FAILURES_TO_RELAY || never,
                )
            };
            let asked = self.asked.contains_key(&key);
            let inputs = RelayInputs {
                local: local.key,
                peer: key,
                peer_is_introducer: entry.record.introducer,
                shared_lan: on_shared_lan(&entry.record, local.networks),
                found_by_lan: entry.discovered_via.contains(&DiscoveryMethod::Lan),
                force_relay: local.force_relay,
                relay_available: false,
                last_handshake,
                transfer_grew,
                probe_unreachable,
                peer_relays_us: asked,
                attempt_order: attempt_order(local.nat, entry.record.nat_type),
            };
            let own_evidence = RelayInputs {
                peer_relays_us: false,
                relay_available: true,
                ..inputs
            };
            let own_says_relay = matches!(should_relay(&own_evidence, now), RelayVerdict::Relay(_));
            let relay = self.tracker.check(inputs, &candidates, now);
            // Relayed on this node's own account: its own evidence, or its hysteresis still
            // holding the pair (not merely because the other side asked).
            let own = relay.is_some() && (own_says_relay || !asked);
            match (relay, own) {
                (Some(r), true) => {
                    let due = self
                        .told
                        .get(&key)
                        .is_none_or(|(was, at)| *was != r || now.since(*at) >= NOTICE_EVERY);
                    if due {
                        self.told.insert(key, (r, now));
                        notices.push(NoticeToSend {
                            relay: r,
                            peer: key,
                            relayed: true,
                        });
                    }
                }
                (None, _) => {
                    if let Some((r, _)) = self.told.remove(&key) {
                        notices.push(NoticeToSend {
                            relay: r,
                            peer: key,
                            relayed: false,
                        });
                    }
                }
                (Some(_), false) => {
                    // Relayed only because the peer asked: nothing to tell.
                    self.told.remove(&key);
                }
            }
        }
        let held: Vec<WgKey> = peers.iter().map(|e| *e.key()).collect();
        self.told.retain(|k, _| held.contains(k));
        RelayPass {
            relayed: self.tracker.relayed(),
            notices,
        }
    }

    /// Forgets a peer that left the store.
    pub fn forget(&mut self, peer: &WgKey) {
        self.tracker.forget(peer);
        self.asked.remove(peer);
        self.told.remove(peer);
    }
}
