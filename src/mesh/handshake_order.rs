//! Who configures a new peer first. WireGuard sends at most one handshake initiation per 5 s
//! and drops one from a peer it does not know yet; when two nodes learn each other at the same
//! moment, both first initiations can be dropped and the pair waits 5 s. So the node with the
//! larger key adds a new peer a little later: the smaller key's side already knows it when its
//! initiation arrives.

use std::time::Duration;

use super::WgKey;

/// How much later the larger key adds a peer it has just learned.
pub const LARGER_KEY_ADDS_AFTER: Duration = Duration::from_millis(250);

/// How long this node waits before adding `peer` to WireGuard for the first time.
pub fn first_add_delay(local: &WgKey, peer: &WgKey) -> Duration {
    if local > peer {
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
        assert_eq!(first_add_delay(&a, &b), Duration::ZERO);
        assert_eq!(first_add_delay(&b, &a), LARGER_KEY_ADDS_AFTER);
    }
}
