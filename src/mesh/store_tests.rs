//! The peer store's seed behaviours, one test each, under virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipnet::IpNet;

use super::*;
use crate::mesh::rank::DiscoveryMethod as M;
use crate::mesh::testkit::{self, key, record};

fn store() -> PeerStore {
    PeerStore::new(StoreConfig::default(), testkit::address_check())
}

fn at(secs: u64) -> Millis {
    Millis::from_secs(1_000_000 + secs)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn seen(store: &PeerStore, n: u32, method: M, endpoint: &str, t: Millis) -> UpdateOutcome {
    store
        .update(
            PeerUpdate::new(record(n), method).with_endpoint(addr(endpoint)),
            t,
        )
        .unwrap()
}

fn endpoint_of(store: &PeerStore, n: u32) -> SocketAddr {
    store.get(&key(n)).unwrap().endpoint_addr().unwrap()
}

#[test]
fn a_new_peer_is_added_then_merged() {
    let s = store();
    assert_eq!(
        seen(&s, 1, M::Dht, "198.51.100.1:1", at(0)),
        UpdateOutcome::Added
    );
    assert_eq!(
        seen(&s, 1, M::Dht, "198.51.100.1:1", at(1)),
        UpdateOutcome::Unchanged
    );
    assert_eq!(
        seen(&s, 1, M::Dht, "198.51.100.2:1", at(2)),
        UpdateOutcome::Updated
    );
    let e = s.get(&key(1)).unwrap();
    assert_eq!(e.first_seen, at(0));
    assert_eq!(e.last_seen, at(2));
    assert_eq!(s.len(), 1);
}

#[test]
fn without_an_observed_endpoint_the_record_candidate_is_used() {
    let s = store();
    s.update(PeerUpdate::new(record(1), M::Dht), at(0)).unwrap();
    assert_eq!(endpoint_of(&s, 1), record(1).endpoints[0].addr);
}

#[test]
fn endpoint_follows_the_rank_table() {
    let s = store();
    seen(&s, 1, M::Gossip, "198.51.100.1:1", at(0));
    seen(&s, 1, M::GossipTransitive, "198.51.100.2:1", at(1));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("198.51.100.1:1"),
        "lower rank ignored"
    );
    seen(&s, 1, M::Dht, "198.51.100.3:1", at(2));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("198.51.100.3:1"),
        "higher rank wins"
    );
    seen(&s, 1, M::Dht, "198.51.100.4:1", at(3));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("198.51.100.4:1"),
        "equal rank replaces"
    );
}

#[test]
fn ipv6_is_preferred_at_equal_rank() {
    let s = store();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    seen(&s, 1, M::Dht, "[2001:db8::1]:1", at(1));
    assert_eq!(endpoint_of(&s, 1), addr("[2001:db8::1]:1"));
    seen(&s, 1, M::Dht, "198.51.100.2:1", at(2));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("[2001:db8::1]:1"),
        "IPv4 does not replace IPv6"
    );
}

#[test]
fn lan_endpoint_is_sticky_for_30_seconds_after_its_last_confirmation() {
    let s = store();
    seen(&s, 1, M::Lan, "192.168.1.5:51820", at(0));
    seen(&s, 1, M::DhtRendezvous, "198.51.100.1:1", at(10));
    assert_eq!(endpoint_of(&s, 1), addr("192.168.1.5:51820"), "sticky");
    seen(&s, 1, M::Lan, "192.168.1.5:51820", at(25)); // re-confirmed
    seen(&s, 1, M::DhtRendezvous, "198.51.100.1:1", at(50));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("192.168.1.5:51820"),
        "re-confirmation renews it"
    );
    seen(&s, 1, M::Lan, "192.168.1.6:51820", at(51));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("192.168.1.6:51820"),
        "a newer LAN discovery replaces"
    );
    seen(&s, 1, M::Gossip, "198.51.100.1:1", at(81));
    assert_eq!(
        endpoint_of(&s, 1),
        addr("198.51.100.1:1"),
        "expired after 30 s"
    );
}

