//! The node record (PROTOCOL.md §4): what a node says about itself, its CBOR encoding, its
//! Ed25519 signature over `"wgmesh/v2 record" ‖ network-id ‖ body`, and the verification every
//! receiver runs (signature, key binding, mesh address, sequence, sizes and field limits).
//!
//! The signature covers the exact body bytes received, so no canonical re-encoding is needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ciborium::Value;
use ipnet::IpNet;

use super::cbor::{self, CborError, IntMap, int_map, uint};
use super::derive::{MAX_ADDRESS_NONCE, MeshKeys};
use super::keys::{BindingError, check_binding, verify_signature};

/// Domain separation prefix of record signatures.
pub const RECORD_DOMAIN: &[u8] = b"wgmesh/v2 record";
/// Protocol version carried in field 0.
pub const RECORD_VERSION: u64 = 2;
/// Largest encoded record body.
pub const MAX_RECORD_BODY_BYTES: usize = 1024;
/// Largest encoded signed record (`[body, signature]`).
pub const MAX_SIGNED_RECORD_BYTES: usize = MAX_RECORD_BODY_BYTES + 80;
/// Longest hostname (bytes of `[A-Za-z0-9.-]`).
pub const MAX_HOSTNAME_BYTES: usize = 253;
/// Most endpoint candidates in a record.
pub const MAX_ENDPOINTS: usize = 8;
/// Most advertised routes in a record.
pub const MAX_ROUTES: usize = 64;
/// Largest relayed-peer count or capacity a record may state (§5 key 14).
pub const MAX_RELAY_CAPACITY: u32 = 100_000;

/// A relay's load, advertised by introducers (§5 key 14, optional): how many peers it relays
/// now and how many it accepts (`--max-relayed-peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLoad {
    pub relayed: u32,
    pub max: u32,
}

/// Where an endpoint candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    /// An address on one of the node's LAN interfaces.
    Lan,
    /// The node's public address as a STUN server saw it.
    Stun,
    /// An address another node observed this node's packets coming from.
    Observed,
    /// A global IPv6 address on one of the node's interfaces.
    PublicIpv6,
    /// The NAT mapping of the node's WireGuard port, as an introducer's WireGuard saw it.
    WireguardMapped,
}

impl EndpointKind {
    /// Wire code.
    pub fn code(self) -> u64 {
        match self {
            Self::Lan => 0,
            Self::Stun => 1,
            Self::Observed => 2,
            Self::PublicIpv6 => 3,
            Self::WireguardMapped => 4,
        }
    }
    /// From a wire code.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Lan,
            1 => Self::Stun,
            2 => Self::Observed,
            3 => Self::PublicIpv6,
            4 => Self::WireguardMapped,
            _ => return None,
        })
    }
}

/// A node's NAT behaviour as it determined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum NatType {
    #[default]
    Unknown,
    Open,
    FullCone,
    RestrictedCone,
    PortRestrictedCone,
    Symmetric,
}

impl NatType {
    /// Wire code.
    pub fn code(self) -> u64 {
        match self {
            Self::Unknown => 0,
            Self::Open => 1,
            Self::FullCone => 2,
            Self::RestrictedCone => 3,
            Self::PortRestrictedCone => 4,
            Self::Symmetric => 5,
        }
    }
    /// From a wire code; unknown codes read as `Unknown` (newer nodes may know more types).
    pub fn from_code(code: u64) -> Self {
        match code {
            1 => Self::Open,
            2 => Self::FullCone,
            3 => Self::RestrictedCone,
            4 => Self::PortRestrictedCone,
            5 => Self::Symmetric,
            _ => Self::Unknown,
        }
    }
    /// The name used in `show`, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Open => "open",
            Self::FullCone => "full-cone",
            Self::RestrictedCone => "restricted-cone",
            Self::PortRestrictedCone => "port-restricted-cone",
            Self::Symmetric => "symmetric",
        }
    }
}

/// One address a node may be reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointCandidate {
    pub kind: EndpointKind,
    pub addr: SocketAddr,
}

/// What a node says about itself. Build one, then [`NodeRecord::sign`] it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub ed25519_public: [u8; 32],
    pub wireguard_public: [u8; 32],
    /// Only grows; unix milliseconds at signing.
    pub sequence: u64,
    pub hostname: String,
    pub address_nonce: u8,
    pub mesh_ipv4: Ipv4Addr,
    pub mesh_ipv6: Ipv6Addr,
    pub endpoints: Vec<EndpointCandidate>,
    pub nat_type: NatType,
    pub introducer: bool,
    pub routes: Vec<IpNet>,
    pub control_port: u16,
    pub wireguard_port: u16,
    /// Relay load (introducers only; absent from older records).
    pub relay_load: Option<RelayLoad>,
}

