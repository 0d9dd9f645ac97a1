//! Rendezvous messages on the control socket (PROTOCOL.md §13): honoured only from the mesh
//! address of a held peer (they came through the tunnel, so WireGuard authenticated the
//! sender) and handed to the daemon, which owns the WireGuard device the introducer reads
//! mappings from and the punch sessions a start begins. Without a daemon channel they are
//! dropped as "not handled".

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tracing::debug;

use super::control_socket::{EVENTS_METRIC, Inner};
use crate::mesh::{Millis, WgKey};
use crate::proto::rendezvous::{RendezvousOffer, RendezvousStart};

/// Reason label of rendezvous messages from no held peer's mesh address.
pub const REASON_RENDEZVOUS_SOURCE: &str = "rendezvous_source";

/// A rendezvous message from the held peer `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RendezvousEvent {
    /// `from` asks this node (an introducer) to help it reach `offer.peer`.
    Offer {
        from: WgKey,
        offer: RendezvousOffer,
        received_at: Millis,
    },
    /// `from` (an introducer) says: punch toward `start.peer`.
    Start {
        from: WgKey,
        start: RendezvousStart,
        received_at: Millis,
    },
}

/// Where rendezvous events go.
pub type RendezvousSender = mpsc::Sender<RendezvousEvent>;

/// The held peer whose mesh address is `src`'s IP.
pub(crate) fn peer_at_mesh_address(inner: &Inner, src: SocketAddr) -> Option<WgKey> {
    let ip = src.ip().to_canonical();
    inner
        .store
        .snapshot()
        .iter()
        .find(|e| ip == e.record.mesh_ipv4 || ip == e.record.mesh_ipv6)
        .map(|e| *e.key())
}

/// Hands an offer or start from `src` to the daemon.
pub(crate) fn on_rendezvous(
    inner: &Inner,
    src: SocketAddr,
    make: impl FnOnce(WgKey) -> RendezvousEvent,
) {
    let Some(tx) = &inner.rendezvous else {
        inner.reject("type");
        return;
    };
    let Some(from) = peer_at_mesh_address(inner, src) else {
        debug!(from = %src, "rendezvous message from no held peer's mesh address dropped");
        inner.reject(REASON_RENDEZVOUS_SOURCE);
        return;
    };
    inner
        .metrics
        .inc(EVENTS_METRIC, &[("method", "rendezvous")]);
    if let Err(e) = tx.try_send(make(from)) {
        debug!(error = %e, "rendezvous message not forwarded to the daemon");
    }
}
