//! Sealing a signed record under the mesh's control key for storage outside the mesh (the DHT
//! item of §14, the registry entry of §15): `nonce (24) ‖ XChaCha20-Poly1305(control-key,
//! nonce, aad, plaintext)`. Each use has its own AAD, so a blob sealed for one place can never
//! be opened as another (nor as a control envelope). Size limits are the caller's.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::derive::MeshKeys;

/// Bytes of the random nonce in front of every sealed blob.
pub const NONCE_BYTES: usize = 24;
/// Bytes of the Poly1305 tag.
pub const TAG_BYTES: usize = 16;
/// What sealing adds to the plaintext.
pub const OVERHEAD: usize = NONCE_BYTES + TAG_BYTES;

/// Seals `plain` with `nonce` (fresh and random in production; fixed only for test vectors).
pub fn seal(keys: &MeshKeys, aad: &[u8], plain: &[u8], nonce: &[u8; NONCE_BYTES]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(keys.control_key().into());
    let mut out = Vec::with_capacity(OVERHEAD + plain.len());
    out.extend_from_slice(nonce);
    // Encryption fails only for plaintexts beyond 256 GiB, which no caller can hand in.
    if let Ok(sealed) = cipher.encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad }) {
        out.extend_from_slice(&sealed);
    }
    out
}

/// Opens a sealed blob; `None` when it is too short or does not decrypt (another mesh, another
/// use, or altered).
pub fn open(keys: &MeshKeys, aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < OVERHEAD {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new(keys.control_key().into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}
