//! Virtual time for the core: [`Millis`], milliseconds since the unix epoch as the daemon's
//! clock reads them. The core never reads a clock; callers pass `now` in, and tests move it by
//! hand. Wall-clock milliseconds (not `Instant`) so that last-seen times survive in the cache.

use std::ops::Add;
use std::time::Duration;

/// A point in time: milliseconds since the unix epoch, as given by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// The epoch itself; handy as a test origin.
    pub const ZERO: Millis = Millis(0);

    /// `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Millis(secs.saturating_mul(1000))
    }

    /// The raw milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero when `earlier` is later (clock stepped back).
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Millis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(ms))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        self.plus(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates_when_the_clock_steps_back() {
        let t = Millis::from_secs(10);
        assert_eq!(t.since(Millis::from_secs(4)), Duration::from_secs(6));
        assert_eq!(Millis::from_secs(4).since(t), Duration::ZERO);
        assert_eq!(t + Duration::from_millis(5), Millis(10_005));
        assert_eq!(Millis(u64::MAX) + Duration::from_secs(1), Millis(u64::MAX));
    }
}
