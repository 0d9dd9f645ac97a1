//! Table of malformed, forged, replayed and oversized inputs, each pushed through the whole
//! receive path (envelope → payload → record verification, or the secret parser), each
//! expected to be rejected with a specific typed error, none allowed to panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ciborium::Value;
use wgmesh::identity::NodeIdentity;
use wgmesh::proto::cbor::{self, CborError};
use wgmesh::proto::envelope::{self, EnvelopeError, MessageType};
use wgmesh::proto::keys::BindingError;
use wgmesh::proto::messages::{Goodbye, Message, MessageError, Stem};
use wgmesh::proto::record::{
    EndpointCandidate, EndpointKind, NatType, NodeRecord, RECORD_DOMAIN, RecordError,
    RecordVerifier, SignedRecord, signing_message,
};
use wgmesh::proto::secret::SecretError;
use wgmesh::proto::{MeshKeys, MeshSecret};

struct Fixture {
    keys: MeshKeys,
    other_keys: MeshKeys,
    alice: NodeIdentity,
    mallory: NodeIdentity,
}

impl Fixture {
    fn new() -> Self {
        Self {
            keys: MeshKeys::derive(&MeshSecret::from_bytes([1; 32])),
            other_keys: MeshKeys::derive(&MeshSecret::from_bytes([2; 32])),
            alice: NodeIdentity::from_seed(&[0xa1; 32]),
            mallory: NodeIdentity::from_seed(&[0x66; 32]),
        }
    }

    fn record(&self) -> NodeRecord {
        let wg = self.alice.wireguard_public();
        NodeRecord {
            ed25519_public: self.alice.ed25519_public(),
            wireguard_public: wg,
            sequence: 1000,
            hostname: "alice".into(),
            address_nonce: 0,
            mesh_ipv4: self.keys.mesh_ipv4(&wg, 0),
            mesh_ipv6: self.keys.mesh_ipv6(&wg),
            endpoints: vec![EndpointCandidate {
                kind: EndpointKind::Lan,
                addr: "192.168.1.2:51820".parse().unwrap(),
            }],
            nat_type: NatType::Unknown,
            introducer: false,
            routes: vec!["192.168.1.0/24".parse().unwrap()],
            control_port: 51900,
            wireguard_port: 51820,
            relay_load: None,
        }
    }

    /// Alice's valid record body with field `key` replaced (or removed with `None`).
    fn body_with(&self, key: u64, value: Option<Value>) -> Vec<u8> {
        let Value::Map(mut entries) =
            cbor::decode_bounded(&self.record().encode_body(), 4096).unwrap()
        else {
            unreachable!()
        };
        entries.retain(|(k, _)| *k != Value::Integer(key.into()));
        if let Some(v) = value {
            entries.push((Value::Integer(key.into()), v));
        }
        cbor::encode(&Value::Map(entries))
    }

    fn sign_body(&self, signer: &NodeIdentity, network: &MeshKeys, body: Vec<u8>) -> SignedRecord {
        let signature = signer.sign(&signing_message(RECORD_DOMAIN, network.network_id(), &body));
        SignedRecord { body, signature }
    }

    fn announce(&self, record: &SignedRecord) -> Vec<u8> {
        Message::Announce {
            record: record.clone(),
        }
        .seal(&self.keys)
        .unwrap()
    }

    fn announce_body(&self, body: Vec<u8>) -> Vec<u8> {
        self.announce(&self.sign_body(&self.alice, &self.keys, body))
    }

    fn valid_announce(&self) -> Vec<u8> {
        self.announce(
            &self
                .record()
                .sign(self.keys.network_id(), |m| self.alice.sign(m))
                .unwrap(),
        )
    }
}

