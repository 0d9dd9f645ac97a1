//! The relay notice (type 0x0c, PROTOCOL.md §12): how both sides of a pair come to use one
//! relay. A node that moves a peer behind relay R tells R (`to_relay`: "I reach this peer
//! through you"); R tells the peer (`from_relay`: "this node reaches you through me"), so the
//! peer routes the pair through a relay too at once instead of noticing seconds later. A
//! notice with `relayed = false` says the pair goes direct again. Optional fields carry the
//! relay choice: `chosen` (the pair's smaller key names the relay that forwards the notice) and
//! `legs` (the sender's link quality to relay candidates, so the chooser can score both legs).
//! Both hops travel inside the tunnel (to mesh addresses), so WireGuard authenticates each
//! sender.

use ciborium::Value;

use super::cbor::{self, CborError, IntMap, int_map, uint};

/// Largest relay notice payload: a 32-byte key, two bools, a small uint, and up to
/// [`MAX_LEGS`] legs of a 32-byte key and a quality (37 bytes each), with map overhead.
pub const MAX_RELAY_NOTICE_BYTES: usize = 384;
/// Most legs one notice reports.
pub const MAX_LEGS: usize = 8;

/// Which hop a relay notice is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRole {
    /// Sender → its relay: `peer` is the node the sender reaches through this relay.
    ToRelay = 0,
    /// Relay → peer: `peer` is the node that reaches the receiver through this relay.
    FromRelay = 1,
}

/// `{1: peer WireGuard key bstr(32), 2: relayed bool, 3: role uint (0 to the relay, 1 from it),
/// ?4: chosen bool, ?5: legs [[relay key bstr(32), quality uint 0..=100]] (≤ 8)}`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayNotice {
    pub peer: [u8; 32],
    pub relayed: bool,
    pub role: RelayRole,
    /// The sender is the pair's decider (the smaller WireGuard key) and the pair goes through
    /// the relay that forwards this notice (key 4; absent = false).
    pub chosen: bool,
    /// The sender's measured link quality to relay candidates (key 5; absent = none).
    pub legs: Vec<([u8; 32], u8)>,
}

impl RelayNotice {
    /// A plain notice (no choice, no legs), as PROTOCOL.md §12 first defined it.
    pub fn plain(peer: [u8; 32], relayed: bool, role: RelayRole) -> Self {
        Self {
            peer,
            relayed,
            role,
            chosen: false,
            legs: Vec::new(),
        }
    }

    /// Whether the notice carries agreement fields (then `relayed = false` does not mean
    /// "direct again").
    pub fn is_agreement(&self) -> bool {
        self.chosen || !self.legs.is_empty()
    }
}

fn decode_leg(v: Value) -> Option<([u8; 32], u8)> {
    let Value::Array(a) = v else { return None };
    let [key, quality]: [Value; 2] = a.try_into().ok()?;
    let Value::Bytes(key) = key else { return None };
    let key: [u8; 32] = key.try_into().ok()?;
    Some((key, cbor::as_uint(quality, 100)? as u8))
}

impl RelayNotice {
    pub fn encode(&self) -> Vec<u8> {
        let mut fields = vec![
            (1, Value::Bytes(self.peer.to_vec())),
            (2, Value::Bool(self.relayed)),
            (3, uint(self.role as u64)),
        ];
        if self.chosen {
            fields.push((4, Value::Bool(true)));
        }
        if !self.legs.is_empty() {
            let legs = self
                .legs
                .iter()
                .take(MAX_LEGS)
                .map(|(k, q)| {
                    Value::Array(vec![Value::Bytes(k.to_vec()), uint((*q).min(100).into())])
                })
                .collect();
            fields.push((5, Value::Array(legs)));
        }
        cbor::encode(&int_map(fields))
    }

    pub fn decode(payload: &[u8]) -> Result<Self, CborError> {
        let mut m = IntMap::decode(payload, MAX_RELAY_NOTICE_BYTES)?;
        let peer = m.bytes_exact::<32>(1)?;
        let relayed = m.boolean(2)?;
        let role = match m.uint(3, 1)? {
            0 => RelayRole::ToRelay,
            _ => RelayRole::FromRelay,
        };
        let chosen = match m.optional(4) {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(CborError::WrongType(4)),
        };
        let legs = match m.optional(5) {
            None => Vec::new(),
            Some(Value::Array(a)) if a.len() <= MAX_LEGS => a
                .into_iter()
                .map(decode_leg)
                .collect::<Option<Vec<_>>>()
                .ok_or(CborError::WrongType(5))?,
            Some(_) => return Err(CborError::WrongType(5)),
        };
        Ok(Self {
            peer,
            relayed,
            role,
            chosen,
            legs,
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
                let n = RelayNotice::plain([7; 32], relayed, role);
                let bytes = n.encode();
                assert!(bytes.len() <= 64, "a plain notice is as small as before");
                assert_eq!(RelayNotice::decode(&bytes).unwrap(), n);
                let full = RelayNotice {
                    chosen: true,
                    legs: (0..MAX_LEGS as u8).map(|i| ([i; 32], 100 - i)).collect(),
                    ..n
                };
                let bytes = full.encode();
                assert!(bytes.len() <= MAX_RELAY_NOTICE_BYTES, "{}", bytes.len());
                assert_eq!(RelayNotice::decode(&bytes).unwrap(), full);
                assert!(full.is_agreement() && !n.is_agreement());
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
        let base = || {
            vec![
                (1, Value::Bytes(vec![7; 32])),
                (2, Value::Bool(true)),
                (3, uint(0)),
            ]
        };
        let leg = |k: usize, q: u64| Value::Array(vec![Value::Bytes(vec![1; k]), uint(q)]);
        let with = |key: u64, v: Value| {
            let mut f = base();
            f.push((key, v));
            RelayNotice::decode(&cbor::encode(&int_map(f)))
        };
        assert!(with(4, uint(1)).is_err(), "chosen must be a bool");
        assert!(
            with(5, Value::Array(vec![leg(32, 101)])).is_err(),
            "quality > 100"
        );
        assert!(
            with(5, Value::Array(vec![leg(31, 50)])).is_err(),
            "short key"
        );
        assert!(
            with(5, Value::Array(vec![leg(32, 50); 9])).is_err(),
            "9 legs"
        );
        assert!(with(5, Value::Array(vec![leg(32, 50); 8])).is_ok());
        assert!(with(6, uint(1)).is_ok(), "unknown keys are ignored");
    }
}
