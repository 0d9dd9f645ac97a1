//! Test fixtures for the mesh core: one mesh's keys and valid node records built from seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::identity::NodeIdentity;
use crate::proto::{
    EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord, SignedRecord,
};

use super::WgKey;
use super::collision::AddressCheck;

/// The test mesh's keys (derived once).
pub fn keys() -> &'static MeshKeys {
    static KEYS: OnceLock<MeshKeys> = OnceLock::new();
    KEYS.get_or_init(|| MeshKeys::derive(&MeshSecret::from_bytes([42; 32])))
}

/// The address check of the test mesh.
pub fn address_check() -> AddressCheck {
    AddressCheck::new(keys().clone())
}

/// The identity of test node `n`.
pub fn identity(n: u32) -> NodeIdentity {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5a;
    NodeIdentity::from_seed(&seed)
}

/// A valid record of test node `n` (sequence 1, one public IPv4 endpoint).
pub fn record(n: u32) -> NodeRecord {
    record_of(&identity(n), n)
}

/// A valid record for `id`; `n` only picks the endpoint's port.
pub fn record_of(id: &NodeIdentity, n: u32) -> NodeRecord {
    let wg = id.wireguard_public();
    let port = 1024 + (n % 60_000) as u16;
    NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: 1,
        hostname: format!("node-{n}"),
        address_nonce: 0,
        mesh_ipv4: keys().mesh_ipv4(&wg, 0),
        mesh_ipv6: keys().mesh_ipv6(&wg),
        endpoints: vec![EndpointCandidate {
            kind: EndpointKind::Stun,
            addr: SocketAddr::from(([198, 51, 100, 1], port)),
        }],
        nat_type: NatType::PortRestrictedCone,
        introducer: false,
        routes: vec![],
        control_port: 51821,
        wireguard_port: 51820,
        relay_load: None,
    }
}

/// The WireGuard key of test node `n`.
pub fn key(n: u32) -> WgKey {
    identity(n).wireguard_public()
}

/// `record` signed by test node `n`.
pub fn sign(n: u32, record: &NodeRecord) -> SignedRecord {
    let id = identity(n);
    record
        .sign(keys().network_id(), |m| id.sign(m))
        .expect("test records are valid")
}
