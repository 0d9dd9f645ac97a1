//! Who configures a new peer first. WireGuard sends at most one handshake initiation per 5 s
//! and drops one from a peer it does not know yet; when two nodes learn each other at the same
//! moment, both first initiations can be dropped and the pair waits 5 s. So one side adds the
//! new peer a little later, and the other side already knows it when that initiation arrives:
//! - a node anyone can reach (open, full-cone) never waits: its peer may sit behind a NAT that
//!   only the peer's own packets open (symmetric), so the peer's initiation may be the only one
//!   that gets through and must find the entry in place;
//! - a node behind a NAT facing a peer anyone can reach waits (the NAT grid showed an
//!   introducer adding a symmetric node 30–240 ms after that node's first initiation had
//!   arrived; the pair then waited for WireGuard's 5 s retry);
//! - otherwise the node with the larger key waits.

use std::time::Duration;

use super::WgKey;
use crate::proto::NatType;

/// How much later the larger key adds a peer it has just learned.
pub const LARGER_KEY_ADDS_AFTER: Duration = Duration::from_millis(250);

fn reachable(nat: NatType) -> bool {
    matches!(nat, NatType::Open | NatType::FullCone)
}

/// How long this node (behind `local_nat`) waits before adding `peer` (behind `peer_nat`) to
/// WireGuard for the first time.
pub fn first_add_delay(
    local: &WgKey,
    peer: &WgKey,
    local_nat: NatType,
    peer_nat: NatType,
) -> Duration {
    let waits = if reachable(local_nat) {
        false
    } else if reachable(peer_nat) {
        true
    } else {
        local > peer
    };
    if waits {
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
            assert_eq!(first_add_delay(&a, &b, nat, nat), Duration::ZERO);
            assert_eq!(first_add_delay(&b, &a, nat, nat), LARGER_KEY_ADDS_AFTER);
        }
        // Both reachable: neither waits (each takes the other's initiation at any time).
        assert_eq!(
            first_add_delay(&b, &a, NatType::Open, NatType::FullCone),
            Duration::ZERO
        );
    }

    #[test]
    fn the_side_behind_a_nat_waits_for_the_side_anyone_can_reach() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for open in [NatType::Open, NatType::FullCone] {
            for natted in [
                NatType::Symmetric,
                NatType::PortRestrictedCone,
                NatType::Unknown,
            ] {
                // Whatever the keys: the reachable side adds at once, the other waits.
                for (x, y) in [(&a, &b), (&b, &a)] {
                    assert_eq!(first_add_delay(x, y, open, natted), Duration::ZERO);
                    assert_eq!(first_add_delay(y, x, natted, open), LARGER_KEY_ADDS_AFTER);
                }
            }
        }
    }
}
