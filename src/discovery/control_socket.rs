//! The control socket (ring 3 edge, tokio): one UDP socket on the mesh's derived control port,
//! dual-stack `[::]:port` (IPv4-only `0.0.0.0:port` where IPv6 is unavailable). It owns the
//! socket, the per-source rate limiter and the peer-exchange state; reads the clock and passes
//! `now` into the pure parts. Incoming datagrams are rate-limited per source before anything
//! is decrypted, opened, and handed to `inbound` (verify → peer store); outgoing hellos are
//! driven by `contact` (static peers, retries).
//!
//! How the daemon uses it: [`ControlSocket::bind`], then [`ControlSocket::start`] (keep the
//! returned [`ControlTasks`]; [`ControlTasks::stop`] ends everything), then at will
//! [`ControlSocket::send_hello_to`], [`ControlSocket::send_probe`], and at shutdown
//! [`ControlSocket::send_goodbye`] to [`ControlSocket::goodbye_targets`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace};

use crate::mesh::{AddressCheck, Millis, PeerStore};
use crate::metrics::Metrics;
use crate::proto::exchange::Probe;
use crate::proto::messages::{Message, MessageError, SignedGoodbye};
use crate::proto::{MeshKeys, NodeRecord, SignedRecord};

use super::canonical;
use super::engine::Engine;
use super::exchange::{Exchange, ExchangeConfig};
use super::ratelimit::{RateLimitConfig, RateLimiter};

/// How often static peers are greeted again.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// A hello without reply is sent again after this long …
pub const DEFAULT_HELLO_RETRY_EVERY: Duration = Duration::from_millis(100);
/// … for at most this long (it doubles as a hole punch).
pub const DEFAULT_HELLO_RETRY_FOR: Duration = Duration::from_secs(4);
/// Most hello sessions (retry loops) running at once.
pub const DEFAULT_MAX_HELLO_SESSIONS: usize = 256;
/// Receive buffer: larger than any valid datagram, so oversized ones are seen as such.
const RECV_BUFFER_BYTES: usize = 2048;

/// Metric families this module writes.
pub(crate) const EVENTS_METRIC: &str = "wgmesh_discovery_events_total";
pub(crate) const REJECTED_METRIC: &str = "wgmesh_rejected_messages_total";

/// The control socket's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSocketConfig {
    /// Where to bind; `None` is `[::]:control-port` (or `0.0.0.0:control-port` without IPv6).
    /// Tests bind loopback addresses with port 0.
    pub bind: Option<SocketAddr>,
    /// `HOST:PORT` of peers to greet at start and every `refresh_every` (`--peer`).
    pub static_peers: Vec<String>,
    pub refresh_every: Duration,
    pub hello_retry_every: Duration,
    pub hello_retry_for: Duration,
    pub max_hello_sessions: usize,
    pub rate_limit: RateLimitConfig,
    pub exchange: ExchangeConfig,
}

impl Default for ControlSocketConfig {
    fn default() -> Self {
        Self {
            bind: None,
            static_peers: Vec::new(),
            refresh_every: DEFAULT_REFRESH_EVERY,
            hello_retry_every: DEFAULT_HELLO_RETRY_EVERY,
            hello_retry_for: DEFAULT_HELLO_RETRY_FOR,
            max_hello_sessions: DEFAULT_MAX_HELLO_SESSIONS,
            rate_limit: RateLimitConfig::default(),
            exchange: ExchangeConfig::default(),
        }
    }
}

/// What the control socket needs from the daemon.
pub struct ControlSocketDeps {
    pub keys: MeshKeys,
    pub store: Arc<PeerStore>,
    pub metrics: Arc<Metrics>,
    /// This node's current signed record (re-signed by the daemon when it changes).
    pub local_record: watch::Receiver<SignedRecord>,
    /// Where probe replies go (the daemon's health prober); `None` drops them.
    pub probe_replies: Option<mpsc::Sender<ProbeReplyEvent>>,
    /// Where relay notices from this node's peers' relays go; `None` drops them.
    pub relay_notices: Option<super::relay_notice::RelayNoticeSender>,
    /// Where rendezvous offers and starts go; `None` drops them as not handled.
    pub rendezvous: Option<super::rendezvous::RendezvousSender>,
}

