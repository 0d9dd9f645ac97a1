//! Fuzz target: the mesh secret parser. Inputs that would become passphrases of 16 bytes or
//! more are skipped: each would run Argon2id with 64 MiB, which tests nothing new per input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgmesh::proto::MeshSecret;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = MeshSecret::parse_bytes(data);
        return;
    };
    let trimmed = text.trim();
    let passphrase = trimmed.strip_prefix("wgmesh://v1/").map(|r| r.split('?').next().unwrap_or(""));
    let would_stretch = !trimmed.starts_with("wgmesh://v2/")
        && passphrase.unwrap_or(trimmed).trim().len() >= 16
        && text.len() <= 4096;
    if !would_stretch {
        if let Ok(secret) = MeshSecret::parse(text) {
            // A v2 secret must round-trip through its URI.
            let again = MeshSecret::parse(&secret.to_uri()).ok();
            assert_eq!(again.map(|s| *s.as_bytes()), Some(*secret.as_bytes()));
        }
    }
});
