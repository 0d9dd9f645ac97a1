//! Per-source rate limit of control datagrams, applied before any decryption: one token bucket
//! per source IP (default 10 datagrams/s, burst 20) in a bounded map of sources that evicts the
//! least recently used one. Pure: the caller passes `now`; memory is bounded by the source cap
//! whatever the traffic (spoofed floods only evict each other).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::mesh::Millis;

/// Default sustained rate, datagrams per second per source.
pub const DEFAULT_RATE_PER_SEC: u32 = 10;
/// Default burst, datagrams.
pub const DEFAULT_BURST: u32 = 20;
/// Default number of sources tracked at once.
pub const DEFAULT_MAX_SOURCES: usize = 4096;

/// Tokens are counted in thousandths so refill needs no floating point.
const MILLI: u64 = 1000;

/// The limiter's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Sustained datagrams per second per source.
    pub rate_per_sec: u32,
    /// Datagrams a quiet source may send at once.
    pub burst: u32,
    /// Sources tracked at once; the least recently seen is forgotten beyond it.
    pub max_sources: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            burst: DEFAULT_BURST,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a token.
    tokens: u64,
    /// When the bucket was last refilled.
    refilled: Millis,
    /// Position in the recency order.
    tick: u64,
}

/// Token buckets per source IP, bounded in number.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: BTreeMap<IpAddr, Bucket>,
    /// Recency order: tick of last use → source. The first entry is the least recently used.
    recency: BTreeMap<u64, IpAddr>,
    next_tick: u64,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: BTreeMap::new(),
            recency: BTreeMap::new(),
            next_tick: 0,
        }
    }

    /// The limiter's configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Sources currently tracked (never more than `max_sources`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Whether one datagram from `source` at `now` may be processed (and takes a token if so).
    /// IPv4-mapped IPv6 sources count as their IPv4 address.
    pub fn allow(&mut self, source: IpAddr, now: Millis) -> bool {
        let source = source.to_canonical();
        let capacity = u64::from(self.config.burst).saturating_mul(MILLI);
        let tick = self.next_tick;
        self.next_tick = self.next_tick.wrapping_add(1);
        let bucket = match self.buckets.get_mut(&source) {
            Some(b) => {
                self.recency.remove(&b.tick);
                // Elapsed ms × rate/s = thousandths of a token.
                let elapsed = now.as_millis().saturating_sub(b.refilled.as_millis());
                let refill = elapsed.saturating_mul(u64::from(self.config.rate_per_sec));
                b.tokens = b.tokens.saturating_add(refill).min(capacity);
                b.refilled = b.refilled.max(now);
                b.tick = tick;
                *b
            }
            None => {
                if self.config.max_sources == 0 {
                    return false;
                }
                while self.buckets.len() >= self.config.max_sources {
                    self.evict_oldest();
                }
                let b = Bucket {
                    tokens: capacity,
                    refilled: now,
                    tick,
                };
                self.buckets.insert(source, b);
                b
            }
        };
        self.recency.insert(tick, source);
        if bucket.tokens >= MILLI {
            if let Some(b) = self.buckets.get_mut(&source) {
                b.tokens -= MILLI;
            }
            true
        } else {
            false
        }
    }

    fn evict_oldest(&mut self) {
        match self.recency.pop_first() {
            Some((_, ip)) => {
                self.buckets.remove(&ip);
            }
            // The two maps hold the same sources; if they ever disagree, start over.
            None => self.buckets.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn limiter(max_sources: usize) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            max_sources,
            ..RateLimitConfig::default()
        })
    }

    #[test]
    fn burst_then_refused_then_refilled_at_the_rate() {
        let mut l = limiter(16);
        let t = Millis::from_secs(100);
        let allowed = (0..50).filter(|_| l.allow(ip(1), t)).count();
        assert_eq!(allowed, 20, "burst of 20");
        assert!(!l.allow(ip(1), t));
        // 10/s: one token per 100 ms.
        assert!(!l.allow(ip(1), Millis(t.0 + 99)));
        assert!(l.allow(ip(1), Millis(t.0 + 100)));
        assert!(!l.allow(ip(1), Millis(t.0 + 100)));
        // One second later: ten more, not more.
        let later = Millis(t.0 + 1100);
        assert_eq!((0..50).filter(|_| l.allow(ip(1), later)).count(), 10);
        // A long quiet period refills up to the burst only.
        let much_later = Millis(t.0 + 3_600_000);
        assert_eq!((0..50).filter(|_| l.allow(ip(1), much_later)).count(), 20);
    }

    #[test]
    fn sustained_rate_over_ten_virtual_seconds() {
        let mut l = limiter(16);
        let mut allowed = 0;
        // 1000 datagrams/s for 10 s, every ms.
        for ms in 0..10_000u64 {
            if l.allow(ip(7), Millis(ms)) {
                allowed += 1;
            }
        }
        // burst 20 + 10/s × 10 s (the first ms refills nothing).
        assert!((118..=121).contains(&allowed), "{allowed}");
    }

    #[test]
    fn sources_are_independent_and_mapped_v4_is_v4() {
        let mut l = limiter(16);
        let t = Millis::ZERO;
        for _ in 0..20 {
            assert!(l.allow(ip(1), t));
        }
        assert!(!l.allow(ip(1), t));
        assert!(l.allow(ip(2), t));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(!l.allow(mapped, t), "mapped address shares the v4 bucket");
    }

    #[test]
    fn least_recently_used_source_is_evicted() {
        let mut l = limiter(3);
        let t = Millis::ZERO;
        for n in 1..=3 {
            for _ in 0..20 {
                assert!(l.allow(ip(n), t));
            }
        }
        // Touch 1 so that 2 is the least recently used.
        assert!(!l.allow(ip(1), t));
        assert!(l.allow(ip(4), t));
        assert_eq!(l.len(), 3);
        // 2 was forgotten: it starts with a full bucket again; 1 and 3 are still empty.
        assert!(l.allow(ip(2), t), "evicted source comes back fresh");
        assert!(
            !l.allow(ip(1), t),
            "recently used source kept its empty bucket"
        );
    }

    #[test]
    fn memory_is_bounded_under_a_spoofed_flood() {
        let mut l = limiter(4096);
        for n in 0..100_000u32 {
            l.allow(ip(n), Millis(u64::from(n) / 20));
            assert!(l.len() <= 4096);
        }
        assert_eq!(l.len(), 4096);
        assert_eq!(l.recency.len(), 4096);
    }

    #[test]
    fn clock_stepping_back_neither_panics_nor_refills() {
        let mut l = limiter(4);
        let t = Millis::from_secs(50);
        for _ in 0..20 {
            assert!(l.allow(ip(1), t));
        }
        assert!(!l.allow(ip(1), Millis::from_secs(10)));
        assert!(!l.allow(ip(1), t));
    }

    #[test]
    fn zero_sources_refuses_everything() {
        let mut l = limiter(0);
        assert!(!l.allow(ip(1), Millis::ZERO));
        assert!(l.is_empty());
    }
}
