//! Every status code of the registry API, through [`Registry::handle`] over an in-memory store.

use std::net::{IpAddr, Ipv4Addr};

use ed25519_dalek::SigningKey;
use http::{HeaderMap, HeaderValue};

use super::*;
use crate::proto::MeshSecret;
use crate::proto::derive::MeshKeys;
use crate::proto::record::SignedRecord;
use crate::proto::registry::{
    MAX_ENTRY_BYTES, authorization, delete_proof, member_key, seal_record, slot_key,
};

const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

struct Mesh {
    keys: MeshKeys,
    member: SigningKey,
    rid: [u8; 8],
}

fn mesh(b: u8) -> Mesh {
    let keys = MeshKeys::derive(&MeshSecret::from_bytes([b; 32]));
    Mesh {
        member: member_key(&keys),
        rid: keys.registry_id(),
        keys,
    }
}

fn registry_with(limits: Limits, policy: MeshPolicy) -> Registry {
    let store = Store::in_memory().unwrap_or_else(|e| panic!("{e}"));
    Registry::new(store, limits, policy)
}

fn registry() -> Registry {
    registry_with(
        Limits {
            rate_per_sec: 1000.0,
            burst: 1000.0,
            ..Limits::default()
        },
        MeshPolicy::default(),
    )
}

fn entry(m: &Mesh, node: u8, seq: u64, ttl: u16) -> Entry {
    let record = SignedRecord {
        body: vec![0xa0; 200],
        signature: [1; 64],
    };
    let sealed = seal_record(&m.keys, &record, &[9; 24]).unwrap_or_default();
    Entry::sign(&slot_key(&[node; 32], &m.rid), &m.rid, seq, ttl, sealed)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn slot_hex(m: &Mesh, node: u8) -> String {
    hex::encode(slot_key(&[node; 32], &m.rid).verifying_key().to_bytes())
}

fn entries_path(m: &Mesh) -> String {
    format!("/v1/meshes/{}/entries", hex::encode(m.rid))
}

fn slot_path(m: &Mesh, node: u8) -> String {
    format!("{}/{}", entries_path(m), slot_hex(m, node))
}

/// A request signed by `signer` at `time`.
fn send(
    reg: &Registry,
    signer: Option<&SigningKey>,
    method: &str,
    path: &str,
    body: &[u8],
    time: u64,
    now_ms: u64,
) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(key) = signer {
        let auth = authorization(key, method, path, time, body);
        headers.insert(
            "authorization",
            HeaderValue::from_str(&auth).unwrap_or(HeaderValue::from_static("x")),
        );
        headers.insert("x-wgmesh-time", HeaderValue::from(time));
    }
    let req = Request {
        method,
        path_and_query: path,
        headers: &headers,
        body,
    };
    reg.handle(&req, PEER, now_ms)
}

fn put(reg: &Registry, m: &Mesh, node: u8, e: &Entry, now_ms: u64) -> u16 {
    send(
        reg,
        Some(&m.member),
        "PUT",
        &slot_path(m, node),
        &e.encode(),
        now_ms / 1000,
        now_ms,
    )
    .status
}

fn list(reg: &Registry, m: &Mesh, now_ms: u64) -> Result<Vec<Entry>, u16> {
    let r = send(
        reg,
        Some(&m.member),
        "GET",
        &entries_path(m),
        b"",
        now_ms / 1000,
        now_ms,
    );
    if r.status != 200 {
        return Err(r.status);
    }
    registry::decode_list(&r.body).map_err(|_| 0)
}

#[test]
fn member_publishes_lists_replaces_and_deletes() {
    let reg = registry();
    let m = mesh(1);
    assert_eq!(
        list(&reg, &m, NOW_MS),
        Ok(vec![]),
        "unknown mesh lists empty"
    );
    let a = entry(&m, 1, 10, 600);
    let b = entry(&m, 2, 10, 600);
    assert_eq!(put(&reg, &m, 1, &a, NOW_MS), 204);
    assert_eq!(put(&reg, &m, 2, &b, NOW_MS), 204);
    let mut got = list(&reg, &m, NOW_MS).unwrap_or_default();
    got.sort_by_key(|e| e.slot);
    let mut want = vec![a.clone(), b.clone()];
    want.sort_by_key(|e| e.slot);
    assert_eq!(got, want);
    // newer seq replaces
    let a2 = entry(&m, 1, 11, 600);
    assert_eq!(put(&reg, &m, 1, &a2, NOW_MS), 204);
    assert!(list(&reg, &m, NOW_MS).unwrap_or_default().contains(&a2));
    // delete with a proof of the held seq
    let proof = delete_proof(&slot_key(&[1; 32], &m.rid), &m.rid, 11);
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &proof,
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 204);
    assert_eq!(list(&reg, &m, NOW_MS), Ok(vec![b]));
    // 404 when nothing is held
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &proof,
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn status_409_for_a_seq_not_newer() {
    let reg = registry();
    let m = mesh(1);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 409);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 9, 600), NOW_MS), 409);
    // an older delete proof cannot remove the newer entry
    let proof = delete_proof(&slot_key(&[1; 32], &m.rid), &m.rid, 9);
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &proof,
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 409);
}