#[test]
fn cap_drops_inserts_passes_updates_and_accepts_after_cleanup() {
    let s = store();
    for n in 0..1000 {
        s.update(PeerUpdate::new(record(n), M::Dht), at(0)).unwrap();
    }
    assert_eq!(s.len(), 1000);
    let err = s
        .update(PeerUpdate::new(record(1000), M::Dht), at(1))
        .unwrap_err();
    assert!(matches!(err, StoreError::Full { cap: 1000, .. }));
    assert!(err.to_string().contains("raise the peer limit"));
    assert_eq!(s.len(), 1000);

    // An update to a known peer passes (and keeps it alive).
    let mut newer = record(7);
    newer.sequence = 2;
    newer.hostname = "renamed".into();
    assert_eq!(
        s.update(PeerUpdate::new(newer, M::Dht), at(300)).unwrap(),
        UpdateOutcome::Updated
    );

    // After the others expire and the cleanup runs, the insert is accepted.
    let removed = s.cleanup(at(600));
    assert_eq!(removed.len(), 999);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s.update(PeerUpdate::new(record(1000), M::Dht), at(601))
            .unwrap(),
        UpdateOutcome::Added
    );
}

#[test]
fn cap_is_configurable() {
    let s = PeerStore::new(
        StoreConfig {
            max_peers: 2,
            ..StoreConfig::default()
        },
        testkit::address_check(),
    );
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    seen(&s, 2, M::Dht, "198.51.100.1:1", at(0));
    assert!(s.update(PeerUpdate::new(record(3), M::Dht), at(0)).is_err());
}

#[test]
fn dead_at_5_minutes_removed_at_10() {
    let s = store();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    assert_eq!(s.active(at(299)).len(), 1);
    assert_eq!(s.active(at(300)).len(), 0, "dead at 5 min");
    assert_eq!(s.len(), 1, "dead peers stay until cleanup");
    assert!(s.cleanup(at(599)).is_empty());
    assert_eq!(s.cleanup(at(600)), vec![key(1)], "removed at 10 min");
    assert!(s.get(&key(1)).is_none());
}

#[test]
fn discovered_via_accumulates_in_first_seen_order_without_duplicates() {
    let s = store();
    for m in [M::Dht, M::Gossip, M::Dht, M::Lan, M::Gossip, M::Cache] {
        s.update(PeerUpdate::new(record(1), m), at(0)).unwrap();
    }
    assert_eq!(
        s.get(&key(1)).unwrap().discovered_via,
        vec![M::Dht, M::Gossip, M::Lan, M::Cache]
    );
}

#[test]
fn last_seen_is_not_refreshed_by_cache_or_transitive_methods() {
    let s = store();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    for (i, m) in [M::Cache, M::DhtTransitive, M::GossipTransitive]
        .into_iter()
        .enumerate()
    {
        s.update(PeerUpdate::new(record(1), m), at(10 + i as u64))
            .unwrap();
        assert_eq!(s.get(&key(1)).unwrap().last_seen, at(0), "{m}");
    }
    for (i, m) in [
        M::Lan,
        M::DhtRendezvous,
        M::Dht,
        M::Gossip,
        M::Registry,
        M::Exchange,
    ]
    .into_iter()
    .enumerate()
    {
        let t = at(20 + i as u64);
        s.update(PeerUpdate::new(record(1), m), t).unwrap();
        assert_eq!(s.get(&key(1)).unwrap().last_seen, t, "{m}");
    }
}

#[test]
fn a_peer_known_only_transitively_dies_on_time() {
    let s = store();
    s.update(PeerUpdate::new(record(1), M::GossipTransitive), at(0))
        .unwrap();
    s.update(PeerUpdate::new(record(1), M::GossipTransitive), at(299))
        .unwrap();
    assert!(s.active(at(300)).is_empty());
}

