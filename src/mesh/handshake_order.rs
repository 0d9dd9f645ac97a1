//! Who configures a new peer first. WireGuard sends at most one handshake initiation per 5 s
//! and drops one from a peer it does not know yet; when two nodes learn each other at the same
//! moment, both first initiations can be dropped and the pair waits 5 s. So the node with the
//! larger key adds a new peer a little later: the smaller key's side already knows it when its
//! initiation arrives. A node anyone can reach (open, full-cone) never waits: the peer may sit
//! behind a NAT that only its own packets open (symmetric), so the peer's initiation is the
//! only one that can get through and must find the entry in place (seen in the NAT grid: the
//! introducer added a symmetric node 250 ms after that node's first initiation had arrived, and
//! the pair waited for WireGuard's 5 s retry).

use std::time::Duration;

use super::WgKey;
use crate::proto::NatType;

/// How much later the larger key adds a peer it has just learned.
pub const LARGER_KEY_ADDS_AFTER: Duration = Duration::from_millis(250);

/// How long this node (behind `local_nat`) waits before adding `peer` to WireGuard for the
/// first time.
pub fn first_add_delay(local: &WgKey, peer: &WgKey, local_nat: NatType) -> Duration {
    if local > peer && !matches!(local_nat, NatType::Open | NatType::FullCone) {
        LARGER_KEY_ADDS_AFTER
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_side_of_a_pair_waits() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for nat in [
            NatType::Unknown,
            NatType::PortRestrictedCone,
            NatType::Symmetric,
        ] {
            assert_eq!(first_add_delay(&a, &b, nat), Duration::ZERO);
            assert_eq!(first_add_delay(&b, &a, nat), LARGER_KEY_ADDS_AFTER);
        }
    }

    #[test]
    fn a_node_anyone_can_reach_never_waits() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for nat in [NatType::Open, NatType::FullCone] {
            assert_eq!(first_add_delay(&b, &a, nat), Duration::ZERO);
        }
    }
}
