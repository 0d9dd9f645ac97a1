//! Ring 3: discovery edges. Each module turns packets into verified node records and hands them
//! to the peer store with its discovery method; none touches WireGuard.
//!
//! Peer exchange (PROTOCOL.md §8) so far:
//! - [`ratelimit`]: per-source token buckets applied before any decryption (pure);
//! - [`exchange`]: the hello / reply / records protocol state, cookies and the
//!   anti-amplification budget (pure, sans-IO), with [`digests`] and [`cookie`] helpers, and
//!   [`endpoint`] (which source address a direct message may set as a peer's endpoint);
//! - [`engine`]: every decision about a received message and what a hello says (sans-IO,
//!   driven by the control socket and by the simulation), with [`antientropy`] (peer filters
//!   over rotating key ranges);
//! - [`gossip`]: the in-mesh gossip cadence and peer choice (sans-IO);
//! - [`control_socket`]: the UDP control socket that drives them (tokio), with `inbound`
//!   (the thin receive shell around the engine) and `contact` (hello sessions, static peers);
//! - [`sim`]: a deterministic simulation of many nodes running the engine and gossip;
//! - [`stem`]: Dandelion++ stems received on the control socket (relay, embargo, fluff).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

pub mod antientropy;
mod contact;
pub mod control_socket;
pub mod cookie;
pub mod dht;
pub mod digests;
pub mod endpoint;
pub mod engine;
pub mod exchange;
pub mod expiring;
mod inbound;
pub mod lan;
pub mod ratelimit;
pub mod registry;
pub mod relay_notice;
pub mod rendezvous;
pub mod sim;
pub mod stem;
pub mod stun;

pub use contact::ResolveError;
pub use control_socket::{
    ControlSocket, ControlSocketConfig, ControlSocketDeps, ControlSocketError, ControlTasks,
    ProbeReplyEvent,
};
pub use digests::{digests_of, lacks_any, records_the_other_lacks};
pub use engine::{
    Effect, Engine, Local, REASON_AMPLIFICATION, REASON_OWN_RECORD, REASON_UNSOLICITED, RecordCheck,
};
pub use exchange::{Exchange, ExchangeConfig, ExchangeError, ExchangeStats, ReceivedHello};
pub use inbound::REASON_RATE_LIMIT;
pub use ratelimit::{RateLimitConfig, RateLimiter};

/// `addr` with an IPv4-mapped IPv6 address turned into the IPv4 address (what a dual-stack
/// socket reports for IPv4 peers), so one peer has one address everywhere.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
