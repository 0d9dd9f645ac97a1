//! The relay notice (type 0x0c, PROTOCOL.md §12): how both sides of a pair come to use one
//! relay. A node that moves a peer behind relay R tells R (`to_relay`: "I reach this peer
//! through you"); R tells the peer (`from_relay`: "this node reaches you through me"), so the
//! peer routes the pair through a relay too at once instead of noticing seconds later. A
//! notice with `relayed = false` says the pair goes direct again. Both hops travel inside the
//! tunnel (to mesh addresses), so WireGuard authenticates each sender.

use ciborium::Value;

use super::cbor::{self, CborError, IntMap, int_map, uint};

/// Largest relay notice payload (32-byte key, a bool, a small uint, map overhead).
pub const MAX_RELAY_NOTICE_BYTES: usize = 64;

/// Which hop a relay notice is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRole {
    /// Sender → its relay: `peer` is the node the sender reaches through this relay.
    ToRelay = 0,
    /// Relay → peer: `peer` is the node that reaches the receiver through this relay.
    FromRelay = 1,
}

/// `{1: peer WireGuard key bstr(32), 2: relayed bool, 3: role uint (0 to the relay, 1 from it)}`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayNotice {
    pub peer: [u8; 32],
    pub relayed: bool,
    pub role: RelayRole,
}

impl RelayNotice {
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&int_map(vec![
            (1, Value::Bytes(self.peer.to_vec())),
            (2, Value::Bool(self.relayed)),
            (3, uint(self.role as u64)),
        ]))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CborError> {
        let mut m = IntMap::decode(payload, MAX_RELAY_NOTICE_BYTES)?;
        let peer = m.bytes_exact::<32>(1)?;
        let relayed = m.boolean(2)?;
        let role = match m.uint(3, 1)? {
            0 => RelayRole::ToRelay,
            _ => RelayRole::FromRelay,
        };
        Ok(Self {
            peer,
            relayed,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_fields() {
        for role in [RelayRole::ToRelay, RelayRole::FromRelay] {
            for relayed in [false, true] {
                let n = RelayNotice {
                    peer: [7; 32],
                    relayed,
                    role,
                };
                let bytes = n.encode();
                assert!(bytes.len() <= MAX_RELAY_NOTICE_BYTES);
                assert_eq!(RelayNotice::decode(&bytes).unwrap(), n);
            }
        }
        let bad_role = cbor::encode(&int_map(vec![
            (1, Value::Bytes(vec![7; 32])),
            (2, Value::Bool(true)),
            (3, uint(2)),
        ]));
        assert!(RelayNotice::decode(&bad_role).is_err());
        let short_key = cbor::encode(&int_map(vec![
            (1, Value::Bytes(vec![7; 31])),
            (2, Value::Bool(true)),
            (3, uint(0)),
        ]));
        assert!(RelayNotice::decode(&short_key).is_err());
        assert!(RelayNotice::decode(&[0xff; 200]).is_err());
    }
}