/// Why a record was rejected. Each variant is one reason a receiver counts.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RecordError {
    #[error("record is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("record is malformed: {0}")]
    Malformed(#[from] CborError),
    #[error("record has protocol version {0}, this node speaks 2")]
    UnsupportedVersion(u64),
    #[error("record signature does not verify (forged, altered, or from another mesh)")]
    BadSignature,
    #[error("record keys do not belong together: {0}")]
    Binding(#[from] BindingError),
    #[error("record address nonce {0} is above the maximum of {MAX_ADDRESS_NONCE}")]
    NonceOutOfRange(u64),
    #[error("record claims mesh IPv4 {claimed}, but its key and nonce give {expected}")]
    Ipv4Mismatch {
        claimed: Ipv4Addr,
        expected: Ipv4Addr,
    },
    #[error("record claims mesh IPv6 {claimed}, but its key gives {expected}")]
    Ipv6Mismatch {
        claimed: Ipv6Addr,
        expected: Ipv6Addr,
    },
    #[error("record sequence {got} is not newer than the {held} already held (stale or replayed)")]
    Stale { got: u64, held: u64 },
    #[error("record hostname is not 1-{MAX_HOSTNAME_BYTES} bytes of A-Z a-z 0-9 . -")]
    BadHostname,
    #[error("record has {0} endpoints, at most {MAX_ENDPOINTS} are allowed")]
    TooManyEndpoints(usize),
    #[error("record has {0} routes, at most {MAX_ROUTES} are allowed")]
    TooManyRoutes(usize),
    #[error(
        "record has an invalid endpoint (unspecified/multicast address, port 0, or unknown kind)"
    )]
    BadEndpoint,
    #[error("record has an invalid route (bad prefix length or host bits set)")]
    BadRoute,
    #[error("record has control or WireGuard port 0")]
    BadPort,
    #[error(
        "record has an invalid relay load (not [relayed, max] with max 1..={MAX_RELAY_CAPACITY})"
    )]
    BadRelayLoad,
}

impl RecordError {
    /// A short stable label for metrics (`rejected{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "size",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedVersion(_) => "version",
            Self::BadSignature => "signature",
            Self::Binding(_) => "binding",
            Self::NonceOutOfRange(_) | Self::Ipv4Mismatch { .. } | Self::Ipv6Mismatch { .. } => {
                "address"
            }
            Self::Stale { .. } => "stale",
            Self::BadHostname
            | Self::TooManyEndpoints(_)
            | Self::TooManyRoutes(_)
            | Self::BadEndpoint
            | Self::BadRoute
            | Self::BadPort
            | Self::BadRelayLoad => "field",
        }
    }
}

/// Checks a hostname: 1-253 bytes of `[A-Za-z0-9.-]`.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOSTNAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Turns any host name into a valid record hostname (invalid characters become '-').
pub fn sanitize_hostname(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_HOSTNAME_BYTES)
        .collect();
    if out.is_empty() {
        out.push_str("node");
    }
    out
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn valid_endpoint_ip(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST))
}

// Field keys of the record body map (docs/PROTOCOL.md, "Node record").
mod key {
    pub const VERSION: u64 = 0;
    pub const ED25519: u64 = 1;
    pub const WIREGUARD: u64 = 2;
    pub const SEQUENCE: u64 = 3;
    pub const HOSTNAME: u64 = 4;
    pub const NONCE: u64 = 5;
    pub const ENDPOINTS: u64 = 6;
    pub const NAT: u64 = 7;
    pub const INTRODUCER: u64 = 8;
    pub const ROUTES: u64 = 9;
    pub const CONTROL_PORT: u64 = 10;
    pub const WIREGUARD_PORT: u64 = 11;
    pub const MESH_IPV4: u64 = 12;
    pub const MESH_IPV6: u64 = 13;
    pub const RELAY_LOAD: u64 = 14;
}

