//! Fuzz target: the signed-record decoder, the record body decoder and full verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgmesh::proto::{MeshKeys, MeshSecret, NodeRecord, RecordVerifier, SignedRecord};

fuzz_target!(|data: &[u8]| {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([7; 32]));
    if let Ok(signed) = SignedRecord::decode(data) {
        let _ = RecordVerifier::new(&keys).verify(&signed, Some(1));
    }
    if let Ok(record) = NodeRecord::decode_body(data) {
        // Whatever decodes must re-encode and decode to the same record.
        let again = NodeRecord::decode_body(&record.encode_body()).ok();
        assert_eq!(again.as_ref(), Some(&record));
    }
});
