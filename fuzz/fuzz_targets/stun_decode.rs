//! Fuzz target: the STUN response decoder (limits on the raw bytes, then `stun_codec`) and
//! the pending-transaction table that the control socket feeds with every STUN-looking
//! datagram. Half the inputs get a valid header with the pending transaction id, so the
//! fuzzer reaches the attribute decoders.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use wgmesh::discovery::stun::table::PendingTable;
use wgmesh::discovery::stun::wire::{MAGIC_COOKIE, decode_binding_response};

fuzz_target!(|data: &[u8]| {
    let _ = decode_binding_response(data);
    let id = [0x42; 12];
    let server = "192.0.2.1:3478".parse().expect("literal");
    let mut table = PendingTable::default();
    let _rx = table.register(id, vec![server], Instant::now());
    let _ = table.offer(data, server, Instant::now());
    // The same bytes as the attributes of a Binding success response with the pending id.
    let mut framed = vec![0x01, 0x01];
    framed.extend_from_slice(&u16::try_from(data.len() & 0xfffc).unwrap_or(0).to_be_bytes());
    framed.extend_from_slice(&MAGIC_COOKIE);
    framed.extend_from_slice(&id);
    framed.extend_from_slice(&data[..data.len() & 0xfffc]);
    let _ = table.offer(&framed, server, Instant::now());
});
