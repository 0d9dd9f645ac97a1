//! STUN wire format (RFC 8489 Binding, RFC 5780 CHANGE-REQUEST / OTHER-ADDRESS): encoding and
//! decoding through the `stun_codec` crate, behind hard limits checked on the raw bytes first
//! (size, header bits, magic cookie, length field, attribute count and lengths), so nothing a
//! hostile sender puts in a datagram makes the decoder allocate more than a few hundred bytes.

use std::net::SocketAddr;

use bytecodec::{DecodeExt as _, EncodeExt as _};
use stun_codec::rfc5389::attributes::{
    ErrorCode, Fingerprint, MappedAddress, Software, XorMappedAddress,
};
use stun_codec::rfc5389::methods::BINDING;
use stun_codec::rfc5780::attributes::{ChangeRequest, OtherAddress, ResponseOrigin};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

stun_codec::define_attribute_enums!(
    StunAttribute,
    StunAttributeDecoder,
    StunAttributeEncoder,
    [
        MappedAddress,
        XorMappedAddress,
        ErrorCode,
        Software,
        Fingerprint,
        ChangeRequest,
        ResponseOrigin,
        OtherAddress
    ]
);

/// The magic cookie every RFC 5389+ message carries at bytes 4..8.
pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// STUN header size.
pub const HEADER_BYTES: usize = 20;
/// Largest response accepted (a Binding response with every attribute we read is ~120 bytes;
/// RFC 8489 keeps messages under 576 bytes when the path MTU is unknown).
pub const MAX_MESSAGE_BYTES: usize = 576;
/// Most attributes accepted in one response.
pub const MAX_ATTRIBUTES: usize = 16;
/// Binding success response: method 0x001, class 0b10.
const BINDING_SUCCESS: u16 = 0x0101;

/// A transaction id (96 random bits).
pub type TxId = [u8; 12];

/// Why a datagram is not an acceptable STUN Binding response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunWireError {
    #[error("not STUN (header bits or magic cookie)")]
    NotStun,
    #[error("STUN message of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    Oversized(usize),
    #[error("STUN length field does not match the datagram")]
    Length,
    #[error("STUN attribute runs past the end of the message")]
    Attribute,
    #[error("STUN message has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("not a Binding success response")]
    NotBindingSuccess,
    #[error("STUN response cannot be decoded: {0}")]
    Decode(String),
    #[error("STUN response has no (XOR-)MAPPED-ADDRESS")]
    NoMappedAddress,
    #[error("cannot encode a STUN request: {0}")]
    Encode(String),
}

impl StunWireError {
    /// Short reason label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotStun => "stun_not_stun",
            Self::Oversized(_) => "stun_size",
            Self::Length | Self::Attribute | Self::TooManyAttributes => "stun_malformed",
            Self::NotBindingSuccess => "stun_type",
            Self::Decode(_) | Self::NoMappedAddress => "stun_decode",
            Self::Encode(_) => "stun_encode",
        }
    }
}

/// A decoded Binding success response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingResponse {
    pub transaction_id: TxId,
    /// XOR-MAPPED-ADDRESS (or the classic MAPPED-ADDRESS from old servers).
    pub mapped: SocketAddr,
    /// RFC 5780 OTHER-ADDRESS: the server's alternate IP and port (filtering tests need it).
    pub other_address: Option<SocketAddr>,
    /// RFC 5780 RESPONSE-ORIGIN: where the server says it sent this from.
    pub response_origin: Option<SocketAddr>,
}

/// Cheap demultiplexing test: could this datagram be STUN? (First two bits 0 and the magic
/// cookie at bytes 4..8; WGM2 envelopes start with `W` = 0b01…, so they never match.)
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_BYTES
        && datagram.first().is_some_and(|b| b & 0xC0 == 0)
        && datagram.get(4..8) == Some(&MAGIC_COOKIE[..])
}

/// The transaction id of a datagram that [`looks_like_stun`] (checked again here).
pub fn transaction_id(datagram: &[u8]) -> Option<TxId> {
    if !looks_like_stun(datagram) {
        return None;
    }
    datagram.get(8..20)?.try_into().ok()
}