impl NodeRecord {
    /// Checks the limits every record must meet (both before signing and after decoding).
    pub fn check_fields(&self) -> Result<(), RecordError> {
        if !valid_hostname(&self.hostname) {
            return Err(RecordError::BadHostname);
        }
        if self.endpoints.len() > MAX_ENDPOINTS {
            return Err(RecordError::TooManyEndpoints(self.endpoints.len()));
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(RecordError::TooManyRoutes(self.routes.len()));
        }
        if u64::from(self.address_nonce) > u64::from(MAX_ADDRESS_NONCE) {
            return Err(RecordError::NonceOutOfRange(self.address_nonce.into()));
        }
        if self.control_port == 0 || self.wireguard_port == 0 {
            return Err(RecordError::BadPort);
        }
        for e in &self.endpoints {
            if e.addr.port() == 0 || !valid_endpoint_ip(e.addr.ip()) {
                return Err(RecordError::BadEndpoint);
            }
        }
        for r in &self.routes {
            if r.trunc() != *r {
                return Err(RecordError::BadRoute);
            }
        }
        if let Some(l) = self.relay_load
            && (l.max == 0 || l.max > MAX_RELAY_CAPACITY || l.relayed > MAX_RELAY_CAPACITY)
        {
            return Err(RecordError::BadRelayLoad);
        }
        Ok(())
    }

