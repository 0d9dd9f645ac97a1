//! Fuzz target: opening a BEP 44 item value fetched from the DHT (size limits, AEAD, then the
//! signed-record decoder and verifier). Half of the inputs are first sealed under the mesh key
//! so the fuzzer reaches the record decoder past the AEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgmesh::proto::dht_item::open_item;
use wgmesh::proto::{MeshKeys, MeshSecret, RecordVerifier, SignedRecord};

fuzz_target!(|data: &[u8]| {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([7; 32]));
    // Raw value, as any DHT node can serve it.
    let _ = open_item(&keys, data);
    // The same bytes as a record body sealed by a member.
    let record = SignedRecord {
        body: data.to_vec(),
        signature: [0; 64],
    };
    if let Ok(sealed) = wgmesh::proto::dht_item::seal_item(&keys, &record) {
        if let Ok(opened) = open_item(&keys, &sealed) {
            let _ = RecordVerifier::new(&keys).verify(&opened, None);
        }
    }
});
