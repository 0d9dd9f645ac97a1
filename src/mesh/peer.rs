//! One peer as the store holds it ([`PeerEntry`]: its newest record, the endpoint chosen by the
//! ranking policy, how it was found and when it was last seen), and what discovery hands the
//! store ([`PeerUpdate`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::{NodeRecord, SignedRecord};

use super::WgKey;
use super::rank::{DiscoveryMethod, EndpointClaim};
use super::time::Millis;

/// A verified record and how it was found, on its way into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUpdate {
    /// The record, already verified by discovery (signature, key binding, size limits).
    pub record: NodeRecord,
    /// Its signed form, kept for the cache and for gossip (absent when only the body is known).
    pub signed: Option<SignedRecord>,
    /// How it was found.
    pub method: DiscoveryMethod,
    /// The endpoint this discovery saw (e.g. a packet's source address); `None` lets the store
    /// pick one of the record's candidates for the method.
    pub endpoint: Option<SocketAddr>,
}

impl PeerUpdate {
    /// An update with the record only (endpoint picked from its candidates).
    pub fn new(record: NodeRecord, method: DiscoveryMethod) -> Self {
        Self {
            record,
            signed: None,
            method,
            endpoint: None,
        }
    }

    /// The same update carrying the signed form too.
    pub fn with_signed(mut self, signed: SignedRecord) -> Self {
        self.signed = Some(signed);
        self
    }

    /// The same update with the endpoint discovery observed.
    pub fn with_endpoint(mut self, endpoint: SocketAddr) -> Self {
        self.endpoint = Some(endpoint);
        self
    }
}

/// A peer as the store holds it. `PeerStore::get` and snapshots hand out copies: changing one
/// changes nothing in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// The newest record (by sequence) the store received for this peer.
    pub record: NodeRecord,
    /// Its signed form, when known.
    pub signed: Option<SignedRecord>,
    /// The endpoint the ranking policy chose, with who vouched for it.
    pub endpoint: Option<EndpointClaim>,
    /// Every method that found this peer, first-seen order, no duplicates.
    pub discovered_via: Vec<DiscoveryMethod>,
    /// When the store first held it.
    pub first_seen: Millis,
    /// When the peer itself was last heard by a direct method (kept from the cache on restore).
    pub last_seen: Millis,
    /// Set when the entry came from the cache: it counts as alive from then on, so cached peers
    /// get a full dead-after period to be re-confirmed.
    pub restored_at: Option<Millis>,
}

impl PeerEntry {
    /// The peer's WireGuard public key (the store's key).
    pub fn key(&self) -> &WgKey {
        &self.record.wireguard_public
    }

    /// The time liveness is measured from: last seen, or the restore time of a cached entry.
    pub fn liveness_base(&self) -> Millis {
        match self.restored_at {
            Some(r) => r.max(self.last_seen),
            None => self.last_seen,
        }
    }

    /// Alive (in the active set) unless not seen for `dead_after` or longer.
    pub fn is_alive(&self, now: Millis, dead_after: Duration) -> bool {
        now.since(self.liveness_base()) < dead_after
    }

    /// Whether it was found by LAN discovery at some point.
    pub fn found_by_lan(&self) -> bool {
        self.discovered_via.contains(&DiscoveryMethod::Lan)
    }

    /// The endpoint address, if any.
    pub fn endpoint_addr(&self) -> Option<SocketAddr> {
        self.endpoint.map(|e| e.addr)
    }
}
