//! What LAN discovery does with one received datagram: open it (only announces are accepted),
//! verify the record, ignore this node's own, refuse one older than held (a replay, counted
//! `stale`), and hand it to the store with method `lan` and
//! the endpoint the packet vouches for (see [`lan_endpoint`]). Every drop is counted by reason.

use std::net::{IpAddr, SocketAddr};

use super::LanDeps;
use crate::discovery::control_socket::{EVENTS_METRIC, REJECTED_METRIC, unix_now};
use crate::mesh::{DiscoveryMethod, PeerEntry, PeerUpdate, UpdateOutcome};
use crate::proto::messages::Message;
use crate::proto::{MeshKeys, NodeRecord, RecordVerifier};

/// Reason label of an announce older than the record held (a replay).
pub const STALE_REASON: &str = "stale";

/// The endpoint a LAN announce from `src` vouches for: the packet's source with the record's
/// WireGuard port (the source always wins over what the record claims). One exception keeps
/// the endpoint from flapping between the two families: an announce heard over IPv6
/// link-local (source `fe80::…%scope`) does not replace an IPv4 endpoint already held — the
/// same peer announces on both groups, and a link-local endpoint is only needed on LANs
/// without IPv4.
pub fn lan_endpoint(
    src: SocketAddr,
    record: &NodeRecord,
    held: Option<&PeerEntry>,
) -> Option<SocketAddr> {
    let link_local_v6 = matches!(src.ip(), IpAddr::V6(a) if a.is_unicast_link_local());
    if link_local_v6 {
        if held
            .and_then(PeerEntry::endpoint_addr)
            .is_some_and(|e| e.is_ipv4())
        {
            return None;
        }
        // Keeps the scope (interface) a link-local address needs.
        let mut endpoint = src;
        endpoint.set_port(record.wireguard_port);
        return Some(endpoint);
    }
    Some(SocketAddr::new(
        src.ip().to_canonical(),
        record.wireguard_port,
    ))
}

/// Handles one datagram; `true` when it introduced a peer the store did not hold.
pub fn receive(
    deps: &LanDeps,
    keys: &MeshKeys,
    own: Option<&[u8; 32]>,
    datagram: &[u8],
    src: SocketAddr,
) -> bool {
    let reject = |reason: &str| {
        deps.metrics.inc(REJECTED_METRIC, &[("reason", reason)]);
        false
    };
    let signed = match Message::open(keys, datagram) {
        Ok(Message::Announce { record }) => record,
        Ok(_) => return reject("type"),
        Err(e) => return reject(e.reason()),
    };
    let record = match RecordVerifier::new(keys).verify(&signed, None) {
        Ok(r) => r,
        Err(e) => return reject(e.reason()),
    };
    if own == Some(&record.wireguard_public) {
        return false;
    }
    let held = deps.store.get(&record.wireguard_public);
    // A LAN announce is always its sender's current record: an older one is a replay.
    if held
        .as_ref()
        .is_some_and(|h| record.sequence < h.record.sequence)
    {
        return reject(STALE_REASON);
    }
    let endpoint = lan_endpoint(src, &record, held.as_ref());
    let mut update = PeerUpdate::new(record, DiscoveryMethod::Lan).with_signed(signed);
    if let Some(e) = endpoint {
        update = update.with_endpoint(e);
    }
    match deps.store.update(update, unix_now()) {
        Ok(outcome) => {
            deps.metrics.inc(EVENTS_METRIC, &[("method", "lan")]);
            tracing::trace!(?outcome, from = %src, "LAN announce");
            outcome == UpdateOutcome::Added
        }
        Err(e) => {
            tracing::debug!(error = %e, "LAN announce refused by the store");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testkit::{address_check, record};
    use crate::mesh::{PeerStore, StoreConfig};
    use std::net::SocketAddrV6;

    fn held_with(endpoint: &str) -> PeerEntry {
        let store = PeerStore::new(StoreConfig::default(), address_check());
        let r = record(1);
        let key = r.wireguard_public;
        let at: SocketAddr = endpoint.parse().unwrap();
        store
            .update(
                PeerUpdate::new(r, DiscoveryMethod::Lan).with_endpoint(at),
                crate::mesh::Millis(1),
            )
            .unwrap();
        store.get(&key).unwrap()
    }

    #[test]
    fn ipv4_source_wins_with_the_records_wireguard_port() {
        let r = record(1);
        let src: SocketAddr = "10.0.0.7:51830".parse().unwrap();
        let held = held_with("[2001:db8::1]:51820");
        assert_eq!(
            lan_endpoint(src, &r, Some(&held)),
            Some(SocketAddr::new(src.ip(), r.wireguard_port))
        );
    }

    #[test]
    fn ipv4_mapped_source_is_made_canonical() {
        let r = record(1);
        let src: SocketAddr = "[::ffff:10.0.0.7]:51830".parse().unwrap();
        assert_eq!(
            lan_endpoint(src, &r, None),
            Some(SocketAddr::new(
                "10.0.0.7".parse().unwrap(),
                r.wireguard_port
            ))
        );
    }

    #[test]
    fn link_local_source_keeps_its_scope_when_nothing_ipv4_is_held() {
        let r = record(1);
        let src = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 51830, 0, 7));
        let got = lan_endpoint(src, &r, None).unwrap();
        let SocketAddr::V6(v6) = got else {
            panic!("expected IPv6, got {got}")
        };
        assert_eq!(v6.scope_id(), 7);
        assert_eq!(v6.port(), r.wireguard_port);
    }

    #[test]
    fn link_local_source_does_not_replace_a_held_ipv4_endpoint() {
        let r = record(1);
        let src = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 51830, 0, 7));
        let held = held_with("10.0.0.7:51820");
        assert_eq!(lan_endpoint(src, &r, Some(&held)), None);
    }
}
