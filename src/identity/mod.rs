//! Ring 1: the node's own identity: the Ed25519 seed (the only long-term secret), the
//! WireGuard key pair derived from it, signing, and the state file that stores the seed.
//! Imports nothing else of ours.
#![forbid(unsafe_code)]

pub mod keys;
pub mod state;

pub use keys::NodeIdentity;
pub use state::{IdentityError, identity_path, load_identity, load_or_create_identity};