/// A probe reply received on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReplyEvent {
    pub from: SocketAddr,
    pub id: u64,
    pub received_at: Millis,
}

/// Why the control socket could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ControlSocketError {
    #[error(
        "cannot bind the control socket on {addr}: {source}. Another wgmesh for this mesh may be running, or another program holds the port (it derives from the mesh secret)"
    )]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the control socket's address: {0}")]
    LocalAddr(io::Error),
    #[error("cannot send to {to}: {source}")]
    Send { to: SocketAddr, source: io::Error },
    #[error("cannot send to {to}: the control socket is IPv4-only (no IPv6 on this host)")]
    Family { to: SocketAddr },
    #[error("cannot seal the message: {0}")]
    Seal(#[from] MessageError),
    #[error("peer {peer} is not an active mesh peer")]
    NotAPeer { peer: String },
}

/// The shared state of the socket and its tasks.
pub(crate) struct Inner {
    pub(crate) socket: UdpSocket,
    pub(crate) local_addr: SocketAddr,
    pub(crate) config: ControlSocketConfig,
    pub(crate) keys: MeshKeys,
    pub(crate) store: Arc<PeerStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) local_record: watch::Receiver<SignedRecord>,
    pub(crate) probe_replies: Option<mpsc::Sender<ProbeReplyEvent>>,
    pub(crate) relay_notices: Option<super::relay_notice::RelayNoticeSender>,
    pub(crate) rendezvous: Option<super::rendezvous::RendezvousSender>,
    pub(crate) engine: Mutex<Engine>,
    pub(crate) limiter: Mutex<RateLimiter>,
    /// Running hello sessions: destination → "asked again while running" (the session then
    /// greets once more with the record current by then instead of ending).
    pub(crate) sessions: Mutex<BTreeMap<SocketAddr, bool>>,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The address the latest verified reply says this node's hello came from.
    pub(crate) observed: watch::Sender<Option<SocketAddr>>,
    /// Dandelion++ stems relayed through this node (`stem`).
    pub(crate) stem: super::stem::StemState,
    /// Pending STUN transactions (responses are demultiplexed in the receive loop).
    pub(crate) stun: Arc<Mutex<super::stun::table::PendingTable>>,
}

/// Locks a mutex; a panic elsewhere cannot leave these maps half-updated in a way that
/// matters (worst case a challenge is forgotten), so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wall clock as the core's time.
pub fn unix_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        .unwrap_or(Millis::ZERO)
}

impl Inner {
    pub(crate) fn reject(&self, reason: &str) {
        self.metrics.inc(REJECTED_METRIC, &[("reason", reason)]);
    }

    /// This node's current signed record.
    pub(crate) fn local_record(&self) -> SignedRecord {
        self.local_record.borrow().clone()
    }

    /// This node's WireGuard key (from the store's configuration, else its record).
    pub(crate) fn own_key(&self) -> Option<[u8; 32]> {
        self.store.config().local_key.or_else(|| {
            NodeRecord::decode_body(&self.local_record.borrow().body)
                .ok()
                .map(|r| r.wireguard_public)
        })
    }

