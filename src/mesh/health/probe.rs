//! The probe monitor: which peers need probing (handshake older than 150 s, relayed, a suspect
//! path, or never handshook and known for more than 45 s), at most one probe per second per peer, 8 failures
//! in a row make the peer unreachable (temporarily offline 30 s), and successful probes' RTTs
//! feed the link quality.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

use super::handshake::STALE_HANDSHAKE_AFTER;
use super::quality::LinkQuality;

/// At most one probe per peer per this interval.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe due a little early still goes (the caller's 1 s timer fires with jitter, and a
/// probe skipped for 1 ms would wait a whole extra second).
pub const PROBE_INTERVAL_TOLERANCE: Duration = Duration::from_millis(100);
/// Consecutive failures after which a peer is unreachable.
pub const FAILURES_TO_UNREACHABLE: u32 = 8;
/// A peer that never handshook is probed once known for longer than this.
pub const NEVER_HANDSHAKED_GRACE: Duration = Duration::from_secs(45);

/// What decides whether a peer is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeNeed {
    pub last_handshake: Option<Millis>,
    pub relayed: bool,
    /// The last device sample saw this node send to the peer without hearing back
    /// ([`super::SuspectTracker`]).
    pub suspect: bool,
    /// When the store first held the peer.
    pub first_seen: Millis,
}

/// Whether a peer in this situation is probed.
pub fn needs_probing(need: &ProbeNeed, now: Millis) -> bool {
    need.relayed
        || need.suspect
        || match need.last_handshake {
            Some(t) => now.since(t) > STALE_HANDSHAKE_AFTER,
            None => now.since(need.first_seen) > NEVER_HANDSHAKED_GRACE,
        }
}

/// What a probe result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    Reachable,
    /// Failed this many times in a row, not yet given up.
    Failing(u32),
    /// Just reached [`FAILURES_TO_UNREACHABLE`]: mark the peer temporarily offline.
    Unreachable,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Track {
    last_sent: Option<Millis>,
    failures_in_a_row: u32,
    unreachable: bool,
    quality: LinkQuality,
}

/// Probe bookkeeping, peer by peer.
#[derive(Debug, Clone, Default)]
pub struct ProbeMonitor {
    peers: BTreeMap<WgKey, Track>,
}

impl ProbeMonitor {
    /// Whether to send a probe to `key` now; when yes, it counts as sent.
    pub fn due(&mut self, key: WgKey, need: &ProbeNeed, now: Millis) -> bool {
        if !needs_probing(need, now) {
            return false;
        }
        let track = self.peers.entry(key).or_default();
        if track
            .last_sent
            .is_some_and(|t| now.since(t) + PROBE_INTERVAL_TOLERANCE < PROBE_INTERVAL)
        {
            return false;
        }
        track.last_sent = Some(now);
        true
    }

    /// A probe came back after `rtt`.
    pub fn succeeded(&mut self, key: WgKey, rtt: Duration) -> ProbeVerdict {
        let track = self.peers.entry(key).or_default();
        track.failures_in_a_row = 0;
        track.unreachable = false;
        track.quality.add_rtt(rtt);
        ProbeVerdict::Reachable
    }

    /// A probe timed out.
    pub fn failed(&mut self, key: WgKey) -> ProbeVerdict {
        let track = self.peers.entry(key).or_default();
        track.failures_in_a_row = track.failures_in_a_row.saturating_add(1);
        if track.failures_in_a_row >= FAILURES_TO_UNREACHABLE {
            track.failures_in_a_row = 0;
            track.unreachable = true;
            ProbeVerdict::Unreachable
        } else {
            ProbeVerdict::Failing(track.failures_in_a_row)
        }
    }

    /// Probes to `key` that failed in a row since the last success.
    pub fn failures_in_a_row(&self, key: &WgKey) -> u32 {
        self.peers.get(key).map_or(0, |t| t.failures_in_a_row)
    }

    /// Whether probes last judged `key` unreachable (cleared by a success).
    pub fn is_unreachable(&self, key: &WgKey) -> bool {
        self.peers.get(key).is_some_and(|t| t.unreachable)
    }

    /// The link quality to `key`, once an RTT was measured.
    pub fn quality(&self, key: &WgKey) -> Option<u8> {
        self.peers.get(key).and_then(|t| t.quality.quality())
    }

