//! Public-key facts every node checks (PROTOCOL.md §3): the WireGuard key that belongs to an
//! Ed25519 key, strict Ed25519 signature verification, and WireGuard's base64 key text.

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signature, VerifyingKey};

/// A WireGuard public key (X25519, 32 raw bytes).
pub type WgPublicKey = [u8; 32];

/// Why an Ed25519 key and a WireGuard key were not accepted as one node's pair.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum BindingError {
    #[error("the Ed25519 key is not a valid curve point")]
    InvalidEd25519Key,
    #[error("the Ed25519 key is a weak (small-order) key")]
    WeakEd25519Key,
    #[error("the WireGuard key is not the Montgomery form of the Ed25519 key")]
    Mismatch,
}

/// The WireGuard public key that belongs to an Ed25519 public key.
pub fn wireguard_key_of(ed25519_public: &[u8; 32]) -> Result<WgPublicKey, BindingError> {
    let vk =
        VerifyingKey::from_bytes(ed25519_public).map_err(|_| BindingError::InvalidEd25519Key)?;
    if vk.is_weak() {
        return Err(BindingError::WeakEd25519Key);
    }
    Ok(vk.to_montgomery().to_bytes())
}

/// Checks that `wireguard_public` is the Montgomery form of `ed25519_public`.
pub fn check_binding(
    ed25519_public: &[u8; 32],
    wireguard_public: &[u8; 32],
) -> Result<(), BindingError> {
    let expected = wireguard_key_of(ed25519_public)?;
    if MontgomeryPoint(expected) == MontgomeryPoint(*wireguard_public) {
        Ok(())
    } else {
        Err(BindingError::Mismatch)
    }
}

/// Verifies an Ed25519 signature strictly (no malleable or small-order forms).
pub fn verify_signature(ed25519_public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(ed25519_public) else {
        return false;
    };
    vk.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

/// Standard base64 of a key, as WireGuard tools print it.
pub fn base64_key(key: &[u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Parses a WireGuard key in standard base64 (44 characters).
pub fn parse_base64_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert_eq!(
            wireguard_key_of(&identity_point),
            Err(BindingError::WeakEd25519Key)
        );
        // y = 2 is not on the curve.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert_eq!(
            wireguard_key_of(&not_on_curve),
            Err(BindingError::InvalidEd25519Key)
        );
    }

    #[test]
    fn base64_keys_round_trip() {
        let k = [0xabu8; 32];
        assert_eq!(parse_base64_key(&base64_key(&k)), Some(k));
        assert_eq!(parse_base64_key("short"), None);
    }
}
