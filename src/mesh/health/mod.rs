//! Health state machines, pure (the daemon does the I/O): the handshake/transfer monitor, the
//! probe monitor and its quality-probe cadence, link quality (RTT, jitter) from probe RTTs and
//! loss over the last probes, suspect paths (sent without hearing back), and the list of peers
//! temporarily offline.

pub mod cadence;
pub mod handshake;
pub mod loss;
pub mod offline;
pub mod probe;
pub mod quality;
pub mod suspect;

pub use handshake::{
    HandshakeAction, HandshakeMonitor, HandshakeSample, STALE_HANDSHAKE_AFTER, is_stale,
};
pub use loss::LossWindow;
pub use offline::{OfflineList, TEMPORARILY_OFFLINE_FOR};
pub use probe::{LinkStats, ProbeMonitor, ProbeNeed, ProbeVerdict, needs_probing};
pub use quality::LinkQuality;
pub use suspect::SuspectTracker;
