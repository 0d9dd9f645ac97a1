//! The handshake/transfer monitor. A peer is stale when its last WireGuard handshake is older
//! than 150 s and its rx/tx counters did not grow since the previous sample. Stale once: the
//! daemon re-applies the peer; stale twice in a row: it is evicted (temporarily offline 30 s,
//! removed from the store). A peer that never handshook is the probe monitor's business.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

/// A handshake older than this, without traffic growth, is stale.
pub const STALE_HANDSHAKE_AFTER: Duration = Duration::from_secs(150);

/// What WireGuard reports for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandshakeSample {
    pub last_handshake: Option<Millis>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// What the daemon does about one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeAction {
    Healthy,
    /// Stale once: apply the peer's WireGuard entry again (endpoint may have moved).
    Reapply,
    /// Stale twice: mark temporarily offline and remove from the store.
    Evict,
}

/// Whether a handshake at `last_handshake` is stale at `now` given whether traffic grew.
pub fn is_stale(last_handshake: Option<Millis>, transfer_grew: bool, now: Millis) -> bool {
    last_handshake.is_some_and(|t| now.since(t) > STALE_HANDSHAKE_AFTER) && !transfer_grew
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Track {
    rx_bytes: u64,
    tx_bytes: u64,
    stale_in_a_row: u8,
}

/// Judges samples peer by peer; remembers the previous counters.
#[derive(Debug, Clone, Default)]
pub struct HandshakeMonitor {
    peers: BTreeMap<WgKey, Track>,
}

impl HandshakeMonitor {
    /// Judges one sample of `key` taken at `now`.
    pub fn observe(&mut self, key: WgKey, sample: HandshakeSample, now: Millis) -> HandshakeAction {
        let previous = self.peers.get(&key).copied();
        // The first sample has nothing to compare with: counted as growth.
        let grew =
            previous.is_none_or(|p| sample.rx_bytes > p.rx_bytes || sample.tx_bytes > p.tx_bytes);
        let stale_in_a_row = if is_stale(sample.last_handshake, grew, now) {
            previous.map_or(0, |p| p.stale_in_a_row).saturating_add(1)
        } else {
            0
        };
        if stale_in_a_row >= 2 {
            self.peers.remove(&key);
            return HandshakeAction::Evict;
        }
        self.peers.insert(
            key,
            Track {
                rx_bytes: sample.rx_bytes,
                tx_bytes: sample.tx_bytes,
                stale_in_a_row,
            },
        );
        if stale_in_a_row == 1 {
            HandshakeAction::Reapply
        } else {
            HandshakeAction::Healthy
        }
    }

    /// Whether the previous sample of `key` was stale (relay choice reads this).
    pub fn was_stale(&self, key: &WgKey) -> bool {
        self.peers.get(key).is_some_and(|t| t.stale_in_a_row > 0)
    }

    /// Forgets a peer that left.
    pub fn forget(&mut self, key: &WgKey) {
        self.peers.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(handshake_secs: Option<u64>, rx: u64, tx: u64) -> HandshakeSample {
        HandshakeSample {
            last_handshake: handshake_secs.map(Millis::from_secs),
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    #[test]
    fn stale_rule_table() {
        let now = Millis::from_secs(1000);
        // (last handshake, grew, stale)
        let table = [
            (Some(1000 - 150), false, false),
            (Some(1000 - 151), false, true),
            (Some(1000 - 151), true, false),
            (Some(1000 - 10), false, false),
            (None, false, false),
        ];
        for (hs, grew, expected) in table {
            assert_eq!(
                is_stale(hs.map(Millis::from_secs), grew, now),
                expected,
                "{hs:?} {grew}"
            );
        }
    }

    #[test]
    fn stale_once_reapplies_twice_evicts() {
        let mut m = HandshakeMonitor::default();
        let k = [1u8; 32];
        let t = Millis::from_secs;
        assert_eq!(
            m.observe(k, sample(Some(0), 10, 10), t(100)),
            HandshakeAction::Healthy
        );
        assert_eq!(
            m.observe(k, sample(Some(0), 10, 10), t(140)),
            HandshakeAction::Healthy,
            "handshake young"
        );
        assert_eq!(
            m.observe(k, sample(Some(0), 10, 20), t(200)),
            HandshakeAction::Healthy,
            "tx grew"
        );
        assert_eq!(
            m.observe(k, sample(Some(0), 10, 20), t(210)),
            HandshakeAction::Reapply
        );
        assert!(m.was_stale(&k));
        assert_eq!(
            m.observe(k, sample(Some(0), 10, 20), t(220)),
            HandshakeAction::Evict
        );
        assert!(!m.was_stale(&k), "evicted peers are forgotten");
    }

    #[test]
    fn a_healthy_sample_resets_the_count() {
        let mut m = HandshakeMonitor::default();
        let k = [1u8; 32];
        let t = Millis::from_secs;
        m.observe(k, sample(Some(0), 1, 1), t(200));
        assert_eq!(
            m.observe(k, sample(Some(0), 1, 1), t(210)),
            HandshakeAction::Reapply
        );
        assert_eq!(
            m.observe(k, sample(Some(215), 1, 1), t(220)),
            HandshakeAction::Healthy,
            "new handshake"
        );
        assert_eq!(
            m.observe(k, sample(Some(215), 1, 1), t(400)),
            HandshakeAction::Reapply
        );
        m.forget(&k);
        assert_eq!(
            m.observe(k, sample(Some(215), 1, 1), t(410)),
            HandshakeAction::Healthy,
            "first sample again"
        );
    }

    #[test]
    fn counters_reset_by_a_reapplied_peer_do_not_count_as_growth() {
        let mut m = HandshakeMonitor::default();
        let k = [1u8; 32];
        let t = Millis::from_secs;
        m.observe(k, sample(Some(0), 500, 500), t(200));
        assert_eq!(
            m.observe(k, sample(Some(0), 0, 0), t(210)),
            HandshakeAction::Reapply
        );
    }
}
