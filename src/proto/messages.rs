//! Control message payloads defined so far (docs/PROTOCOL.md, "Messages"): announce (a signed
//! record), goodbye (a signed leave notice), the peer exchange (hello, reply, records; payloads
//! in `exchange`), the health probe, the relay notice (payload in `relay`) and the Dandelion++
//! stem (an announce relayed privately, `{1: signed record, 2: hop}`). Each payload is a CBOR
//! map with integer keys; decoding is bounded by the envelope's payload limit. Rendezvous and
//! gossip digests are added here
//! as their issues define them; rendezvous payloads are in `rendezvous`.

use ciborium::Value;

use super::cbor::{self, CborError, IntMap, int_map, uint};
use super::derive::MeshKeys;
use super::envelope::{self, EnvelopeError, MAX_PAYLOAD_BYTES, MessageType};
use super::exchange::{Hello, Probe, Records, Reply};
use super::keys::{BindingError, check_binding, verify_signature};
use super::record::{RecordError, SignedRecord, signing_message};
use super::relay::RelayNotice;
use super::rendezvous::{RendezvousOffer, RendezvousStart};

/// Domain separation prefix of goodbye signatures.
pub const GOODBYE_DOMAIN: &[u8] = b"wgmesh/v2 goodbye";
/// Largest goodbye body.
const MAX_GOODBYE_BODY_BYTES: usize = 128;

/// Highest stem hop: the node receiving a stem at this hop fluffs it (PROTOCOL.md §11).
pub const MAX_STEM_HOP: u8 = 4;

/// A Dandelion++ stem: a node's fresh signed record on its way to the node that fluffs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stem {
    pub record: SignedRecord,
    /// Which stem hop the receiver is: 1 at the origin's relay, at most [`MAX_STEM_HOP`].
    pub hop: u8,
}

impl Stem {
    fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (1, self.record.to_value()),
            (2, uint(u64::from(self.hop))),
        ]))
    }

    fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let mut m = IntMap::decode(payload, MAX_PAYLOAD_BYTES)?;
        let record = SignedRecord::from_value(m.required(1)?)?;
        let hop = m.uint(2, u64::from(MAX_STEM_HOP))?;
        if hop == 0 {
            return Err(CborError::WrongType(2).into());
        }
        // `uint` bounded the hop to MAX_STEM_HOP, so it fits in u8.
        Ok(Self {
            record,
            hop: u8::try_from(hop).map_err(|_| CborError::WrongType(2))?,
        })
    }
}

/// Why a message was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum MessageError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("message payload is malformed: {0}")]
    Malformed(#[from] CborError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("goodbye signature does not verify")]
    BadGoodbyeSignature,
    #[error("goodbye keys do not belong together: {0}")]
    GoodbyeBinding(BindingError),
    #[error("goodbye sequence {got} is not newer than the record held ({held})")]
    StaleGoodbye { got: u64, held: u64 },
    #[error("message type {0:?} is not handled here")]
    UnexpectedType(MessageType),
}

impl MessageError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Envelope(e) => e.reason(),
            Self::Malformed(_) => "malformed",
            Self::Record(e) => e.reason(),
            Self::BadGoodbyeSignature => "signature",
            Self::GoodbyeBinding(_) => "binding",
            Self::StaleGoodbye { .. } => "stale",
            Self::UnexpectedType(_) => "type",
        }
    }
}

/// A node leaving the mesh, signed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goodbye {
    pub ed25519_public: [u8; 32],
    pub wireguard_public: [u8; 32],
    /// Newer than the leaving node's last record.
    pub sequence: u64,
}

/// A goodbye as it travels: body bytes and the signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGoodbye {
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

