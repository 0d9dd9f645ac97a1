//! STUN on the control socket over real UDP on loopback (no root): the socket's receive loop
//! hands STUN datagrams to the pending-transaction table and WGM2 envelopes to the exchange.
//! A server socket answers a Binding request after a burst of hostile answers (wrong
//! transaction id, right id from an address that was not asked, truncated, oversized): the
//! client gets the real answer, every hostile one is dropped and counted by reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use wgmesh::discovery::stun::StunClient;
use wgmesh::discovery::stun::wire::{encode_binding_response, transaction_id};
use wgmesh::discovery::{ControlSocket, ControlSocketConfig, ControlSocketDeps};
use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::{AddressCheck, PeerStore, StoreConfig};
use wgmesh::metrics::Metrics;
use wgmesh::proto::{MeshKeys, MeshSecret, NatType, NodeRecord};

const REJECTED: &str = "wgmesh_rejected_messages_total";

#[tokio::test]
async fn control_socket_demultiplexes_stun_answers_and_drops_hostile_ones() {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([0x5a; 32]));
    let id = NodeIdentity::from_seed(&[9; 32]);
    let wg = id.wireguard_public();
    let record = NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: 1_700_000_000_000,
        hostname: "stun-test".into(),
        address_nonce: 0,
        mesh_ipv4: keys.mesh_ipv4(&wg, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: vec![],
        nat_type: NatType::Unknown,
        introducer: false,
        routes: vec![],
        control_port: 40_000,
        wireguard_port: 40_001,
        relay_load: None,
    }
    .sign(keys.network_id(), |m| id.sign(m))
    .unwrap();
    let (_record_tx, record_rx) = watch::channel(record);
    let metrics = Arc::new(Metrics::new());
    let socket = ControlSocket::bind(
        ControlSocketConfig {
            bind: Some("127.0.0.60:0".parse().unwrap()),
            ..ControlSocketConfig::default()
        },
        ControlSocketDeps {
            keys: keys.clone(),
            store: Arc::new(PeerStore::new(
                StoreConfig::default(),
                AddressCheck::new(keys.clone()),
            )),
            metrics: metrics.clone(),
            local_record: record_rx,
            probe_replies: None,
            relay_notices: None,
            rendezvous: None,
        },
    )
    .await
    .unwrap();
    let _tasks = socket.start();
    let me = socket.local_addr();

    let server = UdpSocket::bind("127.0.0.61:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.62:0").await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let mapped: SocketAddr = "198.51.100.2:40000".parse().unwrap();
    let serve = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let (len, from) = server.recv_from(&mut buf).await.unwrap();
        let id = transaction_id(&buf[..len]).expect("a STUN request");
        let real = encode_binding_response(id, mapped, None).unwrap();
        let mut wrong_id = id;
        wrong_id[0] ^= 0xff;
        let mut oversized = real.clone();
        oversized.resize(700, 0);
        let hostile: Vec<Vec<u8>> = vec![
            encode_binding_response(wrong_id, "203.0.113.66:1".parse().unwrap(), None).unwrap(),
            real[..real.len() - 4].to_vec(),
            oversized,
        ];
        for h in &hostile {
            server.send_to(h, from).await.unwrap();
        }
        stranger.send_to(&real, from).await.unwrap();
        // Let the hostile ones arrive first.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        server.send_to(&real, from).await.unwrap();
    });

    let client = StunClient::on_control_socket(&socket);
    assert_eq!(client.local_addr(), me);
    let got = client
        .binding(server_addr, false, false, server_addr)
        .await
        .unwrap()
        .expect("an answer");
    serve.await.unwrap();
    assert_eq!(got.answer.response.mapped, mapped);
    assert_eq!(got.answer.from, server_addr);
    for reason in [
        "stun_unsolicited",
        "stun_source",
        "stun_malformed",
        "stun_size",
    ] {
        assert!(
            metrics.get(REJECTED, &[("reason", reason)]).unwrap_or(0.0) >= 1.0,
            "{reason} not counted: {}",
            metrics.render()
        );
    }
}
