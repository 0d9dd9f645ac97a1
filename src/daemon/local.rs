//! This node's own facts: its hostname, the clock as the core's `Millis`, and its signed
//! record (rebuilt whenever something it says changes, with a sequence that always grows,
//! also across restarts: unix milliseconds, or one more than the last one signed).

use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::identity::NodeIdentity;
use crate::mesh::Millis;
use crate::proto::record::sanitize_hostname;
use crate::proto::{EndpointCandidate, MeshKeys, NatType, NodeRecord, RecordError, SignedRecord};

/// The wall clock as the core's time value.
pub fn now_millis() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// The host's name, made valid for a record.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    sanitize_hostname(raw.trim())
}

/// What the node currently says about itself (everything but keys and sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFacts {
    pub hostname: String,
    pub address_nonce: u8,
    pub endpoints: Vec<EndpointCandidate>,
    pub nat_type: NatType,
    pub introducer: bool,
    pub routes: Vec<IpNet>,
    pub control_port: u16,
    pub wireguard_port: u16,
    /// Introducers: relayed peers now and `--max-relayed-peers`.
    pub relay_load: Option<crate::proto::RelayLoad>,
}

/// Signs the node's record, with a sequence newer than `previous`.
pub fn sign_local_record(
    identity: &NodeIdentity,
    keys: &MeshKeys,
    facts: &LocalFacts,
    previous: Option<u64>,
    now: Millis,
) -> Result<(NodeRecord, SignedRecord), RecordError> {
    let wg = identity.wireguard_public();
    let sequence = previous.map_or(now.0, |p| now.0.max(p + 1));
    let record = NodeRecord {
        ed25519_public: identity.ed25519_public(),
        wireguard_public: wg,
        sequence,
        hostname: facts.hostname.clone(),
        address_nonce: facts.address_nonce,
        mesh_ipv4: keys.mesh_ipv4(&wg, facts.address_nonce),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        endpoints: facts
            .endpoints
            .iter()
            .take(crate::proto::record::MAX_ENDPOINTS)
            .copied()
            .collect(),
        nat_type: facts.nat_type,
        introducer: facts.introducer,
        routes: facts.routes.clone(),
        control_port: facts.control_port,
        wireguard_port: facts.wireguard_port,
        relay_load: facts.relay_load,
    };
    let signed = record.sign(keys.network_id(), |m| identity.sign(m))?;
    Ok((record, signed))
}

/// When a WireGuard peer last completed a handshake, as the core's clock value.
pub fn handshake_at(peer: &crate::platform::PeerState) -> Option<Millis> {
    peer.last_handshake
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Millis(d.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MeshSecret, RecordVerifier};

    #[test]
    fn sequence_always_grows_and_the_record_verifies() {
        let keys = MeshKeys::derive(&MeshSecret::from_bytes([1; 32]));
        let id = NodeIdentity::from_seed(&[2; 32]);
        let facts = LocalFacts {
            hostname: hostname(),
            address_nonce: 0,
            endpoints: vec![],
            nat_type: NatType::Unknown,
            introducer: false,
            routes: vec!["192.168.5.0/24".parse().unwrap()],
            control_port: 51900,
            wireguard_port: 51820,
            relay_load: None,
        };
        let (r1, s1) = sign_local_record(&id, &keys, &facts, None, Millis(1000)).unwrap();
        assert_eq!(r1.sequence, 1000);
        let (r2, _) = sign_local_record(&id, &keys, &facts, Some(5000), Millis(1000)).unwrap();
        assert_eq!(
            r2.sequence, 5001,
            "a clock that went backwards still gives a newer record"
        );
        assert_eq!(RecordVerifier::new(&keys).verify(&s1, None).unwrap(), r1);
    }
}
