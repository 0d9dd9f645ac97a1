//! The addresses to try for a peer's WireGuard port, best first, at most 16: the mapping an
//! introducer saw authenticated WireGuard packets come from (the peer's NAT mapping for its
//! WireGuard port), then the mappings the record advertises, public IPv6, the STUN address's
//! IP with the WireGuard port (right for port-preserving NATs), ports next to the seen mapping
//! (a NAT that preserved the port may give the next flow a neighbour), and LAN addresses (two
//! hosts behind one NAT).

use std::net::SocketAddr;

use crate::proto::rendezvous::MAX_PUNCH_CANDIDATES;
use crate::proto::{EndpointKind, NodeRecord};

/// How far around a port-preserving mapping ports are predicted.
pub const PREDICTED_PORT_SPREAD: u16 = 2;

/// The candidates for `record`'s node; `seen`: its WireGuard endpoint as the introducer's own
/// device recorded it.
pub fn punch_candidates(seen: Option<SocketAddr>, record: &NodeRecord) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut push = |a: SocketAddr| {
        if a.port() != 0 && !out.contains(&a) && out.len() < MAX_PUNCH_CANDIDATES {
            out.push(a);
        }
    };
    if let Some(s) = seen {
        push(s);
    }
    let of_kind = |kind: EndpointKind| {
        record
            .endpoints
            .iter()
            .filter(move |c| c.kind == kind)
            .map(|c| c.addr)
    };
    for a in of_kind(EndpointKind::WireguardMapped) {
        push(a);
    }
    for a in of_kind(EndpointKind::PublicIpv6) {
        push(a);
    }
    for a in of_kind(EndpointKind::Stun).chain(of_kind(EndpointKind::Observed)) {
        push(SocketAddr::new(a.ip(), record.wireguard_port));
    }
    if let Some(s) = seen.filter(|s| s.port() == record.wireguard_port) {
        for d in 1..=PREDICTED_PORT_SPREAD {
            for port in [s.port().checked_add(d), s.port().checked_sub(d)]
                .into_iter()
                .flatten()
            {
                push(SocketAddr::new(s.ip(), port));
            }
        }
    }
    for a in of_kind(EndpointKind::Lan) {
        push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testkit::record;
    use crate::proto::EndpointCandidate;

    fn cand(kind: EndpointKind, a: &str) -> EndpointCandidate {
        EndpointCandidate {
            kind,
            addr: a.parse().unwrap(),
        }
    }

    #[test]
    fn seen_mapping_first_then_advertised_then_predicted_then_lan() {
        let mut r = record(1);
        r.wireguard_port = 51820;
        r.endpoints = vec![
            cand(EndpointKind::Lan, "192.168.1.5:51820"),
            cand(EndpointKind::Stun, "203.0.113.9:40000"),
            cand(EndpointKind::PublicIpv6, "[2001:db8::5]:51820"),
        ];
        let seen: SocketAddr = "203.0.113.9:51820".parse().unwrap();
        let got = punch_candidates(Some(seen), &r);
        let want: Vec<SocketAddr> = [
            "203.0.113.9:51820",
            "[2001:db8::5]:51820",
            // the STUN IP with the WireGuard port is the seen mapping again: not repeated
            "203.0.113.9:51821",
            "203.0.113.9:51819",
            "203.0.113.9:51822",
            "203.0.113.9:51818",
            "192.168.1.5:51820",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_prediction_when_the_nat_did_not_preserve_the_port_and_never_more_than_16() {
        let mut r = record(1);
        r.wireguard_port = 51820;
        r.endpoints = vec![cand(EndpointKind::Stun, "203.0.113.9:40000")];
        let seen: SocketAddr = "203.0.113.9:61000".parse().unwrap();
        assert_eq!(
            punch_candidates(Some(seen), &r),
            vec![seen, "203.0.113.9:51820".parse().unwrap()]
        );
        r.endpoints = (0..8)
            .map(|i| cand(EndpointKind::Lan, &format!("10.0.0.{}:51820", i + 1)))
            .collect();
        let many = punch_candidates(Some("203.0.113.9:51820".parse().unwrap()), &r);
        assert!(many.len() <= MAX_PUNCH_CANDIDATES);
        assert_eq!(
            punch_candidates(None, &crate::mesh::testkit::record(2)).len(),
            1
        );
    }
}
