//! Test vectors of docs/PROTOCOL.md: built here from fixed inputs and compared with the golden
//! file `docs/test-vectors.json` (which `netns-tests/protocol/check_protocol.py` checks with an
//! independent implementation: PyNaCl/libsodium, `cryptography`, argon2-cffi, cbor2).
//! `WGMESH_WRITE_VECTORS=1 cargo test --test protocol_vectors` rewrites the golden file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use serde_json::{Value, json};
use wgmesh::identity::NodeIdentity;
use wgmesh::mesh::Millis;
use wgmesh::mesh::dandelion::epoch_of;
use wgmesh::proto::dht_item;
use wgmesh::proto::envelope::{self, MessageType};
use wgmesh::proto::messages::{Goodbye, Message, Stem};
use wgmesh::proto::record::{EndpointCandidate, EndpointKind, NatType, NodeRecord, RecordVerifier};
use wgmesh::proto::{MeshKeys, MeshSecret};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/test-vectors.json");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md");

fn seq_bytes<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn build_vectors() -> Value {
    let secret = MeshSecret::from_bytes(seq_bytes(0x00));
    let keys = MeshKeys::derive(&secret);
    let identity = NodeIdentity::from_seed(&seq_bytes(0x80));
    let wg_pub = identity.wireguard_public();
    let record = NodeRecord {
        ed25519_public: identity.ed25519_public(),
        wireguard_public: wg_pub,
        sequence: 1_700_000_000_000,
        hostname: "node-a".into(),
        address_nonce: 0,
        mesh_ipv4: keys.mesh_ipv4(&wg_pub, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg_pub),
        endpoints: vec![
            EndpointCandidate {
                kind: EndpointKind::Lan,
                addr: "192.168.1.10:51820".parse().unwrap(),
            },
            EndpointCandidate {
                kind: EndpointKind::Stun,
                addr: "203.0.113.5:40000".parse().unwrap(),
            },
            EndpointCandidate {
                kind: EndpointKind::PublicIpv6,
                addr: "[2001:db8::5]:51820".parse::<SocketAddr>().unwrap(),
            },
        ],
        nat_type: NatType::PortRestrictedCone,
        introducer: false,
        routes: vec![
            "192.168.1.0/24".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ],
        control_port: keys.control_port(),
        wireguard_port: 51820,
        relay_load: None,
    };
    let signed = record
        .sign(keys.network_id(), |m| identity.sign(m))
        .unwrap();
    assert_eq!(
        RecordVerifier::new(&keys).verify(&signed, None).unwrap(),
        record
    );
    let announce = Message::Announce {
        record: signed.clone(),
    };
    let payload = announce.encode_payload();
    let nonce: [u8; 24] = seq_bytes(0x40);
    let datagram =
        envelope::seal_with_nonce(keys.control_key(), MessageType::Announce, &nonce, &payload)
            .unwrap();
    assert_eq!(Message::open(&keys, &datagram).unwrap(), announce);
    let goodbye = Goodbye {
        ed25519_public: identity.ed25519_public(),
        wireguard_public: wg_pub,
        sequence: 1_700_000_000_001,
    }
    .sign(keys.network_id(), |m| identity.sign(m));
    let epoch = epoch_of(Millis(record.sequence));
    let stem = Message::Stem(Stem {
        record: signed.clone(),
        hop: 1,
    });
    let passphrase = MeshSecret::parse("correct horse battery staple").unwrap();
    let item_nonce: [u8; 24] = seq_bytes(0x60);
    let item = dht_item::seal_item_with_nonce(&keys, &signed, &item_nonce).unwrap();
    assert_eq!(dht_item::open_item(&keys, &item).unwrap(), signed);
    let salt = keys.dht_item_salt();
    let item_seq = i64::try_from(record.sequence).unwrap();
    let item_signature = identity.sign(&dht_item::bep44_signable(salt, item_seq, &item));
    let target: [u8; 20] =
        mainline::MutableItem::target_from_key(&identity.ed25519_public(), Some(salt)).into();
    json!({
        "mesh_secret": {
            "bytes": hex::encode(secret.as_bytes()),
            "uri": secret.to_uri(),
            "network_id": hex::encode(keys.network_id()),
            "network_id_short": keys.network_id_short(),
            "control_key": hex::encode(keys.control_key()),
            "wireguard_psk": hex::encode(keys.wireguard_psk()),
            "ipv4_subnet": keys.ipv4_subnet().to_string(),
            "ipv6_prefix": keys.ipv6_prefix().to_string(),
            "lan_group": keys.lan_group().to_string(),
            "control_port": keys.control_port(),
            "registry_id": keys.registry_id_hex(),
            "dht_topic_hour_490000": hex::encode(keys.dht_topic(490_000)),
        },
        "passphrase": {
            "text": "correct horse battery staple",
            "bytes": hex::encode(passphrase.as_bytes()),
        },
        "identity": {
            "ed25519_seed": hex::encode(*identity.seed()),
            "ed25519_public": hex::encode(identity.ed25519_public()),
            "wireguard_private": hex::encode(*identity.wireguard_private()),
            "wireguard_public": hex::encode(wg_pub),
            "mesh_ipv4_nonce0": keys.mesh_ipv4(&wg_pub, 0).to_string(),
            "mesh_ipv4_nonce1": keys.mesh_ipv4(&wg_pub, 1).to_string(),
            "mesh_ipv6": keys.mesh_ipv6(&wg_pub).to_string(),
        },
        "record": {
            "body": hex::encode(&signed.body),
            "signature": hex::encode(signed.signature),
            "signed": hex::encode(signed.encode()),
        },
        "announce": {
            "payload": hex::encode(&payload),
            "nonce": hex::encode(nonce),
            "datagram": hex::encode(&datagram),
        },
        "goodbye": {
            "body": hex::encode(&goodbye.body),
            "signature": hex::encode(goodbye.signature),
        },
        "dandelion": {
            "epoch": epoch,
            "epoch_seed": hex::encode(keys.dandelion_epoch_seed(epoch)),
            "stem_payload_hop1": hex::encode(stem.encode_payload()),
        },
        "dht_item": {
            "salt": hex::encode(salt),
            "target": hex::encode(target),
            "seq": item_seq,
            "nonce": hex::encode(item_nonce),
            "value": hex::encode(&item),
            "signature": hex::encode(item_signature),
        },
    })
}

#[test]
fn vectors_match_the_golden_file_and_the_protocol_doc() {
    let built = build_vectors();
    if std::env::var_os("WGMESH_WRITE_VECTORS").is_some() {
        std::fs::write(GOLDEN, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(GOLDEN)
            .expect("docs/test-vectors.json (WGMESH_WRITE_VECTORS=1 writes it)"),
    )
    .unwrap();
    assert_eq!(
        built, golden,
        "vectors changed: the wire format is fixed; update docs on purpose"
    );
    // Every hex value of the golden file is printed in docs/PROTOCOL.md (folded lines joined).
    let doc: String = std::fs::read_to_string(DOC)
        .unwrap()
        .split_whitespace()
        .collect();
    for section in golden.as_object().unwrap().values() {
        for (name, v) in section.as_object().unwrap() {
            if let Some(s) = v.as_str() {
                assert!(
                    doc.contains(&s.replace(' ', "")),
                    "docs/PROTOCOL.md lacks {name} = {s}"
                );
            }
        }
    }
}
