//! The control-message envelope (PROTOCOL.md §5): `WGM2 ‖ type ‖ nonce(24) ‖ ciphertext`,
//! XChaCha20-Poly1305 under the mesh's control key with `WGM2 ‖ type` as associated data.
//! Every datagram is at most [`MAX_DATAGRAM_BYTES`]; sizes and the type byte are checked before
//! any decryption or allocation.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};

/// First four bytes of every control datagram.
pub const MAGIC: [u8; 4] = *b"WGM2";
/// Largest datagram wgmesh sends or accepts.
pub const MAX_DATAGRAM_BYTES: usize = 1200;
/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_BYTES: usize = 24;
/// Poly1305 tag length.
pub const TAG_BYTES: usize = 16;
/// Magic + type + nonce.
pub const HEADER_BYTES: usize = MAGIC.len() + 1 + NONCE_BYTES;
/// Largest plaintext payload that fits in one datagram.
pub const MAX_PAYLOAD_BYTES: usize = MAX_DATAGRAM_BYTES - HEADER_BYTES - TAG_BYTES;

/// Message types (docs/PROTOCOL.md, "Message types"). Types not yet used are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// A node's signed record (LAN multicast, gossip push).
    Announce = 0x01,
    /// Peer exchange: hello with a fresh challenge.
    Hello = 0x02,
    /// Peer exchange: reply echoing the challenge.
    Reply = 0x03,
    /// Further records following a reply or a gossip digest.
    Records = 0x04,
    /// A node leaves the mesh (signed by it).
    Goodbye = 0x05,
    /// Rendezvous offer to an introducer.
    RendezvousOffer = 0x06,
    /// Rendezvous start from an introducer.
    RendezvousStart = 0x07,
    /// Dandelion++ stem relay of an announce.
    Stem = 0x08,
    /// Health probe over the tunnel.
    Probe = 0x09,
    /// Health probe answer.
    ProbeReply = 0x0a,
    /// In-mesh gossip digest exchange.
    GossipDigest = 0x0b,
    /// Relay agreement: "I reach this peer through you" / "this node reaches you through me".
    RelayNotice = 0x0c,
}

impl MessageType {
    /// Every defined type, for tests and fuzzing.
    pub const ALL: [MessageType; 12] = [
        Self::Announce,
        Self::Hello,
        Self::Reply,
        Self::Records,
        Self::Goodbye,
        Self::RendezvousOffer,
        Self::RendezvousStart,
        Self::Stem,
        Self::Probe,
        Self::ProbeReply,
        Self::GossipDigest,
        Self::RelayNotice,
    ];

    /// From the wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| *t as u8 == b)
    }
}

/// Why a datagram was dropped before its payload was looked at.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum EnvelopeError {
    #[error("datagram is {0} bytes, shorter than an envelope")]
    TooShort(usize),
    #[error("datagram is {0} bytes, more than the {MAX_DATAGRAM_BYTES} allowed")]
    TooLarge(usize),
    #[error("datagram does not start with WGM2 (not wgmesh v2)")]
    BadMagic,
    #[error("datagram has unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("datagram does not decrypt (another mesh, forged, or altered)")]
    Decrypt,
    #[error("payload of {0} bytes does not fit in one datagram (at most {MAX_PAYLOAD_BYTES})")]
    PayloadTooLarge(usize),
}

impl EnvelopeError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "truncated",
            Self::TooLarge(_) | Self::PayloadTooLarge(_) => "size",
            Self::BadMagic => "magic",
            Self::UnknownType(_) => "type",
            Self::Decrypt => "decrypt",
        }
    }
}

/// Seals `payload` with a fresh random nonce.
pub fn seal(key: &[u8; 32], ty: MessageType, payload: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_BYTES];
    OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(key, ty, &nonce, payload)
}

/// Seals `payload` with a given nonce (test vectors; never reuse a nonce in production).
pub fn seal_with_nonce(
    key: &[u8; 32],
    ty: MessageType,
    nonce: &[u8; NONCE_BYTES],
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(EnvelopeError::PayloadTooLarge(payload.len()));
    }
    let aad = header_aad(ty as u8);
    let cipher = XChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: payload,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::PayloadTooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
    out.extend_from_slice(&aad);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Checks the cleartext header only: length, magic, type. Cheap; run before rate-limited work.
pub fn peek_type(datagram: &[u8]) -> Result<MessageType, EnvelopeError> {
    if datagram.len() > MAX_DATAGRAM_BYTES {
        return Err(EnvelopeError::TooLarge(datagram.len()));
    }
    if datagram.len() < HEADER_BYTES + TAG_BYTES {
        return Err(EnvelopeError::TooShort(datagram.len()));
    }
    if datagram[..4] != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    MessageType::from_byte(datagram[4]).ok_or(EnvelopeError::UnknownType(datagram[4]))
}

/// Opens a datagram: returns its type and plaintext payload.
pub fn open(key: &[u8; 32], datagram: &[u8]) -> Result<(MessageType, Vec<u8>), EnvelopeError> {
    let ty = peek_type(datagram)?;
    let nonce = XNonce::from_slice(&datagram[5..HEADER_BYTES]);
    let cipher = XChaCha20Poly1305::new(key.into());
    let payload = cipher
        .decrypt(
            nonce,
            Payload {
                msg: &datagram[HEADER_BYTES..],
                aad: &datagram[..5],
            },
        )
        .map_err(|_| EnvelopeError::Decrypt)?;
    Ok((ty, payload))
}

fn header_aad(ty: u8) -> [u8; 5] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], ty]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_size_limits() {
        let key = [5u8; 32];
        let sealed = seal(&key, MessageType::Announce, b"hello").unwrap();
        assert_eq!(sealed.len(), HEADER_BYTES + 5 + TAG_BYTES);
        assert_eq!(
            open(&key, &sealed).unwrap(),
            (MessageType::Announce, b"hello".to_vec())
        );
        let max = vec![0u8; MAX_PAYLOAD_BYTES];
        assert_eq!(
            seal(&key, MessageType::Hello, &max).unwrap().len(),
            MAX_DATAGRAM_BYTES
        );
        assert_eq!(
            seal(&key, MessageType::Hello, &[0u8; MAX_PAYLOAD_BYTES + 1]).unwrap_err(),
            EnvelopeError::PayloadTooLarge(MAX_PAYLOAD_BYTES + 1)
        );
    }

    #[test]
    fn type_byte_is_authenticated() {
        let key = [5u8; 32];
        let mut sealed = seal(&key, MessageType::Announce, b"x").unwrap();
        sealed[4] = MessageType::Goodbye as u8;
        assert_eq!(open(&key, &sealed).unwrap_err(), EnvelopeError::Decrypt);
    }

    #[test]
    fn other_mesh_key_does_not_open() {
        let sealed = seal(&[1u8; 32], MessageType::Announce, b"x").unwrap();
        assert_eq!(
            open(&[2u8; 32], &sealed).unwrap_err(),
            EnvelopeError::Decrypt
        );
    }
}
