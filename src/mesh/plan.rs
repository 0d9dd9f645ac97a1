//! The planner: from a store snapshot, this node's configuration and the health view, the
//! desired state a platform layer applies: WireGuard peers (public key, preshared key,
//! endpoint, allowed IPs = mesh /32 + mesh /128 + accepted advertised routes, persistent
//! keepalive), routes for advertised networks (via the peer or its relay), and relay forwarding
//! for this node.
//!
//! Rules: only live peers not temporarily offline; a relayed peer has no WireGuard entry of its
//! own, its addresses and routes ride on its relay's entry (while it is hole-punched it gets
//! an entry with no allowed IPs, pointed at the candidate being tried); a contested mesh IPv4 is installed
//! only for the smaller key; no network is ever put on two peers (first claim wins: mesh
//! addresses before routes, then peers in key order).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::proto::NatType;

use super::WgKey;
use super::collision::ipv4_owners;
use super::health::OfflineList;
use super::nat::keepalive_between;
use super::peer::PeerEntry;
use super::routes::RouteAcceptance;
use super::store::DEAD_AFTER;
use super::time::Millis;

/// The WireGuard preshared key (secret: never shown by `Debug`, zeroed on drop).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; 32]);

impl PresharedKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

/// One WireGuard peer as it should be configured. Allowed IPs replace the applied ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPeer {
    pub public_key: WgKey,
    pub preshared_key: PresharedKey,
    /// `None`: no endpoint known; the peer has to reach this node first.
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: BTreeSet<IpNet>,
    pub persistent_keepalive_secs: Option<u16>,
}

/// A route to an advertised network through the WireGuard interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DesiredRoute {
    pub destination: IpNet,
    /// The WireGuard peer whose allowed IPs carry it (the advertiser, or its relay).
    pub via_peer: WgKey,
}

/// Everything the platform makes true: WireGuard peers, routes, relay forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    pub peers: BTreeMap<WgKey, DesiredPeer>,
    /// Destination → the WireGuard peer carrying it.
    pub routes: BTreeMap<IpNet, WgKey>,
    pub relay_forwarding: bool,
}

impl DesiredState {
    /// The routes as a list.
    pub fn route_list(&self) -> impl Iterator<Item = DesiredRoute> + '_ {
        self.routes
            .iter()
            .map(|(destination, via_peer)| DesiredRoute {
                destination: *destination,
                via_peer: *via_peer,
            })
    }
}

/// What the planner needs to know about this node.
#[derive(Debug, Clone)]
pub struct LocalPlanConfig {
    pub wireguard_public: WgKey,
    pub mesh_ipv4: Ipv4Addr,
    pub nat_type: NatType,
    /// An introducer relays for others: relay forwarding is on.
    pub introducer: bool,
    pub preshared_key: PresharedKey,
    pub routes: RouteAcceptance,
    /// Peers not seen for this long are left out.
    pub dead_after: Duration,
}

impl LocalPlanConfig {
    /// A config with the default dead-after age.
    pub fn new(
        wireguard_public: WgKey,
        mesh_ipv4: Ipv4Addr,
        preshared_key: PresharedKey,
        routes: RouteAcceptance,
    ) -> Self {
        Self {
            wireguard_public,
            mesh_ipv4,
            nat_type: NatType::Unknown,
            introducer: false,
            preshared_key,
            routes,
            dead_after: DEAD_AFTER,
        }
    }
}

/// What health tells the planner.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    pub offline: OfflineList,
    /// Relayed peer → its relay (from the relay tracker).
    pub relayed: BTreeMap<WgKey, WgKey>,
    /// Peers being hole-punched → the candidate address tried now (from the punch session).
    /// Their entry points there with a 1 s keepalive (setting it sends one at once, which
    /// starts a handshake); a relayed peer gets such an entry with no allowed IPs (its
    /// addresses stay on the relay until the punch succeeds).
    pub punching: BTreeMap<WgKey, SocketAddr>,
}

/// Persistent keepalive of an entry being punched.
pub const PUNCH_KEEPALIVE_SECS: u16 = 1;

/// Why a known peer has no WireGuard entry of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    ItIsThisNode,
    Dead,
    TemporarilyOffline,
    /// Carried by this relay's entry.
    Relayed {
        via: WgKey,
    },
}

/// The planner's answer: the desired state, plus what `show` and logs explain.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub desired: DesiredState,
    pub skipped: BTreeMap<WgKey, SkipReason>,
    /// Peers whose mesh IPv4 another peer (smaller key) or this node keeps: loser → winner.
    pub ipv4_lost: BTreeMap<WgKey, WgKey>,
}

fn host4(a: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(a))
}

fn host(a: IpAddr) -> IpNet {
    match a {
        IpAddr::V4(v4) => host4(v4),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::from(v6)),
    }
}

