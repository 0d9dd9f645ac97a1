//! The registry's wire formats (PROTOCOL.md §15): what a node files with a registry (a GitHub
//! issue comment or a `wgmesh registry serve` server) and how it proves it may.
//!
//! - An **entry** holds the node's signed record sealed under the control key (the registry
//!   sees an opaque blob), in a **slot** named by a per-node, per-registry-id Ed25519 key
//!   derived from the node's identity seed: unlinkable to the node's own keys, stable across
//!   restarts, and only its owner can sign a newer entry for it or delete it.
//! - Every **request** is signed with the mesh's **membership key** (HKDF label
//!   `registry-member-key`); a server holds only the public half, the **verifier**, so it can
//!   tell members from strangers but can neither forge a record (node keys sign those) nor
//!   read one (the control key seals them).
//!
//! Decoders check every length before allocating; nothing here touches the clock (callers
//! pass `unix_secs`).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::derive::MeshKeys;
use super::record::{MAX_SIGNED_RECORD_BYTES, RecordError, SignedRecord};
use super::sealed::{self, NONCE_BYTES, OVERHEAD};

/// Version byte of the entry layout.
pub const ENTRY_VERSION: u8 = 1;
/// AAD of a sealed record inside an entry (never valid as a DHT item or envelope).
pub const ENTRY_AAD: &[u8] = b"wgmesh/v2 registry entry";
/// Domain of the slot key's entry signature.
pub const ENTRY_SIGN_DOMAIN: &[u8] = b"wgmesh/v2 registry entry";
/// Domain of the slot key's delete signature.
pub const DELETE_SIGN_DOMAIN: &[u8] = b"wgmesh/v2 registry delete";
/// Domain of the membership key's request signature.
pub const REQUEST_SIGN_DOMAIN: &[u8] = b"wgmesh/v2 registry request";
/// HKDF salt of the slot key derivation (IKM = the node's Ed25519 seed, info = registry id).
pub const SLOT_KEY_SALT: &[u8] = b"wgmesh/v2 registry-slot";
/// Longest lifetime an entry may ask for (1 hour).
pub const MAX_TTL_SECS: u16 = 3600;
/// Largest sealed blob: the largest signed record plus nonce and tag.
pub const MAX_SEALED_BYTES: usize = MAX_SIGNED_RECORD_BYTES + OVERHEAD;
/// Bytes before the sealed blob: version, slot, seq, ttl, length.
pub const ENTRY_HEADER_BYTES: usize = 1 + 32 + 8 + 2 + 2;
/// Smallest and largest entry on the wire.
pub const MIN_ENTRY_BYTES: usize = ENTRY_HEADER_BYTES + OVERHEAD + 1 + 64;
pub const MAX_ENTRY_BYTES: usize = ENTRY_HEADER_BYTES + MAX_SEALED_BYTES + 64;
/// Most entries one list response may carry.
pub const MAX_LIST_ENTRIES: usize = 4096;
/// Bytes of a delete proof: seq (8) ‖ signature (64).
pub const DELETE_PROOF_BYTES: usize = 72;
/// A request signed further than this from the server's clock is refused (replay window).
pub const REQUEST_CLOCK_SKEW_SECS: u64 = 300;
/// Name of the header carrying the request time (decimal unix seconds).
pub const TIME_HEADER: &str = "x-wgmesh-time";
/// Scheme of the `Authorization` header: `Wgmesh-Member <verifier hex>:<signature hex>`.
pub const AUTH_SCHEME: &str = "Wgmesh-Member";

