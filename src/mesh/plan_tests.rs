//! Planner rules, one by one, and the property "no network on two peers".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::mesh::rank::{DiscoveryMethod, EndpointClaim};
use crate::mesh::routes::RoutePolicy;
use crate::mesh::testkit;

const NOW: Millis = Millis(10_000_000);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn acceptance() -> RouteAcceptance {
    RouteAcceptance {
        policy: RoutePolicy::AcceptAll,
        mesh_ipv4: testkit::keys().ipv4_subnet(),
        mesh_ipv6: testkit::keys().ipv6_prefix(),
        local_networks: vec![net("192.168.1.0/24")],
    }
}

/// A live peer entry for test node `n` (built directly: the planner trusts the store).
fn entry(n: u32) -> PeerEntry {
    let record = testkit::record(n);
    PeerEntry {
        endpoint: Some(EndpointClaim {
            addr: record.endpoints[0].addr,
            method: DiscoveryMethod::Dht,
            confirmed_at: NOW,
        }),
        record,
        signed: None,
        discovered_via: vec![DiscoveryMethod::Dht],
        first_seen: NOW,
        last_seen: NOW,
        restored_at: None,
    }
}

fn local() -> LocalPlanConfig {
    let mut c = LocalPlanConfig::new(
        testkit::key(0),
        testkit::record(0).mesh_ipv4,
        PresharedKey::new(*testkit::keys().wireguard_psk()),
        acceptance(),
    );
    c.nat_type = NatType::PortRestrictedCone;
    c
}

fn mesh_nets(e: &PeerEntry) -> [IpNet; 2] {
    [
        host4(e.record.mesh_ipv4),
        host(IpAddr::V6(e.record.mesh_ipv6)),
    ]
}

#[test]
fn live_peers_get_an_entry_with_their_mesh_addresses() {
    let (a, mut b) = (entry(1), entry(2));
    b.record.nat_type = NatType::Symmetric;
    b.endpoint = None;
    let p = plan(
        &[a.clone(), b.clone()],
        &local(),
        &HealthView::default(),
        NOW,
    );
    assert_eq!(p.desired.peers.len(), 2);
    let pa = &p.desired.peers[a.key()];
    assert_eq!(pa.allowed_ips, mesh_nets(&a).into_iter().collect());
    assert_eq!(pa.endpoint, a.endpoint_addr());
    assert_eq!(pa.preshared_key.as_bytes(), testkit::keys().wireguard_psk());
    assert_eq!(
        pa.persistent_keepalive_secs,
        Some(15),
        "port-restricted on both sides"
    );
    let pb = &p.desired.peers[b.key()];
    assert_eq!(pb.endpoint, None, "no endpoint known: the peer reaches us");
    assert_eq!(pb.persistent_keepalive_secs, Some(8), "symmetric peer");
    assert!(p.desired.routes.is_empty());
    assert!(!p.desired.relay_forwarding);
}

#[test]
fn dead_offline_and_own_entries_are_left_out() {
    let mut dead = entry(1);
    dead.last_seen = Millis(NOW.0 - 300_000);
    let offline = entry(2);
    let me = entry(0);
    let alive = entry(3);
    let mut health = HealthView::default();
    health.offline.mark(*offline.key(), Millis(NOW.0 - 1000));
    let p = plan(
        &[dead.clone(), offline.clone(), me.clone(), alive.clone()],
        &local(),
        &health,
        NOW,
    );
    assert_eq!(
        p.desired.peers.keys().collect::<Vec<_>>(),
        vec![alive.key()]
    );
    assert_eq!(p.skipped[dead.key()], SkipReason::Dead);
    assert_eq!(p.skipped[offline.key()], SkipReason::TemporarilyOffline);
    assert_eq!(p.skipped[me.key()], SkipReason::ItIsThisNode);
}

#[test]
fn accepted_routes_become_allowed_ips_and_routes() {
    let mut a = entry(1);
    a.record.routes = vec![
        net("192.168.10.0/24"),
        net("0.0.0.0/0"),
        net("192.168.1.0/24"),
    ];
    let p = plan(&[a.clone()], &local(), &HealthView::default(), NOW);
    let allowed = &p.desired.peers[a.key()].allowed_ips;
    assert!(allowed.contains(&net("192.168.10.0/24")));
    assert!(
        !allowed.contains(&net("0.0.0.0/0")),
        "default route refused"
    );
    assert!(!allowed.contains(&net("192.168.1.0/24")), "own LAN refused");
    assert_eq!(
        p.desired.routes,
        BTreeMap::from([(net("192.168.10.0/24"), *a.key())])
    );

    let mut none = local();
    none.routes.policy = RoutePolicy::AcceptNone;
    let p = plan(&[a.clone()], &none, &HealthView::default(), NOW);
    assert_eq!(p.desired.peers[a.key()].allowed_ips.len(), 2);
    assert!(p.desired.routes.is_empty());
}

