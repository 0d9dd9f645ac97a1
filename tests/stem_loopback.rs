//! Dandelion++ stems over real UDP on loopback (no root). The test mesh uses the subnet
//! 127.0.0.0/8, so each node's derived mesh IPv4 is a loopback address its control socket binds
//! (as the daemon's is reached over the tunnel). Three nodes that know each other and have
//! heard each other from their mesh addresses (hellos; relays must be proven reachable): A sends a
//! fresh record down the stem; it is fluffed by B or C (never A), reaches both stores, and A
//! sees it held elsewhere (its "fluffed" signal). A stem from an address that is no peer's mesh
//! address is dropped and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use wgmesh::discovery::control_socket::unix_now;
use wgmesh::discovery::{ControlSocket, ControlSocketConfig, ControlSocketDeps, ControlTasks};
use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::{AddressCheck, DiscoveryMethod, PeerStore, PeerUpdate, StoreConfig, WgKey};
use wgmesh::metrics::Metrics;
use wgmesh::proto::messages::{Message, Stem};
use wgmesh::proto::{
    EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord, SignedRecord,
};

const SEQUENCE: u64 = 1_700_000_000_000;

/// A mesh per test process (so parallel runs do not share loopback addresses and ports).
fn keys() -> MeshKeys {
    let mut s = [0x5d; 32];
    s[..4].copy_from_slice(&std::process::id().to_be_bytes());
    MeshKeys::derive_with_subnet(
        &MeshSecret::from_bytes(s),
        Some("127.0.0.0/8".parse().unwrap()),
    )
    .unwrap()
}

struct Node {
    id: NodeIdentity,
    store: Arc<PeerStore>,
    metrics: Arc<Metrics>,
    socket: ControlSocket,
    tasks: Option<ControlTasks>,
    _record: watch::Sender<SignedRecord>,
}

impl Node {
    fn key(&self) -> WgKey {
        self.id.wireguard_public()
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics.get(name, labels).unwrap_or(0.0)
    }
}

fn record(keys: &MeshKeys, id: &NodeIdentity, sequence: u64) -> (NodeRecord, SignedRecord) {
    let wg = id.wireguard_public();
    let mesh_ipv4 = keys.mesh_ipv4(&wg, 0);
    let r = NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence,
        hostname: format!("node-{}", sequence - SEQUENCE),
        address_nonce: 0,
        mesh_ipv4,
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: vec![EndpointCandidate {
            kind: EndpointKind::Lan,
            addr: SocketAddr::from((mesh_ipv4, 51820)),
        }],
        nat_type: NatType::Open,
        introducer: false,
        routes: vec![],
        control_port: keys.control_port(),
        wireguard_port: 51820,
        relay_load: None,
    };
    let signed = r.sign(keys.network_id(), |m| id.sign(m)).unwrap();
    (r, signed)
}

async fn node(seed: u8) -> Node {
    let keys = keys();
    let id = NodeIdentity::from_seed(&[seed; 32]);
    let mesh_ipv4 = keys.mesh_ipv4(&id.wireguard_public(), 0);
    let store = Arc::new(PeerStore::new(
        StoreConfig {
            local_key: Some(id.wireguard_public()),
            ..StoreConfig::default()
        },
        AddressCheck::new(keys.clone()),
    ));
    let metrics = Arc::new(Metrics::new());
    let (record_tx, record_rx) = watch::channel(record(&keys, &id, SEQUENCE).1);
    let socket = ControlSocket::bind(
        ControlSocketConfig {
            bind: Some(SocketAddr::from((mesh_ipv4, keys.control_port()))),
            ..ControlSocketConfig::default()
        },
        ControlSocketDeps {
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            local_record: record_rx,
            probe_replies: None,
            relay_notices: None,
            rendezvous: None,
        },
    )
    .await
    .unwrap();
    Node {
        id,
        store,
        metrics,
        socket,
        tasks: None,
        _record: record_tx,
    }
}

