//! Relay notices on the control socket (PROTOCOL.md §12). They are honoured only from mesh
//! addresses of held peers (they came through the tunnel, so WireGuard authenticated the
//! sender):
//! - `to_relay` ("I reach `peer` through you"): this node, an introducer, passes it on to
//!   `peer` as `from_relay` naming the sender (with its `chosen` and `legs` fields), and tells
//!   the daemon, which counts this relay's load;
//! - `from_relay` ("`peer` reaches you through me"): handed to the daemon, which relays `peer`
//!   back through a relay so both directions take one path.

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tracing::debug;

use super::control_socket::{EVENTS_METRIC, Inner};
use crate::mesh::{Millis, WgKey, short_key};
use crate::proto::NodeRecord;
use crate::proto::messages::Message;
use crate::proto::relay::{RelayNotice, RelayRole};

/// Reason label of relay notices from an address that is no held peer's mesh address.
pub const REASON_RELAY_NOTICE_SOURCE: &str = "relay_notice_source";
/// Reason label of `to_relay` notices sent to a node that is not an introducer.
pub const REASON_NOT_INTRODUCER: &str = "not_introducer";

/// A peer's relay told this node that `peer` reaches it through `relay` (or goes direct again);
/// or, with `through_this_node`, `peer` told this node (a relay) that it reaches that node
/// through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayNoticeEvent {
    pub peer: WgKey,
    pub relay: WgKey,
    pub relayed: bool,
    /// `peer` decides the pair's relay and chose `relay`.
    pub chosen: bool,
    /// `peer`'s link quality to relay candidates.
    pub legs: Vec<(WgKey, u8)>,
    pub received_at: Millis,
    /// This node is the relay; `peer` sent the notice about this key.
    pub through_this_node: Option<WgKey>,
}

/// Where relay notice events go.
pub type RelayNoticeSender = mpsc::Sender<RelayNoticeEvent>;

fn is_introducer(inner: &Inner) -> bool {
    NodeRecord::decode_body(&inner.local_record().body).is_ok_and(|r| r.introducer)
}

/// Handles one relay notice from `src`.
pub(crate) async fn on_relay_notice(
    inner: &Inner,
    src: SocketAddr,
    notice: RelayNotice,
    now: Millis,
) {
    let Some(sender) = super::rendezvous::peer_at_mesh_address(inner, src) else {
        debug!(from = %src, "relay notice from no held peer's mesh address dropped");
        inner.reject(REASON_RELAY_NOTICE_SOURCE);
        return;
    };
    inner.metrics.inc(EVENTS_METRIC, &[("method", "relay")]);
    match notice.role {
        RelayRole::ToRelay => {
            if !is_introducer(inner) {
                inner.reject(REASON_NOT_INTRODUCER);
                return;
            }
            let Some(target) = inner.store.get(&notice.peer) else {
                debug!(peer = %short_key(&notice.peer), "relay notice for a peer this relay does not hold");
                return;
            };
            if Some(notice.peer) == inner.own_key() || notice.peer == sender {
                return;
            }
            let to = SocketAddr::new(target.record.mesh_ipv4.into(), target.record.control_port);
            debug!(from = %short_key(&sender), to = %short_key(&notice.peer), relayed = notice.relayed, chosen = notice.chosen, "relay notice passed on");
            if let Some(tx) = &inner.relay_notices {
                let event = RelayNoticeEvent {
                    peer: sender,
                    relay: notice.peer,
                    relayed: notice.relayed,
                    chosen: notice.chosen,
                    legs: notice.legs.clone(),
                    received_at: now,
                    through_this_node: Some(notice.peer),
                };
                let _ = tx.try_send(event);
            }
            let forward = RelayNotice {
                peer: sender,
                role: RelayRole::FromRelay,
                ..notice
            };
            inner.send_logged(to, &Message::RelayNotice(forward)).await;
        }
        RelayRole::FromRelay => {
            let Some(tx) = &inner.relay_notices else {
                return;
            };
            let event = RelayNoticeEvent {
                peer: notice.peer,
                relay: sender,
                relayed: notice.relayed,
                chosen: notice.chosen,
                legs: notice.legs,
                received_at: now,
                through_this_node: None,
            };
            if let Err(e) = tx.try_send(event) {
                debug!(error = %e, "relay notice not forwarded to the daemon");
            }
        }
    }
}