#[test]
fn status_401_without_or_with_bad_or_stale_authorization() {
    let reg = registry();
    let m = mesh(1);
    let e = entry(&m, 1, 10, 600);
    let path = slot_path(&m, 1);
    // none
    assert_eq!(
        send(&reg, None, "PUT", &path, &e.encode(), NOW, NOW_MS).status,
        401
    );
    // stale / future beyond the 300 s window
    assert_eq!(
        send(
            &reg,
            Some(&m.member),
            "PUT",
            &path,
            &e.encode(),
            NOW - 301,
            NOW_MS
        )
        .status,
        401
    );
    assert_eq!(
        send(
            &reg,
            Some(&m.member),
            "PUT",
            &path,
            &e.encode(),
            NOW + 301,
            NOW_MS
        )
        .status,
        401
    );
    assert_eq!(
        send(
            &reg,
            Some(&m.member),
            "PUT",
            &path,
            &e.encode(),
            NOW - 300,
            NOW_MS
        )
        .status,
        204
    );
    // signature over another body, another path, another method
    let mut headers = HeaderMap::new();
    let auth = authorization(&m.member, "PUT", &path, NOW, b"other");
    headers.insert(
        "authorization",
        HeaderValue::from_str(&auth).unwrap_or(HeaderValue::from_static("x")),
    );
    headers.insert("x-wgmesh-time", HeaderValue::from(NOW));
    let body = entry(&m, 1, 20, 600).encode();
    let req = Request {
        method: "PUT",
        path_and_query: &path,
        headers: &headers,
        body: &body,
    };
    assert_eq!(reg.handle(&req, PEER, NOW_MS).status, 401);
    let req = Request {
        method: "GET",
        path_and_query: &entries_path(&m),
        headers: &headers,
        body: b"",
    };
    assert_eq!(reg.handle(&req, PEER, NOW_MS).status, 401);
    // garbage headers
    for (auth, time) in [
        ("Basic abc", "1800000000"),
        ("Wgmesh-Member zz:yy", "1800000000"),
        (auth.as_str(), "soon"),
        (auth.as_str(), ""),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(auth).unwrap_or(HeaderValue::from_static("x")),
        );
        headers.insert(
            "x-wgmesh-time",
            HeaderValue::from_str(time).unwrap_or(HeaderValue::from_static("x")),
        );
        let req = Request {
            method: "PUT",
            path_and_query: &path,
            headers: &headers,
            body: &body,
        };
        assert_eq!(reg.handle(&req, PEER, NOW_MS).status, 401, "{auth} {time}");
    }
    // time header missing
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&auth).unwrap_or(HeaderValue::from_static("x")),
    );
    let req = Request {
        method: "PUT",
        path_and_query: &path,
        headers: &headers,
        body: &body,
    };
    assert_eq!(reg.handle(&req, PEER, NOW_MS).status, 401);
}

#[test]
fn status_403_for_another_meshs_verifier_once_pinned() {
    let reg = registry();
    let m = mesh(1);
    let other = mesh(2);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
    // another mesh's member writes a valid entry under m's registry id: refused
    let intruder = Mesh {
        member: other.member.clone(),
        keys: other.keys,
        rid: m.rid,
    };
    assert_eq!(
        put(&reg, &intruder, 5, &entry(&intruder, 5, 10, 600), NOW_MS),
        403
    );
    assert_eq!(list(&reg, &intruder, NOW_MS), Err(403), "and cannot read");
    // a stranger's own key, never pinned, on a fresh registry id is pinned on first write
    assert_eq!(
        put(&reg, &mesh(2), 1, &entry(&mesh(2), 1, 10, 600), NOW_MS),
        204
    );
}

