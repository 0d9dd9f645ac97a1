//! The diff between the desired state and the applied one: the fewest operations that make
//! `applied` equal `desired` — WireGuard peers removed, updated (with which fields changed) or
//! added, routes removed, re-pointed or added, and relay forwarding switched. Nothing when
//! nothing changed. [`apply_diff`] is how the reconciler (and the tests) move the applied state
//! once the platform succeeded.
//!
//! Order: removals, then updates, then additions, so an allowed IP moving between peers is
//! released before it is claimed. Allowed IPs of an update replace the applied ones.

use super::WgKey;
use super::plan::{DesiredPeer, DesiredRoute, DesiredState};

/// Which fields of a WireGuard peer an update changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerChanges {
    pub endpoint: bool,
    pub allowed_ips: bool,
    pub keepalive: bool,
    pub preshared_key: bool,
}

impl PeerChanges {
    fn between(old: &DesiredPeer, new: &DesiredPeer) -> Self {
        Self {
            endpoint: old.endpoint != new.endpoint,
            allowed_ips: old.allowed_ips != new.allowed_ips,
            keepalive: old.persistent_keepalive_secs != new.persistent_keepalive_secs,
            preshared_key: old.preshared_key != new.preshared_key,
        }
    }

    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.endpoint || self.allowed_ips || self.keepalive || self.preshared_key
    }
}

/// One WireGuard operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    Remove(WgKey),
    /// Set the peer to `peer`; `changes` says which fields differ (a platform may send only
    /// those). A `None` endpoint cannot be unset in WireGuard: the platform leaves it.
    Update {
        peer: DesiredPeer,
        changes: PeerChanges,
    },
    Add(DesiredPeer),
}

/// One route operation (routes through the WireGuard interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    Remove(DesiredRoute),
    /// Same destination, now carried by another peer (a platform routing by device alone has
    /// nothing to do).
    Repoint(DesiredRoute),
    Add(DesiredRoute),
}

/// The operations from one state to another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    pub peers: Vec<PeerOp>,
    pub routes: Vec<RouteOp>,
    /// `Some(on)` when relay forwarding must be switched.
    pub relay_forwarding: Option<bool>,
}

impl Diff {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.routes.is_empty() && self.relay_forwarding.is_none()
    }
}

/// The operations that turn `applied` into `desired`.
pub fn diff(desired: &DesiredState, applied: &DesiredState) -> Diff {
    let mut removes = Vec::new();
    let mut updates = Vec::new();
    let mut adds = Vec::new();
    for key in applied.peers.keys() {
        if !desired.peers.contains_key(key) {
            removes.push(PeerOp::Remove(*key));
        }
    }
    for (key, want) in &desired.peers {
        match applied.peers.get(key) {
            None => adds.push(PeerOp::Add(want.clone())),
            Some(have) if have != want => updates.push(PeerOp::Update {
                peer: want.clone(),
                changes: PeerChanges::between(have, want),
            }),
            Some(_) => {}
        }
    }
    let mut peers = removes;
    peers.append(&mut updates);
    peers.append(&mut adds);

    let mut route_removes = Vec::new();
    let mut route_changes = Vec::new();
    for (destination, via_peer) in &applied.routes {
        if !desired.routes.contains_key(destination) {
            route_removes.push(RouteOp::Remove(DesiredRoute {
                destination: *destination,
                via_peer: *via_peer,
            }));
        }
    }
    for (destination, via_peer) in &desired.routes {
        let route = DesiredRoute {
            destination: *destination,
            via_peer: *via_peer,
        };
        match applied.routes.get(destination) {
            None => route_changes.push(RouteOp::Add(route)),
            Some(have) if have != via_peer => route_changes.push(RouteOp::Repoint(route)),
            Some(_) => {}
        }
    }
    // Re-pointed routes before new ones, both after removals.
    route_changes.sort_by_key(|op| matches!(op, RouteOp::Add(_)));
    let mut routes = route_removes;
    routes.append(&mut route_changes);

    Diff {
        peers,
        routes,
        relay_forwarding: (desired.relay_forwarding != applied.relay_forwarding)
            .then_some(desired.relay_forwarding),
    }
}

/// Applies `diff` to `state` (what the platform did, in memory).
pub fn apply_diff(state: &mut DesiredState, diff: &Diff) {
    for op in &diff.peers {
        match op {
            PeerOp::Remove(key) => {
                state.peers.remove(key);
            }
            PeerOp::Update { peer, .. } | PeerOp::Add(peer) => {
                state.peers.insert(peer.public_key, peer.clone());
            }
        }
    }
    for op in &diff.routes {
        match op {
            RouteOp::Remove(r) => {
                state.routes.remove(&r.destination);
            }
            RouteOp::Repoint(r) | RouteOp::Add(r) => {
                state.routes.insert(r.destination, r.via_peer);
            }
        }
    }
    if let Some(on) = diff.relay_forwarding {
        state.relay_forwarding = on;
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