/// The receive path: open, decode, verify (with the sequence already held, if any).
fn receive(
    keys: &MeshKeys,
    datagram: &[u8],
    held: Option<u64>,
) -> Result<NodeRecord, MessageError> {
    match Message::open(keys, datagram)? {
        Message::Announce { record } => Ok(RecordVerifier::new(keys).verify(&record, held)?),
        Message::Goodbye { goodbye } => {
            goodbye.verify(keys, held)?;
            Err(MessageError::UnexpectedType(MessageType::Goodbye))
        }
        other => Err(MessageError::UnexpectedType(other.message_type())),
    }
}

fn rec_err(e: RecordError) -> MessageError {
    MessageError::Record(e)
}

fn flip(mut v: Vec<u8>, index: usize) -> Vec<u8> {
    let i = index % v.len();
    v[i] ^= 0x01;
    v
}

fn endpoint(kind: u64, ip: Vec<u8>, port: u64) -> Value {
    Value::Array(vec![cbor::uint(kind), Value::Bytes(ip), cbor::uint(port)])
}

fn route(ip: Vec<u8>, len: u64) -> Value {
    Value::Array(vec![Value::Bytes(ip), cbor::uint(len)])
}

#[test]
fn every_hostile_datagram_is_rejected_with_its_reason() {
    let f = Fixture::new();
    let valid = f.valid_announce();
    assert!(
        receive(&f.keys, &valid, None).is_ok(),
        "the baseline must be accepted"
    );
    let payload_datagram = |payload: &[u8]| {
        envelope::seal(f.keys.control_key(), MessageType::Announce, payload).unwrap()
    };
    let mut record = f.record();
    record.sequence = 5;
    let seq5 = f.announce(
        &record
            .sign(f.keys.network_id(), |m| f.alice.sign(m))
            .unwrap(),
    );
    let goodbye = Goodbye {
        ed25519_public: f.alice.ed25519_public(),
        wireguard_public: f.alice.wireguard_public(),
        sequence: 1000,
    };
    let forged_goodbye = Message::Goodbye {
        goodbye: goodbye.sign(f.keys.network_id(), |m| f.mallory.sign(m)),
    }
    .seal(&f.keys)
    .unwrap();
    let stale_goodbye = Message::Goodbye {
        goodbye: goodbye.sign(f.keys.network_id(), |m| f.alice.sign(m)),
    }
    .seal(&f.keys)
    .unwrap();
    let mut bad_magic = valid.clone();
    bad_magic[3] = b'1';
    let mut unknown_type = valid.clone();
    unknown_type[4] = 0xff;
    let stem = |hop: u8| {
        let record = f
            .record()
            .sign(f.keys.network_id(), |m| f.alice.sign(m))
            .unwrap();
        let payload = Message::Stem(Stem { record, hop }).encode_payload();
        envelope::seal(f.keys.control_key(), MessageType::Stem, &payload).unwrap()
    };
    let mut retyped = valid.clone();
    retyped[4] = MessageType::Goodbye as u8;
    let wrong_mesh = Message::Announce {
        record: f
            .record()
            .sign(f.other_keys.network_id(), |m| f.alice.sign(m))
            .unwrap(),
    }
    .seal(&f.other_keys)
    .unwrap();
    let big_hostname = Value::Text("a".repeat(254));
    let too_many_endpoints =
        Value::Array((0..9).map(|i| endpoint(0, vec![10, 0, 0, i], 1)).collect());
    let too_many_routes = Value::Array((0..65).map(|i| route(vec![10, i, 0, 0], 16)).collect());
    let mut huge = f.record();
    huge.hostname = "h".repeat(253);
    let huge_body = {
        let Value::Map(mut m) = cbor::decode_bounded(&huge.encode_body(), 4096).unwrap() else {
            unreachable!()
        };
        let base = cbor::encode(&Value::Map(m.clone())).len();
        // Pad with an unknown field to 1050 bytes: over the record limit, under the payload's.
        m.push((cbor::uint(20), Value::Bytes(vec![0; 1050 - base - 4])));
        cbor::encode(&Value::Map(m))
    };
    assert_eq!(huge_body.len(), 1050);
    let mut dup = f.record().encode_body();
    // Rewrite the map header from 14 entries (0xae) to 15 (0xaf) and repeat field 5 (nonce 0).
    dup[0] = 0xaf;
    dup.extend_from_slice(&[0x05, 0x00]);

    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Option<u64>, MessageError)> = vec![
        ("empty datagram", vec![], None, EnvelopeError::TooShort(0).into()),
        ("44-byte datagram", valid[..44].to_vec(), None, EnvelopeError::TooShort(44).into()),
        ("1201-byte datagram", [valid.clone(), vec![0; 1201 - valid.len()]].concat(), None, EnvelopeError::TooLarge(1201).into()),
        ("65 KiB datagram", vec![0; 65536], None, EnvelopeError::TooLarge(65536).into()),
        ("wrong magic", bad_magic, None, EnvelopeError::BadMagic.into()),
        ("unknown type byte", unknown_type, None, EnvelopeError::UnknownType(0xff).into()),
        ("another mesh's datagram", wrong_mesh, None, EnvelopeError::Decrypt.into()),
        ("flipped ciphertext bit", flip(valid.clone(), 100), None, EnvelopeError::Decrypt.into()),
        ("flipped tag bit", flip(valid.clone(), valid.len() - 1), None, EnvelopeError::Decrypt.into()),
        ("flipped nonce bit", flip(valid.clone(), 10), None, EnvelopeError::Decrypt.into()),
        ("type byte swapped to another valid type", retyped, None, EnvelopeError::Decrypt.into()),
        ("truncated by one byte", valid[..valid.len() - 1].to_vec(), None, EnvelopeError::Decrypt.into()),
        ("payload not CBOR", payload_datagram(&[0xff, 0xff]), None, CborError::NotCbor.into()),
        ("payload with trailing bytes", payload_datagram(&[0xa0, 0x00]), None, CborError::TrailingBytes.into()),
        ("payload an array", payload_datagram(&[0x80]), None, CborError::NotAMap.into()),
        ("announce without record", payload_datagram(&[0xa0]), None, CborError::Missing(1).into()),
        ("gossip digest is not handled here", envelope::seal(f.keys.control_key(), MessageType::GossipDigest, &[0xa0]).unwrap(), None, MessageError::UnexpectedType(MessageType::GossipDigest)),
        ("rendezvous offer without its peer key", envelope::seal(f.keys.control_key(), MessageType::RendezvousOffer, &[0xa0]).unwrap(), None, MessageError::Malformed(CborError::Missing(1))),
        ("stem without record", envelope::seal(f.keys.control_key(), MessageType::Stem, &[0xa0]).unwrap(), None, CborError::Missing(1).into()),
        ("stem at hop 0", stem(0), None, CborError::WrongType(2).into()),
        ("stem beyond hop 4", stem(5), None, CborError::WrongType(2).into()),
        ("hello without challenge", envelope::seal(f.keys.control_key(), MessageType::Hello, &[0xa0]).unwrap(), None, rec_err(RecordError::Malformed(CborError::Missing(1)))),
        ("signature by another key", f.announce(&f.sign_body(&f.mallory, &f.keys, f.record().encode_body())), None, rec_err(RecordError::BadSignature)),
        ("signed for another network id", f.announce(&f.sign_body(&f.alice, &f.other_keys, f.record().encode_body())), None, rec_err(RecordError::BadSignature)),
        ("body altered after signing", f.announce(&SignedRecord { body: f.body_with(4, Some(Value::Text("mallory".into()))), signature: f.record().sign(f.keys.network_id(), |m| f.alice.sign(m)).unwrap().signature }), None, rec_err(RecordError::BadSignature)),
        ("all-zero signature", f.announce(&SignedRecord { body: f.record().encode_body(), signature: [0; 64] }), None, rec_err(RecordError::BadSignature)),
        ("WireGuard key of another node", f.announce_body(f.body_with(2, Some(Value::Bytes(f.mallory.wireguard_public().to_vec())))), None, rec_err(RecordError::Binding(BindingError::Mismatch))),
        ("claimed mesh IPv4 not derived", f.announce_body(f.body_with(12, Some(Value::Bytes(vec![10, 1, 2, 3])))), None, rec_err(RecordError::Ipv4Mismatch { claimed: "10.1.2.3".parse().unwrap(), expected: f.record().mesh_ipv4 })),
        ("claimed mesh IPv6 not derived", f.announce_body(f.body_with(13, Some(Value::Bytes(vec![0xfd; 16])))), None, rec_err(RecordError::Ipv6Mismatch { claimed: "fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd".parse().unwrap(), expected: f.record().mesh_ipv6 })),
        ("nonce changed, address kept", f.announce_body(f.body_with(5, Some(cbor::uint(1)))), None, rec_err(RecordError::Ipv4Mismatch { claimed: f.record().mesh_ipv4, expected: f.keys.mesh_ipv4(&f.alice.wireguard_public(), 1) })),
        ("nonce above 15", f.announce_body(f.body_with(5, Some(cbor::uint(16)))), None, rec_err(RecordError::NonceOutOfRange(16))),
        ("replayed (same sequence)", valid.clone(), Some(1000), rec_err(RecordError::Stale { got: 1000, held: 1000 })),
        ("stale (older sequence)", seq5, Some(1000), rec_err(RecordError::Stale { got: 5, held: 1000 })),
        ("hostname of 254 bytes", f.announce_body(f.body_with(4, Some(big_hostname))), None, rec_err(RecordError::BadHostname)),
        ("hostname with underscore", f.announce_body(f.body_with(4, Some(Value::Text("a_b".into())))), None, rec_err(RecordError::BadHostname)),
        ("empty hostname", f.announce_body(f.body_with(4, Some(Value::Text(String::new())))), None, rec_err(RecordError::BadHostname)),
        ("hostname not text", f.announce_body(f.body_with(4, Some(cbor::uint(7)))), None, rec_err(RecordError::BadHostname)),
        ("9 endpoints", f.announce_body(f.body_with(6, Some(too_many_endpoints))), None, rec_err(RecordError::TooManyEndpoints(9))),
        ("65 routes", f.announce_body(f.body_with(9, Some(too_many_routes))), None, rec_err(RecordError::TooManyRoutes(65))),
        ("route with host bits", f.announce_body(f.body_with(9, Some(Value::Array(vec![route(vec![10, 0, 0, 1], 8)])))), None, rec_err(RecordError::BadRoute)),
        ("IPv4 route /33", f.announce_body(f.body_with(9, Some(Value::Array(vec![route(vec![10, 0, 0, 0], 33)])))), None, rec_err(RecordError::BadRoute)),
        ("route address of 5 bytes", f.announce_body(f.body_with(9, Some(Value::Array(vec![route(vec![10, 0, 0, 0, 0], 8)])))), None, rec_err(RecordError::BadRoute)),
        ("endpoint port 0", f.announce_body(f.body_with(6, Some(Value::Array(vec![endpoint(0, vec![10, 0, 0, 1], 0)])))), None, rec_err(RecordError::BadEndpoint)),
        ("endpoint 0.0.0.0", f.announce_body(f.body_with(6, Some(Value::Array(vec![endpoint(0, vec![0, 0, 0, 0], 51820)])))), None, rec_err(RecordError::BadEndpoint)),
        ("endpoint multicast", f.announce_body(f.body_with(6, Some(Value::Array(vec![endpoint(0, vec![239, 1, 1, 1], 51820)])))), None, rec_err(RecordError::BadEndpoint)),
        ("endpoint kind 99", f.announce_body(f.body_with(6, Some(Value::Array(vec![endpoint(99, vec![10, 0, 0, 1], 1)])))), None, rec_err(RecordError::BadEndpoint)),
        ("endpoint port 70000", f.announce_body(f.body_with(6, Some(Value::Array(vec![endpoint(0, vec![10, 0, 0, 1], 70000)])))), None, rec_err(RecordError::BadEndpoint)),
        ("control port 0", f.announce_body(f.body_with(10, Some(cbor::uint(0)))), None, rec_err(RecordError::BadPort)),
        ("WireGuard port 65536", f.announce_body(f.body_with(11, Some(cbor::uint(65536)))), None, rec_err(RecordError::Malformed(CborError::WrongType(11)))),
        ("protocol version 3", f.announce_body(f.body_with(0, Some(cbor::uint(3)))), None, rec_err(RecordError::UnsupportedVersion(3))),
        ("missing WireGuard key", f.announce_body(f.body_with(2, None)), None, rec_err(RecordError::Malformed(CborError::Missing(2)))),
        ("Ed25519 key of 31 bytes", f.announce_body(f.body_with(1, Some(Value::Bytes(vec![1; 31])))), None, rec_err(RecordError::Malformed(CborError::WrongType(1)))),
        ("duplicate field", f.announce_body(dup), None, rec_err(RecordError::Malformed(CborError::DuplicateKey(5)))),
        ("body over 1024 bytes", payload_datagram(&cbor::encode(&cbor::int_map(vec![(1, Value::Array(vec![Value::Bytes(huge_body), Value::Bytes(vec![0; 64])]))]))), None, rec_err(RecordError::TooLarge { len: 1050, max: 1024 })),
        ("signature of 63 bytes", payload_datagram(&cbor::encode(&cbor::int_map(vec![(1, Value::Array(vec![Value::Bytes(f.record().encode_body()), Value::Bytes(vec![0; 63])]))]))), None, rec_err(RecordError::Malformed(CborError::WrongType(1)))),
        ("goodbye signed by someone else", forged_goodbye, None, MessageError::BadGoodbyeSignature),
        ("goodbye not newer than the record", stale_goodbye, Some(1000), MessageError::StaleGoodbye { got: 1000, held: 1000 }),
    ];
    assert!(cases.len() >= 30, "the issue asks for at least 30 cases");
    let mut failures = Vec::new();
    for (name, datagram, held, want) in &cases {
        match receive(&f.keys, datagram, *held) {
            Err(got) if got == *want => {}
            other => failures.push(format!("{name}: want {want:?}, got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_bad_secret_is_rejected_with_its_reason() {
    let cases: Vec<(&str, String, SecretError)> = vec![
        ("empty", String::new(), SecretError::Empty),
        ("whitespace", " \t\n".into(), SecretError::Empty),
        (
            "bad base64",
            "wgmesh://v2/not*base64".into(),
            SecretError::BadBase64,
        ),
        (
            "30 bytes",
            format!("wgmesh://v2/{}", "A".repeat(40)),
            SecretError::WrongLength(30),
        ),
        (
            "33 bytes",
            format!("wgmesh://v2/{}", "A".repeat(44)),
            SecretError::WrongLength(33),
        ),
        (
            "short passphrase",
            "fifteen bytes!!".into(),
            SecretError::PassphraseTooShort(15),
        ),
        (
            "short v1 passphrase",
            "wgmesh://v1/abc?long-query-string-here".into(),
            SecretError::PassphraseTooShort(3),
        ),
        (
            "over 4096 bytes",
            "x".repeat(4097),
            SecretError::TooLong(4097),
        ),
    ];
    for (name, input, want) in cases {
        let got = MeshSecret::parse(&input).err();
        assert_eq!(got.as_ref(), Some(&want), "{name}");
        let msg = want.to_string();
        assert!(
            input.len() < 8 || !msg.contains(&input),
            "{name}: message echoes the input"
        );
    }
    assert_eq!(
        MeshSecret::parse_bytes(b"\xff\xfe some bytes that are not utf8").err(),
        Some(SecretError::NotUtf8)
    );
}
