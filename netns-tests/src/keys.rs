//! Test keys: random X25519 key pairs and base64 as `wg` prints it.
#![forbid(unsafe_code)]

use x25519_dalek::{PublicKey, StaticSecret};

/// A private/public key pair.
pub struct KeyPair {
    pub private: [u8; 32],
    pub public: [u8; 32],
}

/// A fresh random key pair.
pub fn keypair() -> KeyPair {
    let secret = StaticSecret::random_from_rng(rand_core::OsRng);
    let public = PublicKey::from(&secret);
    KeyPair {
        private: secret.to_bytes(),
        public: *public.as_bytes(),
    }
}

/// Standard base64 with padding (what `wg` prints).
pub fn b64(key: &[u8; 32]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(44);
    for chunk in key.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn b64_known() {
        assert_eq!(
            super::b64(&[0; 32]),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
    }
}
