//! The relay state of every peer across checks: runs [`rank_relays`] and [`should_relay`] for
//! a peer, applies the relayed/direct hysteresis, lets the pair's [`RelaySwitch`] pick the
//! relay (score, re-evaluation, trial and revert) or follow the pair's decider, cools down
//! relays whose trial failed, and yields the peer → relay map the planner reads.

use std::collections::BTreeMap;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

use super::decide::{RelayHysteresis, RelayInputs, should_relay};
use super::select::{RelayCandidate, RelayCooldowns, rank_relays};
use super::switch::{RelaySwitch, SwitchOutcome};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PeerRelayState {
    hysteresis: RelayHysteresis,
    switch: RelaySwitch,
}

/// Relay decisions over time, for all peers.
#[derive(Debug, Clone, Default)]
pub struct RelayTracker {
    peers: BTreeMap<WgKey, PeerRelayState>,
    cooldowns: RelayCooldowns,
}

impl RelayTracker {
    /// One check of one peer; `inputs.relay_available` is filled in here. `follow`: the relay
    /// the pair's decider named (taken as is); `answered`: when the latest answered probe to
    /// the peer was sent (confirms a switch). Returns the relay the peer goes through (`None`
    /// for direct) and what the relay choice did.
    pub fn check(
        &mut self,
        mut inputs: RelayInputs,
        candidates: &[RelayCandidate],
        follow: Option<WgKey>,
        answered: Option<Millis>,
        now: Millis,
    ) -> (Option<WgKey>, SwitchOutcome) {
        let ranked = rank_relays(
            candidates,
            &inputs.local,
            &inputs.peer,
            &self.cooldowns,
            now,
        );
        inputs.relay_available = !ranked.is_empty() || follow.is_some();
        let verdict = should_relay(&inputs, now);
        let state = self.peers.entry(inputs.peer).or_default();
        if !state.hysteresis.step(verdict) {
            self.peers.remove(&inputs.peer);
            return (None, SwitchOutcome::Kept);
        }
        let outcome = match follow {
            Some(relay) => state.switch.follow(relay, now),
            None => state.switch.step(&ranked, answered, now),
        };
        let relay = state.switch.relay();
        if relay.is_none() {
            // No relay exists any more: direct is all that is left.
            self.peers.remove(&inputs.peer);
        }
        if let SwitchOutcome::Reverted { failed } = outcome {
            self.cooldowns.mark_failed(failed, now);
        }
        (relay, outcome)
    }

    /// `relay` failed (probe through it, or it went away): it cools down, and peers on it move
    /// to another relay at their next check.
    pub fn relay_failed(&mut self, relay: WgKey, now: Millis) {
        self.cooldowns.mark_failed(relay, now);
        for state in self.peers.values_mut() {
            if state.switch.relay() == Some(relay) {
                state.switch = RelaySwitch::default();
            }
        }
    }

    /// The relay `peer` currently goes through.
    pub fn relay_of(&self, peer: &WgKey) -> Option<WgKey> {
        self.peers.get(peer).and_then(|s| s.switch.relay())
    }

    /// Every relayed peer and its relay (the planner's input).
    pub fn relayed(&self) -> BTreeMap<WgKey, WgKey> {
        self.peers
            .iter()
            .filter_map(|(peer, s)| Some((*peer, s.switch.relay()?)))
            .collect()
    }

    /// The earliest pending switch trial's deadline (a pass must run then).
    pub fn trial_deadline(&self) -> Option<Millis> {
        self.peers
            .values()
            .filter_map(|s| s.switch.trial_deadline())
            .min()
    }

    /// Forgets a peer that left the store.
    pub fn forget(&mut self, peer: &WgKey) {
        self.peers.remove(peer);
    }

