//! Ring 3: discovery edges. Each module turns packets into verified node records and hands them
//! to the peer store with its discovery method; none touches WireGuard.
//!
//! Peer exchange (PROTOCOL.md §8) so far:
//! - [`ratelimit`]: per-source token buckets applied before any decryption (pure);
//! - [`exchange`]: the hello / reply / records protocol state, cookies and the
//!   anti-amplification budget (pure, sans-IO), with [`digests`] and [`cookie`] helpers.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

pub mod cookie;
pub mod digests;
pub mod exchange;
pub mod expiring;
pub mod ratelimit;

#[cfg(test)]
pub(crate) mod testrng;

pub use digests::{digests_of, records_the_other_lacks};
pub use exchange::{Exchange, ExchangeConfig, ExchangeError, ExchangeStats, ReceivedHello};
pub use ratelimit::{RateLimitConfig, RateLimiter};

/// `addr` with an IPv4-mapped IPv6 address turned into the IPv4 address (what a dual-stack
/// socket reports for IPv4 peers), so one peer has one address everywhere.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