#[test]
fn a_relayed_peer_rides_on_its_relays_entry() {
    let mut relay = entry(1);
    relay.record.introducer = true;
    let mut far = entry(2);
    far.record.routes = vec![net("192.168.20.0/24")];
    let mut health = HealthView::default();
    health.relayed.insert(*far.key(), *relay.key());
    let p = plan(&[relay.clone(), far.clone()], &local(), &health, NOW);
    assert!(
        !p.desired.peers.contains_key(far.key()),
        "no entry of its own"
    );
    assert_eq!(
        p.skipped[far.key()],
        SkipReason::Relayed { via: *relay.key() }
    );
    let carried = &p.desired.peers[relay.key()].allowed_ips;
    for n in mesh_nets(&relay).into_iter().chain(mesh_nets(&far)) {
        assert!(carried.contains(&n), "{n}");
    }
    assert!(carried.contains(&net("192.168.20.0/24")));
    assert_eq!(
        p.desired.routes[&net("192.168.20.0/24")],
        *relay.key(),
        "route via the relay"
    );

    // A relay that is not usable (dead, this node, relayed itself) leaves the peer direct.
    let mut dead_relay = relay.clone();
    dead_relay.last_seen = Millis(0);
    let p = plan(&[dead_relay, far.clone()], &local(), &health, NOW);
    assert!(p.desired.peers.contains_key(far.key()));
    let mut via_me = HealthView::default();
    via_me.relayed.insert(*far.key(), testkit::key(0));
    assert!(
        plan(&[far.clone()], &local(), &via_me, NOW)
            .desired
            .peers
            .contains_key(far.key())
    );
}

#[test]
fn a_punched_peer_points_at_the_candidate_and_a_relayed_one_keeps_its_addresses_on_the_relay() {
    let mut relay = entry(1);
    relay.record.introducer = true;
    let (far, direct) = (entry(2), entry(3));
    let candidate: std::net::SocketAddr = "203.0.113.7:40001".parse().unwrap();
    let mut health = HealthView::default();
    health.relayed.insert(*far.key(), *relay.key());
    health.punching.insert(*far.key(), candidate);
    health.punching.insert(*direct.key(), candidate);
    let p = plan(
        &[relay.clone(), far.clone(), direct.clone()],
        &local(),
        &health,
        NOW,
    );
    let punched = &p.desired.peers[far.key()];
    assert_eq!(punched.endpoint, Some(candidate));
    assert_eq!(
        punched.persistent_keepalive_secs,
        Some(PUNCH_KEEPALIVE_SECS)
    );
    assert!(
        punched.allowed_ips.is_empty(),
        "its addresses stay on the relay"
    );
    for n in mesh_nets(&far) {
        assert!(p.desired.peers[relay.key()].allowed_ips.contains(&n), "{n}");
    }
    let d = &p.desired.peers[direct.key()];
    assert_eq!(d.endpoint, Some(candidate));
    assert_eq!(d.persistent_keepalive_secs, Some(PUNCH_KEEPALIVE_SECS));
    for n in mesh_nets(&direct) {
        assert!(
            d.allowed_ips.contains(&n),
            "a direct peer keeps its addresses: {n}"
        );
    }
    // Without the punch: the normal endpoint and keepalive.
    let p = plan(
        &[relay, far, direct.clone()],
        &local(),
        &HealthView::default(),
        NOW,
    );
    assert_eq!(
        p.desired.peers[direct.key()].endpoint,
        direct.endpoint_addr()
    );
    assert_ne!(
        p.desired.peers[direct.key()].persistent_keepalive_secs,
        Some(PUNCH_KEEPALIVE_SECS)
    );
}

#[test]
fn relay_forwarding_follows_the_introducer_role() {
    let mut c = local();
    c.introducer = true;
    assert!(
        plan(&[], &c, &HealthView::default(), NOW)
            .desired
            .relay_forwarding
    );
}

