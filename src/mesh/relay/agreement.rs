//! One relay pass over every peer, and the agreement that keeps both sides of a pair on one
//! path. The evidence a pass reads depends on the path: a direct peer is judged by its
//! WireGuard handshake and transfer and by probes through the tunnel (3 failures in a row move
//! it to a relay); a relayed peer by probes to its endpoint outside the tunnel (an answer in
//! the last 10 s counts as a healthy direct path; 3 healthy passes bring it back).
//!
//! Agreement on *whether*: a node that relays a peer on its own evidence says so (`relayed`)
//! in its notice to the relay every 2 s (the relay passes it on), and the peer relays back
//! through a relay while such notices stay fresh (6 s). A node going direct again says so once
//! (a plain notice), and the peer drops its relay state for the pair at once, so both sides
//! switch together. `relayed` is never set only because the other side asked, so two nodes
//! cannot hold each other on a relay.
//!
//! Agreement on *which* relay: the end with the smaller WireGuard key decides. While it
//! relays the pair (for any reason) its notices carry `chosen` and go to the relay it picked by
//! score ([`super::switch`]); the other end takes the relay that forwarded a fresh `chosen`
//! notice, and until it has one, its own pick. The other end's notices carry its `legs` (its
//! measured link quality to each relay candidate), so the decider scores both legs.

use std::collections::{BTreeMap, BTreeSet};
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
use super::switch::SwitchOutcome;
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
    /// When the latest answered probe through the tunnel (any path) was sent.
    pub answered_sent_at: Option<Millis>,
}

/// A notice a peer's relay passed on (PROTOCOL.md §12, role 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedNotice {
    pub peer: WgKey,
    pub relay: WgKey,
    pub relayed: bool,
    pub chosen: bool,
    pub legs: Vec<(WgKey, u8)>,
}

impl ReceivedNotice {
    fn is_agreement(&self) -> bool {
        self.chosen || !self.legs.is_empty()
    }
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
    /// Measured link quality (0..=100) from this node to each peer probed so far.
    pub leg_quality: &'a BTreeMap<WgKey, u8>,
}

/// A notice to send to `relay`: this node reaches `peer` through it (or goes direct again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeToSend {
    pub relay: WgKey,
    pub peer: WgKey,
    pub relayed: bool,
    /// This node decides the pair's relay and names `relay`.
    pub chosen: bool,
    /// This node's link quality to relay candidates (when the peer decides).
    pub legs: Vec<(WgKey, u8)>,
}

/// A relay change a pass made, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayChange {
    pub peer: WgKey,
    pub relay: WgKey,
    pub outcome: SwitchOutcome,
}

/// What a pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Relayed peer → relay (the planner's input).
    pub relayed: BTreeMap<WgKey, WgKey>,
    pub notices: Vec<NoticeToSend>,
    /// Relay choices that changed in this pass (switches, reverts, follows).
    pub changes: Vec<RelayChange>,
}

/// Relay decisions with the pair agreement, across passes.
#[derive(Debug, Clone, Default)]
pub struct RelayAgreement {
    tracker: RelayTracker,
    /// The other side relays this node: peer → (its relay, when its latest notice came).
    asked: BTreeMap<WgKey, (WgKey, Millis)>,
    /// Peers this node sent notices about → (relay, when last told).
    told: BTreeMap<WgKey, (WgKey, Millis)>,
    /// The relay each deciding peer chose (the relay that passed its `chosen` notice on).
    chosen: BTreeMap<WgKey, (WgKey, Millis)>,
    /// Each peer's reported link quality to relay candidates.
    peer_legs: BTreeMap<WgKey, BTreeMap<WgKey, u8>>,
    /// Peers whose relaying this node's own evidence asked for at the latest pass that had
    /// an opinion: a hysteresis hold counts as this node's own account only then. A hold that
    /// went on only because the other end asked is not: otherwise two ends whose direct path
    /// works again renew each other's hold forever (each claims `relayed` the moment the
    /// other's request expires).
    own_account: BTreeSet<WgKey>,
}