    /// Drops ended cooldowns.
    pub fn prune(&mut self, now: Millis) {
        self.cooldowns.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::nat::AttemptOrder;
    use crate::mesh::relay::select::RELAY_FAILURE_COOLDOWN;

    const NOW: Millis = Millis(1_000_000);
    const LOCAL: WgKey = [1; 32];
    const PEER: WgKey = [2; 32];

    fn inputs(unreachable: bool) -> RelayInputs {
        RelayInputs {
            local: LOCAL,
            peer: PEER,
            peer_is_introducer: false,
            shared_lan: false,
            found_by_lan: false,
            force_relay: false,
            relay_available: false,
            last_handshake: None,
            transfer_grew: false,
            probe_unreachable: unreachable,
            attempt_order: AttemptOrder::DirectFirst,
            peer_relays_us: false,
        }
    }

    fn relays(keys: &[u8]) -> Vec<RelayCandidate> {
        keys.iter()
            .map(|n| RelayCandidate {
                key: [*n; 32],
                introducer: true,
                last_seen: NOW,
                offline: false,
                local_leg_quality: None,
                peer_leg_quality: None,
                load: None,
            })
            .collect()
    }

    #[test]
    fn relays_when_unreachable_and_returns_after_three_healthy_checks() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10, 11, 12]);
        assert_eq!(t.check(inputs(false), &cands, None, None, NOW).0, None);
        let relay = t.check(inputs(true), &cands, None, None, NOW).0.unwrap();
        assert_eq!(t.relayed(), BTreeMap::from([(PEER, relay)]));
        assert_eq!(
            t.check(inputs(false), &cands, None, None, NOW).0,
            Some(relay)
        );
        assert_eq!(
            t.check(inputs(false), &cands, None, None, NOW).0,
            Some(relay)
        );
        assert_eq!(t.check(inputs(false), &cands, None, None, NOW).0, None);
        assert!(t.relayed().is_empty());
    }

    #[test]
    fn a_failed_relay_is_replaced_by_a_fallback_and_the_peer_stays_on_it() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10, 11, 12]);
        let first = t.check(inputs(true), &cands, None, None, NOW).0.unwrap();
        t.relay_failed(first, NOW);
        assert_eq!(t.relay_of(&PEER), None);
        let second = t.check(inputs(true), &cands, None, None, NOW).0.unwrap();
        assert_ne!(first, second);
        // After the cooldown the first one is usable again, but the peer stays on the second.
        let later = NOW + RELAY_FAILURE_COOLDOWN;
        t.prune(later);
        assert_eq!(
            t.check(inputs(true), &cands, None, None, later).0,
            Some(second)
        );
    }

    #[test]
    fn without_relays_everything_is_direct() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10]);
        assert!(t.check(inputs(true), &cands, None, None, NOW).0.is_some());
        assert_eq!(
            t.check(inputs(true), &[], None, None, NOW).0,
            None,
            "the relay vanished"
        );
        t.forget(&PEER);
        assert!(t.relayed().is_empty());
    }

    #[test]
    fn a_follower_takes_the_deciders_relay_and_a_failed_trial_cools_down() {
        let mut t = RelayTracker::default();
        let mut cands = relays(&[10, 11]);
        let (r, out) = t.check(inputs(true), &cands, Some([11; 32]), None, NOW);
        assert_eq!((r, out), (Some([11; 32]), SwitchOutcome::Followed));
        // The decider's own switch: 12 measured and much better than unmeasured 11.
        let mut d = RelayTracker::default();
        d.check(inputs(true), &cands, None, None, NOW);
        cands.push(RelayCandidate {
            local_leg_quality: Some(100),
            peer_leg_quality: Some(100),
            ..relays(&[12])[0]
        });
        let later = NOW + std::time::Duration::from_secs(60);
        let (r, out) = d.check(inputs(true), &cands, None, None, later);
        assert_eq!(r, Some([12; 32]));
        assert!(matches!(out, SwitchOutcome::Switched { .. }));
        assert_eq!(
            d.trial_deadline(),
            Some(later + std::time::Duration::from_secs(3))
        );
        let (r, out) = d.check(
            inputs(true),
            &cands,
            None,
            None,
            later + std::time::Duration::from_secs(3),
        );
        assert_eq!(out, SwitchOutcome::Reverted { failed: [12; 32] });
        assert_ne!(r, Some([12; 32]));
        assert!(
            d.cooldowns
                .is_cooling(&[12; 32], later + std::time::Duration::from_secs(3))
        );
    }
}