    /// `to` as this socket can address it (IPv4 through an IPv6 socket is IPv4-mapped).
    pub(crate) fn to_wire(&self, to: SocketAddr) -> Result<SocketAddr, ControlSocketError> {
        match (self.local_addr, to) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => Ok(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            )),
            (SocketAddr::V4(_), SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), v6.port())),
                None => Err(ControlSocketError::Family { to }),
            },
            _ => Ok(to),
        }
    }

    /// Seals and sends one message.
    pub(crate) async fn send(
        &self,
        to: SocketAddr,
        message: &Message,
    ) -> Result<(), ControlSocketError> {
        let datagram = message.seal(&self.keys)?;
        let wire = self.to_wire(to)?;
        self.socket
            .send_to(&datagram, wire)
            .await
            .map_err(|source| ControlSocketError::Send { to, source })?;
        trace!(to = %to, kind = ?message.message_type(), bytes = datagram.len(), "control message sent");
        Ok(())
    }

    /// Sends, logging a failure (packet-driven paths never fail loudly).
    pub(crate) async fn send_logged(&self, to: SocketAddr, message: &Message) {
        if let Err(e) = self.send(to, message).await {
            debug!(to = %to, error = %e, "control message not sent");
        }
    }

    /// Whether the socket can reach `addr`'s family.
    pub(crate) fn can_reach(&self, addr: &SocketAddr) -> bool {
        self.local_addr.is_ipv6() || canonical(*addr).is_ipv4()
    }
}

