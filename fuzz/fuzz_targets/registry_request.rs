//! Fuzz target: the registry server's request handling (`Registry::handle`, PROTOCOL.md §15)
//! over one in-memory store kept across inputs. The first byte picks a mode:
//! - raw: method, path, headers and body all from the input (what any client can send);
//! - signed: the input's method, path (under a real or an arbitrary registry id) and body,
//!   signed by a member at an input-chosen clock offset, so parsing past the 401 is reached;
//! - entry: a valid entry of an input-chosen node, seq and ttl (optionally corrupted), PUT or
//!   DELETEd by a member, so the store, seq, TTL and capacity paths are reached.
//!
//! Invariants: the status is one the API defines (never 500); a 200 body is a list whose
//! entries all verify under the registry id; a stored entry is listed at once.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wgmesh::proto::record::SignedRecord;
use wgmesh::proto::registry::{
    Entry, authorization, decode_list, delete_proof, member_key, seal_record, slot_key,
};
use wgmesh::proto::{MeshKeys, MeshSecret};
use wgmesh::registry_server::handler::{MeshPolicy, Registry, Request};
use wgmesh::registry_server::limits::Limits;
use wgmesh::registry_server::store::Store;

const BASE_MS: u64 = 1_800_000_000_000;

struct World {
    registry: Registry,
    keys: MeshKeys,
    member: SigningKey,
    rid: [u8; 8],
    sealed: Vec<u8>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let keys = MeshKeys::derive(&MeshSecret::from_bytes([7; 32]));
        let limits = Limits {
            rate_per_sec: 1e12,
            burst: 1e12,
            max_clients: 1000,
            max_meshes: 16,
            ..Limits::default()
        };
        let store = Store::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let record = SignedRecord {
            body: vec![0xa5; 180],
            signature: [3; 64],
        };
        World {
            registry: Registry::new(store, limits, MeshPolicy::default()),
            member: member_key(&keys),
            rid: keys.registry_id(),
            sealed: seal_record(&keys, &record, &[1; 24]).unwrap_or_default(),
            keys,
        }
    })
}

/// A cursor over the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    /// A length-prefixed (1 byte) string.
    fn text(&mut self) -> String {
        let n = usize::from(self.byte());
        String::from_utf8_lossy(self.bytes(n)).into_owned()
    }
    fn rest(&mut self) -> &'a [u8] {
        self.bytes(usize::MAX)
    }
}

const METHODS: [&str; 6] = ["GET", "PUT", "DELETE", "POST", "HEAD", "get"];

fn check(w: &World, rid: &[u8; 8], status: u16, body: &[u8]) {
    assert!(
        matches!(
            status,
            200 | 204 | 400 | 401 | 403 | 404 | 405 | 409 | 413 | 429 | 507
        ),
        "status {status}: {}",
        String::from_utf8_lossy(body)
    );
    if status == 200 {
        let entries = decode_list(body).unwrap_or_else(|e| panic!("200 body is no list: {e}"));
        for e in entries {
            e.verify(rid)
                .unwrap_or_else(|err| panic!("listed entry does not verify: {err}"));
        }
    }
    let _ = &w.keys;
}

fn send(
    w: &World,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    peer: IpAddr,
    now_ms: u64,
) -> (u16, Vec<u8>) {
    let r = w.registry.handle(
        &Request {
            method,
            path_and_query: path,
            headers,
            body,
        },
        peer,
        now_ms,
    );
    (r.status, r.body)
}

fn signed_headers(w: &World, method: &str, path: &str, body: &[u8], time: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&authorization(&w.member, method, path, time, body)) {
        h.insert(http::header::AUTHORIZATION, v);
    }
    h.insert("x-wgmesh-time", HeaderValue::from(time));
    h
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut input = Input(data);
    let mode = input.byte();
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, input.byte(), input.byte()));
    // the clock moves within ~18 h so entries expire between inputs
    let now_ms = BASE_MS + u64::from(input.u16()) * 1000;
    let now = now_ms / 1000;
    match mode % 3 {
        0 => {
            let method = input.text();
            let path = input.text();
            let mut headers = HeaderMap::new();
            for _ in 0..input.byte() % 4 {
                let (name, value) = (input.text(), input.text());
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) {
                    headers.append(n, v);
                }
            }
            let body = input.rest();
            let (status, out) = send(w, &method, &path, &headers, body, peer, now_ms);
            check(w, &w.rid, status, &out);
        }
        1 => {
            let method = METHODS[usize::from(input.byte()) % METHODS.len()];
            let rid = if input.byte() % 2 == 0 {
                w.rid
            } else {
                let mut r = [0u8; 8];
                r.copy_from_slice(&[input.bytes(8), &[0u8; 8][..]].concat()[..8]);
                r
            };
            let tail = input.text();
            let path = format!("/v1/meshes/{}/entries{tail}", hex::encode(rid));
            let skew = i64::from(input.u16()) % 800 - 400;
            let time = now.saturating_add_signed(skew);
            let body = input.rest();
            let headers = signed_headers(w, method, &path, body, time);
            let (status, out) = send(w, method, &path, &headers, body, peer, now_ms);
            check(w, &rid, status, &out);
        }
        _ => {
            let node = input.byte() % 32;
            let seq = u64::from(input.u16());
            let ttl = input.u16() % 4000;
            let delete = input.byte() % 4 == 0;
            let corrupt = input.u16();
            let slot_key = slot_key(&[node; 32], &w.rid);
            let slot = hex::encode(slot_key.verifying_key().to_bytes());
            let path = format!("/v1/meshes/{}/entries/{slot}", hex::encode(w.rid));
            let mut body = if delete {
                delete_proof(&slot_key, &w.rid, seq).to_vec()
            } else {
                match Entry::sign(&slot_key, &w.rid, seq, ttl, w.sealed.clone()) {
                    Ok(e) => e.encode(),
                    Err(_) => input.rest().to_vec(),
                }
            };
            if corrupt % 7 == 0 && !body.is_empty() {
                let i = usize::from(corrupt) % body.len();
                body[i] ^= 1 << (corrupt % 8);
            }
            let method = if delete { "DELETE" } else { "PUT" };
            let headers = signed_headers(w, method, &path, &body, now);
            let (status, out) = send(w, method, &path, &headers, &body, peer, now_ms);
            check(w, &w.rid, status, &out);
            if status == 204 && !delete {
                let list_path = format!("/v1/meshes/{}/entries", hex::encode(w.rid));
                let headers = signed_headers(w, "GET", &list_path, b"", now);
                let (status, out) = send(w, "GET", &list_path, &headers, b"", peer, now_ms);
                check(w, &w.rid, status, &out);
                let listed = decode_list(&out).unwrap_or_default();
                let stored =
                    Entry::decode(&body).unwrap_or_else(|e| panic!("stored a bad entry: {e}"));
                assert!(listed.contains(&stored), "a stored entry is not listed");
            }
        }
    }
});
