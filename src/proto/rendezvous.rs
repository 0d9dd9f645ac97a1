//! Rendezvous through an introducer (types 0x06 offer, 0x07 start; PROTOCOL.md §13). A node
//! with no working direct path to a peer sends an offer to a common introducer; the introducer
//! sends both ends a start naming the other end, the addresses to try for it (the WireGuard
//! mapping the introducer saw, the peer's advertised candidates, predicted neighbouring ports)
//! and a start time, so both punch at the same moment. Both messages travel inside the tunnel.

use std::net::SocketAddr;

use ciborium::Value;

use super::cbor::{self, CborError, IntMap, decode_addr, encode_addr, int_map, uint};

/// Most candidate addresses in a start.
pub const MAX_PUNCH_CANDIDATES: usize = 16;
/// Largest offer payload.
pub const MAX_OFFER_BYTES: usize = 64;
/// Largest start payload (16 IPv6 addresses with ports, a key, a time, map overhead).
pub const MAX_START_BYTES: usize = 512;

/// Node → introducer: "help me reach `peer`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RendezvousOffer {
    pub peer: [u8; 32],
}

/// Introducer → both ends: punch toward `peer` at `start_at`, trying `candidates` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousStart {
    pub peer: [u8; 32],
    pub candidates: Vec<SocketAddr>,
    /// Unix milliseconds (introducer's clock; start times are ~1.5 s ahead, so clocks within
    /// a second of each other are fine).
    pub start_at: u64,
}

impl RendezvousOffer {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![(1, Value::Bytes(self.peer.to_vec()))]))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CborError> {
        let mut m = IntMap::decode(payload, MAX_OFFER_BYTES)?;
        Ok(Self {
            peer: m.bytes_exact::<32>(1)?,
        })
    }
}

impl RendezvousStart {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (1, Value::Bytes(self.peer.to_vec())),
            (
                2,
                Value::Array(self.candidates.iter().map(encode_addr).collect()),
            ),
            (3, uint(self.start_at)),
        ]))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CborError> {
        let mut m = IntMap::decode(payload, MAX_START_BYTES)?;
        let peer = m.bytes_exact::<32>(1)?;
        let candidates = m
            .array_max(2, MAX_PUNCH_CANDIDATES)?
            .into_iter()
            .map(|v| decode_addr(v, 2))
            .collect::<Result<Vec<_>, _>>()?;
        if candidates
            .iter()
            .any(|c| c.port() == 0 || c.ip().is_unspecified() || c.ip().is_multicast())
        {
            return Err(CborError::WrongType(2));
        }
        Ok(Self {
            peer,
            candidates,
            start_at: m.uint(3, u64::MAX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(n: usize) -> RendezvousStart {
        RendezvousStart {
            peer: [9; 32],
            candidates: (0..n)
                .map(|i| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1], 51820)))
                .collect(),
            start_at: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trips_within_their_limits() {
        let o = RendezvousOffer { peer: [3; 32] };
        assert!(o.encode().len() <= MAX_OFFER_BYTES);
        assert_eq!(RendezvousOffer::decode(&o.encode()).unwrap(), o);
        let s = start(MAX_PUNCH_CANDIDATES);
        assert!(s.encode().len() <= MAX_START_BYTES, "{}", s.encode().len());
        assert_eq!(RendezvousStart::decode(&s.encode()).unwrap(), s);
        let v4 = RendezvousStart {
            candidates: vec![SocketAddr::from(([198, 51, 100, 7], 40001))],
            ..start(0)
        };
        assert_eq!(RendezvousStart::decode(&v4.encode()).unwrap(), v4);
    }

    #[test]
    fn refuses_too_many_or_unusable_candidates() {
        let mut too_many = start(MAX_PUNCH_CANDIDATES);
        too_many
            .candidates
            .push(SocketAddr::from(([198, 51, 100, 7], 1)));
        assert!(RendezvousStart::decode(&too_many.encode()).is_err());
        for bad in ["0.0.0.0:51820", "198.51.100.7:0", "[ff02::1]:51820"] {
            let s = RendezvousStart {
                candidates: vec![bad.parse().unwrap()],
                ..start(0)
            };
            assert!(RendezvousStart::decode(&s.encode()).is_err(), "{bad}");
        }
        assert!(RendezvousOffer::decode(&[0xa1, 0x01, 0x41, 0x00]).is_err());
        assert!(RendezvousStart::decode(&[0xff; 600]).is_err());
    }
}
