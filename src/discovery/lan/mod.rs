//! LAN discovery (`lan`): the node's signed record, sealed as an announce, multicast with TTL 1
//! to the mesh's derived IPv4 group (`239.192.a.b:51830`, PROTOCOL.md §2) on every LAN address
//! the daemon hands over, and to the IPv6 link-local group (`ff12::7767:6d32:ab`) on every up,
//! multicast-capable interface but loopback and the mesh interface — at start, whenever the
//! record changes, and every 5 s. Received announces are rate-limited per source before
//! decryption, verified, and stored with method `lan` (see `receive`). Sockets and the
//! interface scan are in `sockets`.

mod receive;
mod sockets;

pub use receive::lan_endpoint;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::control_socket::{REJECTED_METRIC, unix_now};
use super::ratelimit::{RateLimitConfig, RateLimiter};
use crate::mesh::PeerStore;
use crate::metrics::Metrics;
use crate::proto::messages::Message;
use crate::proto::{MeshKeys, SignedRecord};

/// How often the record is announced even when nothing changed.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// Answering newcomers with an announce happens at most this often.
pub const ANSWER_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Why LAN discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    #[error(
        "cannot open the LAN discovery socket on port {port}: {source} (another program on it? use --no-lan-discovery)"
    )]
    Socket { port: u16, source: std::io::Error },
}

/// What LAN discovery needs from the daemon.
pub struct LanDeps {
    pub keys: MeshKeys,
    pub store: Arc<PeerStore>,
    pub metrics: Arc<Metrics>,
    pub local_record: watch::Receiver<SignedRecord>,
    /// This host's LAN IPv4 addresses (one per interface to announce on); a change (roaming,
    /// wake-up) joins the groups on the new addresses/interfaces and announces at once.
    pub lan_addresses: watch::Receiver<Vec<Ipv4Addr>>,
    /// The mesh interface, never announced on.
    pub mesh_interface: String,
}

/// The two groups and what is joined on them.
struct Groups {
    v4: SocketAddrV4,
    v4_socket: UdpSocket,
    v4_addresses: Vec<Ipv4Addr>,
    v6: SocketAddrV6,
    /// `None` when this host has no IPv6 (LAN discovery then runs on IPv4 only).
    v6_socket: Option<UdpSocket>,
    v6_interfaces: Vec<u32>,
}

impl Groups {
    fn open(deps: &LanDeps, addresses: Vec<Ipv4Addr>) -> Result<Self, LanError> {
        let v4 = deps.keys.lan_group();
        let v4_socket = sockets::open_v4(v4, &addresses).map_err(|source| LanError::Socket {
            port: v4.port(),
            source,
        })?;
        let v6 = deps.keys.lan_group_v6();
        let v6_socket = match sockets::open_v6(v6) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no IPv6 LAN discovery (IPv6 disabled on this host?); IPv4 only");
                None
            }
        };
        let mut groups = Self {
            v4,
            v4_socket,
            v4_addresses: addresses,
            v6,
            v6_socket,
            v6_interfaces: Vec::new(),
        };
        groups.rescan_v6(&deps.mesh_interface);
        Ok(groups)
    }

    /// Joins the IPv4 group on new addresses.
    fn set_v4_addresses(&mut self, new: Vec<Ipv4Addr>) {
        let added: Vec<Ipv4Addr> = new
            .iter()
            .filter(|a| !self.v4_addresses.contains(a))
            .copied()
            .collect();
        sockets::join_v4(&SockRef::from(&self.v4_socket), self.v4, &added);
        self.v4_addresses = new;
    }

    /// Joins the IPv6 group on interfaces that came up.
    fn rescan_v6(&mut self, mesh_interface: &str) {
        let Some(socket) = &self.v6_socket else {
            return;
        };
        let wanted = sockets::multicast_interfaces(Path::new("/sys/class/net"), mesh_interface);
        if wanted != self.v6_interfaces {
            self.v6_interfaces = sockets::join_v6(
                &SockRef::from(socket),
                self.v6.ip(),
                &wanted,
                &self.v6_interfaces,
            );
            tracing::debug!(interfaces = ?self.v6_interfaces, "IPv6 LAN group joined");
        }
    }

    /// Sends `datagram` to both groups on every address / interface.
    async fn send(&self, datagram: &[u8]) {
        let v4 = SockRef::from(&self.v4_socket);
        for a in &self.v4_addresses {
            if v4.set_multicast_if_v4(a).is_ok() {
                let _ = self
                    .v4_socket
                    .send_to(datagram, SocketAddr::V4(self.v4))
                    .await;
            }
        }
        let Some(socket) = &self.v6_socket else {
            return;
        };
        let v6 = SockRef::from(socket);
        for &index in &self.v6_interfaces {
            if v6.set_multicast_if_v6(index).is_ok() {
                let to = SocketAddrV6::new(*self.v6.ip(), self.v6.port(), 0, index);
                let _ = socket.send_to(datagram, SocketAddr::V6(to)).await;
            }
        }
    }
}

