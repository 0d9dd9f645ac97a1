//! The value of a node's BEP 44 mutable DHT item (PROTOCOL.md §14): the node's signed record
//! sealed under the control key, so DHT observers learn nothing from it. Layout:
//! `nonce (24) ‖ XChaCha20-Poly1305(control-key, nonce, aad = "wgmesh/v2 dht item", signed
//! record)`, at most [`MAX_DHT_ITEM_BYTES`] so the bencoded value stays within BEP 44's
//! 1000 bytes. The AAD differs from every control envelope's, so an item can never be replayed
//! as a control message (nor the reverse). Opening checks the size before decrypting.

use rand_core::{OsRng, RngCore};

use super::derive::MeshKeys;
use super::record::{RecordError, SignedRecord};
use super::sealed::{self, NONCE_BYTES, TAG_BYTES};

/// Associated data of every sealed item (domain separation from the control envelope).
pub const DHT_ITEM_AAD: &[u8] = b"wgmesh/v2 dht item";
/// Most bytes of a sealed item: the bencoded value (`996:` + 996 bytes) is then 1000 bytes.
pub const MAX_DHT_ITEM_BYTES: usize = 996;
/// Largest signed record that fits in an item.
pub const MAX_DHT_ITEM_RECORD_BYTES: usize = MAX_DHT_ITEM_BYTES - NONCE_BYTES - TAG_BYTES;

/// Why an item could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DhtItemError {
    #[error(
        "this node's record is {0} bytes, more than the {MAX_DHT_ITEM_RECORD_BYTES} a DHT item holds: advertise fewer routes or endpoints to be found through the DHT item"
    )]
    RecordTooLarge(usize),
    #[error("DHT item of {0} bytes is outside 41..={MAX_DHT_ITEM_BYTES}")]
    Size(usize),
    #[error("DHT item does not decrypt (another mesh, or altered)")]
    Decrypt,
    #[error("DHT item holds no valid signed record: {0}")]
    Record(#[from] RecordError),
}

/// The message a BEP 44 mutable item's Ed25519 signature covers:
/// `4:salt<len>:<salt>3:seqi<seq>e1:v<len>:<value>` (bencoded fragments). It can never equal
/// a wgmesh record or goodbye signing message (those start with `wgmesh/v2 `).
pub fn bep44_signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(salt.len() + value.len() + 40);
    out.extend_from_slice(format!("4:salt{}:", salt.len()).as_bytes());
    out.extend_from_slice(salt);
    out.extend_from_slice(format!("3:seqi{seq}e1:v{}:", value.len()).as_bytes());
    out.extend_from_slice(value);
    out
}

/// Seals `record` with a fresh random nonce.
pub fn seal_item(keys: &MeshKeys, record: &SignedRecord) -> Result<Vec<u8>, DhtItemError> {
    let mut nonce = [0u8; NONCE_BYTES];
    OsRng.fill_bytes(&mut nonce);
    seal_item_with_nonce(keys, record, &nonce)
}

/// Seals `record` with a given nonce (test vectors; never reuse a nonce in production).
pub fn seal_item_with_nonce(
    keys: &MeshKeys,
    record: &SignedRecord,
    nonce: &[u8; NONCE_BYTES],
) -> Result<Vec<u8>, DhtItemError> {
    let plain = record.encode();
    if plain.len() > MAX_DHT_ITEM_RECORD_BYTES {
        return Err(DhtItemError::RecordTooLarge(plain.len()));
    }
    Ok(sealed::seal(keys, DHT_ITEM_AAD, &plain, nonce))
}

/// Opens an item: the signed record inside (not yet verified: the caller runs the record
/// verifier and checks the signer is the item's key).
pub fn open_item(keys: &MeshKeys, value: &[u8]) -> Result<SignedRecord, DhtItemError> {
    if value.len() > MAX_DHT_ITEM_BYTES || value.len() <= NONCE_BYTES + TAG_BYTES {
        return Err(DhtItemError::Size(value.len()));
    }
    let plain = sealed::open(keys, DHT_ITEM_AAD, value).ok_or(DhtItemError::Decrypt)?;
    Ok(SignedRecord::decode(&plain)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MeshSecret;

    fn keys(b: u8) -> MeshKeys {
        MeshKeys::derive(&MeshSecret::from_bytes([b; 32]))
    }

    fn record(body_len: usize) -> SignedRecord {
        SignedRecord {
            body: vec![0xa0; body_len],
            signature: [1; 64],
        }
    }

    #[test]
    fn round_trip_and_other_mesh_refused() {
        let r = record(300);
        let item = seal_item(&keys(1), &r).unwrap();
        assert_eq!(item.len(), 24 + r.encode().len() + 16);
        assert_eq!(open_item(&keys(1), &item).unwrap(), r);
        assert_eq!(open_item(&keys(2), &item), Err(DhtItemError::Decrypt));
    }

    #[test]
    fn size_limits_hold_before_decrypting() {
        let k = keys(1);
        assert_eq!(
            open_item(&k, &[0; MAX_DHT_ITEM_BYTES + 1]),
            Err(DhtItemError::Size(MAX_DHT_ITEM_BYTES + 1))
        );
        assert_eq!(open_item(&k, &[0; 40]), Err(DhtItemError::Size(40)));
        // The largest record that fits gives exactly the limit.
        let mut body = 0;
        while record(body + 1).encode().len() <= MAX_DHT_ITEM_RECORD_BYTES {
            body += 1;
        }
        assert_eq!(
            seal_item(&k, &record(body)).unwrap().len(),
            MAX_DHT_ITEM_BYTES
        );
        assert!(matches!(
            seal_item(&k, &record(body + 1)),
            Err(DhtItemError::RecordTooLarge(_))
        ));
    }

    #[test]
    fn bep44_signable_matches_the_bep() {
        assert_eq!(
            bep44_signable(b"foobar", 1, b"Hello World!"),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!".to_vec()
        );
    }

    #[test]
    fn a_control_envelope_is_not_an_item() {
        let k = keys(1);
        let r = record(100);
        let payload = r.encode();
        let env = crate::proto::envelope::seal(
            k.control_key(),
            crate::proto::MessageType::Announce,
            &payload,
        )
        .unwrap();
        assert!(open_item(&k, &env).is_err());
    }
}