impl Goodbye {
    fn encode_body(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (0, uint(2)),
            (1, Value::Bytes(self.ed25519_public.to_vec())),
            (2, Value::Bytes(self.wireguard_public.to_vec())),
            (3, uint(self.sequence)),
        ]))
    }

    /// Signs the goodbye for the mesh `network_id`.
    pub fn sign(
        &self,
        network_id: &[u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> SignedGoodbye {
        let body = self.encode_body();
        let signature = sign(&signing_message(GOODBYE_DOMAIN, network_id, &body));
        SignedGoodbye { body, signature }
    }
}

impl SignedGoodbye {
    /// Verifies signature and binding; `held_sequence` is the leaving node's record sequence.
    pub fn verify(
        &self,
        keys: &MeshKeys,
        held_sequence: Option<u64>,
    ) -> Result<Goodbye, MessageError> {
        let mut m = IntMap::decode(&self.body, MAX_GOODBYE_BODY_BYTES)?;
        if m.uint(0, u64::MAX)? != 2 {
            return Err(CborError::WrongType(0).into());
        }
        let g = Goodbye {
            ed25519_public: m.bytes_exact(1)?,
            wireguard_public: m.bytes_exact(2)?,
            sequence: m.uint(3, u64::MAX)?,
        };
        let msg = signing_message(GOODBYE_DOMAIN, keys.network_id(), &self.body);
        if !verify_signature(&g.ed25519_public, &msg, &self.signature) {
            return Err(MessageError::BadGoodbyeSignature);
        }
        check_binding(&g.ed25519_public, &g.wireguard_public)
            .map_err(MessageError::GoodbyeBinding)?;
        if let Some(held) = held_sequence
            && g.sequence <= held
        {
            return Err(MessageError::StaleGoodbye {
                got: g.sequence,
                held,
            });
        }
        Ok(g)
    }
}

/// A decoded control message (payload only; records inside are not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `{1: signed record}`
    Announce { record: SignedRecord },
    /// `{1: [body, signature]}`
    Goodbye { goodbye: SignedGoodbye },
    /// Peer exchange, initiator → responder.
    Hello(Box<Hello>),
    /// Peer exchange, responder → initiator.
    Reply(Box<Reply>),
    /// Records the other side lacks.
    Records(Records),
    /// Health probe over the tunnel.
    Probe(Probe),
    /// Health probe answer.
    ProbeReply(Probe),
    /// Relay agreement (`relay`).
    RelayNotice(RelayNotice),
    /// Rendezvous, node → introducer.
    RendezvousOffer(RendezvousOffer),
    /// Rendezvous, introducer → both ends.
    RendezvousStart(RendezvousStart),
    /// Dandelion++ stem relay of a fresh record (over the tunnel).
    Stem(Stem),
}

