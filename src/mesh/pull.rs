//! When to pull the peer list from introducers over the mesh (a hello to each introducer's
//! mesh address; its reply's digests name the peers this node lacks). A node learns most peers
//! when it greets someone, but nobody can greet a node behind an endpoint-dependent
//! (symmetric) or filtering NAT: a peer that joined after this node's greetings would stay
//! unknown to it. Introducers hear from everyone, so asking them is enough: 5 s after start,
//! then doubling up to once a minute. Pure: the daemon asks `due` with its clock.

use std::time::Duration;

use super::time::Millis;

/// The first pull comes this long after start …
pub const PULL_FIRST: Duration = Duration::from_secs(5);
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
        let gap = PULL_FIRST
            .saturating_mul(1u32 << self.rounds.min(16))
            .min(PULL_MAX);
        self.next = Some(now.plus(gap));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_seconds_after_start_then_doubling_to_a_minute() {
        let t0 = Millis(1_000_000);
        let at = |s: u64| t0.plus(Duration::from_secs(s));
        let mut p = IntroducerPull::default();
        assert!(!p.due(t0));
        assert!(!p.due(at(4)));
        let mut t = 5;
        for gap in [10, 20, 40, 60, 60] {
            assert!(p.due(at(t)), "due at {t}");
            assert!(!p.due(at(t + gap - 1)), "not before {}", t + gap);
            t += gap;
        }
    }
}
