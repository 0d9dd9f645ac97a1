//! STUN (RFC 8489 Binding + RFC 5780 NAT behaviour discovery): the wire format behind hard
//! limits ([`wire`], encoding by `stun_codec`), the bounded table of pending transactions
//! ([`table`]), a client on the control socket or a socket of its own ([`client`]) and the NAT
//! check that `netcheck` and the daemon run ([`check`]); the classification is
//! `mesh::nat_check`.
//!
//! On the control socket, STUN responses and WGM2 envelopes share one port: the receive loop
//! hands a datagram whose first two bits are 0 and which has the magic cookie at bytes 4..8 to
//! [`on_control_datagram`] (rate-limited per source like everything else), which takes it only
//! when its transaction id is pending and it comes from the server asked.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::trace;

use super::control_socket::{ControlSocket, ControlSocketError, Inner, lock};
use super::inbound::REASON_RATE_LIMIT;
use crate::mesh::Millis;

pub mod check;
pub mod client;
pub mod table;
pub mod wire;

pub use check::{CheckInputs, CheckReport, run_check};
pub use client::{StunClient, StunError};
pub use wire::looks_like_stun;

/// Handles a STUN-looking datagram received on the control socket.
pub(crate) fn on_control_datagram(inner: &Inner, datagram: &[u8], src: SocketAddr, now: Millis) {
    let src = super::canonical(src);
    if !lock(&inner.limiter).allow(src.ip(), now) {
        inner.reject(REASON_RATE_LIMIT);
        return;
    }
    if let Err(e) = lock(&inner.stun).offer(datagram, src, Instant::now()) {
        trace!(from = %src, reason = e.reason(), "STUN datagram dropped");
        inner.reject(e.reason());
    }
}

impl ControlSocket {
    /// Sends a raw datagram (a STUN request) from the control socket.
    pub(crate) async fn send_datagram(
        &self,
        to: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), ControlSocketError> {
        let wire = self.inner.to_wire(to)?;
        self.inner
            .socket
            .send_to(datagram, wire)
            .await
            .map_err(|source| ControlSocketError::Send { to, source })?;
        Ok(())
    }
}