#[test]
fn a_contested_ipv4_is_installed_only_for_the_smaller_key() {
    let (mut a, mut b) = (entry(1), entry(2));
    let contested = Ipv4Addr::new(10, 99, 0, 1);
    a.record.mesh_ipv4 = contested;
    b.record.mesh_ipv4 = contested;
    let (small, big) = if a.key() < b.key() { (a, b) } else { (b, a) };
    let p = plan(
        &[big.clone(), small.clone()],
        &local(),
        &HealthView::default(),
        NOW,
    );
    assert!(
        p.desired.peers[small.key()]
            .allowed_ips
            .contains(&host4(contested))
    );
    assert!(
        !p.desired.peers[big.key()]
            .allowed_ips
            .contains(&host4(contested))
    );
    assert!(
        p.desired.peers[big.key()]
            .allowed_ips
            .contains(&host(IpAddr::V6(big.record.mesh_ipv6))),
        "the loser keeps its IPv6 until it moves"
    );
    assert_eq!(p.ipv4_lost, BTreeMap::from([(*big.key(), *small.key())]));
}

#[test]
fn a_peer_claiming_this_nodes_ipv4_gets_it_only_with_a_smaller_key() {
    let mut c = local();
    let mut peer = entry(1);
    peer.record.mesh_ipv4 = c.mesh_ipv4;
    c.wireguard_public = [0u8; 32]; // this node has the smallest key
    let p = plan(&[peer.clone()], &c, &HealthView::default(), NOW);
    assert!(
        !p.desired.peers[peer.key()]
            .allowed_ips
            .contains(&host4(c.mesh_ipv4))
    );
    assert_eq!(p.ipv4_lost[peer.key()], [0u8; 32]);
    c.wireguard_public = [0xff; 32]; // now the peer's key is smaller: it wins, this node moves
    let p = plan(&[peer.clone()], &c, &HealthView::default(), NOW);
    assert!(
        !p.desired.peers[peer.key()]
            .allowed_ips
            .contains(&host4(c.mesh_ipv4)),
        "this node's own address is never installed on a peer"
    );
}

#[test]
fn a_network_advertised_twice_goes_to_the_smaller_key() {
    let (mut a, mut b) = (entry(1), entry(2));
    a.record.routes = vec![net("192.168.30.0/24")];
    b.record.routes = vec![net("192.168.30.0/24")];
    let p = plan(
        &[a.clone(), b.clone()],
        &local(),
        &HealthView::default(),
        NOW,
    );
    let winner = a.key().min(b.key());
    assert_eq!(p.desired.routes[&net("192.168.30.0/24")], *winner);
    let holders = p
        .desired
        .peers
        .values()
        .filter(|d| d.allowed_ips.contains(&net("192.168.30.0/24")))
        .count();
    assert_eq!(holders, 1);
}

/// A random peer: (key byte, ipv4 pool index, route pool indexes, alive, introducer).
type ArbPeer = (u8, u8, Vec<u8>, bool, bool);

fn arb_case() -> impl Strategy<Value = (Vec<ArbPeer>, Vec<(u8, u8)>, u8)> {
    // Peers: (key byte, ipv4 pool index, route pool indexes, alive, introducer).
    let peer = (
        0u8..24,
        0u8..6,
        prop::collection::vec(0u8..8, 0..4),
        any::<bool>(),
        any::<bool>(),
    );
    (
        prop::collection::vec(peer, 0..24),
        prop::collection::vec((0u8..24, 0u8..24), 0..10),
        0u8..6,
    )
}