#[test]
fn events_are_sent_outside_the_lock_and_dropped_for_a_full_subscriber() {
    let s = store();
    let lagging = s.subscribe(); // never read until the end
    let reader = s.subscribe();
    for n in 0..20 {
        seen(&s, n, M::Dht, "198.51.100.1:1", at(0));
        assert_eq!(reader.try_recv().unwrap(), PeerEvent::Added(key(n)));
    }
    assert_eq!(
        s.sends_under_lock.load(Ordering::Relaxed),
        0,
        "no send under the lock"
    );
    assert_eq!(
        s.dropped_events(),
        4,
        "16 fit, the lagging subscriber lost 4"
    );
    let got: Vec<PeerEvent> = lagging.try_iter().collect();
    assert_eq!(got.len(), SUBSCRIBER_CAPACITY);
    assert_eq!(got[0], PeerEvent::Added(key(0)));

    s.remove(&key(3), RemoveReason::Goodbye);
    assert_eq!(
        reader.try_recv().unwrap(),
        PeerEvent::Removed(key(3), RemoveReason::Goodbye)
    );
    drop(lagging);
    let before = s.dropped_events();
    assert_eq!(s.cleanup(at(600)).len(), 19);
    assert_eq!(reader.try_iter().count(), 16, "the channel holds 16");
    assert_eq!(
        s.dropped_events() - before,
        3,
        "the other 3 are counted, not blocked on"
    );
    assert_eq!(s.sends_under_lock.load(Ordering::Relaxed), 0);
}

#[test]
fn unchanged_updates_send_no_event_and_dropped_subscribers_are_forgotten() {
    let s = store();
    let rx = s.subscribe();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(1));
    assert_eq!(
        rx.try_iter().collect::<Vec<_>>(),
        vec![PeerEvent::Added(key(1))]
    );
    drop(rx);
    seen(&s, 2, M::Dht, "198.51.100.1:1", at(2));
    assert!(s.subscribers.lock().unwrap().is_empty());
    assert_eq!(
        s.dropped_events(),
        0,
        "a closed subscriber is not a lagging one"
    );
}

#[test]
fn get_returns_a_copy() {
    let s = store();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(0));
    let mut copy = s.get(&key(1)).unwrap();
    copy.record.hostname = "mutated".into();
    copy.discovered_via.clear();
    copy.endpoint = None;
    let held = s.get(&key(1)).unwrap();
    assert_eq!(held.record.hostname, "node-1");
    assert_eq!(held.discovered_via, vec![M::Dht]);
    assert!(held.endpoint.is_some());
}

#[test]
fn a_newer_record_withdraws_routes_and_replaces_every_field() {
    let s = store();
    let net = |t: &str| t.parse::<IpNet>().unwrap();
    let mut r1 = record(1);
    r1.routes = vec![net("192.168.10.0/24"), net("192.168.20.0/24")];
    r1.introducer = true;
    s.update(PeerUpdate::new(r1.clone(), M::Dht), at(0))
        .unwrap();

    let mut r2 = record(1);
    r2.sequence = 2;
    r2.routes = vec![net("192.168.20.0/24")];
    r2.introducer = false;
    r2.hostname = "renamed".into();
    r2.nat_type = crate::proto::NatType::Symmetric;
    assert_eq!(
        s.update(PeerUpdate::new(r2.clone(), M::Gossip), at(1))
            .unwrap(),
        UpdateOutcome::Updated
    );
    let e = s.get(&key(1)).unwrap();
    assert_eq!(
        e.record, r2,
        "routes withdrawn, introducer and the rest from the newest record"
    );

    // An older record (delayed gossip) changes nothing the record says.
    s.update(PeerUpdate::new(r1, M::Gossip), at(2)).unwrap();
    assert_eq!(s.get(&key(1)).unwrap().record, r2);
    assert_eq!(s.held_sequence(&key(1)), Some(2));
}

