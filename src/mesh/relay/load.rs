//! A relay's load: the peers that reach some other peer through this node, counted from the
//! relay notices they send it (each relayed node repeats one every few seconds; a notice
//! counts for 15 s, so a late pass does not make the count flap, and a plain "direct again"
//! ends it at once), and when the count goes into
//! this node's record (on a change, at most every 10 s, so a busy relay does not re-sign
//! constantly).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

/// The record's load is re-signed at most this often.
pub const LOAD_ADVERT_EVERY: Duration = Duration::from_secs(10);
/// A relayed node counts for this long after its latest notice.
pub const LOAD_FRESH_FOR: Duration = Duration::from_secs(15);

/// Relayed pairs seen through this node.
#[derive(Debug, Clone, Default)]
pub struct RelayLoadCounter {
    /// (sender, peer) → when the latest notice came.
    pairs: BTreeMap<(WgKey, WgKey), Millis>,
    advertised: Option<(u32, Millis)>,
}

impl RelayLoadCounter {
    /// A `to relay` notice from `sender` about `peer`: `using` unless it is a plain "direct
    /// again".
    pub fn on_notice(&mut self, sender: WgKey, peer: WgKey, using: bool, now: Millis) {
        if using {
            self.pairs.insert((sender, peer), now);
        } else {
            self.pairs.remove(&(sender, peer));
        }
    }

    /// Distinct nodes relayed through this one now.
    pub fn count(&mut self, now: Millis) -> u32 {
        self.pairs.retain(|_, at| now.since(*at) < LOAD_FRESH_FOR);
        let mut senders: Vec<&WgKey> = self.pairs.keys().map(|(s, _)| s).collect();
        senders.dedup();
        u32::try_from(senders.len()).unwrap_or(u32::MAX)
    }

    /// The count to put into the record now, if it changed since the last advert and the
    /// last advert is at least 10 s old.
    pub fn advert_due(&mut self, now: Millis) -> Option<u32> {
        let count = self.count(now);
        match self.advertised {
            Some((n, _)) if n == count => None,
            Some((_, at)) if now.since(at) < LOAD_ADVERT_EVERY => None,
            _ => {
                self.advertised = Some((count, now));
                Some(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: WgKey = [1; 32];
    const B: WgKey = [2; 32];
    const C: WgKey = [3; 32];
    const T0: Millis = Millis(1_000_000);

    fn at(ms: u64) -> Millis {
        Millis(T0.0 + ms)
    }

    #[test]
    fn counts_distinct_relayed_nodes_while_their_notices_stay_fresh() {
        let mut l = RelayLoadCounter::default();
        assert_eq!(l.count(T0), 0);
        l.on_notice(A, B, true, T0);
        l.on_notice(B, A, true, T0);
        l.on_notice(A, C, true, at(1000));
        assert_eq!(l.count(at(1000)), 2, "A (two pairs) and B");
        assert_eq!(l.count(at(14_999)), 2);
        assert_eq!(
            l.count(at(15_000)),
            1,
            "A-B and B-A went stale, A-C is fresh"
        );
        l.on_notice(A, C, false, at(15_500));
        assert_eq!(l.count(at(15_500)), 0, "direct again ends it at once");
    }

    #[test]
    fn the_advert_follows_changes_at_most_every_ten_seconds() {
        let mut l = RelayLoadCounter::default();
        assert_eq!(l.advert_due(T0), Some(0), "first advert");
        assert_eq!(l.advert_due(at(1)), None, "unchanged");
        l.on_notice(A, B, true, at(2000));
        assert_eq!(l.advert_due(at(2000)), None, "changed but too soon");
        l.on_notice(A, B, true, at(9000));
        assert_eq!(l.advert_due(at(10_000)), Some(1));
        l.on_notice(B, A, true, at(11_000));
        assert_eq!(l.advert_due(at(19_999)), None);
        l.on_notice(B, A, true, at(17_000));
        l.on_notice(A, B, true, at(17_000));
        assert_eq!(l.advert_due(at(20_000)), Some(2));
    }
}
