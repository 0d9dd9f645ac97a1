//! The probe monitor: which peers need urgent probing (handshake older than 150 s, relayed, a
//! suspect path, or never handshook and known for more than 45 s: at most one probe per second
//! per peer), the slower quality probes of the others ([`super::cadence`]), 8 failures in a row
//! make the peer unreachable (temporarily offline 30 s), successful probes' RTTs feed the link
//! quality and every outcome the loss window.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

use super::cadence::quality_probe_every;
use super::handshake::STALE_HANDSHAKE_AFTER;
use super::loss::LossWindow;
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
    /// A relay candidate of a pair this node relays (quality probes at least every 10 s).
    pub relay_leg: bool,
}

/// What probes measured of one peer's link, for `show` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    /// Smoothed RTT (median of 3, weight 0.3), milliseconds.
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    /// Fraction of the last (up to 100) probes that timed out.
    pub loss: Option<f64>,
    /// 0..=100 from the smoothed RTT.
    pub quality: Option<u8>,
    /// Probes in the loss window.
    pub probes: usize,
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
    loss: LossWindow,
}

/// Probe bookkeeping, peer by peer.
#[derive(Debug, Clone, Default)]
pub struct ProbeMonitor {
    peers: BTreeMap<WgKey, Track>,
}

impl ProbeMonitor {
    /// Whether to send a probe to `key` now (urgent probes every second, quality probes at
    /// their cadence); when yes, it counts as sent.
    pub fn due(&mut self, key: WgKey, need: &ProbeNeed, now: Millis) -> bool {
        let track = self.peers.entry(key).or_default();
        let every = if needs_probing(need, now) {
            PROBE_INTERVAL
        } else {
            quality_probe_every(
                track.quality.smoothed_rtt_ms(),
                track.failures_in_a_row > 0,
                need.relay_leg,
            )
        };
        if track
            .last_sent
            .is_some_and(|t| now.since(t) + PROBE_INTERVAL_TOLERANCE < every)
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
        track.loss.record(true);
        ProbeVerdict::Reachable
    }

    /// A probe timed out.
    pub fn failed(&mut self, key: WgKey) -> ProbeVerdict {
        let track = self.peers.entry(key).or_default();
        track.failures_in_a_row = track.failures_in_a_row.saturating_add(1);
        track.loss.record(false);
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

    /// The link quality to every peer measured so far.
    pub fn qualities(&self) -> BTreeMap<WgKey, u8> {
        self.peers
            .iter()
            .filter_map(|(k, t)| Some((*k, t.quality.quality()?)))
            .collect()
    }

    /// RTT, jitter, loss and quality of the link to `key`, once probed.
    pub fn stats(&self, key: &WgKey) -> Option<LinkStats> {
        let t = self.peers.get(key)?;
        (t.loss.probes() > 0).then(|| LinkStats {
            rtt_ms: t.quality.smoothed_rtt_ms(),
            jitter_ms: t.quality.jitter_ms(),
            loss: t.loss.loss(),
            quality: t.quality.quality(),
            probes: t.loss.probes(),
        })
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
            relay_leg: false,
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
    fn idle_direct_peers_get_quality_probes_at_their_cadence() {
        let mut m = ProbeMonitor::default();
        let k = [3u8; 32];
        let at = |s: u64| Millis::from_secs(s);
        // A fresh handshake: no urgent probing, but a first quality probe at once.
        let fresh = |now: u64| need(Some(now - 5), false, 0);
        assert!(m.due(k, &fresh(1000), at(1000)));
        // Not measured yet (no answer): poor cadence, 10 s.
        assert!(!m.due(k, &fresh(1005), at(1005)));
        assert!(m.due(k, &fresh(1010), at(1010)));
        m.succeeded(k, Duration::from_millis(20));
        // Good (20 ms): every 60 s.
        assert!(!m.due(k, &fresh(1069), at(1069)));
        assert!(m.due(k, &fresh(1070), at(1070)));
        // A relay leg: every 10 s whatever the RTT.
        let leg = ProbeNeed {
            relay_leg: true,
            ..fresh(1080)
        };
        assert!(m.due(k, &leg, at(1080)));
        // Fair (100 ms after smoothing): every 30 s.
        for _ in 0..20 {
            m.succeeded(k, Duration::from_millis(100));
        }
        assert!(!m.due(k, &fresh(1109), at(1109)));
        assert!(m.due(k, &fresh(1110), at(1110)));
        // Poor (300 ms): every 10 s; a failure also makes it 10 s.
        for _ in 0..20 {
            m.succeeded(k, Duration::from_millis(300));
        }
        assert!(m.due(k, &fresh(1120), at(1120)));
        m.failed(k);
        let s = m.stats(&k).unwrap();
        assert_eq!(s.probes, 42);
        assert!((s.loss.unwrap() - 1.0 / 42.0).abs() < 1e-9);
        assert!(s.rtt_ms.unwrap() > 290.0 && s.jitter_ms.unwrap() < 1.0);
        assert_eq!(s.quality, Some(0));
        assert_eq!(m.stats(&[4; 32]), None);
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
