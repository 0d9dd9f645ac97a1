//! A node's private identity (PROTOCOL.md §3): one random Ed25519 seed, from which the
//! WireGuard X25519 key pair is derived (libsodium's `crypto_sign_ed25519_*_to_curve25519`).
//! Public-key checks (binding, signature verification) live in `proto::keys`.

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// A node's long-term identity. The seed is zeroed on drop and never shown by `Debug`.
pub struct NodeIdentity {
    signing: SigningKey,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("wireguard_public", &hex::encode(self.wireguard_public()))
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// A fresh identity from the operating system's random generator.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The identity of a given 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The Ed25519 seed (for the state file only).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The Ed25519 public key.
    pub fn ed25519_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The WireGuard private key: SHA-512(seed)[0..32], clamped (libsodium
    /// `crypto_sign_ed25519_sk_to_curve25519`).
    pub fn wireguard_private(&self) -> Zeroizing<[u8; 32]> {
        let mut hash = Sha512::digest(self.signing.to_bytes());
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&hash[..32]);
        hash.as_mut_slice().zeroize();
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        scalar
    }

    /// The WireGuard public key: the Montgomery form of the Ed25519 public key.
    pub fn wireguard_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_montgomery().to_bytes()
    }

    /// Signs `message` with the Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wireguard_public_matches_x25519_of_the_private_scalar() {
        for i in 0..20u8 {
            let id = NodeIdentity::from_seed(&[i; 32]);
            let sk = x25519_dalek::StaticSecret::from(*id.wireguard_private());
            let pk = x25519_dalek::PublicKey::from(&sk);
            assert_eq!(pk.to_bytes(), id.wireguard_public());
        }
    }

    #[test]
    fn signatures_verify_with_the_public_key() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let id = NodeIdentity::from_seed(&[3; 32]);
        let sig = Signature::from_bytes(&id.sign(b"hello"));
        let vk = VerifyingKey::from_bytes(&id.ed25519_public()).unwrap();
        assert!(vk.verify(b"hello", &sig).is_ok());
        assert!(vk.verify(b"hellO", &sig).is_err());
    }
}