    /// Encodes the body (CBOR map with integer keys, ascending).
    pub fn encode_body(&self) -> Vec<u8> {
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| {
                Value::Array(vec![
                    uint(e.kind.code()),
                    Value::Bytes(ip_bytes(e.addr.ip())),
                    uint(e.addr.port().into()),
                ])
            })
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|r| {
                Value::Array(vec![
                    Value::Bytes(ip_bytes(r.addr())),
                    uint(r.prefix_len().into()),
                ])
            })
            .collect();
        let mut fields = vec![
            (key::VERSION, uint(RECORD_VERSION)),
            (key::ED25519, Value::Bytes(self.ed25519_public.to_vec())),
            (key::WIREGUARD, Value::Bytes(self.wireguard_public.to_vec())),
            (key::SEQUENCE, uint(self.sequence)),
            (key::HOSTNAME, Value::Text(self.hostname.clone())),
            (key::NONCE, uint(self.address_nonce.into())),
            (key::ENDPOINTS, Value::Array(endpoints)),
            (key::NAT, uint(self.nat_type.code())),
            (key::INTRODUCER, Value::Bool(self.introducer)),
            (key::ROUTES, Value::Array(routes)),
            (key::CONTROL_PORT, uint(self.control_port.into())),
            (key::WIREGUARD_PORT, uint(self.wireguard_port.into())),
            (
                key::MESH_IPV4,
                Value::Bytes(self.mesh_ipv4.octets().to_vec()),
            ),
            (
                key::MESH_IPV6,
                Value::Bytes(self.mesh_ipv6.octets().to_vec()),
            ),
        ];
        // Optional: absent when not set, so records without it encode as before.
        if let Some(l) = self.relay_load {
            fields.push((
                key::RELAY_LOAD,
                Value::Array(vec![uint(l.relayed.into()), uint(l.max.into())]),
            ));
        }
        cbor::encode(&int_map(fields))
    }

    /// Decodes a body and checks its field limits (not its signature).
    pub fn decode_body(body: &[u8]) -> Result<Self, RecordError> {
        if body.len() > MAX_RECORD_BODY_BYTES {
            return Err(RecordError::TooLarge {
                len: body.len(),
                max: MAX_RECORD_BODY_BYTES,
            });
        }
        let mut m = IntMap::decode(body, MAX_RECORD_BODY_BYTES)?;
        let version = m.uint(key::VERSION, u64::MAX)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let ed25519_public = m.bytes_exact::<32>(key::ED25519)?;
        let wireguard_public = m.bytes_exact::<32>(key::WIREGUARD)?;
        let sequence = m.uint(key::SEQUENCE, u64::MAX)?;
        let hostname = m
            .text_max(key::HOSTNAME, MAX_HOSTNAME_BYTES)
            .map_err(|_| RecordError::BadHostname)?;
        let nonce = m.uint(key::NONCE, u64::from(u8::MAX))?;
        if nonce > u64::from(MAX_ADDRESS_NONCE) {
            return Err(RecordError::NonceOutOfRange(nonce));
        }
        let raw_endpoints = m
            .array_max(key::ENDPOINTS, MAX_ENDPOINTS)
            .map_err(|e| too_many(e, RecordError::TooManyEndpoints(MAX_ENDPOINTS + 1)))?;
        let endpoints = raw_endpoints
            .into_iter()
            .map(decode_endpoint)
            .collect::<Option<Vec<_>>>()
            .ok_or(RecordError::BadEndpoint)?;
        let nat_type = NatType::from_code(m.uint(key::NAT, u64::from(u8::MAX))?);
        let introducer = m.boolean(key::INTRODUCER)?;
        let raw_routes = m
            .array_max(key::ROUTES, MAX_ROUTES)
            .map_err(|e| too_many(e, RecordError::TooManyRoutes(MAX_ROUTES + 1)))?;
        let routes = raw_routes
            .into_iter()
            .map(decode_route)
            .collect::<Option<Vec<_>>>()
            .ok_or(RecordError::BadRoute)?;
        let control_port = m.uint(key::CONTROL_PORT, u16::MAX.into())? as u16;
        let wireguard_port = m.uint(key::WIREGUARD_PORT, u16::MAX.into())? as u16;
        let mesh_ipv4 = Ipv4Addr::from(m.bytes_exact::<4>(key::MESH_IPV4)?);
        let mesh_ipv6 = Ipv6Addr::from(m.bytes_exact::<16>(key::MESH_IPV6)?);
        let relay_load = match m.optional(key::RELAY_LOAD) {
            None => None,
            Some(v) => Some(decode_relay_load(v).ok_or(RecordError::BadRelayLoad)?),
        };
        let record = Self {
            ed25519_public,
            wireguard_public,
            sequence,
            hostname,
            address_nonce: nonce as u8,
            mesh_ipv4,
            mesh_ipv6,
            endpoints,
            nat_type,
            introducer,
            routes,
            control_port,
            wireguard_port,
            relay_load,
        };
        record.check_fields()?;
        Ok(record)
    }

    /// Signs the record for the mesh `network_id` with `sign` (the node's Ed25519 key).
    pub fn sign(
        &self,
        network_id: &[u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<SignedRecord, RecordError> {
        self.check_fields()?;
        let body = self.encode_body();
        if body.len() > MAX_RECORD_BODY_BYTES {
            return Err(RecordError::TooLarge {
                len: body.len(),
                max: MAX_RECORD_BODY_BYTES,
            });
        }
        let signature = sign(&signing_message(RECORD_DOMAIN, network_id, &body));
        Ok(SignedRecord { body, signature })
    }
}

fn too_many(e: CborError, many: RecordError) -> RecordError {
    match e {
        CborError::TooLarge { .. } => many,
        other => RecordError::Malformed(other),
    }
}

fn decode_relay_load(v: Value) -> Option<RelayLoad> {
    let Value::Array(a) = v else { return None };
    let [relayed, max]: [Value; 2] = a.try_into().ok()?;
    let cap = u64::from(MAX_RELAY_CAPACITY);
    Some(RelayLoad {
        relayed: cbor::as_uint(relayed, cap)? as u32,
        max: cbor::as_uint(max, cap)? as u32,
    })
}

fn decode_endpoint(v: Value) -> Option<EndpointCandidate> {
    let Value::Array(items) = v else { return None };
    let [kind, ip, port]: [Value; 3] = items.try_into().ok()?;
    let kind = EndpointKind::from_code(cbor::as_uint(kind, 255)?)?;
    let ip = match ip {
        Value::Bytes(b) => ip_from_bytes(&b)?,
        _ => return None,
    };
    let port = cbor::as_uint(port, u16::MAX.into())? as u16;
    Some(EndpointCandidate {
        kind,
        addr: SocketAddr::new(ip, port),
    })
}

fn decode_route(v: Value) -> Option<IpNet> {
    let Value::Array(items) = v else { return None };
    let [ip, len]: [Value; 2] = items.try_into().ok()?;
    let ip = match ip {
        Value::Bytes(b) => ip_from_bytes(&b)?,
        _ => return None,
    };
    let len = cbor::as_uint(len, 128)? as u8;
    IpNet::new(ip, len).ok()
}

/// The message an Ed25519 signature covers: `domain ‖ network-id ‖ body`.
pub fn signing_message(domain: &[u8], network_id: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain.len() + 32 + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(network_id);
    msg.extend_from_slice(body);
    msg
}

/// A record as it travels: the exact body bytes and the signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

impl SignedRecord {
    /// The wire value: `[body: bstr, signature: bstr(64)]`.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            Value::Bytes(self.body.clone()),
            Value::Bytes(self.signature.to_vec()),
        ])
    }

    /// Encoded on its own (cache files, test vectors).
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Reads the wire value (shape and sizes only; [`RecordVerifier::verify`] does the rest).
    pub fn from_value(v: Value) -> Result<Self, RecordError> {
        let Value::Array(items) = v else {
            return Err(CborError::WrongType(0).into());
        };
        let [body, sig]: [Value; 2] = items
            .try_into()
            .map_err(|_| RecordError::Malformed(CborError::WrongType(0)))?;
        let body = match body {
            Value::Bytes(b) if b.len() <= MAX_RECORD_BODY_BYTES => b,
            Value::Bytes(b) => {
                return Err(RecordError::TooLarge {
                    len: b.len(),
                    max: MAX_RECORD_BODY_BYTES,
                });
            }
            _ => return Err(CborError::WrongType(0).into()),
        };
        let signature = match sig {
            Value::Bytes(b) => <[u8; 64]>::try_from(b.as_slice())
                .map_err(|_| RecordError::Malformed(CborError::WrongType(1)))?,
            _ => return Err(CborError::WrongType(1).into()),
        };
        Ok(Self { body, signature })
    }

    /// Decodes a standalone signed record (bounded).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_SIGNED_RECORD_BYTES {
            return Err(RecordError::TooLarge {
                len: bytes.len(),
                max: MAX_SIGNED_RECORD_BYTES,
            });
        }
        Self::from_value(cbor::decode_bounded(bytes, MAX_SIGNED_RECORD_BYTES)?)
    }
}

