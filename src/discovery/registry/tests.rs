//! Unit tests of the registry edge's pure parts: `--registry` parsing, comment bodies, and
//! opening a listed entry (slot signature, expiry, mesh, record signature).

use super::github::{COMMENT_PREFIX, comment_body, parse_comment};
use super::*;
use crate::identity::NodeIdentity;
use crate::proto::registry::{seal_record, slot_key};
use crate::proto::{MeshSecret, NatType};

fn keys(b: u8) -> MeshKeys {
    MeshKeys::derive(&MeshSecret::from_bytes([b; 32]))
}

fn signed_record(id: &NodeIdentity, keys: &MeshKeys, seq: u64) -> SignedRecord {
    let wg = id.wireguard_public();
    NodeRecord {
        ed25519_public: id.ed25519_public(),
        wireguard_public: wg,
        sequence: seq,
        hostname: "node-a".into(),
        address_nonce: 0,
        endpoints: vec![],
        nat_type: NatType::Unknown,
        introducer: false,
        routes: vec![],
        control_port: keys.control_port(),
        wireguard_port: 51820,
        mesh_ipv4: keys.mesh_ipv4(&wg, 0),
        mesh_ipv6: keys.mesh_ipv6(&wg),
        relay_load: None,
    }
    .sign(keys.network_id(), |m| id.sign(m))
    .unwrap()
}

const NOW_MS: u64 = 1_800_000_000_000;

fn entry_for(keys: &MeshKeys, id: &NodeIdentity, seq: u64, ttl: u16) -> Entry {
    let sealed = seal_record(keys, &signed_record(id, keys, seq), &[5; 24]).unwrap();
    Entry::sign(
        &slot_key(&id.seed(), &keys.registry_id()),
        &keys.registry_id(),
        seq,
        ttl,
        sealed,
    )
    .unwrap()
}

#[test]
fn registry_urls_parse_with_clear_errors() {
    assert_eq!(
        RegistryUrl::parse("https://reg.example:8443/").unwrap(),
        RegistryUrl::Http("https://reg.example:8443".into())
    );
    assert_eq!(
        RegistryUrl::parse("http://10.0.0.1:8080/wg").unwrap(),
        RegistryUrl::Http("http://10.0.0.1:8080/wg".into())
    );
    assert_eq!(
        RegistryUrl::parse("github:acme/mesh-registry").unwrap(),
        RegistryUrl::GitHub {
            owner: "acme".into(),
            repo: "mesh-registry".into()
        }
    );
    assert_eq!(
        RegistryUrl::parse("github:acme/mesh-registry")
            .unwrap()
            .label(),
        "github:acme/mesh-registry"
    );
    for (bad, want) in [
        ("ftp://x", RegistryUrlError::Scheme("ftp://x".into())),
        (
            "reg.example:8443",
            RegistryUrlError::Scheme("reg.example:8443".into()),
        ),
        (
            "github:acme",
            RegistryUrlError::GitHubName("github:acme".into()),
        ),
        (
            "github:acme/a/b",
            RegistryUrlError::GitHubName("github:acme/a/b".into()),
        ),
        (
            "github:/x",
            RegistryUrlError::GitHubName("github:/x".into()),
        ),
        ("https://", RegistryUrlError::NoHost("https://".into())),
        (
            "https://:80",
            RegistryUrlError::NoHost("https://:80".into()),
        ),
        (
            "https://u:p@h",
            RegistryUrlError::Extra("https://u:p@h".into()),
        ),
        (
            "https://h/?a=1",
            RegistryUrlError::Extra("https://h/?a=1".into()),
        ),
    ] {
        assert_eq!(RegistryUrl::parse(bad), Err(want), "{bad}");
    }
    // The message says what is expected.
    let msg = RegistryUrl::parse("reg.example").unwrap_err().to_string();
    assert!(
        msg.contains("github:OWNER/REPO") && msg.contains("https://"),
        "{msg}"
    );
}

#[test]
fn comment_bodies_round_trip_and_other_comments_are_ignored() {
    let k = keys(1);
    let id = NodeIdentity::from_seed(&[3; 32]);
    let e = entry_for(&k, &id, NOW_MS, 3600);
    let body = comment_body(&e);
    assert!(body.starts_with(COMMENT_PREFIX));
    assert_eq!(parse_comment(&body), Some(e.clone()));
    assert_eq!(parse_comment(&format!("{body}\n")), Some(e));
    assert_eq!(parse_comment("hello, what is this issue?"), None);
    assert_eq!(parse_comment("wgmesh-entry v1\n!!!"), None);
    assert_eq!(parse_comment("wgmesh-entry v2\nAAAA"), None);
    let huge = format!("{COMMENT_PREFIX}{}", "A".repeat(100_000));
    assert_eq!(parse_comment(&huge), None);
}

