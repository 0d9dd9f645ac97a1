//! STUN transactions over a socket: register a transaction id, send the Binding request,
//! retransmit on a short schedule, wait for the matching response. The socket is either the
//! daemon's control socket (whose receive loop hands STUN datagrams to the table, so the
//! mapping learned is the control port's) or a socket of its own (`netcheck`, the filtering
//! tests), with its own receive task and per-source rate limit.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore as _};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::trace;

use super::table::{Answer, PendingTable, TableFull};
use super::wire::{StunWireError, encode_binding_request, looks_like_stun};
use crate::discovery::control_socket::{ControlSocket, ControlSocketError, lock, unix_now};
use crate::discovery::ratelimit::{RateLimitConfig, RateLimiter};

/// Waits after each (re)transmission: 3 sends, 1.8 s in all (RFC 8489's 39.5 s is for
/// reliability over long paths; a NAT check wants an answer quickly or none).
pub const RETRY_WAITS: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(600),
    Duration::from_millis(900),
];

/// Why a STUN transaction could not run (no answer is not an error: it is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum StunError {
    #[error(transparent)]
    TableFull(#[from] TableFull),
    #[error(transparent)]
    Wire(#[from] StunWireError),
    #[error("cannot send a STUN request to {to}: {source}")]
    Send { to: SocketAddr, source: io::Error },
    #[error(transparent)]
    Control(#[from] ControlSocketError),
    #[error("cannot open a UDP socket for STUN: {0}; is UDP allowed on this host?")]
    Bind(io::Error),
}

/// What a STUN client sends through.
enum Transport {
    Control(ControlSocket),
    Socket(Arc<UdpSocket>),
}

/// One answered transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    pub answer: Answer,
    /// From the last transmission to the answer.
    pub rtt: Duration,
}

/// A STUN client on one socket. Cheap to clone.
#[derive(Clone)]
pub struct StunClient {
    table: Arc<Mutex<PendingTable>>,
    transport: Arc<Transport>,
    local_addr: SocketAddr,
}

impl StunClient {
    /// A client sending from the control socket (its receive loop demultiplexes responses).
    pub fn on_control_socket(socket: &ControlSocket) -> Self {
        Self {
            table: socket.inner.stun.clone(),
            local_addr: socket.local_addr(),
            transport: Arc::new(Transport::Control(socket.clone())),
        }
    }

    /// A client with a fresh socket of its own (`[::]:0`, or `0.0.0.0:0` without IPv6), and
    /// the task that receives on it; dropping the [`ReceiveTask`] stops it.
    pub async fn standalone() -> Result<(Self, ReceiveTask), StunError> {
        let socket = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await {
            Ok(s) => s,
            Err(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .await
                .map_err(StunError::Bind)?,
        };
        let local_addr = socket.local_addr().map_err(StunError::Bind)?;
        let socket = Arc::new(socket);
        let table = Arc::new(Mutex::new(PendingTable::default()));
        let task = tokio::spawn(receive_loop(socket.clone(), table.clone()));
        Ok((
            Self {
                table,
                transport: Arc::new(Transport::Socket(socket)),
                local_addr,
            },
            ReceiveTask(task),
        ))
    }

    /// The local address of the socket (its port is what a NAT may preserve).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the socket can send to `to`'s family.
    pub fn can_reach(&self, to: &SocketAddr) -> bool {
        self.local_addr.is_ipv6() || to.ip().to_canonical().is_ipv4()
    }

    async fn send(&self, to: SocketAddr, datagram: &[u8]) -> Result<(), StunError> {
        match &*self.transport {
            Transport::Control(c) => c.send_datagram(to, datagram).await?,
            Transport::Socket(s) => {
                let wire = match (self.local_addr, to) {
                    (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                        SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                    }
                    _ => to,
                };
                s.send_to(datagram, wire)
                    .await
                    .map_err(|source| StunError::Send { to, source })?;
            }
        }
        Ok(())
    }

    /// One Binding transaction to `to` (with an RFC 5780 CHANGE-REQUEST when asked), answered
    /// from `expect_from` (`to` itself unless a change was requested). `Ok(None)`: no answer.
    pub async fn binding(
        &self,
        to: SocketAddr,
        change_ip: bool,
        change_port: bool,
        expect_from: SocketAddr,
    ) -> Result<Option<Exchanged>, StunError> {
        let mut id = [0u8; 12];
        OsRng.fill_bytes(&mut id);
        let request = encode_binding_request(id, change_ip, change_port)?;
        let mut rx = lock(&self.table).register(id, vec![expect_from], Instant::now())?;
        let mut result = Ok(None);
        for wait in RETRY_WAITS {
            let sent_at = Instant::now();
            if let Err(e) = self.send(to, &request).await {
                result = Err(e);
                break;
            }
            trace!(to = %to, change_ip, change_port, "STUN binding request sent");
            match tokio::time::timeout(wait, &mut rx).await {
                Ok(Ok(answer)) => {
                    let rtt = answer.received_at.saturating_duration_since(sent_at);
                    result = Ok(Some(Exchanged { answer, rtt }));
                    break;
                }
                Ok(Err(_)) => break, // the table forgot it (expired)
                Err(_) => {}         // no answer yet: retransmit
            }
        }
        lock(&self.table).cancel(&id);
        result
    }
}

/// The receive task of a standalone client; dropping it stops the task.
#[derive(Debug)]
pub struct ReceiveTask(JoinHandle<()>);

impl Drop for ReceiveTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn receive_loop(socket: Arc<UdpSocket>, table: Arc<Mutex<PendingTable>>) {
    let mut limiter = RateLimiter::new(RateLimitConfig::default());
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, from)) => {
                let datagram = buf.get(..len).unwrap_or_default();
                if !looks_like_stun(datagram)
                    || !limiter.allow(from.ip().to_canonical(), unix_now())
                {
                    continue;
                }
                if let Err(e) = lock(&table).offer(datagram, from, Instant::now()) {
                    trace!(from = %from, reason = e.reason(), "STUN datagram dropped");
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
