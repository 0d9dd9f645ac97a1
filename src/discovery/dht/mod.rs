//! DHT discovery's I/O (ring 3): the `mainline` DHT node wrapped for tokio ([`client`]), the
//! persisted routing table ([`nodes_file`]), and this node's BEP 44 item — built from its
//! signed record, and peers' items opened and checked — here. When to do what is the core's
//! `mesh::dht_schedule`; the daemon's `dht_task` drives both.

pub mod client;
pub mod nodes_file;

use mainline::MutableItem;

use crate::proto::dht_item::{DhtItemError, bep44_signable, open_item, seal_item};
use crate::proto::{MeshKeys, NodeRecord, RecordError, RecordVerifier, SignedRecord};

pub use client::{DhtClient, DhtError};

/// Why a peer's item was not used.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error(transparent)]
    Item(#[from] DhtItemError),
    #[error("the record in the DHT item does not verify: {0}")]
    Record(#[from] RecordError),
    #[error("the DHT item's key did not sign the record inside (a copy of another node's record)")]
    WrongSigner,
}

/// This node's item: `signed` sealed under the control key, sequence = the record's, signed
/// with the node's Ed25519 key through `sign` (the key never leaves the identity).
pub fn build_item(
    keys: &MeshKeys,
    ed25519_public: [u8; 32],
    record: &NodeRecord,
    signed: &SignedRecord,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<MutableItem, DhtItemError> {
    let value = seal_item(keys, signed)?;
    let salt = keys.dht_item_salt();
    // Record sequences are unix milliseconds: far below i64::MAX.
    let seq = i64::try_from(record.sequence).unwrap_or(i64::MAX);
    let signature = sign(&bep44_signable(salt, seq, &value));
    Ok(MutableItem::new_signed_unchecked(
        ed25519_public,
        signature,
        &value,
        seq,
        Some(salt),
    ))
}

/// A peer's item opened and verified: the record must verify in this mesh, be newer than
/// `held_sequence`, and be signed by the item's own key.
pub fn open_peer_item(
    keys: &MeshKeys,
    item: &MutableItem,
    held_sequence: Option<u64>,
) -> Result<(NodeRecord, SignedRecord), ItemError> {
    let signed = open_item(keys, item.value())?;
    let record = RecordVerifier::new(keys).verify(&signed, held_sequence)?;
    if record.ed25519_public != *item.key() {
        return Err(ItemError::WrongSigner);
    }
    Ok((record, signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeIdentity;
    use crate::proto::MeshSecret;

    fn signed_record(id: &NodeIdentity, keys: &MeshKeys, seq: u64) -> (NodeRecord, SignedRecord) {
        let wg = id.wireguard_public();
        let record = NodeRecord {
            ed25519_public: id.ed25519_public(),
            wireguard_public: wg,
            sequence: seq,
            hostname: "node-a".into(),
            address_nonce: 0,
            endpoints: vec![],
            nat_type: crate::proto::NatType::Unknown,
            introducer: false,
            routes: vec![],
            control_port: keys.control_port(),
            wireguard_port: 51820,
            relay_load: None,
            mesh_ipv4: keys.mesh_ipv4(&wg, 0),
            mesh_ipv6: keys.mesh_ipv6(&wg),
        };
        let signed = record
            .sign(keys.network_id(), |m| id.sign(m))
            .expect("record signs");
        (record, signed)
    }

    #[test]
    fn own_item_opens_on_the_other_side_and_is_a_valid_bep44_item() {
        let keys = MeshKeys::derive(&MeshSecret::from_bytes([3; 32]));
        let id = NodeIdentity::from_seed(&[9; 32]);
        let (record, signed) = signed_record(&id, &keys, 1_700_000_000_000);
        let item =
            build_item(&keys, id.ed25519_public(), &record, &signed, |m| id.sign(m)).unwrap();
        assert_eq!(item.seq(), 1_700_000_000_000);
        assert_eq!(item.salt(), Some(&keys.dht_item_salt()[..]));
        // mainline's own check of the BEP 44 signature accepts it.
        let again = MutableItem::new(
            mainline::SigningKey::from_bytes(&[9; 32]),
            item.value(),
            item.seq(),
            Some(keys.dht_item_salt()),
        );
        assert_eq!(again.signature(), item.signature());
        let (got, got_signed) = open_peer_item(&keys, &item, None).unwrap();
        assert_eq!(got, record);
        assert_eq!(got_signed, signed);
        assert!(matches!(
            open_peer_item(&keys, &item, Some(record.sequence)),
            Err(ItemError::Record(RecordError::Stale { .. }))
        ));
        // Another mesh cannot read it.
        let other = MeshKeys::derive(&MeshSecret::from_bytes([4; 32]));
        assert!(open_peer_item(&other, &item, None).is_err());
        // Someone else's record under one's own key is refused.
        let mallory = NodeIdentity::from_seed(&[10; 32]);
        let stolen = MutableItem::new(
            mainline::SigningKey::from_bytes(&[10; 32]),
            item.value(),
            item.seq(),
            Some(keys.dht_item_salt()),
        );
        assert_eq!(*stolen.key(), mallory.ed25519_public());
        assert!(matches!(
            open_peer_item(&keys, &stolen, None),
            Err(ItemError::WrongSigner)
        ));
    }
}
