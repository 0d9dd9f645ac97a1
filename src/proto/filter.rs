//! The peer-set filter of the anti-entropy exchange (PROTOCOL.md §8): a Bloom filter of the
//! `(key prefix, sequence)` pairs a node holds inside one range of the key space, so one
//! datagram describes up to ~800 peers (a digest list holds 32). The other side sends every
//! record of the range the filter does not contain (missing, or another sequence). Pure
//! encoding, bounded decoding and the exact hash the protocol fixes.

use ciborium::Value;

use super::cbor::{self, CborError, uint};

/// Most filter bytes (the bit array) a message may carry.
pub const MAX_FILTER_BYTES: usize = 1024;
/// Most hash functions of a filter.
pub const MAX_FILTER_HASHES: u8 = 16;
/// Bits per peer a sender aims for (k = 6 hashes: about 2 % false positives).
pub const BITS_PER_PEER: usize = 9;
/// Hash functions a sender uses.
pub const FILTER_HASHES: u8 = 6;

/// A Bloom filter over `[lo, hi]` (key prefixes as big-endian u64, both ends included): every
/// peer the sender holds in that range is in it; `count` says how many that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFilter {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
    pub seed: u32,
    pub hashes: u8,
    pub bits: Vec<u8>,
}

/// SplitMix64's finaliser: the protocol's mixing function.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key prefix of a WireGuard key as the filter ranges see it (first 8 bytes, big-endian).
pub fn key_position(key: &[u8; 32]) -> u64 {
    let mut p = [0u8; 8];
    p.copy_from_slice(&key[..8]);
    u64::from_be_bytes(p)
}

impl PeerFilter {
    /// An empty filter of `bytes` bytes (at least 1, at most [`MAX_FILTER_BYTES`]).
    pub fn new(lo: u64, hi: u64, seed: u32, hashes: u8, bytes: usize) -> Self {
        Self {
            lo,
            hi,
            count: 0,
            seed,
            hashes: hashes.clamp(1, MAX_FILTER_HASHES),
            bits: vec![0; bytes.clamp(1, MAX_FILTER_BYTES)],
        }
    }

    /// Whether `position` (see [`key_position`]) lies in the filter's range.
    pub fn covers(&self, position: u64) -> bool {
        self.lo <= position && position <= self.hi
    }

    fn indexes(&self, position: u64, sequence: u64) -> impl Iterator<Item = usize> + use<> {
        let m = (self.bits.len() * 8) as u64;
        let h1 = mix64(position ^ mix64(sequence ^ u64::from(self.seed)));
        let h2 = mix64(h1 ^ 0x9e37_79b9_7f4a_7c15) | 1;
        (0..u64::from(self.hashes)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    /// Adds a peer.
    pub fn insert(&mut self, position: u64, sequence: u64) {
        for i in self.indexes(position, sequence) {
            if let Some(b) = self.bits.get_mut(i / 8) {
                *b |= 1 << (i % 8);
            }
        }
        self.count = self.count.saturating_add(1);
    }

    /// Whether the peer may be in the filter (false positives possible, no false negatives).
    pub fn contains(&self, position: u64, sequence: u64) -> bool {
        self.indexes(position, sequence).all(|i| {
            self.bits
                .get(i / 8)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
        })
    }

    /// `[lo, hi, count, seed, hashes, bits]`.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            uint(self.lo),
            uint(self.hi),
            uint(self.count),
            uint(u64::from(self.seed)),
            uint(u64::from(self.hashes)),
            Value::Bytes(self.bits.clone()),
        ])
    }

    /// Decodes `[lo, hi, count, seed, hashes, bits]` with the protocol's limits: `lo ≤ hi`,
    /// 1..=16 hashes, 1..=1024 filter bytes.
    pub fn from_value(v: Value, key: u64) -> Result<Self, CborError> {
        let bad = || CborError::WrongType(key);
        let Value::Array(items) = v else {
            return Err(bad());
        };
        let [lo, hi, count, seed, hashes, bits]: [Value; 6] =
            items.try_into().map_err(|_| bad())?;
        let lo = cbor::as_uint(lo, u64::MAX).ok_or_else(bad)?;
        let hi = cbor::as_uint(hi, u64::MAX).ok_or_else(bad)?;
        let count = cbor::as_uint(count, u64::MAX).ok_or_else(bad)?;
        let seed = cbor::as_uint(seed, u64::from(u32::MAX)).ok_or_else(bad)? as u32;
        let hashes = cbor::as_uint(hashes, u64::from(MAX_FILTER_HASHES)).ok_or_else(bad)? as u8;
        let bits = match bits {
            Value::Bytes(b) if !b.is_empty() && b.len() <= MAX_FILTER_BYTES => b,
            _ => return Err(bad()),
        };
        if lo > hi || hashes == 0 {
            return Err(bad());
        }
        Ok(Self {
            lo,
            hi,
            count,
            seed,
            hashes,
            bits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = PeerFilter::new(0, u64::MAX, 7, FILTER_HASHES, 900);
        let n = 800u64;
        for i in 0..n {
            f.insert(mix64(i), 1_700_000_000_000 + i);
        }
        for i in 0..n {
            assert!(f.contains(mix64(i), 1_700_000_000_000 + i));
        }
        let fp = (n..n + 10_000)
            .filter(|i| f.contains(mix64(*i), 1_700_000_000_000 + i))
            .count();
        assert!(fp < 400, "false positives {fp} of 10000");
        // Another sequence of a held key is not in it (mostly).
        let newer = (0..n).filter(|i| f.contains(mix64(*i), 5 + i)).count();
        assert!(newer < 40, "{newer}");
        assert_eq!(f.count, n);
    }

    #[test]
    fn value_round_trip_and_limits() {
        let mut f = PeerFilter::new(5, 9, 1, 4, 16);
        f.insert(6, 1);
        let back = PeerFilter::from_value(f.to_value(), 5).unwrap();
        assert_eq!(back, f);
        let mut bad = f.clone();
        bad.lo = 10;
        assert!(PeerFilter::from_value(bad.to_value(), 5).is_err());
        let mut big = f.clone();
        big.bits = vec![0; MAX_FILTER_BYTES + 1];
        assert!(PeerFilter::from_value(big.to_value(), 5).is_err());
        let mut none = f;
        none.hashes = 0;
        assert!(PeerFilter::from_value(none.to_value(), 5).is_err());
    }
}
