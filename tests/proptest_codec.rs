//! Property tests of the codecs: any valid record round-trips through sign → seal → open →
//! verify; any single flipped bit of a datagram or of a signed record is rejected; the secret
//! parser and the decoders never panic on arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use proptest::prelude::*;
use wgmesh::identity::NodeIdentity;
use wgmesh::proto::envelope::{self, MAX_PAYLOAD_BYTES, MessageType};
use wgmesh::proto::messages::Message;
use wgmesh::proto::record::{
    EndpointCandidate, EndpointKind, NatType, NodeRecord, RecordVerifier, SignedRecord,
};
use wgmesh::proto::{MeshKeys, MeshSecret};

fn keys() -> MeshKeys {
    MeshKeys::derive(&MeshSecret::from_bytes([9; 32]))
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u8..224, any::<[u8; 3]>())
            .prop_map(|(a, r)| IpAddr::V4(Ipv4Addr::new(a, r[0], r[1], r[2]))),
        (0x2000u16..0xfeff, any::<[u16; 7]>()).prop_map(|(a, r)| IpAddr::V6(Ipv6Addr::new(
            a, r[0], r[1], r[2], r[3], r[4], r[5], r[6]
        ))),
    ]
}

fn endpoint() -> impl Strategy<Value = EndpointCandidate> {
    (0u64..5, ip(), 1u16..).prop_map(|(k, ip, port)| EndpointCandidate {
        kind: EndpointKind::from_code(k).unwrap(),
        addr: SocketAddr::new(ip, port),
    })
}

fn route() -> impl Strategy<Value = IpNet> {
    (ip(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpNet::new(ip, len % (max + 1)).unwrap().trunc()
    })
}

fn record() -> impl Strategy<Value = (NodeRecord, [u8; 32])> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        "[A-Za-z0-9.-]{1,60}",
        0u8..=15,
        prop::collection::vec(endpoint(), 0..=8),
        0u64..6,
        any::<bool>(),
        prop::collection::vec(route(), 0..=16),
        1u16..,
        1u16..,
    )
        .prop_map(
            |(seed, sequence, hostname, nonce, endpoints, nat, introducer, routes, cp, wp)| {
                let id = NodeIdentity::from_seed(&seed);
                let k = keys();
                let wg = id.wireguard_public();
                let r = NodeRecord {
                    ed25519_public: id.ed25519_public(),
                    wireguard_public: wg,
                    sequence,
                    hostname,
                    address_nonce: nonce,
                    mesh_ipv4: k.mesh_ipv4(&wg, nonce),
                    mesh_ipv6: k.mesh_ipv6(&wg),
                    endpoints,
                    nat_type: NatType::from_code(nat),
                    introducer,
                    routes,
                    control_port: cp,
                    wireguard_port: wp,
                    relay_load: None,
                };
                (r, seed)
            },
        )
}

fn sign(r: &NodeRecord, seed: &[u8; 32]) -> SignedRecord {
    let id = NodeIdentity::from_seed(seed);
    r.sign(keys().network_id(), |m| id.sign(m)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn record_round_trips_through_the_whole_path((r, seed) in record()) {
        let k = keys();
        let signed = sign(&r, &seed);
        prop_assert_eq!(SignedRecord::decode(&signed.encode()).unwrap(), signed.clone());
        let datagram = Message::Announce { record: signed }.seal(&k).unwrap();
        prop_assert!(datagram.len() <= 1200);
        let Message::Announce { record } = Message::open(&k, &datagram).unwrap() else { unreachable!() };
        prop_assert_eq!(RecordVerifier::new(&k).verify(&record, None).unwrap(), r);
    }

    #[test]
    fn any_flipped_bit_in_a_datagram_is_rejected((r, seed) in record(), bit in any::<usize>()) {
        let k = keys();
        let mut datagram = Message::Announce { record: sign(&r, &seed) }.seal(&k).unwrap();
        let bit = bit % (datagram.len() * 8);
        datagram[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Message::open(&k, &datagram).is_err());
    }

    #[test]
    fn any_flipped_bit_in_a_signed_record_is_rejected((r, seed) in record(), bit in any::<usize>()) {
        let k = keys();
        let mut bytes = sign(&r, &seed).encode();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let verdict = SignedRecord::decode(&bytes).and_then(|s| RecordVerifier::new(&k).verify(&s, None));
        prop_assert!(verdict.is_err(), "bit {} accepted", bit);
    }

    #[test]
    fn envelope_round_trips_any_payload(payload in prop::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD_BYTES), t in 0usize..11) {
        let key = [3u8; 32];
        let ty = MessageType::ALL[t];
        let sealed = envelope::seal(&key, ty, &payload).unwrap();
        prop_assert!(sealed.len() <= 1200);
        prop_assert_eq!(envelope::open(&key, &sealed).unwrap(), (ty, payload));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1300)) {
        let k = keys();
        let _ = Message::open(&k, &bytes);
        let _ = SignedRecord::decode(&bytes).and_then(|s| RecordVerifier::new(&k).verify(&s, None));
        let _ = NodeRecord::decode_body(&bytes);
        for ty in MessageType::ALL {
            let _ = Message::decode_payload(ty, &bytes);
        }
    }

    #[test]
    fn secret_parser_never_panics(text in ".{0,80}") {
        // Short inputs only: long ones would run Argon2id (64 MiB) per case.
        if text.trim().len() < 16 || text.trim().starts_with("wgmesh://v2/") {
            let _ = MeshSecret::parse(&text);
        }
    }

    #[test]
    fn generated_secrets_round_trip(bytes in any::<[u8; 32]>()) {
        let s = MeshSecret::from_bytes(bytes);
        let back = MeshSecret::parse(&s.to_uri()).unwrap();
        prop_assert_eq!(back.as_bytes(), &bytes);
    }
}