/// Three started nodes, each holding the other two's first record.
async fn mesh(seeds: [u8; 3]) -> Vec<Node> {
    let keys = keys();
    let mut nodes = Vec::new();
    for s in seeds {
        nodes.push(node(s).await);
    }
    for n in &nodes {
        for other in nodes.iter().filter(|o| o.key() != n.key()) {
            let (r, signed) = record(&keys, &other.id, SEQUENCE);
            n.store
                .update(
                    PeerUpdate::new(r, DiscoveryMethod::Lan).with_signed(signed),
                    unix_now(),
                )
                .unwrap();
        }
    }
    for n in &mut nodes {
        n.tasks = Some(n.socket.start());
    }
    nodes
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_record_goes_down_the_stem_and_comes_back_fluffed_by_another_node() {
    let nodes = mesh([0x51, 0x52, 0x53]).await;
    let (a, others) = (&nodes[0], &nodes[1..]);
    assert!(
        a.socket.stem_routes().unwrap().relays().is_empty(),
        "no peer has been heard over the tunnel yet"
    );
    for n in &nodes {
        for other in nodes.iter().filter(|o| o.key() != n.key()) {
            n.socket.send_hello_to(other.socket.local_addr());
        }
    }
    wait_for(
        "every node to hear the others over the tunnel",
        Duration::from_secs(3),
        || {
            nodes
                .iter()
                .all(|n| n.socket.stem_routes().unwrap().relays().len() == 2)
        },
    )
    .await;
    let routes = a.socket.stem_routes().unwrap();
    let relay = routes.for_own().unwrap();
    let seen = a.socket.own_record_seen();
    let (_, fresh) = record(&keys(), &a.id, SEQUENCE + 1);
    a.socket.send_own_stem(&relay, fresh).await.unwrap();
    // Faster than any relay embargo (3 s): fluffed on the stem, not by a timer.
    wait_for(
        "the fresh record in B and C",
        Duration::from_millis(2500),
        || {
            others
                .iter()
                .all(|n| n.store.held_sequence(&a.key()) == Some(SEQUENCE + 1))
        },
    )
    .await;
    wait_for(
        "A to see its record held elsewhere",
        Duration::from_secs(2),
        || *seen.borrow() > SEQUENCE,
    )
    .await;
    let fluffs: f64 = others
        .iter()
        .map(|n| n.metric("wgmesh_stems_total", &[("action", "fluff")]))
        .sum();
    assert_eq!(fluffs, 1.0, "exactly one of B and C fluffed");
    assert_eq!(
        a.metric("wgmesh_stems_total", &[("action", "fluff")]),
        0.0,
        "the origin never fluffs its own record"
    );
    let relayed = others.iter().any(|n| {
        n.store
            .get(&a.key())
            .unwrap()
            .discovered_via
            .contains(&DiscoveryMethod::GossipTransitive)
    });
    assert!(relayed, "the fluffed record is stored as relayed");
    for n in nodes {
        n.tasks.unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stem_not_from_a_peers_mesh_address_is_dropped_and_counted() {
    let nodes = mesh([0x61, 0x62, 0x63]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (_, fresh) = record(&keys(), &a.id, SEQUENCE + 1);
    let datagram = Message::Stem(Stem {
        record: fresh,
        hop: 1,
    })
    .seal(&keys())
    .unwrap();
    let outsider = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 1), 0))
        .await
        .unwrap();
    outsider
        .send_to(&datagram, b.socket.local_addr())
        .await
        .unwrap();
    wait_for("the drop to be counted", Duration::from_secs(2), || {
        b.metric(
            "wgmesh_rejected_messages_total",
            &[("reason", "stem_source")],
        ) >= 1.0
    })
    .await;
    assert_eq!(b.store.held_sequence(&a.key()), Some(SEQUENCE));
    for n in nodes {
        n.tasks.unwrap().stop().await;
    }
}
