//! Payloads of the peer exchange (hello / reply / records) and of the health probe, as laid
//! out in docs/PROTOCOL.md §8–§9. Pure encoding and bounded decoding; what a node does with
//! them (anti-amplification budget, which records to send) lives with their users.

use std::net::SocketAddr;

use ciborium::Value;

use super::cbor::{self, CborError, IntMap, decode_addr, encode_addr, int_map, uint};
use super::envelope::MAX_PAYLOAD_BYTES;
use super::filter::PeerFilter;
use super::record::{RecordError, SignedRecord};

/// Bytes of a challenge (fresh per hello) and of an address cookie.
pub const CHALLENGE_BYTES: usize = 16;
/// Bytes of the WireGuard-key prefix that names a peer in a digest.
pub const DIGEST_KEY_BYTES: usize = 8;
/// Most digests in one hello or reply.
pub const MAX_DIGESTS: usize = 32;
/// Most records in one records message (each must still fit in the datagram).
pub const MAX_RECORDS_PER_MESSAGE: usize = 8;

/// One line of "what I know": a peer (by key prefix) and the sequence of its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    pub key_prefix: [u8; DIGEST_KEY_BYTES],
    pub sequence: u64,
}

impl Digest {
    /// The digest of a peer with WireGuard key `key`.
    pub fn of(key: &[u8; 32], sequence: u64) -> Self {
        let mut key_prefix = [0u8; DIGEST_KEY_BYTES];
        key_prefix.copy_from_slice(&key[..DIGEST_KEY_BYTES]);
        Self {
            key_prefix,
            sequence,
        }
    }
}

/// Peer exchange, initiator → responder: who I am and what I know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub challenge: [u8; CHALLENGE_BYTES],
    pub record: SignedRecord,
    pub digests: Vec<Digest>,
    /// A cookie from an earlier reply, proving the initiator receives at its address.
    pub cookie: Option<[u8; CHALLENGE_BYTES]>,
    /// Every peer the sender holds in the filter's key range (anti-entropy; replaces digests).
    pub filter: Option<PeerFilter>,
}

/// Peer exchange, responder → initiator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The hello's challenge, echoed.
    pub challenge: [u8; CHALLENGE_BYTES],
    pub record: SignedRecord,
    /// The address the hello came from (the initiator's public address).
    pub observed: SocketAddr,
    pub digests: Vec<Digest>,
    /// To echo in later hellos (address proof, lifts the amplification limit).
    pub cookie: [u8; CHALLENGE_BYTES],
    /// Every peer the responder holds in the filter's range (a part of the hello's range).
    pub filter: Option<PeerFilter>,
}

/// Records the other side lacks, following a reply (or pushed by the initiator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    /// The challenge of the exchange they belong to.
    pub challenge: [u8; CHALLENGE_BYTES],
    pub records: Vec<SignedRecord>,
}

/// A health probe over the tunnel; the reply echoes `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub id: u64,
}

fn encode_digests(d: &[Digest]) -> Value {
    Value::Array(
        d.iter()
            .map(|d| Value::Array(vec![Value::Bytes(d.key_prefix.to_vec()), uint(d.sequence)]))
            .collect(),
    )
}

fn decode_digests(m: &mut IntMap, key: u64) -> Result<Vec<Digest>, CborError> {
    let items = m
        .array_max(key, MAX_DIGESTS)
        .map_err(|_| CborError::WrongType(key))?;
    items
        .into_iter()
        .map(|v| {
            let Value::Array(pair) = v else {
                return Err(CborError::WrongType(key));
            };
            let [k, s]: [Value; 2] = pair.try_into().map_err(|_| CborError::WrongType(key))?;
            let key_prefix = match k {
                Value::Bytes(b) => <[u8; DIGEST_KEY_BYTES]>::try_from(b.as_slice())
                    .map_err(|_| CborError::WrongType(key))?,
                _ => return Err(CborError::WrongType(key)),
            };
            let sequence = cbor::as_uint(s, u64::MAX).ok_or(CborError::WrongType(key))?;
            Ok(Digest {
                key_prefix,
                sequence,
            })
        })
        .collect()
}

fn opt_bytes16(m: &mut IntMap, key: u64) -> Result<Option<[u8; CHALLENGE_BYTES]>, CborError> {
    match m.optional(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(
            b.as_slice()
                .try_into()
                .map_err(|_| CborError::WrongType(key))?,
        )),
        Some(_) => Err(CborError::WrongType(key)),
    }
}