proptest! {
    #[test]
    fn no_network_is_ever_on_two_peers((peers, relayed, local_ip) in arb_case()) {
        let ipv4_pool = |i: u8| Ipv4Addr::new(10, 7, 0, 1 + i);
        // Routes include mesh /32s and overlapping prefixes on purpose.
        let route_pool = ["10.7.0.1/32", "10.7.0.2/32", "172.16.0.0/16", "172.16.1.0/24",
            "172.16.0.0/16", "fd00::/64", "192.168.50.0/24", "10.7.0.0/24"];
        let mut entries = Vec::new();
        for (k, ip, routes, alive, introducer) in &peers {
            let mut e = entry(1);
            let mut key = [0u8; 32];
            key[0] = *k;
            e.record.wireguard_public = key;
            e.record.mesh_ipv4 = ipv4_pool(*ip);
            let mut v6 = [0xfdu8; 16];
            v6[15] = *k % 4; // IPv6 collisions too
            e.record.mesh_ipv6 = v6.into();
            e.record.routes = routes.iter().map(|r| net(route_pool[*r as usize])).collect();
            e.record.introducer = *introducer;
            if !alive {
                e.last_seen = Millis(0);
            }
            entries.push(e);
        }
        let mut c = local();
        c.wireguard_public = [7u8; 32];
        c.mesh_ipv4 = ipv4_pool(local_ip);
        c.routes.mesh_ipv4 = "100.64.0.0/16".parse().unwrap(); // let routes overlap the pool
        c.routes.mesh_ipv6 = "fd99::/64".parse().unwrap();
        let mut health = HealthView::default();
        for (p, r) in &relayed {
            let (mut pk, mut rk) = ([0u8; 32], [0u8; 32]);
            pk[0] = *p;
            rk[0] = *r;
            health.relayed.insert(pk, rk);
        }
        let out = plan(&entries, &c, &health, NOW);
        let mut seen: BTreeMap<IpNet, WgKey> = BTreeMap::new();
        for (key, peer) in &out.desired.peers {
            prop_assert_eq!(&peer.public_key, key);
            prop_assert!(!health.relayed.get(key).is_some_and(|r| out.desired.peers.contains_key(r) && !health.relayed.contains_key(r) && r != key),
                "a relayed peer has no entry of its own when its relay has one");
            for n in &peer.allowed_ips {
                prop_assert!(seen.insert(*n, *key).is_none(), "{} on two peers", n);
            }
        }
        prop_assert!(!seen.contains_key(&host4(c.mesh_ipv4)), "this node's address on a peer");
        for (dest, via) in &out.desired.routes {
            prop_assert_eq!(seen.get(dest), Some(via));
        }
    }
}

/// The whole trip inside the core: a record into the store, plan, diff; then a newer record
/// that withdraws a route, and the diff that removes it.
#[test]
fn a_withdrawn_route_leaves_the_kernel_through_plan_and_diff() {
    use crate::mesh::diff::{RouteOp, apply_diff, diff};
    use crate::mesh::peer::PeerUpdate;
    use crate::mesh::store::{PeerStore, StoreConfig};

    let store = PeerStore::new(StoreConfig::default(), testkit::address_check());
    let mut r = testkit::record(1);
    r.routes = vec![net("192.168.10.0/24"), net("192.168.20.0/24")];
    store
        .update(PeerUpdate::new(r.clone(), DiscoveryMethod::Dht), NOW)
        .unwrap();
    let mut applied = DesiredState::default();
    let first = plan(&store.snapshot(), &local(), &HealthView::default(), NOW);
    let d = diff(&first.desired, &applied);
    apply_diff(&mut applied, &d);
    assert_eq!(applied.routes.len(), 2);
    assert!(
        diff(&first.desired, &applied).is_empty(),
        "a second pass does nothing"
    );

    r.sequence = 2;
    r.routes = vec![net("192.168.20.0/24")];
    store
        .update(PeerUpdate::new(r.clone(), DiscoveryMethod::Gossip), NOW)
        .unwrap();
    let second = plan(&store.snapshot(), &local(), &HealthView::default(), NOW);
    let d = diff(&second.desired, &applied);
    assert_eq!(d.peers.len(), 1, "one update: allowed IPs shrink");
    assert_eq!(
        d.routes,
        vec![RouteOp::Remove(DesiredRoute {
            destination: net("192.168.10.0/24"),
            via_peer: r.wireguard_public,
        })]
    );
    apply_diff(&mut applied, &d);
    assert_eq!(applied, second.desired);
}

#[test]
fn keepalive_follows_both_nat_types() {
    use NatType::*;
    let table = [
        (Open, Open, 60),
        (Open, FullCone, 45),
        (RestrictedCone, Open, 30),
        (PortRestrictedCone, FullCone, 15),
        (Symmetric, Open, 8),
        (Open, Symmetric, 8),
        (Unknown, Open, 25),
        (FullCone, Unknown, 25),
    ];
    for (mine, theirs, secs) in table {
        let mut l = local();
        l.nat_type = mine;
        let mut e = entry(1);
        e.record.nat_type = theirs;
        let p = plan(std::slice::from_ref(&e), &l, &HealthView::default(), NOW);
        assert_eq!(
            p.desired.peers[e.key()].persistent_keepalive_secs,
            Some(secs),
            "this node {mine:?}, peer {theirs:?}"
        );
    }
}
