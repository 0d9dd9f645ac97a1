//! NAT classification from STUN observations (pure policy): which public address the node has,
//! whether its NAT maps endpoint-independently ("cone") or not ("symmetric"), whether it keeps
//! the local port, how it filters (RFC 5780, when the server supports it), and the coarse
//! [`NatType`] the record carries (PROTOCOL.md §5 key 7). The STUN client (discovery) gathers
//! the observations; this module only decides.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use crate::proto::NatType;

/// How the NAT chooses the public address/port of a local socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mapping {
    /// The same public address/port towards every destination (RFC 4787 EIM: a "cone").
    EndpointIndependent,
    /// A different public address/port per destination (EDM: "symmetric").
    EndpointDependent,
    /// Fewer than two distinct servers answered: cannot tell.
    Unknown,
}

impl Mapping {
    /// The name used in `netcheck`, `show` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::EndpointDependent => "endpoint-dependent",
            Self::Unknown => "unknown",
        }
    }
}

/// Which inbound packets the NAT lets through to a mapping (RFC 4787 / RFC 5780 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filtering {
    /// From anywhere ("full cone").
    EndpointIndependent,
    /// From any port of an address the node sent to ("restricted cone").
    AddressDependent,
    /// Only from the exact address and port the node sent to ("port-restricted").
    AddressAndPortDependent,
}

impl Filtering {
    /// The name used in `netcheck`, `show` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::AddressDependent => "address-dependent",
            Self::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// From the two RFC 5780 filtering tests: did a response come back from the other IP and
    /// port (`changed_ip_and_port`), or from the other port only (`changed_port`)?
    pub fn from_tests(changed_ip_and_port: bool, changed_port: bool) -> Self {
        if changed_ip_and_port {
            Self::EndpointIndependent
        } else if changed_port {
            Self::AddressDependent
        } else {
            Self::AddressAndPortDependent
        }
    }
}

/// One answered STUN binding request: which server, and the address it saw the request from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MappingObservation {
    pub server: SocketAddr,
    pub mapped: SocketAddr,
}

/// What the observations of one address family say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatVerdict {
    /// Some server answered (UDP to the internet works).
    pub udp_reachable: bool,
    /// The public address of the socket, as the first answering server saw it.
    pub public: Option<SocketAddr>,
    pub mapping: Mapping,
    /// Whether the public port equals the local port (`None` without an answer).
    pub port_preserved: Option<bool>,
    /// Filtering, when the servers support RFC 5780.
    pub filtering: Option<Filtering>,
    /// Whether there is a NAT at all (`Some(false)`: the public address is on this host).
    pub behind_nat: Option<bool>,
    /// The coarse type the record carries.
    pub nat_type: NatType,
}

