//! Peer exchange over real UDP on loopback (no root): three nodes A, B, C, each with its own
//! peer store and control socket on a 127.0.0.x address. A and C know only B; after the
//! exchange A and C know each other as `dht-transitive` and B knows both as `dht`. Hostile
//! datagrams from other loopback sources are dropped and counted by reason without stopping
//! the exchange; probes are answered and goodbyes remove the sender.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep};

use wgmesh::discovery::{
    ControlSocket, ControlSocketConfig, ControlSocketDeps, ControlTasks, ProbeReplyEvent,
};
use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::{
    AddressCheck, DiscoveryMethod, Millis, PeerStore, PeerUpdate, StoreConfig, WgKey,
};
use wgmesh::metrics::Metrics;
use wgmesh::proto::exchange::Records;
use wgmesh::proto::messages::{Goodbye, Message};
use wgmesh::proto::{
    EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord, RecordVerifier,
    SignedRecord,
};

const SEQUENCE: u64 = 1_700_000_000_000;
const REJECTED: &str = "wgmesh_rejected_messages_total";

fn keys() -> MeshKeys {
    MeshKeys::derive(&MeshSecret::from_bytes([0x3c; 32]))
}

struct Node {
    id: NodeIdentity,
    ip: Ipv4Addr,
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

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    fn wireguard_port(&self) -> u16 {
        40_000 + u16::from(self.ip.octets()[3])
    }

    fn rejected(&self, reason: &str) -> f64 {
        self.metrics
            .get(REJECTED, &[("reason", reason)])
            .unwrap_or(0.0)
    }

    fn knows(&self, other: &Node) -> bool {
        self.store.get(&other.key()).is_some()
    }

    fn methods_for(&self, other: &Node) -> Vec<DiscoveryMethod> {
        self.store
            .get(&other.key())
            .map(|e| e.discovered_via)
            .unwrap_or_default()
    }
}

fn signed_record(
    keys: &MeshKeys,
    id: &NodeIdentity,
    ip: Ipv4Addr,
    control_port: u16,
) -> SignedRecord {
    let wg = id.wireguard_public();
    let wireguard_port = 40_000 + u16::from(ip.octets()[3]);
    NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: SEQUENCE,
        hostname: format!("node-{}", ip.octets()[3]),
        address_nonce: 0,
        mesh_ipv4: keys.mesh_ipv4(&wg, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: vec![EndpointCandidate {
            kind: EndpointKind::Lan,
            addr: SocketAddr::from((ip, wireguard_port)),
        }],
        nat_type: NatType::Open,
        introducer: false,
        routes: vec![],
        control_port,
        wireguard_port,
        relay_load: None,
    }
    .sign(keys.network_id(), |m| id.sign(m))
    .unwrap()
}

async fn node(
    last_octet: u8,
    static_peers: Vec<SocketAddr>,
    probe_replies: Option<mpsc::Sender<ProbeReplyEvent>>,
) -> Node {
    node_with(
        last_octet,
        static_peers,
        probe_replies,
        Duration::from_millis(300),
    )
    .await
}

async fn node_with(
    last_octet: u8,
    static_peers: Vec<SocketAddr>,
    probe_replies: Option<mpsc::Sender<ProbeReplyEvent>>,
    refresh_every: Duration,
) -> Node {
    let keys = keys();
    let mut seed = [0x77; 32];
    seed[0] = last_octet;
    let id = NodeIdentity::from_seed(&seed);
    let ip = Ipv4Addr::new(127, 0, 0, last_octet);
    let store = Arc::new(PeerStore::new(
        StoreConfig {
            local_key: Some(id.wireguard_public()),
            ..StoreConfig::default()
        },
        AddressCheck::new(keys.clone()),
    ));
    let metrics = Arc::new(Metrics::new());
    // The control port is known once bound: start with a placeholder, then re-sign.
    let (record_tx, record_rx) = watch::channel(signed_record(&keys, &id, ip, 1));
    let config = ControlSocketConfig {
        bind: Some(SocketAddr::from((ip, 0))),
        static_peers: static_peers.iter().map(ToString::to_string).collect(),
        refresh_every,
        ..ControlSocketConfig::default()
    };
    let socket = ControlSocket::bind(
        config,
        ControlSocketDeps {
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            local_record: record_rx,
            probe_replies,
            relay_notices: None,
            rendezvous: None,
        },
    )
    .await
    .unwrap();
    record_tx.send_replace(signed_record(&keys, &id, ip, socket.local_addr().port()));
    Node {
        id,
        ip,
        store,
        metrics,
        socket,
        tasks: None,
        _record: record_tx,
    }
}