fn opt_filter(m: &mut IntMap, key: u64) -> Result<Option<PeerFilter>, CborError> {
    m.optional(key)
        .map(|v| PeerFilter::from_value(v, key))
        .transpose()
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = vec![
            (1, Value::Bytes(self.challenge.to_vec())),
            (2, self.record.to_value()),
            (3, encode_digests(&self.digests)),
        ];
        if let Some(c) = self.cookie {
            f.push((4, Value::Bytes(c.to_vec())));
        }
        if let Some(filter) = &self.filter {
            f.push((5, filter.to_value()));
        }
        cbor::encode(&int_map(f))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, RecordError> {
        let mut m = IntMap::decode(payload, MAX_PAYLOAD_BYTES)?;
        Ok(Self {
            challenge: m.bytes_exact(1)?,
            record: SignedRecord::from_value(m.required(2)?)?,
            digests: decode_digests(&mut m, 3)?,
            cookie: opt_bytes16(&mut m, 4)?,
            filter: opt_filter(&mut m, 5)?,
        })
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = vec![
            (1, Value::Bytes(self.challenge.to_vec())),
            (2, self.record.to_value()),
            (3, encode_addr(&self.observed)),
            (4, encode_digests(&self.digests)),
            (5, Value::Bytes(self.cookie.to_vec())),
        ];
        if let Some(filter) = &self.filter {
            f.push((6, filter.to_value()));
        }
        cbor::encode(&int_map(f))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, RecordError> {
        let mut m = IntMap::decode(payload, MAX_PAYLOAD_BYTES)?;
        Ok(Self {
            challenge: m.bytes_exact(1)?,
            record: SignedRecord::from_value(m.required(2)?)?,
            observed: decode_addr(m.required(3)?, 3)?,
            digests: decode_digests(&mut m, 4)?,
            cookie: m.bytes_exact(5)?,
            filter: opt_filter(&mut m, 6)?,
        })
    }
}

impl Records {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (1, Value::Bytes(self.challenge.to_vec())),
            (
                2,
                Value::Array(self.records.iter().map(SignedRecord::to_value).collect()),
            ),
        ]))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, RecordError> {
        let mut m = IntMap::decode(payload, MAX_PAYLOAD_BYTES)?;
        let challenge = m.bytes_exact(1)?;
        let items = m
            .array_max(2, MAX_RECORDS_PER_MESSAGE)
            .map_err(|_| CborError::WrongType(2))?;
        let records = items
            .into_iter()
            .map(SignedRecord::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { challenge, records })
    }

    /// Packs records into as few messages as fit in one datagram each.
    pub fn pack(challenge: [u8; CHALLENGE_BYTES], records: Vec<SignedRecord>) -> Vec<Records> {
        let mut out: Vec<Records> = Vec::new();
        let mut current = Records {
            challenge,
            records: Vec::new(),
        };
        for r in records {
            current.records.push(r);
            if current.records.len() > MAX_RECORDS_PER_MESSAGE
                || current.encode().len() > MAX_PAYLOAD_BYTES
            {
                let last = current.records.pop();
                if !current.records.is_empty() {
                    out.push(std::mem::replace(
                        &mut current,
                        Records {
                            challenge,
                            records: Vec::new(),
                        },
                    ));
                }
                current.records.extend(last);
            }
        }
        if !current.records.is_empty() {
            out.push(current);
        }
        out
    }
}

impl Probe {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![(1, uint(self.id))]))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CborError> {
        let mut m = IntMap::decode(payload, 64)?;
        Ok(Self {
            id: m.uint(1, u64::MAX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u8, len: usize) -> SignedRecord {
        SignedRecord {
            body: vec![n; len],
            signature: [n; 64],
        }
    }

    #[test]
    fn hello_reply_records_probe_round_trip() {
        let h = Hello {
            challenge: [1; 16],
            record: rec(1, 300),
            digests: vec![Digest::of(&[7; 32], 9)],
            cookie: Some([2; 16]),
            filter: Some(PeerFilter::new(1, 2, 3, 4, 5)),
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        let r = Reply {
            challenge: [1; 16],
            record: rec(2, 300),
            observed: "[2001:db8::1]:4000".parse().unwrap(),
            digests: vec![],
            cookie: [3; 16],
            filter: None,
        };
        assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        let p = Probe { id: u64::MAX };
        assert_eq!(Probe::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn records_pack_into_datagram_sized_messages() {
        let many: Vec<SignedRecord> = (0..20).map(|n| rec(n, 400)).collect();
        let packed = Records::pack([0; 16], many.clone());
        assert!(packed.len() >= 7, "400-byte records: two per datagram");
        for m in &packed {
            assert!(m.encode().len() <= MAX_PAYLOAD_BYTES);
            assert_eq!(Records::decode(&m.encode()).unwrap(), *m);
        }
        let flat: Vec<SignedRecord> = packed.into_iter().flat_map(|m| m.records).collect();
        assert_eq!(flat, many);
    }

    #[test]
    fn hellos_with_filters_beyond_the_limits_are_refused() {
        let hello = |filter: PeerFilter| Hello {
            challenge: [1; 16],
            record: rec(1, 10),
            digests: vec![],
            cookie: None,
            filter: Some(filter),
        };
        let ok = PeerFilter::new(0, u64::MAX, 1, 6, 900);
        assert!(Hello::decode(&hello(ok.clone()).encode()).is_ok());
        let mut big = ok.clone();
        big.bits = vec![0; crate::proto::filter::MAX_FILTER_BYTES + 1];
        assert!(Hello::decode(&hello(big).encode()).is_err());
        let mut hashes = ok.clone();
        hashes.hashes = 17;
        assert!(Hello::decode(&hello(hashes).encode()).is_err());
        let mut inverted = ok;
        inverted.lo = 5;
        inverted.hi = 4;
        assert!(Hello::decode(&hello(inverted).encode()).is_err());
    }

    #[test]
    fn too_many_digests_are_refused() {
        let h = Hello {
            challenge: [1; 16],
            record: rec(1, 10),
            digests: (0..33).map(|i| Digest::of(&[i; 32], 1)).collect(),
            cookie: None,
            filter: None,
        };
        assert!(Hello::decode(&h.encode()).is_err());
    }
}