/// Why registry data was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RegistryError {
    #[error("registry entry of {0} bytes is outside {MIN_ENTRY_BYTES}..={MAX_ENTRY_BYTES}")]
    EntrySize(usize),
    #[error("registry entry version {0} is not {ENTRY_VERSION}: upgrade wgmesh")]
    Version(u8),
    #[error("registry entry asks for a lifetime of {0} s, outside 1..={MAX_TTL_SECS}")]
    Ttl(u16),
    #[error("registry entry's slot key is not a valid Ed25519 key")]
    SlotKey,
    #[error("registry entry is not signed by its slot's key")]
    EntrySignature,
    #[error("registry list is malformed ({0})")]
    List(&'static str),
    #[error(
        "this node's record is {0} bytes, more than a registry entry holds: advertise fewer routes or endpoints"
    )]
    RecordTooLarge(usize),
    #[error("registry entry does not decrypt (another mesh, or altered)")]
    Decrypt,
    #[error("registry entry holds no valid signed record: {0}")]
    Record(#[from] RecordError),
    #[error("delete proof of {0} bytes, expected {DELETE_PROOF_BYTES}")]
    DeleteSize(usize),
    #[error(
        "authorization header is malformed: expected `{AUTH_SCHEME} <verifier hex>:<signature hex>`"
    )]
    AuthFormat,
    #[error("request signature does not verify (not a member of this mesh, or altered)")]
    RequestSignature,
    #[error(
        "request time {request} is more than {REQUEST_CLOCK_SKEW_SECS} s from the server's {server}: check the clock"
    )]
    Clock { request: u64, server: u64 },
}

/// The mesh's membership signing key (members only).
pub fn member_key(keys: &MeshKeys) -> SigningKey {
    SigningKey::from_bytes(keys.registry_member_seed())
}

/// The mesh's membership verifier: what a registry server pins for a registry id.
pub fn member_verifier(keys: &MeshKeys) -> [u8; 32] {
    member_key(keys).verifying_key().to_bytes()
}

/// The slot key of the node with Ed25519 seed `node_seed` under `registry_id`:
/// `HKDF-SHA256(IKM = node seed, salt = "wgmesh/v2 registry-slot", info = registry id, 32)`
/// taken as an Ed25519 seed.
pub fn slot_key(node_seed: &[u8; 32], registry_id: &[u8; 8]) -> SigningKey {
    let hk = Hkdf::<Sha256>::new(Some(SLOT_KEY_SALT), node_seed);
    let mut seed = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(registry_id, &mut seed);
    SigningKey::from_bytes(&seed)
}

/// Seals a signed record for an entry with a given nonce.
pub fn seal_record(
    keys: &MeshKeys,
    record: &SignedRecord,
    nonce: &[u8; NONCE_BYTES],
) -> Result<Vec<u8>, RegistryError> {
    let plain = record.encode();
    if plain.len() > MAX_SIGNED_RECORD_BYTES {
        return Err(RegistryError::RecordTooLarge(plain.len()));
    }
    Ok(sealed::seal(keys, ENTRY_AAD, &plain, nonce))
}

/// Opens an entry's sealed blob (the record's own signature is the caller's to verify).
pub fn open_record(keys: &MeshKeys, sealed_blob: &[u8]) -> Result<SignedRecord, RegistryError> {
    let plain = sealed::open(keys, ENTRY_AAD, sealed_blob).ok_or(RegistryError::Decrypt)?;
    Ok(SignedRecord::decode(&plain)?)
}

/// One registry entry (decoded; [`Entry::verify`] checks the slot signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub slot: [u8; 32],
    /// Strictly increasing per slot (publishers use unix milliseconds).
    pub seq: u64,
    pub ttl_secs: u16,
    pub sealed: Vec<u8>,
    pub signature: [u8; 64],
}

