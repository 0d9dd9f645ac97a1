//! The mesh secret (PROTOCOL.md §1): parsing the `wgmesh://v2/` form, turning passphrases
//! (and `wgmesh://v1/` URIs) into 32 bytes with Argon2id, and generating fresh secrets.
//!
//! Nothing here reads files or the environment; `cli::secret_source` does that. Errors never
//! contain the secret or any part of it.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Prefix of a generated secret.
pub const V2_PREFIX: &str = "wgmesh://v2/";
/// Prefix of a legacy URI whose text is used as a passphrase.
pub const V1_PREFIX: &str = "wgmesh://v1/";
/// Argon2id salt for passphrases (20 ASCII bytes).
pub const PASSPHRASE_SALT: &[u8] = b"wgmesh/v2/passphrase";
/// Minimum passphrase length in bytes, after trimming.
pub const MIN_PASSPHRASE_BYTES: usize = 16;
/// Longest secret input accepted (a passphrase longer than this is surely a mistake).
pub const MAX_SECRET_INPUT_BYTES: usize = 4096;

/// Argon2id parameters fixed by the protocol.
const ARGON2_MEMORY_KIB: u32 = 65536;
const ARGON2_ITERATIONS: u32 = 3;
const ARGON2_PARALLELISM: u32 = 1;

/// Why a secret could not be used. Messages never echo the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the mesh secret is empty: generate one with `wgmesh secret new`")]
    Empty,
    #[error(
        "the mesh secret is too long ({0} bytes, at most {MAX_SECRET_INPUT_BYTES}): is this the right file?"
    )]
    TooLong(usize),
    #[error(
        "the wgmesh://v2/ secret is not valid base64url (only A-Z a-z 0-9 - _ are allowed): copy it again from `wgmesh secret new`"
    )]
    BadBase64,
    #[error(
        "the wgmesh://v2/ secret decodes to {0} bytes, but it must be exactly 32: it was probably cut off when copied"
    )]
    WrongLength(usize),
    #[error(
        "the passphrase is too short ({0} bytes after trimming, at least {MIN_PASSPHRASE_BYTES} needed); better, generate a secret with `wgmesh secret new`"
    )]
    PassphraseTooShort(usize),
    #[error("the mesh secret is not valid UTF-8 text")]
    NotUtf8,
    #[error("deriving the key from the passphrase failed: {0}")]
    Argon2(String),
}

/// How the secret was given; callers warn for passphrases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A `wgmesh://v2/` URI holding 32 random bytes.
    Generated,
    /// A passphrase stretched with Argon2id (including `wgmesh://v1/` URIs).
    Passphrase,
}

/// The 32-byte mesh secret `S`. Zeroed on drop; `Debug` does not show it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MeshSecret {
    bytes: [u8; 32],
    #[zeroize(skip)]
    kind: SecretKind,
}