    /// The smoothed round-trip time to `key` in milliseconds, once measured.
    pub fn smoothed_rtt_ms(&self, key: &WgKey) -> Option<f64> {
        self.peers
            .get(key)
            .and_then(|t| t.quality.smoothed_rtt_ms())
    }

    /// Forgets a peer that left.
    pub fn forget(&mut self, key: &WgKey) {
        self.peers.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(hs: Option<u64>, relayed: bool, first_seen: u64) -> ProbeNeed {
        ProbeNeed {
            last_handshake: hs.map(Millis::from_secs),
            relayed,
            suspect: false,
            first_seen: Millis::from_secs(first_seen),
        }
    }

    #[test]
    fn a_suspect_path_is_probed_even_with_a_fresh_handshake() {
        let now = Millis::from_secs(1000);
        let mut n = need(Some(990), false, 0);
        assert!(!needs_probing(&n, now));
        n.suspect = true;
        assert!(needs_probing(&n, now));
        let mut m = ProbeMonitor::default();
        assert!(m.due([9; 32], &n, now));
        assert_eq!(m.failures_in_a_row(&[9; 32]), 0);
        m.failed([9; 32]);
        m.failed([9; 32]);
        assert_eq!(m.failures_in_a_row(&[9; 32]), 2);
        m.succeeded([9; 32], Duration::from_millis(3));
        assert_eq!(m.failures_in_a_row(&[9; 32]), 0);
    }

    #[test]
    fn who_is_probed_table() {
        let now = Millis::from_secs(1000);
        let table = [
            (need(Some(900), false, 0), false, "recent handshake"),
            (need(Some(850), false, 0), false, "exactly 150 s"),
            (
                need(Some(849), false, 0),
                true,
                "handshake older than 150 s",
            ),
            (need(Some(999), true, 0), true, "relayed"),
            (
                need(None, false, 960),
                false,
                "new, never handshook, seen 40 s",
            ),
            (need(None, false, 955), false, "exactly 45 s"),
            (
                need(None, false, 954),
                true,
                "never handshook, seen over 45 s",
            ),
        ];
        for (n, expected, why) in table {
            assert_eq!(needs_probing(&n, now), expected, "{why}");
        }
    }

    #[test]
    fn one_probe_per_second() {
        let mut m = ProbeMonitor::default();
        let k = [1u8; 32];
        let n = need(None, true, 0);
        assert!(m.due(k, &n, Millis(10_000)));
        assert!(!m.due(k, &n, Millis(10_500)));
        assert!(
            !m.due(k, &n, Millis(10_899)),
            "more than the jitter tolerance early"
        );
        // Within the 100 ms tolerance a timer that fires early still probes.
        assert!(m.due(k, &n, Millis(10_900)));
        assert!(!m.due(k, &n, Millis(11_000)));
        assert!(m.due(k, &n, Millis(11_900)));
        assert!(
            !m.due(k, &need(Some(11), false, 0), Millis(11_500)),
            "not needed"
        );
    }

    #[test]
    fn eight_failures_make_a_peer_unreachable_and_a_success_clears_it() {
        let mut m = ProbeMonitor::default();
        let k = [1u8; 32];
        for i in 1..8 {
            assert_eq!(m.failed(k), ProbeVerdict::Failing(i));
        }
        assert!(!m.is_unreachable(&k));
        assert_eq!(m.failed(k), ProbeVerdict::Unreachable);
        assert!(m.is_unreachable(&k));
        assert_eq!(
            m.failed(k),
            ProbeVerdict::Failing(1),
            "counting starts over"
        );
        assert_eq!(
            m.succeeded(k, Duration::from_millis(30)),
            ProbeVerdict::Reachable
        );
        assert!(!m.is_unreachable(&k));
        assert_eq!(m.quality(&k), Some(90));
        for _ in 0..7 {
            m.failed(k);
        }
        m.succeeded(k, Duration::from_millis(30));
        assert_eq!(
            m.failed(k),
            ProbeVerdict::Failing(1),
            "a success resets the run"
        );
        m.forget(&k);
        assert_eq!(m.quality(&k), None);
    }
}
