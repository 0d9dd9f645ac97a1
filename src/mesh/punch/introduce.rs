//! The introducer's side of a rendezvous: on an offer from a peer to reach another, both are
//! sent a start naming the other end, the other end's candidates and one start time ~1.5 s
//! ahead; at most one introduction per pair every 3 s (both ends' offers arrive together and
//! make one), and only between peers the introducer holds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::mesh::time::Millis;
use crate::mesh::{PeerEntry, WgKey};
use crate::proto::rendezvous::RendezvousStart;

use super::candidates::punch_candidates;

/// How far ahead of now the start time is set (both starts must arrive before it).
pub const START_AHEAD: Duration = Duration::from_millis(1500);
/// At most one introduction per pair this often.
pub const INTRODUCE_AT_MOST_EVERY: Duration = Duration::from_secs(3);
/// Most pairs remembered for the rate limit.
pub const MAX_PAIRS: usize = 4096;

/// Recent introductions, per unordered pair.
#[derive(Debug, Clone, Default)]
pub struct Introductions {
    last: BTreeMap<(WgKey, WgKey), Millis>,
}

impl Introductions {
    /// Answers `from`'s offer to reach `to`: the starts to send (to `from`, then to `to`), or
    /// nothing (unknown peer, itself, or introduced less than 3 s ago). `seen`: the WireGuard
    /// endpoint this introducer's device recorded for a peer.
    pub fn on_offer(
        &mut self,
        from: &PeerEntry,
        to: &PeerEntry,
        seen: impl Fn(&WgKey) -> Option<SocketAddr>,
        now: Millis,
    ) -> Option<[(WgKey, RendezvousStart); 2]> {
        let (a, b) = (*from.key(), *to.key());
        if a == b {
            return None;
        }
        let pair = if a < b { (a, b) } else { (b, a) };
        if self
            .last
            .get(&pair)
            .is_some_and(|t| now.since(*t) < INTRODUCE_AT_MOST_EVERY)
        {
            return None;
        }
        if self.last.len() >= MAX_PAIRS {
            self.last
                .retain(|_, t| now.since(*t) < INTRODUCE_AT_MOST_EVERY);
            if self.last.len() >= MAX_PAIRS {
                return None;
            }
        }
        self.last.insert(pair, now);
        let start_at = (now + START_AHEAD).0;
        let start_for = |other: &PeerEntry| RendezvousStart {
            peer: *other.key(),
            candidates: punch_candidates(seen(other.key()), &other.record),
            start_at,
        };
        Some([(a, start_for(to)), (b, start_for(from))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::rank::DiscoveryMethod;
    use crate::mesh::testkit::{address_check, record};
    use crate::mesh::{PeerStore, PeerUpdate, StoreConfig};

    fn entries() -> Vec<PeerEntry> {
        let store = PeerStore::new(StoreConfig::default(), address_check());
        for n in [1, 2] {
            store
                .update(PeerUpdate::new(record(n), DiscoveryMethod::Dht), Millis(1))
                .unwrap();
        }
        store.snapshot()
    }

    #[test]
    fn introduces_both_ends_once_per_pair_every_3_s() {
        let e = entries();
        let mut i = Introductions::default();
        let now = Millis(1_000_000);
        let seen = |k: &WgKey| (k == e[1].key()).then(|| "203.0.113.2:40002".parse().unwrap());
        let [(to_a, for_a), (to_b, for_b)] = i.on_offer(&e[0], &e[1], seen, now).unwrap();
        assert_eq!((to_a, to_b), (*e[0].key(), *e[1].key()));
        assert_eq!(for_a.peer, *e[1].key());
        assert_eq!(for_a.candidates[0], "203.0.113.2:40002".parse().unwrap());
        assert_eq!(for_b.peer, *e[0].key());
        assert_eq!(for_a.start_at, (now + START_AHEAD).0);
        assert_eq!(for_a.start_at, for_b.start_at);
        // The other end's offer right after: the same introduction, not a second one.
        assert!(
            i.on_offer(&e[1], &e[0], |_| None, now + Duration::from_millis(200))
                .is_none()
        );
        assert!(
            i.on_offer(&e[1], &e[0], |_| None, now + INTRODUCE_AT_MOST_EVERY)
                .is_some()
        );
        assert!(i.on_offer(&e[0], &e[0], |_| None, now).is_none());
    }
}
