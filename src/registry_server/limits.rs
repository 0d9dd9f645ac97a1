//! The registry server's limits: a token bucket per client address (IPv6 clients share one per
//! /64), the request body size limit, and the connection caps (total and per client address).
//! Pure bookkeeping over a caller-supplied clock in milliseconds; the HTTP layer enforces.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::proto::registry::MAX_ENTRY_BYTES;

/// Largest request body: one entry (a delete proof is smaller).
pub const MAX_BODY_BYTES: usize = MAX_ENTRY_BYTES;

/// The limits an operator sets (`wgmesh registry serve --rate ... --burst ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests per second each client address earns.
    pub rate_per_sec: f64,
    /// Requests a client address may make at once after being idle.
    pub burst: f64,
    /// Client addresses tracked at most (beyond, new addresses are refused until old buckets
    /// refill and are forgotten).
    pub max_clients: usize,
    /// Open connections at most, and per client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Registry ids the server accepts at most (TOFU pins included).
    pub max_meshes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_sec: 10.0,
            burst: 60.0,
            max_clients: 100_000,
            max_connections: 1024,
            max_connections_per_ip: 32,
            max_meshes: 10_000,
        }
    }
}

/// Why a `--rate` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--rate {0:?} is not a rate: give requests per second per client address, e.g. 10/s")]
pub struct RateParseError(pub String);

/// Parses `N/s` (or a bare `N`): requests per second, positive.
pub fn parse_rate(text: &str) -> Result<f64, RateParseError> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(RateParseError(text.to_string())),
    }
}

/// The key a client is limited under: its IPv4 address, or its IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Per-client token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_ms: f64,
    burst: f64,
    max_clients: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            rate_per_ms: limits.rate_per_sec / 1000.0,
            burst: limits.burst.max(1.0),
            max_clients: limits.max_clients.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip` at `now_ms`; `Err(seconds)` says when to retry.
    pub fn check(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let key = client_key(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_clients {
            self.forget_full(now_ms);
            if self.buckets.len() >= self.max_clients {
                return Err(1);
            }
        }
        let (burst, rate) = (self.burst, self.rate_per_ms);
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.at_ms) as f64;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - bucket.tokens) / rate;
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }

    /// Drops the buckets that have refilled (their clients are as good as new).
    pub fn forget_full(&mut self, now_ms: u64) {
        let (burst, rate) = (self.burst, self.rate_per_ms);
        self.buckets
            .retain(|_, b| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * rate < burst);
    }

    /// Client addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Open connections, in total and per client address.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCounter {
    /// Counts a new connection from `ip` if the caps allow it.
    pub fn try_open(&mut self, ip: IpAddr, limits: &Limits) -> bool {
        let key = client_key(ip);
        let n = self.per_ip.get(&key).copied().unwrap_or(0);
        if self.total >= limits.max_connections || n >= limits.max_connections_per_ip {
            return false;
        }
        self.total += 1;
        self.per_ip.insert(key, n + 1);
        true
    }

    /// Forgets a connection counted by [`ConnectionCounter::try_open`].
    pub fn close(&mut self, ip: IpAddr) {
        let key = client_key(ip);
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&key);
            }
        }
    }

    pub fn open(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let limits = Limits {
            rate_per_sec: 2.0,
            burst: 3.0,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(&limits);
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(rl.check(a, 1000), Ok(()));
        }
        assert_eq!(rl.check(a, 1000), Err(1));
        // another client is not affected
        assert_eq!(rl.check(ip("192.0.2.2"), 1000), Ok(()));
        // 500 ms later one token is back
        assert_eq!(rl.check(a, 1500), Ok(()));
        assert_eq!(rl.check(a, 1500), Err(1));
        // a clock going backwards gives nothing
        assert_eq!(rl.check(a, 10), Err(1));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limits = Limits {
            rate_per_sec: 0.1,
            burst: 1.0,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(&limits);
        assert_eq!(rl.check(ip("2001:db8:1:2::1"), 0), Ok(()));
        assert_eq!(rl.check(ip("2001:db8:1:2::ffff"), 0), Err(10));
        assert_eq!(rl.check(ip("2001:db8:1:3::1"), 0), Ok(()));
        // v4-mapped is the v4 client
        assert_eq!(rl.check(ip("192.0.2.9"), 0), Ok(()));
        assert_eq!(rl.check(ip("::ffff:192.0.2.9"), 0), Err(10));
    }

    #[test]
    fn client_table_is_bounded_and_forgets_refilled_buckets() {
        let limits = Limits {
            rate_per_sec: 1.0,
            burst: 1.0,
            max_clients: 2,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(&limits);
        assert_eq!(rl.check(ip("192.0.2.1"), 0), Ok(()));
        assert_eq!(rl.check(ip("192.0.2.2"), 0), Ok(()));
        assert_eq!(rl.check(ip("192.0.2.3"), 0), Err(1));
        assert_eq!(rl.tracked(), 2);
        assert_eq!(rl.check(ip("192.0.2.3"), 2000), Ok(()));
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn rate_parses_per_second_values_only() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert_eq!(parse_rate("200"), Ok(200.0));
        for bad in ["0/s", "-1/s", "ten/s", "10/m", "inf", "NaN/s", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_caps_total_and_per_address() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let mut c = ConnectionCounter::default();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(c.try_open(a, &limits));
        assert!(c.try_open(a, &limits));
        assert!(!c.try_open(a, &limits));
        assert!(c.try_open(b, &limits));
        assert!(!c.try_open(b, &limits), "total cap");
        c.close(a);
        assert!(c.try_open(b, &limits));
        assert_eq!(c.open(), 3);
    }
}
