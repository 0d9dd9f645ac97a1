//! Health state machines, pure (the daemon does the I/O): the handshake/transfer monitor, the
//! probe monitor, link quality from probe RTTs, suspect paths (sent without hearing back), and
//! the list of peers temporarily offline.

pub mod handshake;
pub mod offline;
pub mod probe;
pub mod quality;
pub mod suspect;

pub use handshake::{
    HandshakeAction, HandshakeMonitor, HandshakeSample, STALE_HANDSHAKE_AFTER, is_stale,
};
pub use offline::{OfflineList, TEMPORARILY_OFFLINE_FOR};
pub use probe::{ProbeMonitor, ProbeNeed, ProbeVerdict, needs_probing};
pub use quality::LinkQuality;
pub use suspect::SuspectTracker;