#[test]
fn own_record_and_wrong_addresses_are_refused() {
    let s = PeerStore::new(
        StoreConfig {
            local_key: Some(key(1)),
            ..StoreConfig::default()
        },
        testkit::address_check(),
    );
    assert!(matches!(
        s.update(PeerUpdate::new(record(1), M::Lan), at(0)),
        Err(StoreError::OwnRecord { .. })
    ));
    let mut forged = record(2);
    forged.mesh_ipv4 = "10.0.0.1".parse().unwrap();
    assert!(matches!(
        s.update(PeerUpdate::new(forged.clone(), M::Dht), at(0)),
        Err(StoreError::Address(_))
    ));
    // Also when a known peer's newer record lies.
    s.update(PeerUpdate::new(record(2), M::Dht), at(0)).unwrap();
    forged.sequence = 5;
    assert!(s.update(PeerUpdate::new(forged, M::Dht), at(1)).is_err());
    assert_eq!(s.held_sequence(&key(2)), Some(1));
}

#[test]
fn snapshot_and_restore_keep_last_seen_and_skip_old_entries() {
    let s = store();
    for n in 1..=3 {
        let r = record(n);
        let signed = testkit::sign(n, &r);
        s.update(PeerUpdate::new(r, M::Dht).with_signed(signed), at(n as u64))
            .unwrap();
    }
    seen(&s, 4, M::Dht, "198.51.100.1:1", at(0)); // no signed form: not cached
    let cached = s.cache_entries();
    assert_eq!(cached.len(), 3);
    assert_eq!(
        cached[0].last_seen,
        at(cached[0].record.hostname[5..].parse().unwrap())
    );

    // Restart one day later: entry 1 is just older than 24 h.
    let later = at(1 + 24 * 3600) + Duration::from_millis(1);
    let fresh = store();
    let rx = fresh.subscribe();
    let report = fresh.restore(cached, later);
    assert_eq!(
        report,
        RestoreReport {
            restored: 2,
            too_old: 1,
            refused: 0
        }
    );
    assert_eq!(rx.try_iter().count(), 2);
    let e = fresh.get(&key(2)).unwrap();
    assert_eq!(e.last_seen, at(2), "cached last-seen kept");
    assert_eq!(e.discovered_via, vec![M::Cache]);
    assert_eq!(e.endpoint.unwrap().method, M::Cache);
    assert!(e.signed.is_some());
    // Restored peers get the dead-after period from the restore to be re-confirmed.
    assert_eq!(fresh.active(later + Duration::from_secs(299)).len(), 2);
    assert!(fresh.active(later + Duration::from_secs(300)).is_empty());
    // A direct discovery afterwards outranks the cached endpoint.
    fresh
        .update(
            PeerUpdate::new(record(2), M::Dht).with_endpoint(addr("198.51.100.9:9")),
            later,
        )
        .unwrap();
    assert_eq!(endpoint_of(&fresh, 2), addr("198.51.100.9:9"));
}

