//! When a node asks for a rendezvous with a peer, and through which introducers. A peer is
//! punched when there is no working direct path to it (relayed, never handshook, or handshake
//! stale) and it is not an introducer itself (introducers have public addresses), once it
//! was known for 5 s (time to handshake by itself). No punching
//! while a direct handshake is younger than 2 minutes; attempts back off per peer from 3 s,
//! doubling to 30 s, and a success resets the backoff. Up to 3 introducers, in the order of
//! the pair hash (both ends pick the same ones without talking).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::relay::pair_hash;
use crate::mesh::time::Millis;

/// First wait between attempts for one peer.
pub const PUNCH_BACKOFF_START: Duration = Duration::from_secs(3);
/// Longest wait between attempts.
pub const PUNCH_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A direct handshake younger than this means the path works: no punching.
pub const HANDSHAKE_FRESH_FOR: Duration = Duration::from_secs(120);
/// Most introducers asked at once.
pub const MAX_INTRODUCERS: usize = 3;
/// After a punch to a relayed peer succeeds, its punched entry is kept (no allowed IPs, the
/// punch keepalive) for at most this long while the relay agreement moves the pair back to
/// direct; its fresh handshakes count as direct-path evidence. No new punch meanwhile.
pub const HOLD_AFTER_PUNCH: Duration = Duration::from_secs(30);
/// A newly known peer first gets this long to handshake by itself.
pub const PUNCH_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Attempts {
    next_at: Millis,
    backoff: Duration,
}

/// Per-peer punch timing.
#[derive(Debug, Clone, Default)]
pub struct PunchScheduler {
    peers: BTreeMap<WgKey, Attempts>,
}

impl PunchScheduler {
    /// Whether to ask for a rendezvous with `peer` now. `direct_handshake`: the latest
    /// handshake on a direct WireGuard entry for it (none while relayed); `known_since`: when
    /// the store first held it. When yes, the attempt counts and the next one waits the
    /// doubled backoff.
    pub fn due(
        &mut self,
        peer: WgKey,
        peer_is_introducer: bool,
        direct_handshake: Option<Millis>,
        known_since: Millis,
        now: Millis,
    ) -> bool {
        if peer_is_introducer
            || now.since(known_since) < PUNCH_GRACE
            || direct_handshake.is_some_and(|t| now.since(t) < HANDSHAKE_FRESH_FOR)
        {
            return false;
        }
        let a = self.peers.entry(peer).or_insert(Attempts {
            next_at: now,
            backoff: PUNCH_BACKOFF_START,
        });
        if now < a.next_at {
            return false;
        }
        a.next_at = now + a.backoff;
        a.backoff = (a.backoff * 2).min(PUNCH_BACKOFF_MAX);
        true
    }

    /// A punch to `peer` succeeded (fresh handshake): the next failure starts from 3 s again.
    pub fn succeeded(&mut self, peer: &WgKey) {
        self.peers.remove(peer);
    }

    /// Forgets a peer that left.
    pub fn forget(&mut self, peer: &WgKey) {
        self.peers.remove(peer);
    }
}

/// The introducers to ask for a rendezvous between `local` and `peer`: up to 3 of
/// `introducers` (neither end of the pair), in pair-hash order.
pub fn introducers_for(local: &WgKey, peer: &WgKey, introducers: &[WgKey]) -> Vec<WgKey> {
    let mut usable: Vec<(u64, WgKey)> = introducers
        .iter()
        .filter(|k| *k != local && *k != peer)
        .map(|k| (pair_hash(local, peer, k), *k))
        .collect();
    usable.sort_unstable();
    usable.dedup_by_key(|u| u.1);
    usable
        .into_iter()
        .take(MAX_INTRODUCERS)
        .map(|u| u.1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: WgKey = [2; 32];

    fn at(ms: u64) -> Millis {
        Millis(1_000_000 + ms)
    }

    #[test]
    fn backs_off_from_3_s_doubling_to_30_s_and_resets_on_success() {
        let mut s = PunchScheduler::default();
        let mut attempts = vec![];
        for t in (0..120_000).step_by(500) {
            if s.due(P, false, None, Millis(0), at(t)) {
                attempts.push(t);
            }
        }
        assert_eq!(
            attempts,
            vec![0, 3_000, 9_000, 21_000, 45_000, 75_000, 105_000],
            "3, 6, 12, 24, then 30 s"
        );
        s.succeeded(&P);
        assert!(s.due(P, false, None, Millis(0), at(120_000)));
        assert!(!s.due(P, false, None, Millis(0), at(121_000)));
    }

    #[test]
    fn no_punch_with_a_fresh_direct_handshake_or_for_an_introducer() {
        let mut s = PunchScheduler::default();
        assert!(!s.due(P, false, Some(at(0)), Millis(0), at(119_000)));
        assert!(
            s.due(P, false, Some(at(0)), Millis(0), at(121_000)),
            "stale handshake"
        );
        assert!(!s.due([3; 32], true, None, Millis(0), at(0)));
        assert!(
            !s.due([4; 32], false, None, at(0), at(4_000)),
            "grace for a new peer"
        );
        assert!(s.due([4; 32], false, None, at(0), at(5_000)));
    }

    #[test]
    fn both_ends_pick_the_same_introducers() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let intro: Vec<WgKey> = (10..16).map(|n| [n; 32]).collect();
        let from_a = introducers_for(&a, &b, &intro);
        assert_eq!(from_a.len(), MAX_INTRODUCERS);
        assert_eq!(from_a, introducers_for(&b, &a, &intro));
        assert!(introducers_for(&a, &b, &[a, b]).is_empty());
    }
}