/// Checks records against one mesh: its network id and address derivation.
pub struct RecordVerifier<'a> {
    keys: &'a MeshKeys,
}

impl<'a> RecordVerifier<'a> {
    pub fn new(keys: &'a MeshKeys) -> Self {
        Self { keys }
    }

    /// Full verification. `held_sequence` is the sequence of the record already held for this
    /// node, if any: the new one must be strictly newer.
    pub fn verify(
        &self,
        signed: &SignedRecord,
        held_sequence: Option<u64>,
    ) -> Result<NodeRecord, RecordError> {
        let record = NodeRecord::decode_body(&signed.body)?;
        let msg = signing_message(RECORD_DOMAIN, self.keys.network_id(), &signed.body);
        if !verify_signature(&record.ed25519_public, &msg, &signed.signature) {
            return Err(RecordError::BadSignature);
        }
        check_binding(&record.ed25519_public, &record.wireguard_public)?;
        let expected4 = self
            .keys
            .mesh_ipv4(&record.wireguard_public, record.address_nonce);
        if record.mesh_ipv4 != expected4 {
            return Err(RecordError::Ipv4Mismatch {
                claimed: record.mesh_ipv4,
                expected: expected4,
            });
        }
        let expected6 = self.keys.mesh_ipv6(&record.wireguard_public);
        if record.mesh_ipv6 != expected6 {
            return Err(RecordError::Ipv6Mismatch {
                claimed: record.mesh_ipv6,
                expected: expected6,
            });
        }
        if let Some(held) = held_sequence
            && record.sequence <= held
        {
            return Err(RecordError::Stale {
                got: record.sequence,
                held,
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod relay_load_tests {
    use super::*;

    fn record() -> NodeRecord {
        NodeRecord {
            ed25519_public: [1; 32],
            wireguard_public: [2; 32],
            sequence: 7,
            hostname: "relay".into(),
            address_nonce: 0,
            mesh_ipv4: Ipv4Addr::new(10, 0, 0, 1),
            mesh_ipv6: Ipv6Addr::LOCALHOST,
            endpoints: vec![],
            nat_type: NatType::Open,
            introducer: true,
            routes: vec![],
            control_port: 51821,
            wireguard_port: 51820,
            relay_load: None,
        }
    }

    #[test]
    fn relay_load_is_optional_and_checked() {
        let plain = record();
        let body = plain.encode_body();
        assert!(!body.is_empty());
        assert_eq!(NodeRecord::decode_body(&body).unwrap(), plain);
        let loaded = NodeRecord {
            relay_load: Some(RelayLoad {
                relayed: 3,
                max: 64,
            }),
            ..record()
        };
        let with = loaded.encode_body();
        assert_eq!(
            with.len(),
            body.len() + 5,
            "key 14, array header, 3, 64 (2 bytes)"
        );
        assert_eq!(NodeRecord::decode_body(&with).unwrap(), loaded);
        for bad in [
            RelayLoad { relayed: 1, max: 0 },
            RelayLoad {
                relayed: 1,
                max: MAX_RELAY_CAPACITY + 1,
            },
            RelayLoad {
                relayed: MAX_RELAY_CAPACITY + 1,
                max: 10,
            },
        ] {
            let r = NodeRecord {
                relay_load: Some(bad),
                ..record()
            };
            assert_eq!(r.check_fields(), Err(RecordError::BadRelayLoad));
        }
        // Malformed values on the wire are refused.
        let mut m = match cbor::decode_bounded(&body, MAX_RECORD_BODY_BYTES).unwrap() {
            Value::Map(m) => m,
            _ => unreachable!(),
        };
        m.push((Value::Integer(14.into()), uint(3)));
        let malformed = cbor::encode(&Value::Map(m));
        assert_eq!(
            NodeRecord::decode_body(&malformed),
            Err(RecordError::BadRelayLoad)
        );
    }
}