/// Classifies one address family's observations, made from one local socket bound to
/// `local_port`; `local_ips` are the host's own addresses (to tell "no NAT").
///
/// - no answer → unknown (UDP blocked?);
/// - the public address is a local address with the local port → open;
/// - two distinct servers saw different mappings → symmetric;
/// - the same mapping from ≥ 2 distinct servers → a cone, refined by the filtering test:
///   endpoint-independent → full-cone, address-dependent → restricted-cone, otherwise (or
///   not tested) port-restricted-cone (never promise more than the NAT may keep);
/// - one server only → unknown (the public address is still reported).
pub fn classify_nat(
    local_port: u16,
    local_ips: &[IpAddr],
    observations: &[MappingObservation],
    filtering: Option<Filtering>,
) -> NatVerdict {
    let Some(first) = observations.first() else {
        return NatVerdict {
            udp_reachable: false,
            public: None,
            mapping: Mapping::Unknown,
            port_preserved: None,
            filtering: None,
            behind_nat: None,
            nat_type: NatType::Unknown,
        };
    };
    let servers: BTreeSet<SocketAddr> = observations.iter().map(|o| o.server).collect();
    let mapped: BTreeSet<SocketAddr> = observations.iter().map(|o| o.mapped).collect();
    let mapping = if mapped.len() > 1 {
        // Two answers that differ prove dependence, even from one server's two addresses.
        Mapping::EndpointDependent
    } else if servers.len() > 1 {
        Mapping::EndpointIndependent
    } else {
        Mapping::Unknown
    };
    let port_preserved = Some(mapped.iter().all(|m| m.port() == local_port));
    let open = mapped
        .iter()
        .all(|m| m.port() == local_port && local_ips.iter().any(|ip| same_ip(*ip, m.ip())));
    let nat_type = if open {
        NatType::Open
    } else {
        match mapping {
            Mapping::EndpointDependent => NatType::Symmetric,
            Mapping::Unknown => NatType::Unknown,
            Mapping::EndpointIndependent => match filtering {
                Some(Filtering::EndpointIndependent) => NatType::FullCone,
                Some(Filtering::AddressDependent) => NatType::RestrictedCone,
                Some(Filtering::AddressAndPortDependent) | None => NatType::PortRestrictedCone,
            },
        }
    };
    NatVerdict {
        udp_reachable: true,
        public: Some(first.mapped),
        mapping,
        port_preserved,
        filtering,
        behind_nat: Some(!open),
        nat_type,
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(server: &str, mapped: &str) -> MappingObservation {
        MappingObservation {
            server: server.parse().unwrap(),
            mapped: mapped.parse().unwrap(),
        }
    }

    const S1: &str = "192.0.2.1:3478";
    const S2: &str = "192.0.2.2:3478";
    const LOCAL: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, 11))];

    #[test]
    fn no_answer_is_unknown_udp_blocked() {
        let v = classify_nat(51900, &LOCAL, &[], None);
        assert!(!v.udp_reachable);
        assert_eq!(v.nat_type, NatType::Unknown);
        assert_eq!(v.public, None);
        assert_eq!(v.port_preserved, None);
    }

    #[test]
    fn same_mapping_from_two_servers_is_a_cone() {
        let o = [obs(S1, "198.51.100.2:51900"), obs(S2, "198.51.100.2:51900")];
        let v = classify_nat(51900, &LOCAL, &o, None);
        assert_eq!(v.mapping, Mapping::EndpointIndependent);
        assert_eq!(v.port_preserved, Some(true));
        assert_eq!(v.nat_type, NatType::PortRestrictedCone);
        assert_eq!(v.behind_nat, Some(true));
        assert_eq!(v.public, Some("198.51.100.2:51900".parse().unwrap()));
        // Port not kept: still a cone, and it says so.
        let o = [obs(S1, "198.51.100.2:40000"), obs(S2, "198.51.100.2:40000")];
        let v = classify_nat(51900, &LOCAL, &o, None);
        assert_eq!(v.mapping, Mapping::EndpointIndependent);
        assert_eq!(v.port_preserved, Some(false));
    }

    #[test]
    fn filtering_refines_the_cone() {
        let o = [obs(S1, "198.51.100.2:51900"), obs(S2, "198.51.100.2:51900")];
        let table = [
            ((true, false), NatType::FullCone),
            ((true, true), NatType::FullCone),
            ((false, true), NatType::RestrictedCone),
            ((false, false), NatType::PortRestrictedCone),
        ];
        for ((ip_port, port), want) in table {
            let f = Filtering::from_tests(ip_port, port);
            assert_eq!(classify_nat(51900, &LOCAL, &o, Some(f)).nat_type, want);
        }
    }

    #[test]
    fn different_mappings_are_symmetric() {
        let o = [obs(S1, "198.51.100.2:31672"), obs(S2, "198.51.100.2:54848")];
        let v = classify_nat(51900, &LOCAL, &o, Some(Filtering::EndpointIndependent));
        assert_eq!(v.mapping, Mapping::EndpointDependent);
        assert_eq!(v.nat_type, NatType::Symmetric);
        assert_eq!(v.port_preserved, Some(false));
    }

    #[test]
    fn one_server_cannot_tell_the_mapping() {
        let v = classify_nat(51900, &LOCAL, &[obs(S1, "198.51.100.2:51900")], None);
        assert!(v.udp_reachable);
        assert_eq!(v.mapping, Mapping::Unknown);
        assert_eq!(v.nat_type, NatType::Unknown);
        assert!(v.public.is_some());
    }

    #[test]
    fn public_address_on_the_host_is_open() {
        let local = ["203.0.113.7".parse().unwrap()];
        let o = [obs(S1, "203.0.113.7:51900"), obs(S2, "203.0.113.7:51900")];
        let v = classify_nat(51900, &local, &o, None);
        assert_eq!(v.nat_type, NatType::Open);
        assert_eq!(v.behind_nat, Some(false));
        // IPv4-mapped forms compare equal.
        let o = [
            obs(S1, "[::ffff:203.0.113.7]:51900"),
            obs(S2, "[::ffff:203.0.113.7]:51900"),
        ];
        assert_eq!(
            classify_nat(51900, &local, &o, None).nat_type,
            NatType::Open
        );
    }
}
