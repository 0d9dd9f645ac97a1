//! What one side of a peer exchange tells the other it knows ([`digests_of`]: at most 32
//! digests, a random subset when more peers are held, so successive exchanges cover them all)
//! and what it sends back ([`records_the_other_lacks`]: signed records missing from, or newer
//! than, the other side's digests). Pure; randomness is injected.

use rand_core::RngCore;

use crate::mesh::{PeerEntry, WgKey};
use crate::proto::SignedRecord;
use crate::proto::exchange::{DIGEST_KEY_BYTES, Digest};

/// A uniform index in `0..n` (`n > 0`), by rejection sampling.
pub(crate) fn random_below(rng: &mut dyn RngCore, n: usize) -> usize {
    let n = n as u64;
    if n <= 1 {
        return 0;
    }
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

/// Keeps a uniformly random subset of `max` items (order not kept), or all when fewer.
pub(crate) fn random_subset<T>(items: &mut Vec<T>, max: usize, rng: &mut dyn RngCore) {
    if items.len() <= max {
        return;
    }
    // Partial Fisher–Yates: the first `max` slots become a uniform sample.
    for i in 0..max {
        let j = i + random_below(rng, items.len() - i);
        items.swap(i, j);
    }
    items.truncate(max);
}

/// The digests of the peers in `snapshot`: all of them when at most `max`, else a random
/// subset of `max` (a different one each call).
pub fn digests_of(snapshot: &[PeerEntry], max: usize, rng: &mut dyn RngCore) -> Vec<Digest> {
    let mut digests: Vec<Digest> = snapshot
        .iter()
        .map(|e| Digest::of(e.key(), e.record.sequence))
        .collect();
    random_subset(&mut digests, max, rng);
    digests.sort();
    digests
}

fn prefix(key: &WgKey) -> [u8; DIGEST_KEY_BYTES] {
    let mut p = [0u8; DIGEST_KEY_BYTES];
    p.copy_from_slice(&key[..DIGEST_KEY_BYTES]);
    p
}

/// The signed records in `snapshot` the other side lacks: peers whose key prefix is absent
/// from `their_digests`, or present with an older sequence. Never the other side's own
/// record (`their_key`), never an entry without a signed record.
pub fn records_the_other_lacks(
    their_digests: &[Digest],
    snapshot: &[PeerEntry],
    their_key: Option<&WgKey>,
) -> Vec<SignedRecord> {
    snapshot
        .iter()
        .filter(|e| Some(e.key()) != their_key)
        .filter(|e| {
            let p = prefix(e.key());
            // Several digests may share a prefix (a collision or a forgery): the other side
            // lacks the record unless one of them is at least as new.
            !their_digests
                .iter()
                .any(|d| d.key_prefix == p && d.sequence >= e.record.sequence)
        })
        .filter_map(|e| e.signed.clone())
        .collect()
}

/// Whether `their_digests` name a peer this node does not hold, or holds an older record of
/// (ignoring this node's own key and the other side's).
pub fn lacks_any(
    their_digests: &[Digest],
    snapshot: &[PeerEntry],
    own_key: Option<&WgKey>,
    their_key: Option<&WgKey>,
) -> bool {
    let skip: Vec<[u8; DIGEST_KEY_BYTES]> = [own_key, their_key]
        .into_iter()
        .flatten()
        .map(prefix)
        .collect();
    their_digests
        .iter()
        .filter(|d| !skip.contains(&d.key_prefix))
        .any(|d| {
            !snapshot
                .iter()
                .any(|e| prefix(e.key()) == d.key_prefix && e.record.sequence >= d.sequence)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::splitmix::SplitMix64 as TestRng;
    use crate::mesh::testkit::{address_check, key, record, sign};
    use crate::mesh::{DiscoveryMethod, Millis, PeerStore, PeerUpdate, StoreConfig};
    use std::collections::BTreeSet;

    fn store_of(nodes: std::ops::Range<u32>, signed: bool) -> PeerStore {
        let store = PeerStore::new(StoreConfig::default(), address_check());
        for n in nodes {
            let r = record(n);
            let mut u = PeerUpdate::new(r.clone(), DiscoveryMethod::Dht);
            if signed {
                u = u.with_signed(sign(n, &r));
            }
            store.update(u, Millis::ZERO).unwrap();
        }
        store
    }

    fn sorted(mut v: Vec<SignedRecord>) -> Vec<SignedRecord> {
        v.sort_by(|a, b| a.body.cmp(&b.body));
        v
    }

    #[test]
    fn digests_cover_everything_up_to_the_max() {
        let snap = store_of(0..5, true).snapshot();
        let d = digests_of(&snap, 32, &mut TestRng::new(1));
        assert_eq!(d.len(), 5);
        for n in 0..5 {
            assert!(d.contains(&Digest::of(&key(n), 1)));
        }
    }

    #[test]
    fn digests_rotate_within_the_bound() {
        let snap = store_of(0..100, false).snapshot();
        let mut rng = TestRng::new(7);
        let mut seen = BTreeSet::new();
        let mut subsets = BTreeSet::new();
        for _ in 0..40 {
            let d = digests_of(&snap, 32, &mut rng);
            assert_eq!(d.len(), 32);
            assert_eq!(d.iter().collect::<BTreeSet<_>>().len(), 32, "no duplicates");
            subsets.insert(d.clone());
            seen.extend(d);
        }
        assert!(subsets.len() > 30, "a different subset each time");
        assert_eq!(seen.len(), 100, "every peer is eventually advertised");
    }

    #[test]
    fn lacks_missing_and_older_but_not_equal_or_newer() {
        let snap = store_of(0..4, true).snapshot();
        let theirs = vec![
            Digest::of(&key(0), 1), // same: not sent
            Digest::of(&key(1), 0), // older: sent
            Digest::of(&key(2), 5), // newer: not sent
                                    // 3 missing: sent
        ];
        let lacks = records_the_other_lacks(&theirs, &snap, None);
        assert_eq!(
            sorted(lacks),
            sorted(vec![sign(1, &record(1)), sign(3, &record(3))])
        );
    }

    #[test]
    fn never_their_own_record_nor_unsigned_entries() {
        let snap = store_of(0..3, true).snapshot();
        let lacks = records_the_other_lacks(&[], &snap, Some(&key(1)));
        assert_eq!(
            sorted(lacks),
            sorted(vec![sign(0, &record(0)), sign(2, &record(2))])
        );
        let unsigned = store_of(0..3, false).snapshot();
        assert!(records_the_other_lacks(&[], &unsigned, None).is_empty());
    }

    #[test]
    fn lacks_any_sees_missing_and_newer_but_not_self_or_them() {
        let snap = store_of(0..2, true).snapshot();
        let known = [Digest::of(&key(0), 1), Digest::of(&key(1), 1)];
        assert!(!lacks_any(&known, &snap, None, None));
        assert!(lacks_any(&[Digest::of(&key(1), 2)], &snap, None, None));
        assert!(lacks_any(&[Digest::of(&key(5), 1)], &snap, None, None));
        assert!(!lacks_any(
            &[Digest::of(&key(5), 1)],
            &snap,
            Some(&key(5)),
            None
        ));
        assert!(!lacks_any(
            &[Digest::of(&key(6), 1)],
            &snap,
            None,
            Some(&key(6))
        ));
    }

    #[test]
    fn random_below_is_in_range() {
        let mut rng = TestRng::new(3);
        for n in 1..50 {
            for _ in 0..20 {
                assert!(random_below(&mut rng, n) < n);
            }
        }
        assert_eq!(random_below(&mut rng, 0), 0);
    }
}
