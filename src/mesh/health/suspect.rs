//! Suspect paths: a peer this node sent to (WireGuard's tx counter grew) but heard nothing from
//! (rx did not grow) between two device samples. A suspect peer is probed every second, so a
//! cut path is noticed in seconds instead of after the 150 s stale-handshake rule; the probes'
//! verdict (not the suspicion) decides.

use std::collections::{BTreeMap, BTreeSet};

use crate::mesh::WgKey;

/// Transfer counters per peer across device samples.
#[derive(Debug, Clone, Default)]
pub struct SuspectTracker {
    last: BTreeMap<WgKey, (u64, u64)>,
    suspect: BTreeSet<WgKey>,
}

impl SuspectTracker {
    /// Takes one device sample: `(peer, rx_bytes, tx_bytes)` for every peer on the device.
    /// Peers absent from the sample are forgotten. Returns the peers that became suspect.
    pub fn observe(&mut self, sample: impl IntoIterator<Item = (WgKey, u64, u64)>) -> Vec<WgKey> {
        let mut next = BTreeMap::new();
        let mut suspect = BTreeSet::new();
        let mut newly = Vec::new();
        for (key, rx, tx) in sample {
            if let Some(&(prev_rx, prev_tx)) = self.last.get(&key)
                && tx > prev_tx
                && rx <= prev_rx
            {
                suspect.insert(key);
                if !self.suspect.contains(&key) {
                    newly.push(key);
                }
            }
            next.insert(key, (rx, tx));
        }
        self.last = next;
        self.suspect = suspect;
        newly
    }

    /// Whether the last sample found `key` sending without hearing back.
    pub fn is_suspect(&self, key: &WgKey) -> bool {
        self.suspect.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: WgKey = [1; 32];
    const B: WgKey = [2; 32];

    #[test]
    fn sending_without_hearing_back_is_suspect_until_rx_moves() {
        let mut t = SuspectTracker::default();
        assert!(
            t.observe([(A, 100, 100), (B, 100, 100)]).is_empty(),
            "no history yet"
        );
        // A: we sent, nothing came back. B: both moved.
        assert_eq!(t.observe([(A, 100, 200), (B, 150, 200)]), vec![A]);
        assert!(t.is_suspect(&A) && !t.is_suspect(&B));
        // Still suspect: not reported again as new.
        assert!(t.observe([(A, 100, 300), (B, 150, 200)]).is_empty());
        assert!(t.is_suspect(&A));
        // Idle (nothing sent either) is not suspect; rx moving clears it.
        t.observe([(A, 100, 300), (B, 150, 200)]);
        assert!(!t.is_suspect(&A));
        t.observe([(A, 100, 400)]);
        assert!(t.is_suspect(&A));
        t.observe([(A, 180, 500)]);
        assert!(!t.is_suspect(&A));
    }

    #[test]
    fn peers_that_left_the_device_are_forgotten() {
        let mut t = SuspectTracker::default();
        t.observe([(A, 0, 0)]);
        t.observe([(A, 0, 10)]);
        assert!(t.is_suspect(&A));
        t.observe([]);
        assert!(!t.is_suspect(&A));
        // Back with lower counters (re-added peer): no history, not suspect.
        t.observe([(A, 0, 5)]);
        assert!(!t.is_suspect(&A));
    }
}