impl Message {
    /// The envelope type of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Announce { .. } => MessageType::Announce,
            Self::Goodbye { .. } => MessageType::Goodbye,
            Self::Hello(_) => MessageType::Hello,
            Self::Reply(_) => MessageType::Reply,
            Self::Records(_) => MessageType::Records,
            Self::Probe(_) => MessageType::Probe,
            Self::ProbeReply(_) => MessageType::ProbeReply,
            Self::RelayNotice(_) => MessageType::RelayNotice,
            Self::RendezvousOffer(_) => MessageType::RendezvousOffer,
            Self::RendezvousStart(_) => MessageType::RendezvousStart,
            Self::Stem(_) => MessageType::Stem,
        }
    }

    /// Encodes the payload.
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            Self::Announce { record } => cbor::encode(&int_map(vec![(1, record.to_value())])),
            Self::Goodbye { goodbye } => cbor::encode(&int_map(vec![(
                1,
                Value::Array(vec![
                    Value::Bytes(goodbye.body.clone()),
                    Value::Bytes(goodbye.signature.to_vec()),
                ]),
            )])),
            Self::Hello(h) => h.encode(),
            Self::Reply(r) => r.encode(),
            Self::Records(r) => r.encode(),
            Self::Probe(p) | Self::ProbeReply(p) => p.encode(),
            Self::RelayNotice(n) => n.encode(),
            Self::RendezvousOffer(o) => o.encode(),
            Self::RendezvousStart(s) => s.encode(),
            Self::Stem(s) => s.encode(),
        }
    }

    /// Decodes a payload of the given type.
    pub fn decode_payload(ty: MessageType, payload: &[u8]) -> Result<Self, MessageError> {
        match ty {
            MessageType::Hello => return Ok(Self::Hello(Box::new(Hello::decode(payload)?))),
            MessageType::Reply => return Ok(Self::Reply(Box::new(Reply::decode(payload)?))),
            MessageType::Records => return Ok(Self::Records(Records::decode(payload)?)),
            MessageType::Probe => return Ok(Self::Probe(Probe::decode(payload)?)),
            MessageType::ProbeReply => return Ok(Self::ProbeReply(Probe::decode(payload)?)),
            MessageType::RelayNotice => {
                return Ok(Self::RelayNotice(RelayNotice::decode(payload)?));
            }
            MessageType::RendezvousOffer => {
                return Ok(Self::RendezvousOffer(RendezvousOffer::decode(payload)?));
            }
            MessageType::RendezvousStart => {
                return Ok(Self::RendezvousStart(RendezvousStart::decode(payload)?));
            }
            MessageType::Stem => return Ok(Self::Stem(Stem::decode(payload)?)),
            _ => {}
        }
        let mut m = IntMap::decode(payload, MAX_PAYLOAD_BYTES)?;
        match ty {
            MessageType::Announce => Ok(Self::Announce {
                record: SignedRecord::from_value(m.required(1)?)?,
            }),
            MessageType::Goodbye => {
                let Value::Array(items) = m.required(1)? else {
                    return Err(CborError::WrongType(1).into());
                };
                let [body, sig]: [Value; 2] =
                    items.try_into().map_err(|_| CborError::WrongType(1))?;
                let body = match body {
                    Value::Bytes(b) if b.len() <= MAX_GOODBYE_BODY_BYTES => b,
                    _ => return Err(CborError::WrongType(1).into()),
                };
                let signature = match sig {
                    Value::Bytes(b) => {
                        <[u8; 64]>::try_from(b.as_slice()).map_err(|_| CborError::WrongType(1))?
                    }
                    _ => return Err(CborError::WrongType(1).into()),
                };
                Ok(Self::Goodbye {
                    goodbye: SignedGoodbye { body, signature },
                })
            }
            other => Err(MessageError::UnexpectedType(other)),
        }
    }

    /// Seals the message into one datagram.
    pub fn seal(&self, keys: &MeshKeys) -> Result<Vec<u8>, MessageError> {
        Ok(envelope::seal(
            keys.control_key(),
            self.message_type(),
            &self.encode_payload(),
        )?)
    }

    /// Opens and decodes one datagram.
    pub fn open(keys: &MeshKeys, datagram: &[u8]) -> Result<Self, MessageError> {
        let (ty, payload) = envelope::open(keys.control_key(), datagram)?;
        Self::decode_payload(ty, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem(hop: u8) -> Stem {
        Stem {
            record: SignedRecord {
                body: vec![0xa0; 200],
                signature: [3; 64],
            },
            hop,
        }
    }

    fn stem_payload(hop: u64) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (1, stem(1).record.to_value()),
            (2, uint(hop)),
        ]))
    }

    #[test]
    fn stem_round_trips_through_an_envelope() {
        let keys = MeshKeys::derive(&crate::proto::MeshSecret::from_bytes([7; 32]));
        for hop in 1..=MAX_STEM_HOP {
            let m = Message::Stem(stem(hop));
            let sealed = m.seal(&keys).unwrap();
            assert_eq!(Message::open(&keys, &sealed).unwrap(), m);
        }
    }

    #[test]
    fn stem_hop_outside_one_to_four_is_refused() {
        for hop in [0u64, 5, 255, u64::MAX] {
            let err = Message::decode_payload(MessageType::Stem, &stem_payload(hop)).unwrap_err();
            assert_eq!(err.reason(), "malformed", "hop {hop}");
        }
        assert!(Message::decode_payload(MessageType::Stem, &stem_payload(4)).is_ok());
    }

    #[test]
    fn stem_without_record_or_with_extra_bytes_is_refused() {
        let no_record = cbor::encode(&int_map(vec![(2, uint(1))]));
        assert!(Message::decode_payload(MessageType::Stem, &no_record).is_err());
        let mut trailing = stem_payload(1);
        trailing.push(0);
        assert!(Message::decode_payload(MessageType::Stem, &trailing).is_err());
        let oversized = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        assert!(Message::decode_payload(MessageType::Stem, &oversized).is_err());
    }
}
