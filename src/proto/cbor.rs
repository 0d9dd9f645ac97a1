//! Bounded CBOR reading and writing for the wire formats: every payload is a CBOR map with small
//! integer keys (documented in docs/PROTOCOL.md). Input length is checked before anything is
//! decoded, trailing bytes and duplicate keys are refused, and typed getters turn every shape
//! mismatch into a [`CborError`] naming the field.

use std::net::{IpAddr, SocketAddr};

use ciborium::Value;

/// Most entries a wire map may hold.
pub const MAX_MAP_ENTRIES: usize = 32;

/// Why a CBOR payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CborError {
    #[error("payload is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("payload is not well-formed CBOR")]
    NotCbor,
    #[error("payload has trailing bytes after its CBOR item")]
    TrailingBytes,
    #[error("payload is not a CBOR map with at most {MAX_MAP_ENTRIES} integer keys")]
    NotAMap,
    #[error("field {0} appears twice")]
    DuplicateKey(u64),
    #[error("field {0} is missing")]
    Missing(u64),
    #[error("field {0} has the wrong type or an out-of-range value")]
    WrongType(u64),
}

/// Decodes exactly one CBOR item from `bytes`, refusing input over `max` bytes.
pub fn decode_bounded(bytes: &[u8], max: usize) -> Result<Value, CborError> {
    if bytes.len() > max {
        return Err(CborError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest).map_err(|_| CborError::NotCbor)?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes);
    }
    Ok(value)
}

/// Encodes a value (infallible for in-memory values built by this crate).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing into a Vec cannot fail, and every Value built here is encodable.
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// A map with integer keys, as read off the wire.
pub struct IntMap {
    entries: Vec<(u64, Value)>,
}

impl IntMap {
    /// Reads a map, checking entry count, key types and duplicates.
    pub fn from_value(value: Value) -> Result<Self, CborError> {
        let Value::Map(pairs) = value else {
            return Err(CborError::NotAMap);
        };
        if pairs.len() > MAX_MAP_ENTRIES {
            return Err(CborError::NotAMap);
        }
        let mut entries: Vec<(u64, Value)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = match k {
                Value::Integer(i) => u64::try_from(i).map_err(|_| CborError::NotAMap)?,
                _ => return Err(CborError::NotAMap),
            };
            if entries.iter().any(|(seen, _)| *seen == key) {
                return Err(CborError::DuplicateKey(key));
            }
            entries.push((key, v));
        }
        Ok(Self { entries })
    }

    /// Decodes bytes into a map (bounded).
    pub fn decode(bytes: &[u8], max: usize) -> Result<Self, CborError> {
        Self::from_value(decode_bounded(bytes, max)?)
    }

    fn take(&mut self, key: u64) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| *k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    /// Removes and returns a required field.
    pub fn required(&mut self, key: u64) -> Result<Value, CborError> {
        self.take(key).ok_or(CborError::Missing(key))
    }

    /// Removes and returns an optional field.
    pub fn optional(&mut self, key: u64) -> Option<Value> {
        self.take(key)
    }

    /// A required unsigned integer no larger than `max`.
    pub fn uint(&mut self, key: u64, max: u64) -> Result<u64, CborError> {
        as_uint(self.required(key)?, max).ok_or(CborError::WrongType(key))
    }

    /// A required byte string of exactly `N` bytes.
    pub fn bytes_exact<const N: usize>(&mut self, key: u64) -> Result<[u8; N], CborError> {
        match self.required(key)? {
            Value::Bytes(b) => b.try_into().map_err(|_| CborError::WrongType(key)),
            _ => Err(CborError::WrongType(key)),
        }
    }

    /// A required byte string of at most `max` bytes.
    pub fn bytes_max(&mut self, key: u64, max: usize) -> Result<Vec<u8>, CborError> {
        match self.required(key)? {
            Value::Bytes(b) if b.len() <= max => Ok(b),
            _ => Err(CborError::WrongType(key)),
        }
    }

    /// A required text string of at most `max` bytes.
    pub fn text_max(&mut self, key: u64, max: usize) -> Result<String, CborError> {
        match self.required(key)? {
            Value::Text(t) if t.len() <= max => Ok(t),
            _ => Err(CborError::WrongType(key)),
        }
    }

    /// A required boolean.
    pub fn boolean(&mut self, key: u64) -> Result<bool, CborError> {
        match self.required(key)? {
            Value::Bool(b) => Ok(b),
            _ => Err(CborError::WrongType(key)),
        }
    }

    /// A required array of at most `max` items.
    pub fn array_max(&mut self, key: u64, max: usize) -> Result<Vec<Value>, CborError> {
        match self.required(key)? {
            Value::Array(a) if a.len() <= max => Ok(a),
            Value::Array(_) => Err(CborError::TooLarge { len: max + 1, max }),
            _ => Err(CborError::WrongType(key)),
        }
    }
}

/// An unsigned integer no larger than `max`.
pub fn as_uint(value: Value, max: u64) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(i).ok().filter(|v| *v <= max),
        _ => None,
    }
}

/// Builds a map with integer keys in the given (ascending) order.
pub fn int_map(entries: Vec<(u64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

/// An unsigned integer value.
pub fn uint(v: u64) -> Value {
    Value::Integer(v.into())
}

/// A socket address on the wire: `[ip bstr(4 or 16), port uint]`.
pub fn encode_addr(a: &SocketAddr) -> Value {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    Value::Array(vec![Value::Bytes(ip), uint(a.port().into())])
}

/// Reads `[ip bstr(4 or 16), port uint]`; a shape error names field `key`.
pub fn decode_addr(v: Value, key: u64) -> Result<SocketAddr, CborError> {
    let bad = || CborError::WrongType(key);
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let [ip, port]: [Value; 2] = items.try_into().map_err(|_| bad())?;
    let ip: IpAddr = match ip {
        Value::Bytes(b) if b.len() == 4 => {
            <[u8; 4]>::try_from(b.as_slice()).map_err(|_| bad())?.into()
        }
        Value::Bytes(b) if b.len() == 16 => <[u8; 16]>::try_from(b.as_slice())
            .map_err(|_| bad())?
            .into(),
        _ => return Err(bad()),
    };
    let port = as_uint(port, u16::MAX.into()).ok_or_else(bad)? as u16;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_and_oversize_are_refused() {
        let mut bytes = encode(&int_map(vec![(1, uint(5))]));
        assert!(decode_bounded(&bytes, 100).is_ok());
        bytes.push(0);
        assert_eq!(decode_bounded(&bytes, 100), Err(CborError::TrailingBytes));
        assert_eq!(
            decode_bounded(&bytes, 2),
            Err(CborError::TooLarge {
                len: bytes.len(),
                max: 2
            })
        );
    }

    #[test]
    fn duplicate_and_non_integer_keys_are_refused() {
        let dup = Value::Map(vec![(uint(1), uint(1)), (uint(1), uint(2))]);
        assert_eq!(
            IntMap::from_value(dup).err(),
            Some(CborError::DuplicateKey(1))
        );
        let text_key = Value::Map(vec![(Value::Text("a".into()), uint(1))]);
        assert_eq!(IntMap::from_value(text_key).err(), Some(CborError::NotAMap));
    }

    #[test]
    fn typed_getters_name_the_field() {
        let mut m = IntMap::from_value(int_map(vec![(3, Value::Text("x".into()))])).unwrap();
        assert_eq!(m.uint(3, 10), Err(CborError::WrongType(3)));
        assert_eq!(m.uint(4, 10), Err(CborError::Missing(4)));
    }
}