/// B, then A and C greeting B; all started.
async fn triangle(a: u8, b: u8, c: u8) -> (Node, Node, Node) {
    let mut nb = node(b, vec![], None).await;
    let mut na = node(a, vec![nb.addr()], None).await;
    let mut nc = node(c, vec![nb.addr()], None).await;
    for n in [&mut nb, &mut na, &mut nc] {
        n.tasks = Some(n.socket.start());
    }
    (na, nb, nc)
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

fn meshed(a: &Node, b: &Node, c: &Node) -> bool {
    a.knows(b) && a.knows(c) && b.knows(a) && b.knows(c) && c.knows(a) && c.knows(b)
}

fn assert_learned_through_b(a: &Node, b: &Node, c: &Node) {
    assert_eq!(a.methods_for(c), vec![DiscoveryMethod::DhtTransitive]);
    assert_eq!(c.methods_for(a), vec![DiscoveryMethod::DhtTransitive]);
    assert_eq!(a.methods_for(b), vec![DiscoveryMethod::Dht]);
    assert_eq!(b.methods_for(a), vec![DiscoveryMethod::Dht]);
    assert_eq!(b.methods_for(c), vec![DiscoveryMethod::Dht]);
    // B saw A's packets: A's source IP and A's WireGuard port.
    let a_at_b = b.store.get(&a.key()).unwrap();
    assert_eq!(
        a_at_b.endpoint_addr(),
        Some(SocketAddr::from((a.ip, a.wireguard_port())))
    );
    // A only has C's record: the endpoint is C's own candidate.
    let c_at_a = a.store.get(&c.key()).unwrap();
    assert_eq!(
        c_at_a.endpoint_addr(),
        Some(SocketAddr::from((c.ip, c.wireguard_port())))
    );
    assert!(
        a.metrics
            .get(
                "wgmesh_discovery_events_total",
                &[("method", "dht-transitive")]
            )
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_c_learn_each_other_through_b() {
    let (a, b, c) = triangle(11, 12, 13).await;
    wait_for("the mesh", Duration::from_secs(4), || meshed(&a, &b, &c)).await;
    assert_learned_through_b(&a, &b, &c);
    // B told A where A's hellos came from.
    assert_eq!(*a.socket.observed_address().borrow(), Some(a.addr()));
    for n in [a, b, c] {
        n.tasks.unwrap().stop().await;
    }
}

/// Sends `datagram` `times` times from a socket bound to 127.0.0.`octet`.
async fn send_from(octet: u8, to: SocketAddr, datagram: &[u8], times: usize) {
    let s = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, octet), 0))
        .await
        .unwrap();
    for _ in 0..times {
        s.send_to(datagram, to).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_datagrams_are_counted_by_reason_and_do_not_stop_the_exchange() {
    let (a, b, c) = triangle(31, 32, 33).await;
    let to = b.addr();
    let keys = keys();
    let other_mesh = MeshKeys::derive(&MeshSecret::from_bytes([0x99; 32]));

    let mut bad_magic = b"XXXX".to_vec();
    bad_magic.extend([0u8; 60]);
    let truncated = b"WGM2\x02short".to_vec();
    let oversized = vec![0u8; 1300];
    let forged_record = {
        let mut r = signed_record(&keys, &a.id, a.ip, 51821);
        r.signature[0] ^= 1;
        r
    };
    let wrong_mesh = Message::Announce {
        record: forged_record.clone(),
    }
    .seal(&other_mesh)
    .unwrap();
    let forged_announce = Message::Announce {
        record: forged_record,
    }
    .seal(&keys)
    .unwrap();
    let unsolicited_records = Message::Records(Records {
        challenge: [0xee; 16],
        records: vec![signed_record(&keys, &c.id, c.ip, 51821)],
    })
    .seal(&keys)
    .unwrap();
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();

    // Ten of each kind from its own source (within the burst) …
    tokio::join!(
        send_from(41, to, &bad_magic, 10),
        send_from(42, to, &truncated, 10),
        send_from(43, to, &oversized, 10),
        send_from(44, to, &wrong_mesh, 10),
        send_from(45, to, &forged_announce, 10),
        send_from(46, to, &unsolicited_records, 10),
    );
    // … and a garbage flood (about 10 000 datagrams/s) from one more source while the exchange
    // runs.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flood = tokio::spawn({
        let stop = stop.clone();
        async move {
            let s = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 47), 0))
                .await
                .unwrap();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) || sent < 1000 {
                s.send_to(&garbage, to).await.unwrap();
                sent += 1;
                if sent % 10 == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
            }
            sent
        }
    });
    wait_for("the mesh despite the flood", Duration::from_secs(4), || {
        meshed(&a, &b, &c)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.await.unwrap() as f64;
    assert_learned_through_b(&a, &b, &c);

    let kinds = ["truncated", "size", "decrypt", "signature", "unsolicited"];
    wait_for(
        "every hostile datagram counted",
        Duration::from_secs(2),
        || kinds.iter().all(|k| b.rejected(k) >= 10.0) && b.rejected("magic") >= 30.0,
    )
    .await;
    for kind in kinds {
        assert_eq!(b.rejected(kind), 10.0, "{kind}");
    }
    // The flood: a burst of 20 plus 10/s got past the rate limit (and failed on the magic),
    // the rest was refused before any work. The socket buffer may drop some under a flood.
    let flood_passed = b.rejected("magic") - 10.0;
    // Every pass counted so far happened before now: at most the burst plus 10/s since then.
    let flood_secs = started.elapsed().as_secs_f64();
    assert!(
        flood_passed >= 20.0 && flood_passed <= 21.0 + 10.0 * flood_secs,
        "{flood_passed} in {flood_secs} s"
    );
    let limited = b.rejected("ratelimit");
    assert!(
        limited > 0.0 && limited + flood_passed <= flooded,
        "{limited} of {flooded}"
    );
    // Nothing of it reached A or C.
    assert_eq!(a.metrics.total(REJECTED), 0.0);
    assert_eq!(c.metrics.total(REJECTED), 0.0);
    for n in [a, b, c] {
        n.tasks.unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_and_goodbyes_remove_the_sender() {
    let (probe_tx, mut probe_rx) = mpsc::channel(8);
    let mut b = node(52, vec![], None).await;
    let mut a = node(51, vec![b.addr()], Some(probe_tx)).await;
    b.tasks = Some(b.socket.start());
    a.tasks = Some(a.socket.start());
    wait_for("A and B to meet", Duration::from_secs(3), || {
        a.knows(&b) && b.knows(&a)
    })
    .await;

    a.socket.send_probe(b.addr(), 4242).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(2), probe_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.id, 4242);
    assert_eq!(reply.from, b.addr());

    // A stale goodbye (not newer than the record B holds) is refused …
    let a_id = &a.id;
    let goodbye = |sequence| {
        Goodbye {
            ed25519_public: a_id.ed25519_public(),
            wireguard_public: a_id.wireguard_public(),
            sequence,
        }
        .sign(keys().network_id(), |m| a_id.sign(m))
    };
    let targets = a.socket.goodbye_targets();
    assert_eq!(targets, vec![b.addr()], "B's control port at B's address");
    assert_eq!(a.socket.send_goodbye(&goodbye(SEQUENCE), &targets).await, 1);
    wait_for("the stale goodbye counted", Duration::from_secs(2), || {
        b.rejected("stale") >= 1.0
    })
    .await;
    assert!(b.knows(&a));
    // … a newer one removes A from B.
    let a_tasks = a.tasks.take().unwrap();
    a_tasks.stop().await;
    assert_eq!(
        a.socket
            .send_goodbye(&goodbye(SEQUENCE + 1), &targets)
            .await,
        1
    );
    wait_for("B to forget A", Duration::from_secs(2), || !b.knows(&a)).await;
    b.tasks.unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_hello_from_elsewhere_does_not_move_a_known_endpoint() {
    let mut b = node(62, vec![], None).await;
    let mut a = node(61, vec![b.addr()], None).await;
    b.tasks = Some(b.socket.start());
    a.tasks = Some(a.socket.start());
    wait_for("A and B to meet", Duration::from_secs(3), || {
        a.knows(&b) && b.knows(&a)
    })
    .await;
    let real = SocketAddr::from((a.ip, a.wireguard_port()));
    assert_eq!(b.store.get(&a.key()).unwrap().endpoint_addr(), Some(real));

    // A's hello as anyone could replay it, from another address.
    let keys = keys();
    let replayed = Message::Hello(Box::new(wgmesh::proto::exchange::Hello {
        challenge: [0x42; 16],
        record: signed_record(&keys, &a.id, a.ip, a.addr().port()),
        digests: vec![],
        cookie: None,
        filter: None,
    }))
    .seal(&keys)
    .unwrap();
    let dht = || {
        b.metrics
            .get("wgmesh_discovery_events_total", &[("method", "dht")])
            .unwrap_or(0.0)
    };
    let before = dht();
    send_from(66, b.addr(), &replayed, 1).await;
    wait_for("B to process the replay", Duration::from_secs(2), || {
        dht() > before
    })
    .await;
    assert_eq!(
        b.store.get(&a.key()).unwrap().endpoint_addr(),
        Some(real),
        "an unproven source does not move a known endpoint"
    );
    for n in [a, b] {
        n.tasks.unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_cut_first_answer_is_completed_by_a_follow_up_hello() {
    let keys = keys();
    let mut b = node(82, vec![], None).await;
    // B already knows twelve peers; A (refreshing only every 30 s) greets B once.
    let others: Vec<NodeIdentity> = (0..12u8)
        .map(|i| NodeIdentity::from_seed(&[0xa0 + i; 32]))
        .collect();
    for (i, id) in others.iter().enumerate() {
        let signed = signed_record(&keys, id, Ipv4Addr::new(127, 0, 1, i as u8 + 1), 51821);
        let record = RecordVerifier::new(&keys).verify(&signed, None).unwrap();
        b.store
            .update(
                PeerUpdate::new(record, DiscoveryMethod::Lan).with_signed(signed),
                Millis::ZERO,
            )
            .unwrap();
    }
    let mut a = node_with(81, vec![b.addr()], None, Duration::from_secs(30)).await;
    b.tasks = Some(b.socket.start());
    a.tasks = Some(a.socket.start());
    // Generous for a loaded CI machine: the follow-up needs one more round trip on loopback.
    wait_for(
        "A to learn all of B's peers",
        Duration::from_secs(10),
        || a.store.len() == 13,
    )
    .await;
    assert!(
        b.socket.exchange_stats().records_withheld > 0,
        "the first answer was cut by the budget"
    );
    for id in &others {
        assert_eq!(
            a.store.get(&id.wireguard_public()).unwrap().discovered_via,
            vec![DiscoveryMethod::DhtTransitive]
        );
    }
    for n in [a, b] {
        n.tasks.unwrap().stop().await;
    }
}
