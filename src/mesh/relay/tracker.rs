//! The relay state of every peer across checks: runs [`select_relay`] and [`should_relay`] for
//! a peer, applies the hysteresis, keeps a peer on its current relay while that one stays among
//! the chosen or fallbacks (no flapping between relays), and yields the peer → relay map the
//! planner reads.

use std::collections::BTreeMap;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

use super::decide::{RelayHysteresis, RelayInputs, should_relay};
use super::select::{RelayCandidate, RelayCooldowns, select_relay};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PeerRelayState {
    hysteresis: RelayHysteresis,
    relay: Option<WgKey>,
}

/// Relay decisions over time, for all peers.
#[derive(Debug, Clone, Default)]
pub struct RelayTracker {
    peers: BTreeMap<WgKey, PeerRelayState>,
    cooldowns: RelayCooldowns,
}

impl RelayTracker {
    /// One check of one peer; `inputs.relay_available` is filled in here. Returns the relay the
    /// peer goes through, or `None` for direct.
    pub fn check(
        &mut self,
        mut inputs: RelayInputs,
        candidates: &[RelayCandidate],
        now: Millis,
    ) -> Option<WgKey> {
        let choice = select_relay(
            candidates,
            &inputs.local,
            &inputs.peer,
            &self.cooldowns,
            now,
        );
        inputs.relay_available = choice.is_some();
        let verdict = should_relay(&inputs, now);
        let state = self.peers.entry(inputs.peer).or_default();
        let relayed = state.hysteresis.step(verdict);
        let relay = match (relayed, choice) {
            (true, Some(choice)) => Some(match state.relay {
                Some(current) if choice.includes(&current) => current,
                _ => choice.relay,
            }),
            // No relay exists any more: direct is all that is left.
            _ => None,
        };
        if relay.is_none() {
            self.peers.remove(&inputs.peer);
        } else {
            state.relay = relay;
        }
        relay
    }

    /// `relay` failed (probe through it, or it went away): it cools down, and peers on it move
    /// to another relay at their next check.
    pub fn relay_failed(&mut self, relay: WgKey, now: Millis) {
        self.cooldowns.mark_failed(relay, now);
        for state in self.peers.values_mut() {
            if state.relay == Some(relay) {
                state.relay = None;
            }
        }
    }

    /// The relay `peer` currently goes through.
    pub fn relay_of(&self, peer: &WgKey) -> Option<WgKey> {
        self.peers.get(peer).and_then(|s| s.relay)
    }

    /// Every relayed peer and its relay (the planner's input).
    pub fn relayed(&self) -> BTreeMap<WgKey, WgKey> {
        self.peers
            .iter()
            .filter_map(|(peer, s)| Some((*peer, s.relay?)))
            .collect()
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
                load: 0,
            })
            .collect()
    }

    #[test]
    fn relays_when_unreachable_and_returns_after_three_healthy_checks() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10, 11, 12]);
        assert_eq!(t.check(inputs(false), &cands, NOW), None);
        let relay = t.check(inputs(true), &cands, NOW).unwrap();
        assert_eq!(t.relayed(), BTreeMap::from([(PEER, relay)]));
        assert_eq!(t.check(inputs(false), &cands, NOW), Some(relay));
        assert_eq!(t.check(inputs(false), &cands, NOW), Some(relay));
        assert_eq!(t.check(inputs(false), &cands, NOW), None);
        assert!(t.relayed().is_empty());
    }

    #[test]
    fn a_failed_relay_is_replaced_by_a_fallback_and_the_peer_stays_on_it() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10, 11, 12]);
        let first = t.check(inputs(true), &cands, NOW).unwrap();
        t.relay_failed(first, NOW);
        assert_eq!(t.relay_of(&PEER), None);
        let second = t.check(inputs(true), &cands, NOW).unwrap();
        assert_ne!(first, second);
        // After the cooldown the first one is usable again, but the peer stays on the second.
        let later = NOW + RELAY_FAILURE_COOLDOWN;
        t.prune(later);
        assert_eq!(t.check(inputs(true), &cands, later), Some(second));
    }

    #[test]
    fn without_relays_everything_is_direct() {
        let mut t = RelayTracker::default();
        let cands = relays(&[10]);
        assert!(t.check(inputs(true), &cands, NOW).is_some());
        assert_eq!(t.check(inputs(true), &[], NOW), None, "the relay vanished");
        t.forget(&PEER);
        assert!(t.relayed().is_empty());
    }
}
