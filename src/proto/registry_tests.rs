//! Unit tests of the registry formats: round trips, limits before allocation, signatures that
//! bind slot, registry id and request.

use super::*;
use crate::proto::MeshSecret;

fn keys(b: u8) -> MeshKeys {
    MeshKeys::derive(&MeshSecret::from_bytes([b; 32]))
}

const RID: [u8; 8] = [7; 8];

fn record() -> SignedRecord {
    SignedRecord {
        body: vec![0xa0; 200],
        signature: [1; 64],
    }
}

fn entry(node: u8, seq: u64) -> Entry {
    let sealed = seal_record(&keys(1), &record(), &[9; 24]).unwrap();
    Entry::sign(&slot_key(&[node; 32], &RID), &RID, seq, 3600, sealed).unwrap()
}

#[test]
fn entry_round_trips_and_opens_only_with_the_mesh_key() {
    let e = entry(1, 5);
    let wire = e.encode();
    let back = Entry::decode(&wire).unwrap();
    assert_eq!(back, e);
    back.verify(&RID).unwrap();
    assert_eq!(open_record(&keys(1), &back.sealed).unwrap(), record());
    assert_eq!(
        open_record(&keys(2), &back.sealed),
        Err(RegistryError::Decrypt)
    );
}

#[test]
fn slot_keys_differ_per_node_and_registry_and_are_stable() {
    let a = slot_key(&[1; 32], &RID).verifying_key();
    assert_eq!(a, slot_key(&[1; 32], &RID).verifying_key());
    assert_ne!(a, slot_key(&[2; 32], &RID).verifying_key());
    assert_ne!(a, slot_key(&[1; 32], &[8; 8]).verifying_key());
}

#[test]
fn signature_binds_registry_id_seq_and_blob() {
    let e = entry(1, 5);
    assert_eq!(e.verify(&[8; 8]), Err(RegistryError::EntrySignature));
    let mut seq = e.clone();
    seq.seq += 1;
    assert_eq!(seq.verify(&RID), Err(RegistryError::EntrySignature));
    let mut blob = e.clone();
    blob.sealed[30] ^= 1;
    assert_eq!(blob.verify(&RID), Err(RegistryError::EntrySignature));
    // Another node's slot key cannot sign for this slot.
    let other = slot_key(&[2; 32], &RID);
    let mut stolen = e.clone();
    stolen.signature = other.sign(&e.signable(&RID)).to_bytes();
    assert_eq!(stolen.verify(&RID), Err(RegistryError::EntrySignature));
}

#[test]
fn decoder_refuses_bad_sizes_versions_and_ttls() {
    let wire = entry(1, 5).encode();
    assert!(matches!(
        Entry::decode(&wire[..wire.len() - 1]),
        Err(RegistryError::EntrySize(_))
    ));
    let mut longer = wire.clone();
    longer.push(0);
    assert!(matches!(
        Entry::decode(&longer),
        Err(RegistryError::EntrySize(_))
    ));
    let mut version = wire.clone();
    version[0] = 2;
    assert_eq!(Entry::decode(&version), Err(RegistryError::Version(2)));
    let mut ttl = wire.clone();
    ttl[41..43].copy_from_slice(&3601u16.to_be_bytes());
    assert_eq!(Entry::decode(&ttl), Err(RegistryError::Ttl(3601)));
    let mut huge = wire.clone();
    huge[43..45].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        Entry::decode(&huge),
        Err(RegistryError::EntrySize(_))
    ));
    assert!(matches!(
        Entry::decode(&vec![1; MAX_ENTRY_BYTES + 1]),
        Err(RegistryError::EntrySize(_))
    ));
    for n in 0..wire.len() {
        assert!(Entry::decode(&wire[..n]).is_err(), "prefix {n} accepted");
    }
}

#[test]
fn list_round_trips_and_refuses_lies() {
    let list = vec![entry(1, 1), entry(2, 9)];
    let wire = encode_list(&list);
    assert_eq!(decode_list(&wire).unwrap(), list);
    assert_eq!(decode_list(&encode_list(&[])).unwrap(), vec![]);
    let mut more = wire.clone();
    more[1] = 3;
    assert!(decode_list(&more).is_err());
    let mut trailing = wire.clone();
    trailing.push(0);
    assert_eq!(
        decode_list(&trailing),
        Err(RegistryError::List("trailing bytes"))
    );
    assert!(decode_list(&[0xff, 0xff]).is_err());
}

#[test]
fn delete_proof_is_bound_to_slot_and_registry() {
    let k = slot_key(&[1; 32], &RID);
    let slot = k.verifying_key().to_bytes();
    let proof = delete_proof(&k, &RID, 42);
    assert_eq!(verify_delete(&RID, &slot, &proof), Ok(42));
    assert!(verify_delete(&[8; 8], &slot, &proof).is_err());
    let other = slot_key(&[2; 32], &RID).verifying_key().to_bytes();
    assert!(verify_delete(&RID, &other, &proof).is_err());
    assert_eq!(
        verify_delete(&RID, &slot, &proof[..71]),
        Err(RegistryError::DeleteSize(71))
    );
}

#[test]
fn request_signature_binds_method_path_time_and_body() {
    let member = member_key(&keys(1));
    let auth = authorization(&member, "PUT", "/v1/meshes/x/entries/y", 1000, b"body");
    let verifier = verify_request(&auth, "PUT", "/v1/meshes/x/entries/y", 1000, 1100, b"body");
    assert_eq!(verifier, Ok(member_verifier(&keys(1))));
    let bad = |m: &str, p: &str, t: u64, b: &[u8]| verify_request(&auth, m, p, t, 1000, b);
    assert_eq!(
        bad("GET", "/v1/meshes/x/entries/y", 1000, b"body"),
        Err(RegistryError::RequestSignature)
    );
    assert_eq!(
        bad("PUT", "/v1/meshes/x/entries/z", 1000, b"body"),
        Err(RegistryError::RequestSignature)
    );
    assert_eq!(
        bad("PUT", "/v1/meshes/x/entries/y", 1001, b"body"),
        Err(RegistryError::RequestSignature)
    );
    assert_eq!(
        bad("PUT", "/v1/meshes/x/entries/y", 1000, b"bodz"),
        Err(RegistryError::RequestSignature)
    );
    assert!(matches!(
        verify_request(&auth, "PUT", "/v1/meshes/x/entries/y", 1000, 1301, b"body"),
        Err(RegistryError::Clock { .. })
    ));
    for garbage in ["", "Bearer x", "Wgmesh-Member abc:def", "Wgmesh-Member  :"] {
        assert_eq!(
            verify_request(garbage, "PUT", "/", 1000, 1000, b""),
            Err(RegistryError::AuthFormat)
        );
    }
    // Another mesh's member key verifies, but as a different verifier (the server pins one).
    let stranger = authorization(&member_key(&keys(2)), "GET", "/", 1000, b"");
    assert_eq!(
        verify_request(&stranger, "GET", "/", 1000, 1000, b""),
        Ok(member_verifier(&keys(2)))
    );
    assert_ne!(member_verifier(&keys(1)), member_verifier(&keys(2)));
}
