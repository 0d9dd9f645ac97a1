//! Discovery methods and the endpoint ranking policy: which method's endpoint wins, IPv6
//! preference at equal rank, LAN stickiness and its expiry ([`should_update_endpoint`]), and
//! which of a record's endpoint candidates a method uses ([`pick_candidate`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::{EndpointKind, NodeRecord};

use super::time::Millis;

/// A LAN endpoint not re-confirmed by LAN discovery for this long stops being sticky.
pub const LAN_STICKY_FOR: Duration = Duration::from_secs(30);

/// How a peer was found. The rank orders whose endpoint is trusted most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiscoveryMethod {
    /// LAN multicast announce.
    Lan,
    /// Hole punched through an introducer (rendezvous found via the DHT).
    DhtRendezvous,
    /// The peer's own announce found through the DHT.
    Dht,
    /// The peer's own announce received by in-mesh gossip.
    Gossip,
    /// Learnt from a third node met through the DHT.
    DhtTransitive,
    /// Learnt from a third node's gossip.
    GossipTransitive,
    /// The optional registry.
    Registry,
    /// Peer exchange (hello/reply) with the peer itself.
    Exchange,
    /// Restored from this node's peer cache.
    Cache,
}

impl DiscoveryMethod {
    /// Every method, for tables and parsing.
    pub const ALL: [DiscoveryMethod; 9] = [
        Self::Lan,
        Self::DhtRendezvous,
        Self::Dht,
        Self::Gossip,
        Self::DhtTransitive,
        Self::GossipTransitive,
        Self::Registry,
        Self::Exchange,
        Self::Cache,
    ];

    /// Endpoint rank, higher wins: lan 100, dht-rendezvous 90, dht 70, gossip 65,
    /// dht-transitive 40, gossip-transitive 35, any other method 30, cache 20.
    pub fn rank(self) -> u8 {
        match self {
            Self::Lan => 100,
            Self::DhtRendezvous => 90,
            Self::Dht => 70,
            Self::Gossip => 65,
            Self::DhtTransitive => 40,
            Self::GossipTransitive => 35,
            Self::Registry | Self::Exchange => 30,
            Self::Cache => 20,
        }
    }

    /// The name used in `show`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lan => "lan",
            Self::DhtRendezvous => "dht-rendezvous",
            Self::Dht => "dht",
            Self::Gossip => "gossip",
            Self::DhtTransitive => "dht-transitive",
            Self::GossipTransitive => "gossip-transitive",
            Self::Registry => "registry",
            Self::Exchange => "exchange",
            Self::Cache => "cache",
        }
    }

    /// The method named `name` (as [`Self::as_str`] prints it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether this method heard from the peer itself: transitive methods and cache restores
    /// do not, so they never refresh a peer's last-seen time.
    pub fn is_direct(self) -> bool {
        !matches!(
            self,
            Self::DhtTransitive | Self::GossipTransitive | Self::Cache
        )
    }
}

impl std::fmt::Display for DiscoveryMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint for a peer, who vouched for it, and when that was last confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointClaim {
    pub addr: SocketAddr,
    pub method: DiscoveryMethod,
    pub confirmed_at: Millis,
}

/// Whether `new` replaces `current` as a peer's endpoint.
///
/// - No current endpoint: yes.
/// - A LAN endpoint confirmed less than [`LAN_STICKY_FOR`] before `new` is sticky: only a newer
///   LAN discovery replaces it. Once it is older, it is not sticky and any method replaces it
///   (the LAN peer went away; its address must not outrank live information forever).
/// - Otherwise the higher rank wins, equal rank replaces, except that at equal rank an IPv4
///   endpoint never replaces an IPv6 one.
pub fn should_update_endpoint(current: Option<&EndpointClaim>, new: &EndpointClaim) -> bool {
    let Some(current) = current else {
        return true;
    };
    if current.method == DiscoveryMethod::Lan {
        let sticky = new.confirmed_at.since(current.confirmed_at) < LAN_STICKY_FOR;
        return new.method == DiscoveryMethod::Lan || !sticky;
    }
    let (cur, new_rank) = (current.method.rank(), new.method.rank());
    if new_rank != cur {
        return new_rank > cur;
    }
    !(current.addr.is_ipv6() && new.addr.is_ipv4())
}

/// The candidate of `record` a discovery `method` uses as the peer's endpoint: for LAN
/// discovery the peer's LAN address; otherwise its public addresses first (global IPv6, the
/// WireGuard-port mapping an introducer saw, STUN, observed), its LAN addresses last.
pub fn pick_candidate(record: &NodeRecord, method: DiscoveryMethod) -> Option<SocketAddr> {
    let preference: &[EndpointKind] = if method == DiscoveryMethod::Lan {
        &[EndpointKind::Lan]
    } else {
        &[
            EndpointKind::PublicIpv6,
            EndpointKind::WireguardMapped,
            EndpointKind::Stun,
            EndpointKind::Observed,
            EndpointKind::Lan,
        ]
    };
    preference.iter().find_map(|kind| {
        record
            .endpoints
            .iter()
            .find(|c| c.kind == *kind)
            .map(|c| c.addr)
    })
}

#[cfg(test)]
mod tests {
    use super::DiscoveryMethod as M;
    use super::*;
    use crate::proto::EndpointCandidate;

    const V4: &str = "198.51.100.7:51820";
    const V4B: &str = "203.0.113.9:51820";
    const V6: &str = "[2001:db8::7]:51820";

    fn claim(addr: &str, method: M, at_secs: u64) -> EndpointClaim {
        EndpointClaim {
            addr: addr.parse().unwrap(),
            method,
            confirmed_at: Millis::from_secs(at_secs),
        }
    }

