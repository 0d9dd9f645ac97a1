//! Anti-entropy over peer filters (PROTOCOL.md §8): which key range a hello describes (a
//! cursor rotating over the key space, as many peers as a datagram's filter holds), the filter
//! of the peers held in a range, and which held records the other side's filter shows it lacks.
//! Pure; reads the peer store without copying whole entries.

use crate::mesh::{PeerStore, WgKey};
use crate::proto::envelope::MAX_PAYLOAD_BYTES;
use crate::proto::filter::{
    BITS_PER_PEER, FILTER_HASHES, MAX_FILTER_BYTES, PeerFilter, key_position,
};

/// Bytes of a filter's CBOR framing (map key, array header, five integers, byte-string header),
/// rounded up.
const FILTER_FRAMING_BYTES: usize = 40;
/// Smallest filter sent (a few peers still get a useful false-positive rate).
const MIN_FILTER_BYTES: usize = 8;

/// The filter bytes left in a payload already `used` bytes long.
pub fn filter_room(used: usize) -> usize {
    MAX_PAYLOAD_BYTES
        .saturating_sub(used)
        .saturating_sub(FILTER_FRAMING_BYTES)
        .min(MAX_FILTER_BYTES)
}

/// The first and last keys whose position is `lo` and `hi`.
fn key_bounds(lo: u64, hi: u64) -> (WgKey, WgKey) {
    let mut from = [0u8; 32];
    let mut to = [0xffu8; 32];
    from[..8].copy_from_slice(&lo.to_be_bytes());
    to[..8].copy_from_slice(&hi.to_be_bytes());
    (from, to)
}

/// The positions and sequences of the signed peers `store` holds in `[lo, hi]`, in key
/// order, except `skip`.
fn held(store: &PeerStore, skip: Option<&WgKey>, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let (from, to) = key_bounds(lo, hi);
    store.scan_range(&from, &to, |e| {
        (Some(e.key()) != skip && e.signed.is_some())
            .then(|| (key_position(e.key()), e.record.sequence))
    })
}

/// A filter of the peers held in `[lo, limit]`, starting at `lo` and ending where `room` bytes
/// run out (never past `limit`); returns it and where the next range starts (`0` after the end
/// of the key space). When everything held fits, the range is the whole `[lo, limit]`.
pub fn filter_from(
    store: &PeerStore,
    skip: Option<&WgKey>,
    lo: u64,
    limit: u64,
    room: usize,
    seed: u32,
) -> (PeerFilter, u64) {
    let peers = held(store, skip, lo, limit);
    let room = room.max(MIN_FILTER_BYTES);
    let capacity = (room * 8 / BITS_PER_PEER).max(1);
    let (take, hi) = if peers.len() <= capacity {
        (peers.len(), limit)
    } else {
        let next = peers[capacity].0;
        // Peers sharing the boundary prefix all go to the next range.
        let hi = next.saturating_sub(1).max(lo);
        let take = peers.iter().take_while(|(p, _)| *p <= hi).count();
        (take, hi)
    };
    let bytes = (take * BITS_PER_PEER)
        .div_ceil(8)
        .clamp(MIN_FILTER_BYTES, room);
    let mut filter = PeerFilter::new(lo, hi, seed, FILTER_HASHES, bytes);
    for (p, s) in &peers[..take] {
        filter.insert(*p, *s);
    }
    (filter, hi.checked_add(1).unwrap_or(0))
}

/// The keys of the signed peers held in `filter`'s range that it does not contain (missing
/// there, or held with another sequence), except `skip` (the other side's own record).
pub fn lacking(store: &PeerStore, filter: &PeerFilter, skip: Option<&WgKey>) -> Vec<WgKey> {
    let (from, to) = key_bounds(filter.lo, filter.hi);
    store.scan_range(&from, &to, |e| {
        let p = key_position(e.key());
        (Some(e.key()) != skip
            && e.signed.is_some()
            && filter.covers(p)
            && !filter.contains(p, e.record.sequence))
        .then(|| *e.key())
    })
}

/// How many signed peers `store` holds in `[lo, hi]`, except `skip`.
pub fn count_in(store: &PeerStore, lo: u64, hi: u64, skip: Option<&WgKey>) -> u64 {
    held(store, skip, lo, hi).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testkit::{address_check, key, record, sign};
    use crate::mesh::{DiscoveryMethod, Millis, PeerUpdate, StoreConfig};

    fn store_of(nodes: impl IntoIterator<Item = u32>) -> PeerStore {
        let store = PeerStore::new(
            StoreConfig {
                max_peers: 5000,
                ..StoreConfig::default()
            },
            address_check(),
        );
        for n in nodes {
            let r = record(n);
            let s = sign(n, &r);
            store
                .update(
                    PeerUpdate::new(r, DiscoveryMethod::Dht).with_signed(s),
                    Millis::ZERO,
                )
                .unwrap();
        }
        store
    }

    #[test]
    fn a_small_store_fits_one_filter_over_the_whole_space() {
        let s = store_of(0..20);
        let (f, next) = filter_from(&s, None, 0, u64::MAX, 800, 1);
        assert_eq!((f.lo, f.hi, f.count, next), (0, u64::MAX, 20, 0));
        let other = store_of(0..30);
        let mut lacks = lacking(&other, &f, None);
        lacks.sort();
        let mut want: Vec<WgKey> = (20..30).map(key).collect();
        want.sort();
        // A false positive may hide one; none of the held ones is reported.
        assert!(lacks.iter().all(|k| want.contains(k)));
        assert!(lacks.len() >= 8, "{}", lacks.len());
    }

    #[test]
    fn ranges_rotate_and_cover_every_peer() {
        let s = store_of(0..300);
        let mut lo = 0;
        let mut covered = 0;
        for round in 0..10 {
            let (f, next) = filter_from(&s, None, lo, u64::MAX, 100, round);
            assert!(f.count <= (100 * 8 / BITS_PER_PEER) as u64);
            assert_eq!(count_in(&s, f.lo, f.hi, None), f.count);
            covered += f.count;
            if next == 0 {
                break;
            }
            lo = next;
        }
        assert_eq!(covered, 300);
    }
}
