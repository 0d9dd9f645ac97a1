//! The peer cache file `<state-dir>/<iface>-peers.cbor`: every known peer's signed record, when
//! it was last seen and the endpoint last used, so a restarted node reaches its peers without
//! any discovery. Written atomically (temp + fsync + rename, mode 0600). A truncated or corrupt
//! file is reported, moved aside to `*.corrupt` for inspection, and ignored — never fatal, and
//! never overwritten before a good cache exists. Records read back are verified again by the
//! caller before use (signatures decide, not the file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ciborium::Value;

use crate::identity::state::write_private_file_atomically;
use crate::mesh::{CachedPeer, Millis};
use crate::proto::cbor::{self, IntMap, int_map, uint};
use crate::proto::record::{RecordVerifier, SignedRecord};

/// Format version written in field 0.
const CACHE_VERSION: u64 = 1;
/// Largest cache file read (a full store of 1000 peers is about 1.2 MB).
pub const MAX_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Most entries read.
const MAX_CACHE_ENTRIES: usize = 10_000;

/// One cached peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub record: SignedRecord,
    /// Unix milliseconds the peer was last seen directly.
    pub last_seen_unix_ms: u64,
    /// The endpoint last used for it.
    pub endpoint: Option<SocketAddr>,
}

/// Why the cache could not be used (never fatal: the daemon logs it and starts empty).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("peer cache {path} is unreadable: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("peer cache {path} is corrupt ({why}); moved aside to {moved_to}, starting without it")]
    Corrupt {
        path: PathBuf,
        why: String,
        moved_to: PathBuf,
    },
    #[error("cannot write the peer cache: {0}")]
    Write(String),
}

/// The cache path of an interface.
pub fn cache_path(state_dir: &Path, interface: &str) -> PathBuf {
    state_dir.join(format!("{interface}-peers.cbor"))
}

/// Encodes the cache file.
pub fn encode_cache(entries: &[CacheEntry]) -> Vec<u8> {
    let items = entries
        .iter()
        .map(|e| {
            let mut fields = vec![(1, e.record.to_value()), (2, uint(e.last_seen_unix_ms))];
            if let Some(ep) = &e.endpoint {
                fields.push((3, cbor::encode_addr(ep)));
            }
            int_map(fields)
        })
        .collect();
    cbor::encode(&int_map(vec![
        (0, uint(CACHE_VERSION)),
        (1, Value::Array(items)),
    ]))
}

/// Decodes a cache file; any defect makes the whole file invalid.
pub fn decode_cache(bytes: &[u8]) -> Result<Vec<CacheEntry>, String> {
    let mut m = IntMap::decode(bytes, MAX_CACHE_BYTES).map_err(|e| e.to_string())?;
    let version = m.uint(0, u64::MAX).map_err(|e| e.to_string())?;
    if version != CACHE_VERSION {
        return Err(format!(
            "format version {version}, expected {CACHE_VERSION}"
        ));
    }
    let items = m
        .array_max(1, MAX_CACHE_ENTRIES)
        .map_err(|e| e.to_string())?;
    items
        .into_iter()
        .map(|item| {
            let mut e = IntMap::from_value(item).map_err(|e| e.to_string())?;
            let record = SignedRecord::from_value(e.required(1).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let last_seen_unix_ms = e.uint(2, u64::MAX).map_err(|e| e.to_string())?;
            let endpoint = match e.optional(3) {
                Some(v) => Some(cbor::decode_addr(v, 3).map_err(|e| e.to_string())?),
                None => None,
            };
            Ok(CacheEntry {
                record,
                last_seen_unix_ms,
                endpoint,
            })
        })
        .collect()
}

/// The file form of the store's cache entries.
pub fn entries_from_store(peers: &[CachedPeer]) -> Vec<CacheEntry> {
    peers
        .iter()
        .map(|p| CacheEntry {
            record: p.signed.clone(),
            last_seen_unix_ms: p.last_seen.0,
            endpoint: p.endpoint,
        })
        .collect()
}

/// Verifies every cached record again (signature, binding, addresses) and returns the ones
/// the store may restore, with how many were refused.
pub fn entries_to_store(
    entries: Vec<CacheEntry>,
    verifier: &RecordVerifier<'_>,
) -> (Vec<CachedPeer>, usize) {
    let mut refused = 0;
    let peers = entries
        .into_iter()
        .filter_map(|e| match verifier.verify(&e.record, None) {
            Ok(record) => Some(CachedPeer {
                record,
                signed: e.record,
                endpoint: e.endpoint,
                last_seen: Millis(e.last_seen_unix_ms),
            }),
            Err(_) => {
                refused += 1;
                None
            }
        })
        .collect();
    (peers, refused)
}

/// Loads the cache. A missing file is an empty cache; a corrupt one is moved aside and
/// reported.
pub fn load_cache(path: &Path) -> Result<Vec<CacheEntry>, CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    decode_cache(&bytes).map_err(|why| {
        let moved_to = path.with_extension("cbor.corrupt");
        let _ = std::fs::rename(path, &moved_to);
        CacheError::Corrupt {
            path: path.to_path_buf(),
            why,
            moved_to,
        }
    })
}

