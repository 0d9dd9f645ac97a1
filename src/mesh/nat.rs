//! NAT policy: the compatibility matrix that orders connection attempts ("try direct first" or
//! "relay first, punch meanwhile"), the mapping of coarse STUN results, and the persistent
//! keepalive table. The matrix only orders attempts: punching is always tried, because
//! classification can be wrong.

use std::time::Duration;

use crate::proto::NatType;

/// The order in which a pair of nodes tries to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOrder {
    /// Punch/connect directly first; relay if that fails.
    DirectFirst,
    /// Use a relay at once and keep punching; go direct when punching succeeds.
    RelayFirst,
}

/// Reads a STUN classifier's result; the coarse `cone` is treated as port-restricted (the most
/// demanding cone, so nothing is promised that the NAT may not keep).
pub fn classify(name: &str) -> NatType {
    match name {
        "open" | "none" => NatType::Open,
        "full-cone" => NatType::FullCone,
        "restricted-cone" | "restricted" => NatType::RestrictedCone,
        "port-restricted-cone" | "port-restricted" | "cone" => NatType::PortRestrictedCone,
        "symmetric" => NatType::Symmetric,
        _ => NatType::Unknown,
    }
}

/// Whether two NAT types are expected to connect directly:
/// open↔all; full-cone↔{open, full-cone, restricted, port-restricted};
/// restricted↔{open, full-cone, restricted}; port-restricted↔{open, full-cone, port-restricted};
/// symmetric↔{open}; unknown↔anything (try direct, then relay).
pub fn direct_first(a: NatType, b: NatType) -> bool {
    use NatType::*;
    let one_way = |x: NatType, y: NatType| match x {
        Unknown | Open => true,
        FullCone => matches!(y, Open | FullCone | RestrictedCone | PortRestrictedCone),
        RestrictedCone => matches!(y, Open | FullCone | RestrictedCone),
        PortRestrictedCone => matches!(y, Open | FullCone | PortRestrictedCone),
        Symmetric => matches!(y, Open),
    };
    // Open and unknown on either side decide for the pair.
    matches!(a, Open | Unknown) || matches!(b, Open | Unknown) || one_way(a, b)
}

/// The attempt order for a pair of NAT types.
pub fn attempt_order(local: NatType, peer: NatType) -> AttemptOrder {
    if direct_first(local, peer) {
        AttemptOrder::DirectFirst
    } else {
        AttemptOrder::RelayFirst
    }
}

/// Persistent keepalive a node behind `nat` needs to keep its mapping open: open 60 s,
/// full-cone 45, restricted 30, port-restricted 15, symmetric 8, unknown 25.
///
/// Open nodes need none for their NAT, but get 60 s anyway: the handshake monitor judges a
/// peer by handshake age and traffic, and an idle link with no keepalive would look stale.
pub fn keepalive_for(nat: NatType) -> Duration {
    Duration::from_secs(match nat {
        NatType::Open => 60,
        NatType::FullCone => 45,
        NatType::RestrictedCone => 30,
        NatType::PortRestrictedCone => 15,
        NatType::Symmetric => 8,
        NatType::Unknown => 25,
    })
}

/// The keepalive for the WireGuard peer entry between this node and a peer: the shorter of the
/// two sides' needs (either side's mapping closing breaks the path).
pub fn keepalive_between(local: NatType, peer: NatType) -> Duration {
    keepalive_for(local).min(keepalive_for(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use NatType::*;

    const ALL: [NatType; 6] = [
        Open,
        FullCone,
        RestrictedCone,
        PortRestrictedCone,
        Symmetric,
        Unknown,
    ];

    #[test]
    fn compatibility_matrix() {
        // Rows/columns in ALL's order: open, full, restricted, port-restricted, symmetric, unknown.
        let matrix = [
            [true, true, true, true, true, true],
            [true, true, true, true, false, true],
            [true, true, true, false, false, true],
            [true, true, false, true, false, true],
            [true, false, false, false, false, true],
            [true, true, true, true, true, true],
        ];
        for (i, a) in ALL.into_iter().enumerate() {
            for (j, b) in ALL.into_iter().enumerate() {
                assert_eq!(direct_first(a, b), matrix[i][j], "{a:?} <-> {b:?}");
                assert_eq!(direct_first(a, b), direct_first(b, a), "symmetric relation");
                let order = attempt_order(a, b);
                assert_eq!(order == AttemptOrder::DirectFirst, matrix[i][j]);
            }
        }
    }

    #[test]
    fn keepalive_table() {
        let table = [
            (Open, 60),
            (FullCone, 45),
            (RestrictedCone, 30),
            (PortRestrictedCone, 15),
            (Symmetric, 8),
            (Unknown, 25),
        ];
        for (nat, secs) in table {
            assert_eq!(keepalive_for(nat), Duration::from_secs(secs), "{nat:?}");
        }
        assert_eq!(keepalive_between(Open, Symmetric), Duration::from_secs(8));
        assert_eq!(keepalive_between(FullCone, Open), Duration::from_secs(45));
    }

    #[test]
    fn stun_names_are_classified() {
        let table = [
            ("open", Open),
            ("full-cone", FullCone),
            ("restricted-cone", RestrictedCone),
            ("port-restricted-cone", PortRestrictedCone),
            ("cone", PortRestrictedCone),
            ("symmetric", Symmetric),
            ("unknown", Unknown),
            ("weird", Unknown),
        ];
        for (name, nat) in table {
            assert_eq!(classify(name), nat, "{name}");
        }
    }
}