    #[test]
    fn rank_table() {
        let table = [
            (M::Lan, 100, "lan"),
            (M::DhtRendezvous, 90, "dht-rendezvous"),
            (M::Dht, 70, "dht"),
            (M::Gossip, 65, "gossip"),
            (M::DhtTransitive, 40, "dht-transitive"),
            (M::GossipTransitive, 35, "gossip-transitive"),
            (M::Registry, 30, "registry"),
            (M::Exchange, 30, "exchange"),
            (M::Cache, 20, "cache"),
        ];
        assert_eq!(table.len(), M::ALL.len());
        for (method, rank, name) in table {
            assert_eq!(method.rank(), rank, "{name}");
            assert_eq!(method.as_str(), name);
            assert_eq!(M::from_name(name), Some(method));
        }
        assert_eq!(M::from_name("carrier-pigeon"), None);
    }

    #[test]
    fn direct_methods_are_all_but_transitive_and_cache() {
        for m in M::ALL {
            let expected = !matches!(m, M::DhtTransitive | M::GossipTransitive | M::Cache);
            assert_eq!(m.is_direct(), expected, "{m}");
        }
    }

    #[test]
    fn should_update_endpoint_table() {
        // (current, new, expected, why)
        let table: Vec<(Option<EndpointClaim>, EndpointClaim, bool, &str)> = vec![
            (None, claim(V4, M::Cache, 0), true, "anything beats nothing"),
            (
                Some(claim(V4, M::Dht, 0)),
                claim(V4B, M::DhtRendezvous, 1),
                true,
                "higher rank",
            ),
            (
                Some(claim(V4, M::Dht, 0)),
                claim(V4B, M::Dht, 1),
                true,
                "equal rank replaces",
            ),
            (
                Some(claim(V4, M::Dht, 0)),
                claim(V4B, M::Gossip, 1),
                false,
                "lower rank",
            ),
            (
                Some(claim(V4, M::Gossip, 0)),
                claim(V4B, M::Registry, 1),
                false,
                "other < gossip",
            ),
            (
                Some(claim(V4, M::Registry, 0)),
                claim(V4B, M::Exchange, 1),
                true,
                "others are equal",
            ),
            (
                Some(claim(V4, M::Exchange, 0)),
                claim(V4B, M::Cache, 1),
                false,
                "cache is lowest",
            ),
            (
                Some(claim(V4, M::GossipTransitive, 0)),
                claim(V4B, M::DhtTransitive, 1),
                true,
                "40 > 35",
            ),
            // IPv6 preference at equal rank.
            (
                Some(claim(V4, M::Dht, 0)),
                claim(V6, M::Dht, 1),
                true,
                "v6 replaces v4 at equal rank",
            ),
            (
                Some(claim(V6, M::Dht, 0)),
                claim(V4, M::Dht, 1),
                false,
                "v4 never replaces v6 at equal rank",
            ),
            (
                Some(claim(V6, M::Dht, 0)),
                claim(V4, M::DhtRendezvous, 1),
                true,
                "higher rank beats v6",
            ),
            (
                Some(claim(V6, M::Dht, 0)),
                claim(V6, M::Dht, 1),
                true,
                "v6 replaces v6",
            ),
            (
                Some(claim(V4, M::Dht, 0)),
                claim(V6, M::Gossip, 1),
                false,
                "v6 does not beat rank",
            ),
            // LAN stickiness and its expiry.
            (
                Some(claim(V4, M::Lan, 0)),
                claim(V4B, M::DhtRendezvous, 10),
                false,
                "LAN is sticky",
            ),
            (
                Some(claim(V4, M::Lan, 0)),
                claim(V6, M::DhtRendezvous, 29),
                false,
                "still sticky at 29 s",
            ),
            (
                Some(claim(V4, M::Lan, 0)),
                claim(V4B, M::Lan, 5),
                true,
                "newer LAN discovery replaces",
            ),
            (
                Some(claim(V4, M::Lan, 0)),
                claim(V4B, M::Cache, 30),
                true,
                "not sticky after 30 s",
            ),
            (
                Some(claim(V4, M::Lan, 0)),
                claim(V4B, M::GossipTransitive, 31),
                true,
                "expired LAN yields to anything",
            ),
            (
                Some(claim(V6, M::Lan, 0)),
                claim(V4, M::Lan, 1),
                true,
                "LAN replaces LAN whatever the family",
            ),
        ];
        for (current, new, expected, why) in table {
            assert_eq!(
                should_update_endpoint(current.as_ref(), &new),
                expected,
                "{why}"
            );
        }
    }

    #[test]
    fn pick_candidate_uses_lan_for_lan_and_public_addresses_otherwise() {
        let mut r = crate::mesh::testkit::record(1);
        let c = |kind, addr: &str| EndpointCandidate {
            kind,
            addr: addr.parse().unwrap(),
        };
        r.endpoints = vec![
            c(EndpointKind::Lan, "192.168.1.5:51820"),
            c(EndpointKind::Stun, V4),
            c(EndpointKind::PublicIpv6, V6),
        ];
        assert_eq!(
            pick_candidate(&r, M::Lan),
            Some("192.168.1.5:51820".parse().unwrap())
        );
        assert_eq!(pick_candidate(&r, M::Dht), Some(V6.parse().unwrap()));
        r.endpoints.remove(2);
        assert_eq!(pick_candidate(&r, M::Gossip), Some(V4.parse().unwrap()));
        r.endpoints.remove(1);
        assert_eq!(
            pick_candidate(&r, M::Gossip),
            Some("192.168.1.5:51820".parse().unwrap())
        );
        r.endpoints.clear();
        assert_eq!(pick_candidate(&r, M::Lan), None);
    }
}
