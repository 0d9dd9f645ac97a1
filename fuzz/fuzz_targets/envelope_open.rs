//! Fuzz target: the envelope opener and every payload decoder behind it. Inputs are raw
//! datagrams; half of them are first sealed under the mesh key so the fuzzer reaches the
//! payload and record decoders past the AEAD (announce, hello/reply/records, goodbye, probe,
//! stem).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgmesh::proto::envelope::{self, MessageType};
use wgmesh::proto::messages::{Message, Stem};
use wgmesh::proto::{MeshKeys, MeshSecret, RecordVerifier};

fuzz_target!(|data: &[u8]| {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([7; 32]));
    // Raw datagram, as an attacker without the key sends it.
    let _ = Message::open(&keys, data);
    // The same bytes as a payload sealed by a member, for each type.
    if let Some((&t, payload)) = data.split_first() {
        let ty = MessageType::ALL[usize::from(t) % MessageType::ALL.len()];
        if let Ok(sealed) = envelope::seal(keys.control_key(), ty, payload) {
            match Message::open(&keys, &sealed) {
                Ok(Message::Announce { record }) | Ok(Message::Stem(Stem { record, .. })) => {
                    let _ = RecordVerifier::new(&keys).verify(&record, None);
                }
                _ => {}
            }
        }
    }
});