impl std::fmt::Debug for MeshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshSecret")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl MeshSecret {
    /// A secret from raw bytes (tests, test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            kind: SecretKind::Generated,
        }
    }

    /// A fresh random secret from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses any accepted form (PROTOCOL.md §1). The input is trimmed first.
    pub fn parse(input: &str) -> Result<Self, SecretError> {
        if input.len() > MAX_SECRET_INPUT_BYTES {
            return Err(SecretError::TooLong(input.len()));
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(SecretError::Empty);
        }
        if let Some(encoded) = trimmed.strip_prefix(V2_PREFIX) {
            return Self::decode_v2(encoded);
        }
        let passphrase = match trimmed.strip_prefix(V1_PREFIX) {
            Some(rest) => rest.split('?').next().unwrap_or_default(),
            None => trimmed,
        };
        Self::from_passphrase(passphrase)
    }

    /// Parses raw bytes (a file or stdin) that must be UTF-8.
    pub fn parse_bytes(input: &[u8]) -> Result<Self, SecretError> {
        if input.len() > MAX_SECRET_INPUT_BYTES {
            return Err(SecretError::TooLong(input.len()));
        }
        let text = std::str::from_utf8(input).map_err(|_| SecretError::NotUtf8)?;
        Self::parse(text)
    }

    fn decode_v2(encoded: &str) -> Result<Self, SecretError> {
        // Generated secrets carry no padding; a pasted one with '=' padding is tolerated.
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let mut decoded = LENIENT
            .decode(encoded)
            .map_err(|_| SecretError::BadBase64)?;
        let result = match <[u8; 32]>::try_from(decoded.as_slice()) {
            Ok(bytes) => Ok(Self::from_bytes(bytes)),
            Err(_) => Err(SecretError::WrongLength(decoded.len())),
        };
        decoded.zeroize();
        result
    }

    /// Stretches a passphrase with Argon2id (m = 64 MiB, t = 3, p = 1).
    pub fn from_passphrase(passphrase: &str) -> Result<Self, SecretError> {
        let passphrase = passphrase.trim();
        if passphrase.len() < MIN_PASSPHRASE_BYTES {
            return Err(SecretError::PassphraseTooShort(passphrase.len()));
        }
        let params = argon2::Params::new(
            ARGON2_MEMORY_KIB,
            ARGON2_ITERATIONS,
            ARGON2_PARALLELISM,
            Some(32),
        )
        .map_err(|e| SecretError::Argon2(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut bytes = [0u8; 32];
        argon
            .hash_password_into(passphrase.as_bytes(), PASSPHRASE_SALT, &mut bytes)
            .map_err(|e| SecretError::Argon2(e.to_string()))?;
        Ok(Self {
            bytes,
            kind: SecretKind::Passphrase,
        })
    }

    /// The 32 bytes `S`.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Whether this came from a passphrase (the caller should warn).
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// The `wgmesh://v2/...` form of the secret (only meaningful for generated secrets, but
    /// any 32 bytes round-trip).
    pub fn to_uri(&self) -> String {
        format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uri_round_trips() {
        let s = MeshSecret::generate();
        let uri = s.to_uri();
        assert!(uri.starts_with(V2_PREFIX));
        assert_eq!(uri.len(), V2_PREFIX.len() + 43);
        let back = MeshSecret::parse(&format!("  {uri}\n")).unwrap();
        assert_eq!(back.as_bytes(), s.as_bytes());
        assert_eq!(back.kind(), SecretKind::Generated);
    }

    #[test]
    fn v2_errors_do_not_echo_the_secret() {
        let bad = "wgmesh://v2/AAAA!!!!secretstuff";
        let err = MeshSecret::parse(bad).unwrap_err();
        assert_eq!(err, SecretError::BadBase64);
        assert!(!err.to_string().contains("secretstuff"));
        assert_eq!(
            MeshSecret::parse("wgmesh://v2/AAAA").unwrap_err(),
            SecretError::WrongLength(3)
        );
        let long = format!("wgmesh://v2/{}", URL_SAFE_NO_PAD.encode([1u8; 33]));
        assert_eq!(
            MeshSecret::parse(&long).unwrap_err(),
            SecretError::WrongLength(33)
        );
        assert_eq!(
            MeshSecret::parse("wgmesh://v2/").unwrap_err(),
            SecretError::WrongLength(0)
        );
    }

    #[test]
    fn short_passphrase_is_refused() {
        assert_eq!(
            MeshSecret::parse("  short pass  ").unwrap_err(),
            SecretError::PassphraseTooShort(10)
        );
        assert_eq!(MeshSecret::parse(" \n ").unwrap_err(), SecretError::Empty);
        assert_eq!(
            MeshSecret::parse("wgmesh://v1/tooshort?x=1").unwrap_err(),
            SecretError::PassphraseTooShort(8)
        );
    }

    #[test]
    fn v1_uri_is_the_passphrase_cut_at_question_mark() {
        let a = MeshSecret::parse("wgmesh://v1/correct horse battery?foo=bar").unwrap();
        let b = MeshSecret::parse("correct horse battery").unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.kind(), SecretKind::Passphrase);
    }

    #[test]
    fn argon2id_parameters_are_the_protocol_ones() {
        // Reference value computed with the argon2-cffi Python package:
        // argon2.low_level.hash_secret_raw(b"correct horse battery staple", b"wgmesh/v2/passphrase",
        //   time_cost=3, memory_cost=65536, parallelism=1, hash_len=32, type=Type.ID)
        let s = MeshSecret::parse("correct horse battery staple").unwrap();
        assert_eq!(hex::encode(s.as_bytes()), PASSPHRASE_VECTOR_HEX);
    }

    /// Filled in from an independent Argon2id implementation (see docs/PROTOCOL.md).
    const PASSPHRASE_VECTOR_HEX: &str =
        "9e88b9fd229dcf511a1f25f2cdbe571cf7d49f08cd878a06252791e51e6b7ca7";
}
