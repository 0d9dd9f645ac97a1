//! Ring 2: the mesh core. Owns every policy of the product, once: the peer store and its merge
//! rules, endpoint ranking, route acceptance, the planner (desired WireGuard peers, routes and
//! relay forwarding), the diff against what is applied, relay choice, the NAT matrix and
//! keepalive table, address collisions, and the health state machines.
//!
//! Pure and sans-IO: no sockets, files, environment or clock reads. Time comes in as a
//! [`Millis`] value and every function is tested under virtual time. Imports only `proto` and
//! `identity` of this crate.
//!
//! How the daemon drives it (one trip, see docs/ARCHITECTURE.md):
//! - discovery verifies a record (`proto::RecordVerifier`, passing
//!   [`PeerStore::held_sequence`]) and calls [`PeerStore::update`] with a [`PeerUpdate`];
//!   the store checks the record's mesh addresses ([`AddressCheck`]) and merges it;
//! - a [`PeerEvent`] wakes the reconciler: [`plan()`] over [`PeerStore::snapshot`], then
//!   [`diff()`] against the last applied [`DesiredState`]; the platform applies the [`Diff`],
//!   and the reconciler records it with [`apply_diff`];
//! - every few seconds health feeds WireGuard's handshake/transfer counters to the
//!   [`HandshakeMonitor`], probes through the [`ProbeMonitor`], and runs the [`RelayTracker`]
//!   per peer; its [`RelayTracker::relayed`] map and the [`OfflineList`] form the
//!   [`HealthView`] the next plan reads;
//! - every minute [`PeerStore::cleanup`]; on start [`PeerStore::restore`] from the cache, on
//!   exit and periodically [`PeerStore::cache_entries`] to it;
//! - with `--privacy`, [`dandelion`] decides where a fresh record travels before it spreads
//!   (stem relays per epoch, forward or fluff, embargo timers);
//! - [`local_address_verdict`] tells this node when it lost its mesh IPv4 and must re-derive
//!   it with the next nonce.
#![forbid(unsafe_code)]

pub mod collision;
pub mod dandelion;
pub mod dht_schedule;
pub mod diff;
pub mod events;
pub mod gossip;
pub mod handshake_order;
pub mod health;
pub mod nat;
pub mod nat_check;
pub mod peer;
pub mod plan;
pub mod pull;
pub mod punch;
pub mod rank;
pub mod registry_schedule;
pub mod relay;
pub mod routes;
pub mod splitmix;
pub mod store;
pub mod time;

#[cfg(test)]
pub(crate) mod testkit;

pub use collision::{
    AddressCheck, AddressError, CollisionError, LocalAddressVerdict, local_address_verdict,
};
pub use diff::{Diff, PeerChanges, PeerOp, RouteOp, apply_diff, diff};
pub use events::{PeerEvent, RemoveReason};
pub use health::{
    HandshakeAction, HandshakeMonitor, HandshakeSample, LinkQuality, LinkStats, OfflineList,
    ProbeMonitor, ProbeVerdict, SuspectTracker,
};
pub use nat::{AttemptOrder, attempt_order, direct_first, keepalive_between, keepalive_for};
pub use peer::{PeerEntry, PeerUpdate};
pub use plan::{
    DesiredPeer, DesiredRoute, DesiredState, HealthView, LocalPlanConfig, Plan, PresharedKey,
    SkipReason, plan,
};
pub use rank::{DiscoveryMethod, EndpointClaim, pick_candidate, should_update_endpoint};
pub use relay::{
    RelayCandidate, RelayChoice, RelayCooldowns, RelayHysteresis, RelayInputs, RelayTracker,
    RelayVerdict, select_relay, should_relay,
};
pub use routes::{RouteAcceptance, RoutePolicy};
pub use store::{CachedPeer, PeerStore, RestoreReport, StoreConfig, StoreError, UpdateOutcome};
pub use time::Millis;

/// A WireGuard public key (32 raw bytes): the key of every peer in the mesh core.
pub type WgKey = crate::proto::WgPublicKey;

/// The first 8 bytes of a key in hex, for logs and error messages.
pub fn short_key(key: &WgKey) -> String {
    hex::encode(&key[..8])
}
