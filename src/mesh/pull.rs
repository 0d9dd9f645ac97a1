//! When to pull the peer list from introducers over the mesh (a hello to each introducer's
//! mesh address; its reply's digests name the peers this node lacks). A node learns most peers
//! when it greets someone, but nobody can greet a node behind an endpoint-dependent
//! (symmetric) or filtering NAT: a peer that joined after this node's greetings would stay
//! unknown to it. Introducers hear from everyone, so asking them is enough: 2 s after start,
//! then 1 s later and doubling up to once a minute (pulls at 2, 3, 5, 9, 17, 33 s …: nodes
//! started together reach the introducer within a few seconds, and two symmetric nodes can only
//! meet there). Pure: the daemon asks `due` with its clock.

use std::time::Duration;

use super::time::Millis;

/// The first pull comes this long after start …
pub const PULL_FIRST: Duration = Duration::from_secs(2);
/// … the second this long after the first …
pub const PULL_SECOND_GAP: Duration = Duration::from_secs(1);
/// … then the gap doubles up to this.
pub const PULL_MAX: Duration = Duration::from_secs(60);

/// The pull schedule.
#[derive(Debug, Clone, Default)]
pub struct IntroducerPull {
    rounds: u32,
    next: Option<Millis>,
}

impl IntroducerPull {
    /// Whether a pull is due at `now` (the first call only starts the clock); when it is, the
    /// next one is scheduled.
    pub fn due(&mut self, now: Millis) -> bool {
        let Some(next) = self.next else {
            self.next = Some(now.plus(PULL_FIRST));
            return false;
        };
        if now < next {
            return false;
        }
        self.rounds = self.rounds.saturating_add(1);
        let gap = PULL_SECOND_GAP
            .saturating_mul(1u32 << (self.rounds - 1).min(16))
            .min(PULL_MAX);
        self.next = Some(now.plus(gap));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_seconds_after_start_then_from_one_second_doubling_to_a_minute() {
        let t0 = Millis(1_000_000);
        let at = |s: u64| t0.plus(Duration::from_secs(s));
        let mut p = IntroducerPull::default();
        assert!(!p.due(t0));
        assert!(!p.due(at(1)));
        let mut t = 2;
        for gap in [1, 2, 4, 8, 16, 32, 60, 60] {
            assert!(p.due(at(t)), "due at {t}");
            assert!(!p.due(at(t + gap - 1)), "not before {}", t + gap);
            t += gap;
        }
    }
}