/// Receives from an optional socket; never completes without one.
async fn recv_from(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Runs LAN discovery until the task is dropped.
pub async fn run_lan_discovery(deps: LanDeps) -> Result<(), LanError> {
    let mut addresses_rx = deps.lan_addresses.clone();
    let addresses = addresses_rx.borrow_and_update().clone();
    let mut groups = Groups::open(&deps, addresses)?;
    tracing::info!(
        group = %groups.v4,
        group_v6 = %groups.v6.ip(),
        ipv4_addresses = groups.v4_addresses.len(),
        ipv6_interfaces = groups.v6_interfaces.len(),
        "LAN discovery on"
    );
    let mut record_rx = deps.local_record.clone();
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let verifier_keys = deps.keys.clone();
    let mut limiter = RateLimiter::new(RateLimitConfig::default());
    let own_key = crate::proto::NodeRecord::decode_body(&deps.local_record.borrow().body)
        .map(|r| r.wireguard_public)
        .ok();
    let mut buf4 = vec![0u8; 2048];
    let mut buf6 = vec![0u8; 2048];
    let mut last_answer: Option<tokio::time::Instant> = None;
    let mut answer_at: Option<tokio::time::Instant> = None;
    loop {
        let received = tokio::select! {
            _ = tick.tick() => {
                // Interfaces can come up without an IPv4 address change.
                groups.rescan_v6(&deps.mesh_interface);
                let record = record_rx.borrow().clone();
                announce(&groups, &deps, &record).await;
                None
            }
            Ok(()) = addresses_rx.changed() => {
                let new = addresses_rx.borrow_and_update().clone();
                tracing::info!(addresses = ?new, "LAN addresses changed");
                groups.set_v4_addresses(new);
                groups.rescan_v6(&deps.mesh_interface);
                None
            }
            Ok(()) = record_rx.changed() => {
                let record = record_rx.borrow_and_update().clone();
                announce(&groups, &deps, &record).await;
                None
            }
            r = groups.v4_socket.recv_from(&mut buf4) => r.ok().map(|(n, src)| (n, src, false)),
            r = recv_from(groups.v6_socket.as_ref(), &mut buf6) => r.ok().map(|(n, src)| (n, src, true)),
            _ = tokio::time::sleep_until(answer_at.unwrap_or_else(far_future)), if answer_at.is_some() => {
                answer_at = None;
                last_answer = Some(tokio::time::Instant::now());
                let record = record_rx.borrow().clone();
                announce(&groups, &deps, &record).await;
                None
            }
        };
        let Some((n, src, v6)) = received else {
            continue;
        };
        if !limiter.allow(src.ip().to_canonical(), unix_now()) {
            deps.metrics
                .inc(REJECTED_METRIC, &[("reason", super::REASON_RATE_LIMIT)]);
            continue;
        }
        let datagram = if v6 { &buf6[..n] } else { &buf4[..n] };
        // A newcomer hears us at once (or, within the answer rate, a little later) instead of
        // at our next periodic announce.
        if receive::receive(&deps, &verifier_keys, own_key.as_ref(), datagram, src) {
            let earliest =
                last_answer.map_or_else(tokio::time::Instant::now, |t| t + ANSWER_AT_MOST_EVERY);
            answer_at.get_or_insert(earliest);
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

async fn announce(groups: &Groups, deps: &LanDeps, record: &SignedRecord) {
    let datagram = match (Message::Announce {
        record: record.clone(),
    })
    .seal(&deps.keys)
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot seal the LAN announce");
            return;
        }
    };
    groups.send(&datagram).await;
}