/// The control socket. Cheap to clone; every clone drives the same socket.
#[derive(Clone)]
pub struct ControlSocket {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSocket")
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

async fn bind_socket(
    config: &ControlSocketConfig,
    port: u16,
) -> Result<UdpSocket, ControlSocketError> {
    if let Some(addr) = config.bind {
        return UdpSocket::bind(addr)
            .await
            .map_err(|source| ControlSocketError::Bind { addr, source });
    }
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    match UdpSocket::bind(v6).await {
        Ok(s) => Ok(s),
        Err(source) if source.kind() == io::ErrorKind::AddrInUse => {
            Err(ControlSocketError::Bind { addr: v6, source })
        }
        Err(e6) => {
            info!(error = %e6, "IPv6 unavailable; the control socket is IPv4-only");
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            UdpSocket::bind(v4)
                .await
                .map_err(|source| ControlSocketError::Bind { addr: v4, source })
        }
    }
}

impl ControlSocket {
    /// Binds the socket (see [`ControlSocketConfig::bind`]); nothing runs until
    /// [`Self::start`].
    pub async fn bind(
        config: ControlSocketConfig,
        deps: ControlSocketDeps,
    ) -> Result<Self, ControlSocketError> {
        let socket = bind_socket(&config, deps.keys.control_port()).await?;
        let local_addr = socket.local_addr().map_err(ControlSocketError::LocalAddr)?;
        info!(addr = %local_addr, "control socket bound");
        let (shutdown, _) = watch::channel(false);
        let (observed, _) = watch::channel(None);
        Ok(Self {
            inner: Arc::new(Inner {
                socket,
                local_addr,
                engine: Mutex::new(Engine::new(
                    Exchange::with_os_rng(config.exchange.clone()),
                    AddressCheck::new(deps.keys.clone()),
                )),
                limiter: Mutex::new(RateLimiter::new(config.rate_limit)),
                sessions: Mutex::new(BTreeMap::new()),
                config,
                keys: deps.keys,
                store: deps.store,
                metrics: deps.metrics,
                local_record: deps.local_record,
                probe_replies: deps.probe_replies,
                relay_notices: deps.relay_notices,
                rendezvous: deps.rendezvous,
                shutdown,
                observed,
                stem: Default::default(),
                stun: Arc::default(),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Spawns the receive loop and the static-peer loop (must run inside a tokio runtime).
    /// Keep the returned [`ControlTasks`]: dropping it stops everything.
    #[must_use = "dropping ControlTasks stops the control socket"]
    pub fn start(&self) -> ControlTasks {
        let receive = tokio::spawn(receive_loop(
            self.inner.clone(),
            self.inner.shutdown.subscribe(),
        ));
        let contact = tokio::spawn(super::contact::static_peers_loop(
            self.clone(),
            self.inner.shutdown.subscribe(),
        ));
        let embargoes = tokio::spawn(super::stem::embargo_loop(
            self.inner.clone(),
            self.inner.shutdown.subscribe(),
        ));
        ControlTasks {
            socket: self.clone(),
            handles: vec![receive, contact, embargoes],
        }
    }

    /// Sends a probe (health prober; over the tunnel to a peer's mesh address and control port).
    pub async fn send_probe(&self, to: SocketAddr, id: u64) -> Result<(), ControlSocketError> {
        self.inner.send(to, &Message::Probe(Probe { id })).await
    }

    /// Sends any control message to `to` (the daemon's rendezvous messages).
    pub async fn send_message(
        &self,
        to: SocketAddr,
        message: &Message,
    ) -> Result<(), ControlSocketError> {
        self.inner.send(to, message).await
    }

    /// Sends a relay notice (over the tunnel, to a relay's or peer's mesh address).
    pub async fn send_relay_notice(
        &self,
        to: SocketAddr,
        notice: crate::proto::relay::RelayNotice,
    ) -> Result<(), ControlSocketError> {
        self.inner.send(to, &Message::RelayNotice(notice)).await
    }

    /// Sends a goodbye (signed by the daemon) to each address; returns how many were sent.
    pub async fn send_goodbye(&self, goodbye: &SignedGoodbye, to: &[SocketAddr]) -> usize {
        let message = Message::Goodbye {
            goodbye: goodbye.clone(),
        };
        let mut sent = 0;
        for addr in to {
            match self.inner.send(*addr, &message).await {
                Ok(()) => sent += 1,
                Err(e) => debug!(to = %addr, error = %e, "goodbye not sent"),
            }
        }
        sent
    }

    /// Where to say goodbye: the control port of every peer with a known endpoint (its
    /// endpoint's IP, its record's control port).
    pub fn goodbye_targets(&self) -> Vec<SocketAddr> {
        let targets: BTreeSet<SocketAddr> = self
            .inner
            .store
            .snapshot()
            .iter()
            .filter_map(|e| {
                e.endpoint_addr()
                    .map(|a| SocketAddr::new(a.ip(), e.record.control_port))
            })
            .filter(|a| self.inner.can_reach(a))
            .collect();
        targets.into_iter().collect()
    }

    /// The address responders saw this node's hellos come from (its public, reflexive address
    /// when behind a NAT), as reported by the latest verified reply. A hint for the endpoint
    /// candidates (kind `observed`): a mesh member could report anything.
    pub fn observed_address(&self) -> watch::Receiver<Option<SocketAddr>> {
        self.inner.observed.subscribe()
    }

    /// What the peer exchange refused to send so far (amplification budget).
    pub fn exchange_stats(&self) -> super::exchange::ExchangeStats {
        lock(&self.inner.engine).exchange().stats()
    }
}

/// The running tasks of a control socket. Dropping it stops them too.
#[derive(Debug)]
pub struct ControlTasks {
    socket: ControlSocket,
    handles: Vec<JoinHandle<()>>,
}

impl ControlTasks {
    /// Stops the receive loop, the static-peer loop and every hello session, and waits for
    /// them. Send goodbyes before this (the socket stays usable for sending).
    pub async fn stop(mut self) {
        self.socket.inner.shutdown.send_replace(true);
        for handle in std::mem::take(&mut self.handles) {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Drop for ControlTasks {
    fn drop(&mut self) {
        self.socket.inner.shutdown.send_replace(true);
        for handle in &self.handles {
            handle.abort();
        }
    }
}

async fn receive_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    loop {
        if *shutdown.borrow() {
            return;
        }
        let received = tokio::select! {
            r = inner.socket.recv_from(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        match received {
            Ok((len, src)) => {
                let datagram = buf.get(..len).unwrap_or_default();
                if super::stun::looks_like_stun(datagram) {
                    super::stun::on_control_datagram(&inner, datagram, src, unix_now());
                    continue;
                }
                super::inbound::handle_datagram(&inner, datagram, src, unix_now()).await;
            }
            Err(e) => {
                debug!(error = %e, "control socket receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
