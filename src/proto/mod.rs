//! Ring 1: the wire protocol v2 (PROTOCOL.md). The mesh secret and everything derived from it,
//! public-key checks, node records, control envelopes and message payloads, with bounded
//! decoders. Pure: no sockets, files, clock or environment; imports nothing else of ours.
#![forbid(unsafe_code)]

pub mod cbor;
pub mod derive;
pub mod dht_item;
pub mod envelope;
pub mod exchange;
pub mod filter;
pub mod keys;
pub mod messages;
pub mod record;
pub mod registry;
pub mod relay;
pub mod rendezvous;
pub mod sealed;
pub mod secret;

pub use derive::MeshKeys;
pub use envelope::MessageType;
pub use keys::WgPublicKey;
pub use messages::{Message, MessageError};
pub use record::{
    EndpointCandidate, EndpointKind, NatType, NodeRecord, RecordError, RecordVerifier, RelayLoad,
    SignedRecord,
};
pub use secret::{MeshSecret, SecretError, SecretKind};