#[test]
fn status_403_when_a_member_writes_or_deletes_another_nodes_slot() {
    let reg = registry();
    let m = mesh(1);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
    // node 2 signs its own entry but files it in node 1's slot
    let mine = entry(&m, 2, 99, 600);
    let r = send(
        &reg,
        Some(&m.member),
        "PUT",
        &slot_path(&m, 1),
        &mine.encode(),
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 403);
    // node 2 forges an entry claiming node 1's slot, signed with its own key
    let mut forged = entry(&m, 1, 99, 600);
    forged.signature = entry(&m, 2, 99, 600).signature;
    let r = send(
        &reg,
        Some(&m.member),
        "PUT",
        &slot_path(&m, 1),
        &forged.encode(),
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 403);
    // node 2 deletes node 1's slot with its own key
    let proof = delete_proof(&slot_key(&[2; 32], &m.rid), &m.rid, 99);
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &proof,
        NOW,
        NOW_MS,
    );
    assert_eq!(r.status, 403);
    // an entry signed for another registry id
    let other_rid = mesh(3).rid;
    let sealed = entry(&m, 1, 100, 600).sealed;
    let cross = Entry::sign(&slot_key(&[1; 32], &m.rid), &other_rid, 100, 600, sealed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put(&reg, &m, 1, &cross, NOW_MS), 403);
    assert_eq!(list(&reg, &m, NOW_MS).map(|l| l[0].seq), Ok(10));
}

#[test]
fn pinned_only_refuses_unlisted_meshes_and_operator_pins_win() {
    let reg = registry_with(
        Limits {
            rate_per_sec: 1000.0,
            burst: 1000.0,
            ..Limits::default()
        },
        MeshPolicy { pinned_only: true },
    );
    let m = mesh(1);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 403);
    assert_eq!(list(&reg, &m, NOW_MS), Err(403));
    reg.pin_operator_meshes(&[(m.rid, m.member.verifying_key().to_bytes())], NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
    // TOFU: a squatter pinned first; the operator's pin replaces it and drops its entries
    let reg = registry();
    let squatter = Mesh {
        member: mesh(2).member,
        keys: mesh(2).keys,
        rid: m.rid,
    };
    assert_eq!(
        put(&reg, &squatter, 1, &entry(&squatter, 1, 10, 600), NOW_MS),
        204
    );
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 403);
    reg.pin_operator_meshes(&[(m.rid, m.member.verifying_key().to_bytes())], NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list(&reg, &m, NOW_MS), Ok(vec![]));
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
}

#[test]
fn expired_entries_are_not_listed_and_can_be_replaced() {
    let reg = registry();
    let m = mesh(1);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 60), NOW_MS), 204);
    assert_eq!(list(&reg, &m, NOW_MS + 59_000).map(|l| l.len()), Ok(1));
    assert_eq!(list(&reg, &m, NOW_MS + 60_000).map(|l| l.len()), Ok(0));
    let later = NOW_MS + 61_000;
    // after expiry, delete finds nothing and the slot takes an entry again
    let proof = delete_proof(&slot_key(&[1; 32], &m.rid), &m.rid, 10);
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &proof,
        later / 1000,
        later,
    );
    assert_eq!(r.status, 404);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 11, 60), later), 204);
    assert_eq!(reg.sweep(later / 1000 + 60).ok(), Some((1, 0)));
}

