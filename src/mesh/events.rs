//! What the peer store tells its subscribers: a peer was added, changed or removed. Events carry
//! only the key; subscribers read the details with `PeerStore::get`.

use super::WgKey;

/// Why a peer left the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RemoveReason {
    /// Not seen for longer than the removal age (cleanup).
    Expired,
    /// The health monitor gave up on it (stale twice).
    Evicted,
    /// The peer said goodbye.
    Goodbye,
}

/// One change in the peer store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerEvent {
    /// A peer the store did not hold.
    Added(WgKey),
    /// Something the planner or `show` uses changed (record, endpoint, discovery methods).
    Updated(WgKey),
    /// The peer left the store.
    Removed(WgKey, RemoveReason),
}

impl PeerEvent {
    /// The peer the event is about.
    pub fn key(&self) -> &WgKey {
        match self {
            Self::Added(k) | Self::Updated(k) | Self::Removed(k, _) => k,
        }
    }
}
