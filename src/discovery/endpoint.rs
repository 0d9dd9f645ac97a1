//! Which endpoint a record received directly from a peer vouches for: the packet's source IP
//! with the record's WireGuard port — but a source address is only taken over a held endpoint
//! when something proves it. A sealed datagram can be replayed from a spoofed address by anyone
//! who captured it, so an unproven hello or announce must not move a known peer's endpoint.
//! Proof is a reply to this node's challenge, or a hello echoing this node's cookie for that
//! address. Pure.

use std::net::SocketAddr;

use crate::mesh::PeerEntry;
use crate::proto::NodeRecord;

/// The endpoint to hand the store for `record`, received from `src`. `proven`: the source
/// address is proven (challenge or cookie). `held`: the store's entry for this peer, if any.
///
/// - proven, first contact, nothing held yet, or a newer record than held: the source;
/// - otherwise (an unproven repeat): the endpoint already held, unchanged.
pub fn vouched_endpoint(
    src: SocketAddr,
    record: &NodeRecord,
    proven: bool,
    held: Option<&PeerEntry>,
) -> SocketAddr {
    let observed = SocketAddr::new(src.ip(), record.wireguard_port);
    match held {
        _ if proven => observed,
        None => observed,
        Some(entry) if record.sequence > entry.record.sequence => observed,
        Some(entry) => entry.endpoint_addr().unwrap_or(observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testkit::{address_check, key, record};
    use crate::mesh::{DiscoveryMethod, Millis, PeerStore, PeerUpdate, StoreConfig};

    const REAL: &str = "198.51.100.1:51821";
    const SPOOFED: &str = "203.0.113.66:51821";

    fn held_at(src: &str) -> PeerEntry {
        let store = PeerStore::new(StoreConfig::default(), address_check());
        let r = record(1);
        let at = SocketAddr::new(src.parse::<SocketAddr>().unwrap().ip(), r.wireguard_port);
        store
            .update(
                PeerUpdate::new(r, DiscoveryMethod::Dht).with_endpoint(at),
                Millis::ZERO,
            )
            .unwrap();
        store.get(&key(1)).unwrap()
    }

    #[test]
    fn first_contact_and_proven_sources_are_taken() {
        let r = record(1);
        let spoofed: SocketAddr = SPOOFED.parse().unwrap();
        let expect = SocketAddr::new(spoofed.ip(), r.wireguard_port);
        assert_eq!(vouched_endpoint(spoofed, &r, false, None), expect);
        let held = held_at(REAL);
        assert_eq!(vouched_endpoint(spoofed, &r, true, Some(&held)), expect);
    }

    #[test]
    fn an_unproven_replay_does_not_move_a_held_endpoint() {
        let r = record(1);
        let held = held_at(REAL);
        let real = held.endpoint_addr().unwrap();
        assert_eq!(
            vouched_endpoint(SPOOFED.parse().unwrap(), &r, false, Some(&held)),
            real
        );
        // A newer record than held is news: its source is taken.
        let mut newer = r.clone();
        newer.sequence += 1;
        let spoofed: SocketAddr = SPOOFED.parse().unwrap();
        assert_eq!(
            vouched_endpoint(spoofed, &newer, false, Some(&held)),
            SocketAddr::new(spoofed.ip(), r.wireguard_port)
        );
    }
}
