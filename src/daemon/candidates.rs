//! This node's endpoint candidates as its record lists them (PROTOCOL.md §5 key 6): LAN
//! addresses (kind 0), global IPv6 addresses on its interfaces (kind 3) and the public
//! address STUN reported (kind 1), at most [`MAX_ENDPOINTS`] in that order.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::discovery::stun::CheckReport;
use crate::proto::record::MAX_ENDPOINTS;
use crate::proto::{EndpointCandidate, EndpointKind};

/// Whether an IPv6 address is globally routable: in 2000::/3 and not documentation
/// (2001:db8::/32, 3fff::/20), IETF protocol assignments (2001::/23: Teredo, benchmarking,
/// ORCHID), or 6to4 (2002::/16). ULA (fc00::/7), link-local, loopback, multicast,
/// IPv4-mapped and unspecified addresses are all outside 2000::/3.
pub fn is_global_ipv6(ip: &Ipv6Addr) -> bool {
    let s = ip.segments();
    let in_2000_3 = s[0] & 0xe000 == 0x2000;
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xfff0) == 0x3ff0;
    let protocol_assignments = s[0] == 0x2001 && s[1] < 0x0200;
    let six_to_four = s[0] == 0x2002;
    in_2000_3 && !documentation && !protocol_assignments && !six_to_four
}

/// The record's candidates: `lan` (LAN addresses; a global IPv6 one becomes kind 3) then
/// `stun` (kind 1, skipped when the same IP is already listed), at most [`MAX_ENDPOINTS`].
pub fn merge(lan: Vec<EndpointCandidate>, stun: &[EndpointCandidate]) -> Vec<EndpointCandidate> {
    let mut out: Vec<EndpointCandidate> = lan
        .into_iter()
        .map(|c| match c.addr.ip() {
            IpAddr::V6(v6) if c.kind == EndpointKind::Lan && is_global_ipv6(&v6) => {
                EndpointCandidate {
                    kind: EndpointKind::PublicIpv6,
                    addr: c.addr,
                }
            }
            _ => c,
        })
        .collect();
    // Keep room for STUN candidates.
    out.truncate(MAX_ENDPOINTS.saturating_sub(stun.len().min(2)));
    for s in stun {
        if out.len() < MAX_ENDPOINTS && !out.iter().any(|c| c.addr.ip() == s.addr.ip()) {
            out.push(*s);
        }
    }
    out
}

/// The STUN candidates of a check: each family's public address when behind a NAT. The port
/// is the WireGuard port when the NAT preserved the control socket's port (then it most likely
/// preserves the WireGuard port too), else the control socket's mapped port (the IP is what
/// matters; the port is a hint a peer's punch may correct).
pub fn stun_candidates(report: &CheckReport, wireguard_port: u16) -> Vec<EndpointCandidate> {
    [&report.verdict_v4, &report.verdict_v6]
        .into_iter()
        .filter(|v| v.behind_nat == Some(true))
        .filter_map(|v| {
            let public = v.public?;
            let port = if v.port_preserved == Some(true) {
                wireguard_port
            } else {
                public.port()
            };
            Some(EndpointCandidate {
                kind: EndpointKind::Stun,
                addr: SocketAddr::new(public.ip().to_canonical(), port),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ipv6_filter() {
        let yes = ["2a01:4f8::1", "2600::1", "2001:470::1", "2c0f::1"];
        let no = [
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "::1",
            "::",
            "ff02::1",
            "2001:db8::5",
            "3fff::1",
            "2001::1",
            "2002:c000:0204::1",
            "::ffff:192.0.2.1",
            "64:ff9b::1",
        ];
        for a in yes {
            assert!(is_global_ipv6(&a.parse().unwrap()), "{a}");
        }
        for a in no {
            assert!(!is_global_ipv6(&a.parse().unwrap()), "{a}");
        }
    }

    fn c(kind: EndpointKind, a: &str) -> EndpointCandidate {
        EndpointCandidate {
            kind,
            addr: a.parse().unwrap(),
        }
    }

    #[test]
    fn merge_tags_public_ipv6_and_appends_stun() {
        let lan = vec![
            c(EndpointKind::Lan, "10.0.1.11:51820"),
            c(EndpointKind::Lan, "[2a01:4f8::7]:51820"),
            c(EndpointKind::Lan, "[fd00::7]:51820"),
        ];
        let stun = [
            c(EndpointKind::Stun, "198.51.100.2:51820"),
            // Same IP as an interface address: not listed twice.
            c(EndpointKind::Stun, "[2a01:4f8::7]:51820"),
        ];
        let m = merge(lan, &stun);
        assert_eq!(
            m,
            vec![
                c(EndpointKind::Lan, "10.0.1.11:51820"),
                c(EndpointKind::PublicIpv6, "[2a01:4f8::7]:51820"),
                c(EndpointKind::Lan, "[fd00::7]:51820"),
                c(EndpointKind::Stun, "198.51.100.2:51820"),
            ]
        );
        // Never more than the record allows, and STUN keeps its place.
        let many: Vec<_> = (1..=9)
            .map(|i| c(EndpointKind::Lan, &format!("10.0.0.{i}:51820")))
            .collect();
        let m = merge(many, &stun[..1]);
        assert_eq!(m.len(), MAX_ENDPOINTS);
        assert_eq!(m.last().map(|c| c.kind), Some(EndpointKind::Stun));
    }
}