#[test]
fn restore_into_a_known_peer_merges_as_cache() {
    let s = store();
    seen(&s, 1, M::Dht, "198.51.100.1:1", at(100));
    let r = record(1);
    let cached = CachedPeer {
        signed: testkit::sign(1, &r),
        record: r,
        endpoint: Some(addr("198.51.100.2:2")),
        last_seen: at(50),
    };
    s.restore(vec![cached], at(101));
    let e = s.get(&key(1)).unwrap();
    assert_eq!(
        e.endpoint_addr(),
        Some(addr("198.51.100.1:1")),
        "cache ranks lowest"
    );
    assert_eq!(e.last_seen, at(100));
    assert!(
        e.signed.is_some(),
        "the signed form of the same record is learnt"
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever order updates arrive in: the newest record is held, discovered-via lists
        /// each method once in first-seen order, and last-seen is the latest direct sighting.
        #[test]
        fn merge_keeps_the_newest_record_and_first_seen_methods(
            updates in prop::collection::vec((1u64..20, 0usize..9, 0u64..600), 1..40)
        ) {
            let s = store();
            let mut max_seq = 0;
            let mut methods: Vec<M> = Vec::new();
            let mut last_direct: Option<Millis> = None;
            let mut t = at(0);
            for (seq, m, dt) in &updates {
                t = t + Duration::from_millis(*dt);
                let method = M::ALL[*m];
                let mut r = record(1);
                r.sequence = *seq;
                r.hostname = format!("seq-{seq}");
                s.update(PeerUpdate::new(r, method), t).unwrap();
                max_seq = max_seq.max(*seq);
                if !methods.contains(&method) {
                    methods.push(method);
                }
                // The first sighting (insert) sets last-seen whatever the method.
                if method.is_direct() || last_direct.is_none() {
                    last_direct = Some(t);
                }
            }
            let e = s.get(&key(1)).unwrap();
            prop_assert_eq!(e.record.sequence, max_seq);
            prop_assert_eq!(e.record.hostname, format!("seq-{max_seq}"));
            prop_assert_eq!(e.discovered_via, methods);
            prop_assert_eq!(Some(e.last_seen), last_direct);
        }
    }
}

#[test]
fn a_mesh_address_is_never_taken_as_an_endpoint() {
    let s = store();
    let check = testkit::address_check();
    let keys = testkit::keys();
    let mesh4 = SocketAddr::new(keys.ipv4_subnet().network().into(), 51820);
    let mesh6 = SocketAddr::new(keys.mesh_ipv6(&key(9)).into(), 51820);
    let mapped = format!("[::ffff:{}]:51820", keys.ipv4_subnet().network());
    assert!(check.is_mesh_address(mesh4.ip()) && check.is_mesh_address(mesh6.ip()));
    assert!(check.is_mesh_address(addr(&mapped).ip()));
    assert!(!check.is_mesh_address(addr("192.0.2.1:1").ip()));
    // Replies to hellos sent over the tunnel come from the peer's mesh address: whatever
    // method claims it, it never becomes the endpoint.
    for (t, (method, from)) in [
        (M::Lan, mesh4.to_string()),
        (M::Dht, mesh6.to_string()),
        (M::Lan, mapped),
    ]
    .into_iter()
    .enumerate()
    {
        seen(&s, 1, M::Dht, "192.0.2.1:51820", at(10 * t as u64));
        seen(&s, 1, method, &from, at(10 * t as u64 + 1));
        let e = endpoint_of(&s, 1);
        assert!(
            !check.is_mesh_address(e.ip()),
            "endpoint {e} taken from {from}"
        );
    }
    seen(&s, 2, M::Dht, &mesh4.to_string(), at(100));
    let e = s.get(&key(2)).unwrap().endpoint_addr();
    assert!(e.is_none_or(|e| !check.is_mesh_address(e.ip())), "{e:?}");
}

#[test]
fn a_replayed_older_record_moves_no_endpoint_whatever_its_source() {
    let s = store();
    let mut newer = record(1);
    newer.sequence = 5;
    s.update(
        PeerUpdate::new(newer, M::Lan).with_endpoint(addr("10.0.0.7:51820")),
        at(0),
    )
    .unwrap();
    // An attacker replays the peer's older announce from its own address, on the LAN (where a
    // fresh announce's source always wins) and through the exchange.
    for method in [M::Lan, M::Dht] {
        let mut older = record(1);
        older.sequence = 4;
        let outcome = s
            .update(
                PeerUpdate::new(older, method).with_endpoint(addr("10.0.0.66:51820")),
                at(1),
            )
            .unwrap();
        assert_ne!(outcome, UpdateOutcome::Added);
        assert_eq!(endpoint_of(&s, 1), addr("10.0.0.7:51820"), "{method}");
        assert_eq!(s.get(&key(1)).unwrap().record.sequence, 5);
    }
}