#[test]
fn status_400_for_malformed_ids_and_bodies() {
    let reg = registry();
    let m = mesh(1);
    let time = NOW;
    let bad_paths = [
        format!("/v1/meshes/{}/entries", "zz".repeat(8)),
        format!("/v1/meshes/{}/entries", "ab".repeat(7)),
        format!("{}/{}", entries_path(&m), "ab".repeat(31)),
        format!("{}/{}", entries_path(&m), "xy".repeat(32)),
    ];
    for path in &bad_paths {
        let method = if path.matches('/').count() == 5 {
            "PUT"
        } else {
            "GET"
        };
        assert_eq!(
            send(&reg, Some(&m.member), method, path, b"", time, NOW_MS).status,
            400,
            "{path}"
        );
    }
    // PUT bodies that are not one entry
    let good = entry(&m, 1, 10, 600).encode();
    let mut version = good.clone();
    version[0] = 9;
    let mut trailing = good.clone();
    trailing.truncate(good.len() - 1);
    for body in [vec![], vec![1u8; 10], version, trailing] {
        let r = send(
            &reg,
            Some(&m.member),
            "PUT",
            &slot_path(&m, 1),
            &body,
            time,
            NOW_MS,
        );
        assert_eq!(r.status, 400);
    }
    // a delete proof of the wrong size
    let r = send(
        &reg,
        Some(&m.member),
        "DELETE",
        &slot_path(&m, 1),
        &[0; 71],
        time,
        NOW_MS,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn status_404_and_405_for_routes() {
    let reg = registry();
    let m = mesh(1);
    for path in [
        "/",
        "/v1",
        "/v1/meshes/",
        "/v2/meshes/0102030405060708/entries",
        &format!("{}/x/y", slot_path(&m, 1)),
    ] {
        assert_eq!(
            send(&reg, Some(&m.member), "GET", path, b"", NOW, NOW_MS).status,
            404,
            "{path}"
        );
    }
    let r = send(
        &reg,
        Some(&m.member),
        "POST",
        &entries_path(&m),
        b"",
        NOW,
        NOW_MS,
    );
    assert_eq!((r.status, r.allow), (405, Some("GET")));
    let r = send(
        &reg,
        Some(&m.member),
        "GET",
        &slot_path(&m, 1),
        b"",
        NOW,
        NOW_MS,
    );
    assert_eq!((r.status, r.allow), (405, Some("PUT, DELETE")));
    // a query is signed and ignored by routing
    let path = format!("{}?x=1", entries_path(&m));
    assert_eq!(
        send(&reg, Some(&m.member), "GET", &path, b"", NOW, NOW_MS).status,
        200
    );
}

#[test]
fn status_413_for_large_bodies_declared_or_not() {
    let reg = registry();
    let m = mesh(1);
    let big = vec![0u8; MAX_ENTRY_BYTES + 1];
    assert_eq!(
        send(
            &reg,
            Some(&m.member),
            "PUT",
            &slot_path(&m, 1),
            &big,
            NOW,
            NOW_MS
        )
        .status,
        413
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(MAX_ENTRY_BYTES + 1));
    assert_eq!(
        reg.admit(&headers, PEER, NOW_MS).map_err(|r| r.status),
        Err(413)
    );
    headers.insert("content-length", HeaderValue::from(MAX_ENTRY_BYTES));
    assert_eq!(
        reg.admit(&headers, PEER, NOW_MS).map_err(|r| r.status),
        Ok(())
    );
    headers.insert("content-length", HeaderValue::from_static("lots"));
    assert_eq!(
        reg.admit(&headers, PEER, NOW_MS).map_err(|r| r.status),
        Err(400)
    );
}

#[test]
fn status_429_with_retry_after_per_client() {
    let reg = registry_with(
        Limits {
            rate_per_sec: 1.0,
            burst: 2.0,
            ..Limits::default()
        },
        MeshPolicy::default(),
    );
    let m = mesh(1);
    assert_eq!(list(&reg, &m, NOW_MS), Ok(vec![]));
    assert_eq!(list(&reg, &m, NOW_MS), Ok(vec![]));
    let r = send(
        &reg,
        Some(&m.member),
        "GET",
        &entries_path(&m),
        b"",
        NOW,
        NOW_MS,
    );
    assert_eq!((r.status, r.retry_after), (429, Some(1)));
    // another client is served
    let headers = HeaderMap::new();
    let req = Request {
        method: "GET",
        path_and_query: "/",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        reg.handle(&req, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), NOW_MS)
            .status,
        404
    );
    assert_eq!(list(&reg, &m, NOW_MS + 1000), Ok(vec![]));
}

#[test]
fn status_507_when_a_mesh_or_the_server_is_full() {
    let reg = registry_with(
        Limits {
            rate_per_sec: 1e9,
            burst: 1e9,
            max_meshes: 1,
            ..Limits::default()
        },
        MeshPolicy::default(),
    );
    let m = mesh(1);
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 10, 600), NOW_MS), 204);
    let n = mesh(2);
    assert_eq!(put(&reg, &n, 1, &entry(&n, 1, 10, 600), NOW_MS), 507);
    // fill m's registry id to MAX_LIST_ENTRIES through the store (signing 4096 is slow)
    {
        let mut store = reg.store();
        for i in 1..MAX_LIST_ENTRIES as u32 {
            let mut slot = [0u8; 32];
            slot[..4].copy_from_slice(&i.to_be_bytes());
            store
                .put(&m.rid, &slot, 1, NOW + 600, &[0], NOW)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert_eq!(put(&reg, &m, 2, &entry(&m, 2, 10, 600), NOW_MS), 507);
    // the held slots still take newer entries
    assert_eq!(put(&reg, &m, 1, &entry(&m, 1, 11, 600), NOW_MS), 204);
}