#[test]
fn a_listed_entry_opens_into_a_verified_record() {
    let k = keys(1);
    let id = NodeIdentity::from_seed(&[3; 32]);
    let e = entry_for(&k, &id, NOW_MS, 3600);
    let (record, _) = open_entry(&k, &e, NOW_MS + 1000, |_| None).unwrap();
    assert_eq!(record.wireguard_public, id.wireguard_public());
    assert_eq!(record.sequence, NOW_MS);
    // Held already (same or newer sequence): stale.
    let mut asked = None;
    let stale = open_entry(&k, &e, NOW_MS, |key| {
        asked = Some(*key);
        Some(NOW_MS)
    });
    assert!(matches!(
        stale,
        Err(EntryError::Record(RecordError::Stale { .. }))
    ));
    assert_eq!(asked, Some(id.wireguard_public()));
    // Expired.
    assert!(matches!(
        open_entry(&k, &e, NOW_MS + 3_600_001, |_| None),
        Err(EntryError::Expired)
    ));
    // Another mesh: the slot signature is bound to this mesh's registry id.
    assert!(matches!(
        open_entry(&keys(2), &e, NOW_MS, |_| None),
        Err(EntryError::Entry(RegistryError::EntrySignature))
    ));
}

#[test]
fn a_record_signed_for_another_mesh_is_refused_even_if_sealed_here() {
    let k = keys(1);
    let other = keys(2);
    let id = NodeIdentity::from_seed(&[3; 32]);
    // Sealed with this mesh's control key, but the record is signed for another network.
    let sealed = seal_record(&k, &signed_record(&id, &other, NOW_MS), &[5; 24]).unwrap();
    let e = Entry::sign(
        &slot_key(&id.seed(), &k.registry_id()),
        &k.registry_id(),
        NOW_MS,
        3600,
        sealed,
    )
    .unwrap();
    assert!(matches!(
        open_entry(&k, &e, NOW_MS, |_| None),
        Err(EntryError::Record(_))
    ));
}

#[test]
fn github_rate_limits_hold_requests_and_become_back_offs() {
    use super::github::{RateVerdict, rate_verdict};
    let now = 1_000_000;
    let s = Duration::from_secs;
    // Plenty left: nothing held.
    assert_eq!(
        rate_verdict(200, Some(4999), Some(now + 3000), None, "", now),
        RateVerdict::default()
    );
    // The last allowed request succeeded: hold until the reset (at most an hour).
    assert_eq!(
        rate_verdict(200, Some(0), Some(now + 120), None, "", now).hold_until,
        Some(now + 120)
    );
    assert_eq!(
        rate_verdict(200, Some(0), Some(now + 99_999), None, "", now).hold_until,
        Some(now + 3600)
    );
    // Primary limit: 403 with remaining 0 waits for the reset.
    let v = rate_verdict(
        403,
        Some(0),
        Some(now + 40),
        None,
        "API rate limit exceeded",
        now,
    );
    assert_eq!(v.limited, Some(s(40)));
    assert_eq!(v.hold_until, Some(now + 40));
    // Secondary limit: retry-after wins, 429 without one waits a minute, and so does a 403
    // whose message says so.
    let v = rate_verdict(429, Some(10), None, Some(s(15)), "", now);
    assert_eq!((v.limited, v.hold_until), (Some(s(15)), Some(now + 15)));
    assert_eq!(
        rate_verdict(429, None, None, None, "", now).limited,
        Some(s(60))
    );
    assert_eq!(
        rate_verdict(
            403,
            Some(5),
            None,
            None,
            "You have exceeded a secondary rate limit",
            now
        )
        .limited,
        Some(s(60))
    );
    // A plain 403 (no permission) is no rate limit; neither is a 500 with a retry-after.
    assert_eq!(
        rate_verdict(
            403,
            Some(5),
            None,
            None,
            "Resource not accessible by integration",
            now
        ),
        RateVerdict::default()
    );
    assert_eq!(
        rate_verdict(500, Some(5), None, Some(s(3)), "", now).limited,
        None
    );
}

#[test]
fn the_github_token_comes_from_the_file_then_the_credential_then_the_environment() {
    use super::github::token;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    std::fs::write(&file, "ghp_file\n").unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("github-token"), "ghp_cred").unwrap();
    let mut access = RegistryAccess {
        token_file: Some(file.clone()),
        credentials_dir: Some(creds.clone()),
        env_token: Some("ghp_env".into()),
        ..Default::default()
    };
    assert_eq!(token(&access).unwrap().as_str(), "ghp_file");
    access.token_file = None;
    assert_eq!(token(&access).unwrap().as_str(), "ghp_cred");
    access.credentials_dir = Some(dir.path().join("none"));
    assert_eq!(token(&access).unwrap().as_str(), "ghp_env");
    access.env_token = None;
    let err = token(&access).unwrap_err().to_string();
    assert!(
        err.contains("GITHUB_TOKEN") && err.contains("--registry-token-file"),
        "{err}"
    );
    std::fs::write(&file, "two words\n").unwrap();
    access.token_file = Some(file);
    assert!(matches!(
        token(&access),
        Err(RegistryClientError::TokenFile { .. })
    ));
}
