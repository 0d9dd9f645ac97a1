//! Figures for the mesh core (not a timed test): peer store updates per second with 1000 peers
//! under 4 writer threads, and plan + diff time for 1000 peers. Run with
//! `cargo bench --bench mesh_core`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::routes::RoutePolicy;
use wgmesh::mesh::{
    AddressCheck, DesiredState, DiscoveryMethod, HealthView, LocalPlanConfig, Millis, PeerStore,
    PeerUpdate, PresharedKey, RouteAcceptance, StoreConfig, apply_diff, diff, plan,
};
use wgmesh::proto::{EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord};

const PEERS: u32 = 1000;
const WRITERS: usize = 4;

fn record(keys: &MeshKeys, n: u32) -> NodeRecord {
    let mut seed = [9u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    let id = NodeIdentity::from_seed(&seed);
    let wg = id.wireguard_public();
    NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: 1,
        hostname: format!("node-{n}"),
        address_nonce: 0,
        mesh_ipv4: keys.mesh_ipv4(&wg, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: vec![EndpointCandidate {
            kind: EndpointKind::Stun,
            addr: SocketAddr::from(([198, 51, 100, (n % 250) as u8], 51820)),
        }],
        nat_type: NatType::PortRestrictedCone,
        introducer: n % 50 == 0,
        // One in ten advertises a LAN.
        routes: if n % 10 == 0 {
            vec![format!("192.168.{}.0/24", n / 10).parse().unwrap()]
        } else {
            vec![]
        },
        control_port: 51821,
        wireguard_port: 51820,
        relay_load: None,
    }
}

fn store_updates_per_second(
    keys: &MeshKeys,
    records: &Arc<Vec<NodeRecord>>,
    new_sequence: bool,
    per_writer: u32,
) -> f64 {
    let store = Arc::new(PeerStore::new(
        StoreConfig::default(),
        AddressCheck::new(keys.clone()),
    ));
    let _subscriber = store.subscribe(); // a subscriber that never reads: events are dropped
    for r in records.iter() {
        store
            .update(
                PeerUpdate::new(r.clone(), DiscoveryMethod::Dht),
                Millis::from_secs(1),
            )
            .unwrap();
    }
    let start = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            let records = Arc::clone(records);
            thread::spawn(move || {
                let methods = [
                    DiscoveryMethod::Dht,
                    DiscoveryMethod::Gossip,
                    DiscoveryMethod::Lan,
                ];
                for i in 0..per_writer {
                    let n = ((i as usize) * WRITERS + t) % records.len();
                    let mut r = records[n].clone();
                    if new_sequence {
                        r.sequence = 2 + u64::from(i);
                    }
                    let now = Millis::from_secs(2 + u64::from(i / 1000));
                    let u = PeerUpdate::new(r, methods[(i % 3) as usize]);
                    black_box(store.update(u, now).unwrap());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let elapsed = start.elapsed();
    f64::from(per_writer) * WRITERS as f64 / elapsed.as_secs_f64()
}

fn time<T>(iterations: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    start.elapsed() / iterations
}

fn main() {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([5; 32]));
    let records: Arc<Vec<NodeRecord>> = Arc::new((0..PEERS).map(|n| record(&keys, n)).collect());

    println!("mesh core benchmark, {PEERS} peers");
    let same = store_updates_per_second(&keys, &records, false, 200_000);
    println!(
        "store.update, {WRITERS} writer threads, re-announcements (same sequence): {:>10.0} updates/s",
        same
    );
    let newer = store_updates_per_second(&keys, &records, true, 50_000);
    println!(
        "store.update, {WRITERS} writer threads, new records (newer sequence):     {:>10.0} updates/s",
        newer
    );

    // plan + diff for 1000 peers, a few relayed.
    let store = PeerStore::new(StoreConfig::default(), AddressCheck::new(keys.clone()));
    for r in records.iter() {
        store
            .update(
                PeerUpdate::new(r.clone(), DiscoveryMethod::Dht),
                Millis::from_secs(1),
            )
            .unwrap();
    }
    let local = LocalPlanConfig::new(
        [0u8; 32],
        "10.255.255.254".parse().unwrap(),
        PresharedKey::new(*keys.wireguard_psk()),
        RouteAcceptance {
            policy: RoutePolicy::AcceptAll,
            mesh_ipv4: keys.ipv4_subnet(),
            mesh_ipv6: keys.ipv6_prefix(),
            local_networks: vec!["192.168.1.0/24".parse().unwrap()],
        },
    );
    let mut health = HealthView::default();
    for n in 1..=20 {
        health
            .relayed
            .insert(records[n].wireguard_public, records[0].wireguard_public);
    }
    let now = Millis::from_secs(2);
    let snapshot = store.snapshot();
    let planned = plan(&snapshot, &local, &health, now);
    let mut applied = DesiredState::default();
    let first = diff(&planned.desired, &applied);
    apply_diff(&mut applied, &first);
    println!(
        "plan: {} WireGuard peers, {} routes, {} relayed; first diff: {} peer ops",
        planned.desired.peers.len(),
        planned.desired.routes.len(),
        planned.skipped.len(),
        first.peers.len()
    );

    let n = 500;
    let t_snapshot = time(n, || store.snapshot());
    let t_plan = time(n, || plan(&snapshot, &local, &health, now));
    let t_diff = time(n, || {
        let d = diff(&planned.desired, &applied);
        assert!(d.is_empty());
        d
    });
    let t_plan_diff = time(n, || {
        let p = plan(&snapshot, &local, &health, now);
        diff(&p.desired, &applied)
    });
    let t_all = time(n, || {
        let s = store.snapshot();
        let p = plan(&s, &local, &health, now);
        diff(&p.desired, &applied)
    });
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "store.snapshot (1000 peers):          {:>8.1} µs",
        us(t_snapshot)
    );
    println!(
        "plan (1000 peers):                    {:>8.1} µs",
        us(t_plan)
    );
    println!(
        "diff, no change (1000 peers):         {:>8.1} µs",
        us(t_diff)
    );
    println!(
        "plan + diff, no change (1000 peers):  {:>8.1} µs",
        us(t_plan_diff)
    );
    println!(
        "snapshot + plan + diff (1000 peers):  {:>8.1} µs",
        us(t_all)
    );
}