impl Entry {
    /// Builds and signs an entry for `slot_key`'s slot.
    pub fn sign(
        slot_key: &SigningKey,
        registry_id: &[u8; 8],
        seq: u64,
        ttl_secs: u16,
        sealed: Vec<u8>,
    ) -> Result<Self, RegistryError> {
        if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
            return Err(RegistryError::Ttl(ttl_secs));
        }
        if sealed.len() <= OVERHEAD || sealed.len() > MAX_SEALED_BYTES {
            return Err(RegistryError::EntrySize(
                ENTRY_HEADER_BYTES + sealed.len() + 64,
            ));
        }
        let mut entry = Self {
            slot: slot_key.verifying_key().to_bytes(),
            seq,
            ttl_secs,
            sealed,
            signature: [0; 64],
        };
        entry.signature = slot_key.sign(&entry.signable(registry_id)).to_bytes();
        Ok(entry)
    }

    fn header_and_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_HEADER_BYTES + self.sealed.len() + 64);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&self.slot);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ttl_secs.to_be_bytes());
        // The length fits: decode and sign both bound it by MAX_SEALED_BYTES.
        out.extend_from_slice(&(self.sealed.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.sealed);
        out
    }

    /// What the slot key signs: domain ‖ registry id ‖ the entry without its signature.
    pub fn signable(&self, registry_id: &[u8; 8]) -> Vec<u8> {
        let body = self.header_and_blob();
        let mut out = Vec::with_capacity(ENTRY_SIGN_DOMAIN.len() + 8 + body.len());
        out.extend_from_slice(ENTRY_SIGN_DOMAIN);
        out.extend_from_slice(registry_id);
        out.extend_from_slice(&body);
        out
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header_and_blob();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes one entry from the front of `bytes`; returns it and the bytes it used.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize), RegistryError> {
        if bytes.len() < ENTRY_HEADER_BYTES {
            return Err(RegistryError::EntrySize(bytes.len()));
        }
        if bytes[0] != ENTRY_VERSION {
            return Err(RegistryError::Version(bytes[0]));
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let ttl_secs = u16_at(41);
        let sealed_len = usize::from(u16_at(43));
        let total = ENTRY_HEADER_BYTES + sealed_len + 64;
        if sealed_len <= OVERHEAD || sealed_len > MAX_SEALED_BYTES || bytes.len() < total {
            return Err(RegistryError::EntrySize(total.min(bytes.len())));
        }
        if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
            return Err(RegistryError::Ttl(ttl_secs));
        }
        let mut slot = [0u8; 32];
        slot.copy_from_slice(&bytes[1..33]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[33..41]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[total - 64..total]);
        let entry = Self {
            slot,
            seq: u64::from_be_bytes(seq),
            ttl_secs,
            sealed: bytes[ENTRY_HEADER_BYTES..total - 64].to_vec(),
            signature,
        };
        Ok((entry, total))
    }

    /// Decodes exactly one entry (a request body).
    pub fn decode(bytes: &[u8]) -> Result<Self, RegistryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(RegistryError::EntrySize(bytes.len()));
        }
        let (entry, used) = Self::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(RegistryError::EntrySize(bytes.len()));
        }
        Ok(entry)
    }

    /// Checks the slot key's signature under `registry_id`.
    pub fn verify(&self, registry_id: &[u8; 8]) -> Result<(), RegistryError> {
        let key = VerifyingKey::from_bytes(&self.slot).map_err(|_| RegistryError::SlotKey)?;
        key.verify_strict(
            &self.signable(registry_id),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| RegistryError::EntrySignature)
    }
}

/// A list response: `count (2) ‖ entry*`.
pub fn encode_list(entries: &[Entry]) -> Vec<u8> {
    let count = entries.len().min(MAX_LIST_ENTRIES);
    let mut out = Vec::with_capacity(2 + count * 600);
    out.extend_from_slice(&(count as u16).to_be_bytes());
    for e in &entries[..count] {
        out.extend_from_slice(&e.encode());
    }
    out
}

/// Decodes a list response (entries are not yet verified).
pub fn decode_list(bytes: &[u8]) -> Result<Vec<Entry>, RegistryError> {
    if bytes.len() < 2 {
        return Err(RegistryError::List("shorter than its count"));
    }
    let count = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    if count > MAX_LIST_ENTRIES || bytes.len() > 2 + count * MAX_ENTRY_BYTES {
        return Err(RegistryError::List("too many entries"));
    }
    let mut rest = &bytes[2..];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (entry, used) = Entry::decode_prefix(rest)?;
        out.push(entry);
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        return Err(RegistryError::List("trailing bytes"));
    }
    Ok(out)
}