/// Saves the cache atomically (mode 0600). An empty peer set is not written, so a good cache
/// is never replaced by nothing.
pub fn save_cache(path: &Path, entries: &[CacheEntry]) -> Result<bool, CacheError> {
    if entries.is_empty() {
        return Ok(false);
    }
    write_private_file_atomically(path, &encode_cache(entries))
        .map_err(|e| CacheError::Write(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<CacheEntry> {
        (0..n)
            .map(|i| CacheEntry {
                record: SignedRecord {
                    body: vec![i as u8; 40],
                    signature: [i as u8; 64],
                },
                last_seen_unix_ms: 1_700_000_000_000 + i as u64,
                endpoint: (i % 2 == 0)
                    .then(|| format!("192.0.2.{}:51820", i % 250 + 1).parse().unwrap()),
            })
            .collect()
    }

    #[test]
    fn round_trip_and_empty_set_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "wg0");
        assert!(!save_cache(&path, &[]).unwrap());
        assert!(!path.exists());
        let e = entries(5);
        assert!(save_cache(&path, &e).unwrap());
        assert_eq!(load_cache(&path).unwrap(), e);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn store_entries_round_trip_and_forged_records_are_refused() {
        use crate::identity::NodeIdentity;
        use crate::proto::{MeshKeys, MeshSecret, NatType, NodeRecord};
        let keys = MeshKeys::derive(&MeshSecret::from_bytes([4; 32]));
        let id = NodeIdentity::from_seed(&[8; 32]);
        let wg = id.wireguard_public();
        let record = NodeRecord {
            ed25519_public: id.ed25519_public(),
            wireguard_public: wg,
            sequence: 7,
            hostname: "n".into(),
            address_nonce: 0,
            mesh_ipv4: keys.mesh_ipv4(&wg, 0),
            mesh_ipv6: keys.mesh_ipv6(&wg),
            endpoints: vec![],
            nat_type: NatType::Unknown,
            introducer: false,
            routes: vec![],
            control_port: 51900,
            wireguard_port: 51820,
            relay_load: None,
        };
        let signed = record.sign(keys.network_id(), |m| id.sign(m)).unwrap();
        let peer = CachedPeer {
            record,
            signed,
            endpoint: Some("192.0.2.1:51820".parse().unwrap()),
            last_seen: Millis(99),
        };
        let mut file = entries_from_store(std::slice::from_ref(&peer));
        file.push(CacheEntry {
            record: SignedRecord {
                body: vec![1, 2, 3],
                signature: [0; 64],
            },
            last_seen_unix_ms: 1,
            endpoint: None,
        });
        let (back, refused) = entries_to_store(
            decode_cache(&encode_cache(&file)).unwrap(),
            &RecordVerifier::new(&keys),
        );
        assert_eq!(refused, 1);
        assert_eq!(back, vec![peer]);
    }

    #[test]
    fn truncation_at_every_byte_is_reported_and_moved_aside_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "wg0");
        let full = encode_cache(&entries(3));
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            match load_cache(&path) {
                Err(CacheError::Corrupt { moved_to, .. }) => {
                    assert!(!path.exists());
                    assert_eq!(std::fs::read(&moved_to).unwrap(), &full[..cut]);
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(
            load_cache(&path).unwrap().is_empty(),
            "missing file = empty cache"
        );
    }
}