/// Encodes a Binding request, with an RFC 5780 CHANGE-REQUEST when either flag is set.
pub fn encode_binding_request(
    transaction_id: TxId,
    change_ip: bool,
    change_port: bool,
) -> Result<Vec<u8>, StunWireError> {
    let mut message = Message::<StunAttribute>::new(
        MessageClass::Request,
        BINDING,
        TransactionId::new(transaction_id),
    );
    if change_ip || change_port {
        message.add_attribute(ChangeRequest::new(change_ip, change_port));
    }
    MessageEncoder::new()
        .encode_into_bytes(message)
        .map_err(|e| StunWireError::Encode(e.to_string()))
}

/// Checks the raw bytes against the limits: size, header, length field, attribute walk.
fn check_limits(datagram: &[u8]) -> Result<(), StunWireError> {
    if datagram.len() > MAX_MESSAGE_BYTES {
        return Err(StunWireError::Oversized(datagram.len()));
    }
    if !looks_like_stun(datagram) {
        return Err(StunWireError::NotStun);
    }
    let be16 = |at: usize| -> Option<usize> {
        let b = datagram.get(at..at + 2)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let declared = be16(2).ok_or(StunWireError::Length)?;
    if declared % 4 != 0 || HEADER_BYTES + declared != datagram.len() {
        return Err(StunWireError::Length);
    }
    if be16(0) != Some(usize::from(BINDING_SUCCESS)) {
        return Err(StunWireError::NotBindingSuccess);
    }
    let mut at = HEADER_BYTES;
    let mut count = 0;
    while at < datagram.len() {
        count += 1;
        if count > MAX_ATTRIBUTES {
            return Err(StunWireError::TooManyAttributes);
        }
        let len = be16(at + 2).ok_or(StunWireError::Attribute)?;
        let padded = len.div_ceil(4) * 4;
        at = at
            .checked_add(4 + padded)
            .filter(|end| *end <= datagram.len())
            .ok_or(StunWireError::Attribute)?;
    }
    Ok(())
}

/// Decodes a Binding success response, after [`check_limits`].
pub fn decode_binding_response(datagram: &[u8]) -> Result<BindingResponse, StunWireError> {
    check_limits(datagram)?;
    let decoded = MessageDecoder::<StunAttribute>::new()
        .decode_from_bytes(datagram)
        .map_err(|e| StunWireError::Decode(format!("{:?}", e.kind())))?;
    let message = decoded.map_err(|broken| StunWireError::Decode(broken.error().to_string()))?;
    if message.class() != MessageClass::SuccessResponse || message.method() != BINDING {
        return Err(StunWireError::NotBindingSuccess);
    }
    let mapped = message
        .get_attribute::<XorMappedAddress>()
        .map(XorMappedAddress::address)
        .or_else(|| {
            message
                .get_attribute::<MappedAddress>()
                .map(MappedAddress::address)
        })
        .ok_or(StunWireError::NoMappedAddress)?;
    let mut transaction_id = [0u8; 12];
    transaction_id.copy_from_slice(message.transaction_id().as_bytes());
    Ok(BindingResponse {
        transaction_id,
        mapped,
        other_address: message
            .get_attribute::<OtherAddress>()
            .map(OtherAddress::address),
        response_origin: message
            .get_attribute::<ResponseOrigin>()
            .map(ResponseOrigin::address),
    })
}

/// Encodes a Binding success response (tests and the fuzz corpus: what a server sends).
pub fn encode_binding_response(
    transaction_id: TxId,
    mapped: SocketAddr,
    other_address: Option<SocketAddr>,
) -> Result<Vec<u8>, StunWireError> {
    let mut message = Message::<StunAttribute>::new(
        MessageClass::SuccessResponse,
        BINDING,
        TransactionId::new(transaction_id),
    );
    message.add_attribute(XorMappedAddress::new(mapped));
    if let Some(o) = other_address {
        message.add_attribute(OtherAddress::new(o));
    }
    MessageEncoder::new()
        .encode_into_bytes(message)
        .map_err(|e| StunWireError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: TxId = [7; 12];

    fn response() -> Vec<u8> {
        encode_binding_response(
            TX,
            "198.51.100.2:51900".parse().unwrap(),
            Some("192.0.2.2:3479".parse().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn request_is_a_binding_request_with_change_request() {
        let plain = encode_binding_request(TX, false, false).unwrap();
        assert_eq!(plain.len(), 20);
        assert_eq!(&plain[..4], &[0, 1, 0, 0]);
        assert_eq!(&plain[4..8], &MAGIC_COOKIE);
        assert_eq!(&plain[8..], &TX);
        let change = encode_binding_request(TX, true, true).unwrap();
        // CHANGE-REQUEST: type 0x0003, length 4, flags 0x06.
        assert_eq!(&change[20..], &[0, 3, 0, 4, 0, 0, 0, 6]);
        assert!(looks_like_stun(&change));
    }

    #[test]
    fn response_round_trips() {
        let r = decode_binding_response(&response()).unwrap();
        assert_eq!(r.transaction_id, TX);
        assert_eq!(r.mapped, "198.51.100.2:51900".parse().unwrap());
        assert_eq!(r.other_address, Some("192.0.2.2:3479".parse().unwrap()));
        assert_eq!(r.response_origin, None);
        let v6 = encode_binding_response(TX, "[2001:db8::1]:4000".parse().unwrap(), None).unwrap();
        assert_eq!(
            decode_binding_response(&v6).unwrap().mapped,
            "[2001:db8::1]:4000".parse().unwrap()
        );
    }

    #[test]
    fn wgm2_envelopes_are_not_stun() {
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"WGM2");
        assert!(!looks_like_stun(&d));
        assert_eq!(transaction_id(&d), None);
    }

    #[test]
    fn hostile_inputs_are_refused() {
        let good = response();
        // Truncated at every length.
        for n in 0..good.len() {
            assert!(
                decode_binding_response(&good[..n]).is_err(),
                "truncated to {n}"
            );
        }
        // Oversized.
        let mut big = good.clone();
        big.resize(MAX_MESSAGE_BYTES + 4, 0);
        assert_eq!(
            decode_binding_response(&big),
            Err(StunWireError::Oversized(MAX_MESSAGE_BYTES + 4))
        );
        // Length field lying (too long, too short, not a multiple of 4).
        for declared in [u16::MAX, 0, 3, (good.len() - 20 + 4) as u16] {
            let mut d = good.clone();
            d[2..4].copy_from_slice(&declared.to_be_bytes());
            assert_eq!(decode_binding_response(&d), Err(StunWireError::Length));
        }
        // An attribute claiming more bytes than the message has.
        let mut d = good.clone();
        d[22..24].copy_from_slice(&0xFFF0u16.to_be_bytes());
        assert_eq!(decode_binding_response(&d), Err(StunWireError::Attribute));
        // A request or an error response is not a success response.
        let req = encode_binding_request(TX, false, false).unwrap();
        assert_eq!(
            decode_binding_response(&req),
            Err(StunWireError::NotBindingSuccess)
        );
        // Wrong cookie.
        let mut d = good.clone();
        d[4] ^= 1;
        assert_eq!(decode_binding_response(&d), Err(StunWireError::NotStun));
        // Too many (empty, unknown optional) attributes.
        let mut d = good[..20].to_vec();
        for _ in 0..=MAX_ATTRIBUTES {
            d.extend_from_slice(&[0x80, 0x99, 0, 0]);
        }
        let len = (d.len() - 20) as u16;
        d[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            decode_binding_response(&d),
            Err(StunWireError::TooManyAttributes)
        );
        // No mapped address.
        let mut d = good[..20].to_vec();
        d[2..4].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            decode_binding_response(&d),
            Err(StunWireError::NoMappedAddress)
        );
        // An address attribute with a lying inner family/length decodes to an error, no panic.
        let mut d = good.clone();
        d[25] = 9; // family byte of XOR-MAPPED-ADDRESS
        assert!(decode_binding_response(&d).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x1234_5678_u64;
        let good = response();
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut d = good.clone();
            let at = (seed as usize) % d.len();
            d[at] = (seed >> 32) as u8;
            if i % 3 == 0 {
                d.truncate((seed >> 40) as usize % good.len());
            }
            let _ = decode_binding_response(&d);
        }
    }
}