/// Plans the desired state from `peers` (a store snapshot) at `now`.
pub fn plan(
    peers: &[PeerEntry],
    local: &LocalPlanConfig,
    health: &HealthView,
    now: Millis,
) -> Plan {
    let mut out = Plan {
        desired: DesiredState {
            relay_forwarding: local.introducer,
            ..DesiredState::default()
        },
        ..Plan::default()
    };

    // 1. Who takes part, in key order (one entry per key).
    let mut eligible: Vec<&PeerEntry> = Vec::with_capacity(peers.len());
    for entry in peers {
        let key = *entry.key();
        let skip = if key == local.wireguard_public {
            Some(SkipReason::ItIsThisNode)
        } else if !entry.is_alive(now, local.dead_after) {
            Some(SkipReason::Dead)
        } else if health.offline.is_offline(&key, now) {
            Some(SkipReason::TemporarilyOffline)
        } else {
            None
        };
        match skip {
            Some(reason) => {
                out.skipped.insert(key, reason);
            }
            None => eligible.push(entry),
        }
    }
    eligible.sort_by(|a, b| a.key().cmp(b.key()));
    eligible.dedup_by(|a, b| a.key() == b.key());
    let index_of = |key: &WgKey| eligible.binary_search_by(|e| e.key().cmp(key)).ok();

    // 2. Who carries whom (by index): a relayed peer rides on its relay when the relay takes
    //    part itself, is not this node, and is not relayed in turn.
    let carriers: Vec<usize> = eligible
        .iter()
        .enumerate()
        .map(|(i, e)| {
            health
                .relayed
                .get(e.key())
                .filter(|relay| {
                    *relay != e.key()
                        && **relay != local.wireguard_public
                        && !health.relayed.contains_key(*relay)
                })
                .and_then(index_of)
                .unwrap_or(i)
        })
        .collect();

    // 3. Who keeps each contested mesh IPv4 (this node takes part in the contest).
    let owners = ipv4_owners(
        std::iter::once((&local.wireguard_public, local.mesh_ipv4))
            .chain(eligible.iter().map(|e| (e.key(), e.record.mesh_ipv4))),
    );

    // 4. WireGuard entries for every carrier.
    let mut entries: Vec<Option<DesiredPeer>> = eligible
        .iter()
        .zip(&carriers)
        .enumerate()
        .map(|(i, (entry, carrier))| {
            let punch = health.punching.get(entry.key()).copied();
            (*carrier == i || punch.is_some()).then(|| DesiredPeer {
                public_key: *entry.key(),
                preshared_key: local.preshared_key.clone(),
                endpoint: punch.or_else(|| entry.endpoint_addr()),
                allowed_ips: BTreeSet::new(),
                persistent_keepalive_secs: Some(match punch {
                    Some(_) => PUNCH_KEEPALIVE_SECS,
                    None => u16::try_from(
                        keepalive_between(local.nat_type, entry.record.nat_type).as_secs(),
                    )
                    .unwrap_or(u16::MAX),
                }),
            })
        })
        .collect();
    for (entry, carrier) in eligible.iter().zip(&carriers) {
        if let Some(relay) = eligible.get(*carrier).filter(|r| r.key() != entry.key()) {
            out.skipped
                .insert(*entry.key(), SkipReason::Relayed { via: *relay.key() });
        }
    }

    // 5. Mesh addresses first, then routes; every network on one peer at most. A mesh IPv4
    //    goes to its owner (never this node's own address); a mesh IPv6 to the first claimant
    //    in key order; a route to the first claimant that collides with neither.
    let mut ipv6_taken: BTreeSet<Ipv6Addr> = BTreeSet::new();
    for (entry, carrier) in eligible.iter().zip(&carriers) {
        // Every carrier index holds an entry (step 4 made one for each i == carriers[i], and a
        // relay's own carrier is itself); a miss only skips.
        let Some(target) = entries.get_mut(*carrier).and_then(Option::as_mut) else {
            continue;
        };
        let ipv4 = entry.record.mesh_ipv4;
        match owners.get(&ipv4) {
            Some(owner) if owner == entry.key() && ipv4 != local.mesh_ipv4 => {
                target.allowed_ips.insert(host4(ipv4));
            }
            Some(owner) if owner != entry.key() => {
                out.ipv4_lost.insert(*entry.key(), *owner);
            }
            _ => {}
        }
        if ipv6_taken.insert(entry.record.mesh_ipv6) {
            target
                .allowed_ips
                .insert(host(IpAddr::V6(entry.record.mesh_ipv6)));
        }
    }
    let taken_by_mesh = |net: &IpNet| match net {
        IpNet::V4(n) if n.prefix_len() == 32 => owners.contains_key(&n.addr()),
        IpNet::V6(n) if n.prefix_len() == 128 => ipv6_taken.contains(&n.addr()),
        _ => false,
    };
    for (entry, carrier) in eligible.iter().zip(&carriers) {
        if entry.record.routes.is_empty() {
            continue;
        }
        let Some(target) = entries.get_mut(*carrier).and_then(Option::as_mut) else {
            continue;
        };
        for net in local.routes.filter(&entry.record.routes) {
            if !taken_by_mesh(&net) && !out.desired.routes.contains_key(&net) {
                target.allowed_ips.insert(net);
                out.desired.routes.insert(net, target.public_key);
            }
        }
    }
    // Keys are in ascending order: the map is built in bulk.
    out.desired.peers = entries
        .into_iter()
        .flatten()
        .map(|p| (p.public_key, p))
        .collect();
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