impl RelayAgreement {
    /// A relay passed on a notice from `n.peer`. Returns whether a pass should run now.
    pub fn on_notice(&mut self, n: &ReceivedNotice, now: Millis) -> bool {
        if !n.relayed && !n.is_agreement() {
            self.asked.remove(&n.peer);
            self.chosen.remove(&n.peer);
            // Switch together: drop this side's hysteresis for the pair.
            self.tracker.forget(&n.peer);
            return true;
        }
        let mut run = false;
        if n.relayed {
            run |= self.asked.insert(n.peer, (n.relay, now)).is_none();
        }
        if n.chosen {
            let before = self.chosen.insert(n.peer, (n.relay, now));
            run |= before.is_none_or(|(r, _)| r != n.relay);
        }
        if !n.legs.is_empty() {
            self.peer_legs
                .insert(n.peer, n.legs.iter().copied().collect());
        }
        run
    }

    /// When a pass must run next at the latest (a switch trial to judge).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.tracker.trial_deadline()
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
        self.chosen
            .retain(|_, (_, at)| now.since(*at) < NOTICE_FRESH_FOR);
        self.tracker.prune(now);
        // This node's legs, best first, as reported to the peers that decide.
        let mut legs: Vec<(WgKey, u8)> = peers
            .iter()
            .filter(|e| e.record.introducer)
            .filter_map(|e| Some((*e.key(), *local.leg_quality.get(e.key())?)))
            .collect();
        legs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        legs.truncate(crate::proto::relay::MAX_LEGS);
        let mut notices = Vec::new();
        let mut changes = Vec::new();
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
            let decider = local.key < key;
            let peer_legs = self.peer_legs.get(&key);
            let candidates = relay_candidates(
                peers,
                offline,
                |k| local.leg_quality.get(k).copied(),
                |k| peer_legs.and_then(|l| l.get(k).copied()),
                now,
            );
            // The other end decides: follow its fresh choice when that relay is one this node
            // holds as an introducer.
            let follow = (!decider)
                .then(|| self.chosen.get(&key).map(|(r, _)| *r))
                .flatten()
                .filter(|r| candidates.iter().any(|c| c.key == *r));
            let (relay, outcome) =
                self.tracker
                    .check(inputs, &candidates, follow, ev.answered_sent_at, now);
            if let Some(r) = relay
                && outcome != SwitchOutcome::Kept
            {
                changes.push(RelayChange {
                    peer: key,
                    relay: r,
                    outcome,
                });
            }
            // Relayed on this node's own account: its own evidence, or its hysteresis still
            // holding the pair (not merely because the other side asked).
            if own_says_relay {
                self.own_account.insert(key);
            } else if asked || relay.is_none() {
                self.own_account.remove(&key);
            }
            let own =
                relay.is_some() && (own_says_relay || (!asked && self.own_account.contains(&key)));
            match relay {
                Some(r) => {
                    let leg_report = if decider { Vec::new() } else { legs.clone() };
                    if !own && !decider && leg_report.is_empty() {
                        // Relayed only because the peer asked, and nothing to report.
                        continue;
                    }
                    let due = self
                        .told
                        .get(&key)
                        .is_none_or(|(was, at)| *was != r || now.since(*at) >= NOTICE_EVERY);
                    if due {
                        self.told.insert(key, (r, now));
                        notices.push(NoticeToSend {
                            relay: r,
                            peer: key,
                            relayed: own,
                            chosen: decider,
                            legs: leg_report,
                        });
                    }
                }
                None => {
                    if let Some((r, _)) = self.told.remove(&key) {
                        notices.push(NoticeToSend {
                            relay: r,
                            peer: key,
                            relayed: false,
                            chosen: false,
                            legs: Vec::new(),
                        });
                    }
                }
            }
        }
        let held: Vec<WgKey> = peers.iter().map(|e| *e.key()).collect();
        self.told.retain(|k, _| held.contains(k));
        self.peer_legs.retain(|k, _| held.contains(k));
        RelayPass {
            relayed: self.tracker.relayed(),
            notices,
            changes,
        }
    }

    /// Forgets a peer that left the store.
    pub fn forget(&mut self, peer: &WgKey) {
        self.tracker.forget(peer);
        self.asked.remove(peer);
        self.told.remove(peer);
        self.chosen.remove(peer);
        self.peer_legs.remove(peer);
    }
}