/// What the slot key signs to delete its entry: domain ‖ registry id ‖ slot ‖ seq.
fn delete_signable(registry_id: &[u8; 8], slot: &[u8; 32], seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DELETE_SIGN_DOMAIN.len() + 48);
    out.extend_from_slice(DELETE_SIGN_DOMAIN);
    out.extend_from_slice(registry_id);
    out.extend_from_slice(slot);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// A delete request's body: `seq (8) ‖ signature (64)`; the server deletes the slot's entry
/// when the signature verifies and `seq` is at least the held entry's.
pub fn delete_proof(slot_key: &SigningKey, registry_id: &[u8; 8], seq: u64) -> [u8; 72] {
    let slot = slot_key.verifying_key().to_bytes();
    let sig = slot_key.sign(&delete_signable(registry_id, &slot, seq));
    let mut out = [0u8; DELETE_PROOF_BYTES];
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..].copy_from_slice(&sig.to_bytes());
    out
}

/// Checks a delete proof for `slot`; returns its seq.
pub fn verify_delete(
    registry_id: &[u8; 8],
    slot: &[u8; 32],
    body: &[u8],
) -> Result<u64, RegistryError> {
    if body.len() != DELETE_PROOF_BYTES {
        return Err(RegistryError::DeleteSize(body.len()));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&body[..8]);
    let seq = u64::from_be_bytes(seq);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&body[8..]);
    let key = VerifyingKey::from_bytes(slot).map_err(|_| RegistryError::SlotKey)?;
    key.verify_strict(
        &delete_signable(registry_id, slot, seq),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| RegistryError::EntrySignature)?;
    Ok(seq)
}

/// What the membership key signs for one HTTP request:
/// `domain ‖ "\n" ‖ METHOD ‖ "\n" ‖ path-and-query ‖ "\n" ‖ unix seconds (decimal) ‖ "\n" ‖
/// SHA-256(body)`.
pub fn request_signable(method: &str, path: &str, unix_secs: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(REQUEST_SIGN_DOMAIN.len() + path.len() + 64);
    out.extend_from_slice(REQUEST_SIGN_DOMAIN);
    out.push(b'\n');
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(unix_secs.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&Sha256::digest(body));
    out
}

/// The `Authorization` header value for a request.
pub fn authorization(
    member: &SigningKey,
    method: &str,
    path: &str,
    unix_secs: u64,
    body: &[u8],
) -> String {
    let sig = member.sign(&request_signable(method, path, unix_secs, body));
    format!(
        "{AUTH_SCHEME} {}:{}",
        hex::encode(member.verifying_key().to_bytes()),
        hex::encode(sig.to_bytes())
    )
}

/// Checks a request's `Authorization` header and time; returns the verifier that signed it
/// (the server then compares it with the one pinned for the registry id).
pub fn verify_request(
    authorization: &str,
    method: &str,
    path: &str,
    request_secs: u64,
    server_secs: u64,
    body: &[u8],
) -> Result<[u8; 32], RegistryError> {
    let rest = authorization
        .strip_prefix(AUTH_SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(RegistryError::AuthFormat)?;
    let (verifier_hex, sig_hex) = rest.split_once(':').ok_or(RegistryError::AuthFormat)?;
    if verifier_hex.len() != 64 || sig_hex.len() != 128 {
        return Err(RegistryError::AuthFormat);
    }
    let mut verifier = [0u8; 32];
    let mut sig = [0u8; 64];
    hex::decode_to_slice(verifier_hex, &mut verifier).map_err(|_| RegistryError::AuthFormat)?;
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| RegistryError::AuthFormat)?;
    if request_secs.abs_diff(server_secs) > REQUEST_CLOCK_SKEW_SECS {
        return Err(RegistryError::Clock {
            request: request_secs,
            server: server_secs,
        });
    }
    let key = VerifyingKey::from_bytes(&verifier).map_err(|_| RegistryError::RequestSignature)?;
    key.verify_strict(
        &request_signable(method, path, request_secs, body),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| RegistryError::RequestSignature)?;
    Ok(verifier)
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
