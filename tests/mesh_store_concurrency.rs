//! The peer store under concurrency: 8 writer threads update 1000 peers while a subscriber
//! reads events and a reconciler snapshots and plans. No deadlock (bounded by a timeout), no
//! lost final state, and every event is either delivered or counted as dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::routes::RoutePolicy;
use wgmesh::mesh::{
    AddressCheck, DesiredState, DiscoveryMethod, HealthView, LocalPlanConfig, Millis, PeerStore,
    PeerUpdate, PresharedKey, RouteAcceptance, StoreConfig, UpdateOutcome, diff, plan,
};
use wgmesh::proto::{EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord};

const PEERS: u32 = 1000;
const WRITERS: u64 = 8;
const ROUNDS: u64 = 4;

fn base_record(keys: &MeshKeys, n: u32) -> NodeRecord {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    let id = NodeIdentity::from_seed(&seed);
    let wg = id.wireguard_public();
    NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: 0,
        hostname: format!("node-{n}"),
        address_nonce: 0,
        mesh_ipv4: keys.mesh_ipv4(&wg, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: vec![EndpointCandidate {
            kind: EndpointKind::Stun,
            addr: SocketAddr::from(([198, 51, 100, 1], 1024 + n as u16)),
        }],
        nat_type: NatType::FullCone,
        introducer: false,
        routes: vec![],
        control_port: 51821,
        wireguard_port: 51820,
        relay_load: None,
    }
}

#[test]
fn eight_writers_a_subscriber_and_a_reconciler_agree_on_the_final_state() {
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        run();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the store deadlocked (no result within 120 s)");
    worker.join().unwrap();
}

fn run() {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([3; 32]));
    let store = Arc::new(PeerStore::new(
        StoreConfig::default(),
        AddressCheck::new(keys.clone()),
    ));
    let records: Arc<Vec<NodeRecord>> =
        Arc::new((0..PEERS).map(|n| base_record(&keys, n)).collect());
    let events = store.subscribe();
    let writers_done = Arc::new(AtomicBool::new(false));
    let emitted = Arc::new(AtomicU64::new(0));

    let subscriber = thread::spawn(move || {
        let mut received = 0u64;
        // Reads until the store is dropped (all senders gone).
        for (i, _event) in events.iter().enumerate() {
            received += 1;
            if i % 64 == 0 {
                thread::yield_now(); // lag now and then, so some events are dropped
            }
        }
        received
    });

    let reconciler = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&writers_done);
        let keys = keys.clone();
        thread::spawn(move || {
            let local = LocalPlanConfig::new(
                [0u8; 32],
                "10.255.255.254".parse().unwrap(),
                PresharedKey::new(*keys.wireguard_psk()),
                RouteAcceptance {
                    policy: RoutePolicy::AcceptAll,
                    mesh_ipv4: keys.ipv4_subnet(),
                    mesh_ipv6: keys.ipv6_prefix(),
                    local_networks: vec![],
                },
            );
            let mut applied = DesiredState::default();
            let mut passes = 0u64;
            while !done.load(Ordering::Acquire) {
                let snapshot = store.snapshot();
                let p = plan(
                    &snapshot,
                    &local,
                    &HealthView::default(),
                    Millis::from_secs(1000),
                );
                let d = diff(&p.desired, &applied);
                wgmesh::mesh::apply_diff(&mut applied, &d);
                passes += 1;
            }
            (passes, applied)
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            let records = Arc::clone(&records);
            let emitted = Arc::clone(&emitted);
            thread::spawn(move || {
                let method = DiscoveryMethod::ALL[t as usize];
                for round in 0..ROUNDS {
                    // Each writer walks the peers from its own offset, to collide with the others.
                    for i in 0..PEERS {
                        let n = (i + t as u32 * 125) % PEERS;
                        let mut r = records[n as usize].clone();
                        r.sequence = round * WRITERS + t + 1;
                        r.hostname = format!("node-{n}-seq-{}", r.sequence);
                        let now = Millis::from_secs(1000);
                        let outcome = store.update(PeerUpdate::new(r, method), now).unwrap();
                        if outcome != UpdateOutcome::Unchanged {
                            emitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    writers_done.store(true, Ordering::Release);
    let (passes, _applied) = reconciler.join().unwrap();
    assert!(passes > 0, "the reconciler ran");

    // No lost final state: every peer holds the highest sequence sent and everything it said.
    let final_sequence = (ROUNDS - 1) * WRITERS + WRITERS;
    let snapshot = store.snapshot();
    assert_eq!(snapshot.len(), PEERS as usize);
    for entry in &snapshot {
        assert_eq!(entry.record.sequence, final_sequence);
        let n: u32 = entry
            .record
            .hostname
            .split('-')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            entry.record.hostname,
            format!("node-{n}-seq-{final_sequence}")
        );
        assert_eq!(
            entry.discovered_via.len(),
            WRITERS as usize,
            "each method once"
        );
    }
    // The final plan sees every peer.
    let dropped = store.dropped_events();
    let emitted = emitted.load(Ordering::Relaxed);
    drop(store);
    let received = subscriber.join().unwrap();
    assert_eq!(
        received + dropped,
        emitted,
        "every event delivered or counted as dropped"
    );
    assert!(received >= 16);
}
