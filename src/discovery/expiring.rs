//! A bounded map whose entries expire: the exchange's memory of challenges and cookies. Each
//! entry lives until its expiry time; beyond the capacity the entry closest to expiry goes
//! first. Pure (time is passed in) and deterministic (`BTreeMap`s only).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::Millis;

#[derive(Debug, Clone)]
struct Slot<V> {
    expires: Millis,
    seq: u64,
    value: V,
}

/// A map of at most `capacity` entries, each with a time to live.
#[derive(Debug, Clone)]
pub struct ExpiringMap<K: Ord + Clone, V> {
    entries: BTreeMap<K, Slot<V>>,
    /// (expiry, insertion sequence) → key; the first entry expires first.
    order: BTreeMap<(Millis, u64), K>,
    next_seq: u64,
    capacity: usize,
}

impl<K: Ord + Clone, V> ExpiringMap<K, V> {
    /// An empty map holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            capacity,
        }
    }

    /// Entries held, expired or not (at most the capacity).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts or replaces `key`, living `ttl` from `now`. Drops expired entries first, then the
    /// entry closest to expiry while the map is full.
    pub fn insert(&mut self, key: K, value: V, now: Millis, ttl: Duration) {
        self.prune(now);
        self.remove(&key);
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_first() {
                Some((_, k)) => {
                    self.entries.remove(&k);
                }
                None => self.entries.clear(),
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let expires = now + ttl;
        self.order.insert((expires, seq), key.clone());
        self.entries.insert(
            key,
            Slot {
                expires,
                seq,
                value,
            },
        );
    }

    /// The live value of `key` at `now`.
    pub fn get(&self, key: &K, now: Millis) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|s| now < s.expires)
            .map(|s| &s.value)
    }

    /// The live value of `key` at `now`, mutable.
    pub fn get_mut(&mut self, key: &K, now: Millis) -> Option<&mut V> {
        self.entries
            .get_mut(key)
            .filter(|s| now < s.expires)
            .map(|s| &mut s.value)
    }

    /// Removes `key`, returning its value (expired or not).
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.order.remove(&(slot.expires, slot.seq));
        Some(slot.value)
    }

    /// Drops every entry expired at `now`.
    pub fn prune(&mut self, now: Millis) {
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn entries_live_for_their_ttl() {
        let mut m = ExpiringMap::new(8);
        m.insert("a", 1, Millis::from_secs(100), TTL);
        assert_eq!(m.get(&"a", Millis::from_secs(109)), Some(&1));
        assert_eq!(m.get(&"a", Millis::from_secs(110)), None);
        if let Some(v) = m.get_mut(&"a", Millis::from_secs(105)) {
            *v = 2;
        }
        assert_eq!(m.get(&"a", Millis::from_secs(105)), Some(&2));
        m.prune(Millis::from_secs(110));
        assert!(m.is_empty());
    }

    #[test]
    fn capacity_evicts_the_entry_closest_to_expiry() {
        let mut m = ExpiringMap::new(3);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            m.insert(k, i, Millis(i as u64), TTL);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&"a", Millis(5)), None);
        assert_eq!(m.get(&"d", Millis(5)), Some(&3));
        // Re-inserting refreshes instead of duplicating.
        m.insert("b", 9, Millis(6), TTL);
        m.insert("e", 4, Millis(7), TTL);
        assert_eq!(m.get(&"b", Millis(8)), Some(&9));
        assert_eq!(m.get(&"c", Millis(8)), None);
        assert_eq!(m.order.len(), m.entries.len());
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut m = ExpiringMap::new(0);
        m.insert(1, 1, Millis::ZERO, TTL);
        assert!(m.is_empty());
        assert_eq!(m.remove(&1), None);
    }
}
