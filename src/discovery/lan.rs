//! LAN discovery (`lan`): the node's signed record, sealed as an announce, multicast with TTL 1
//! to the mesh's derived group (`239.192.a.b:51830`, PROTOCOL.md §2) on every LAN address the
//! daemon hands over, at start, whenever the record changes, and every 5 s. Received announces
//! are rate-limited per source before decryption, verified, and stored with method `lan`; the
//! endpoint is the packet's source address with the record's WireGuard port (the source always
//! wins over what the record claims).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::control_socket::unix_now;
use super::ratelimit::{RateLimitConfig, RateLimiter};
use crate::control::metrics::Metrics;
use crate::mesh::{DiscoveryMethod, PeerStore, PeerUpdate};
use crate::proto::messages::Message;
use crate::proto::{MeshKeys, RecordVerifier, SignedRecord};

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
    /// wake-up) joins the group on the new addresses and announces at once.
    pub lan_addresses: watch::Receiver<Vec<Ipv4Addr>>,
}

fn open_socket(group: SocketAddrV4, interfaces: &[Ipv4Addr]) -> Result<UdpSocket, std::io::Error> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(false)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    for a in interfaces {
        if let Err(e) = s.join_multicast_v4(group.ip(), a) {
            tracing::debug!(interface = %a, error = %e, "cannot join the LAN group on this address");
        }
    }
    UdpSocket::from_std(s.into())
}

/// Runs LAN discovery until the task is dropped.
pub async fn run_lan_discovery(deps: LanDeps) -> Result<(), LanError> {
    let group = deps.keys.lan_group();
    let mut addresses_rx = deps.lan_addresses.clone();
    let mut addresses = addresses_rx.borrow_and_update().clone();
    let socket = open_socket(group, &addresses).map_err(|source| LanError::Socket {
        port: group.port(),
        source,
    })?;
    let sender = socket2::SockRef::from(&socket);
    tracing::info!(group = %group, interfaces = addresses.len(), "LAN discovery on");
    let mut record_rx = deps.local_record.clone();
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let verifier_keys = deps.keys.clone();
    let mut limiter = RateLimiter::new(RateLimitConfig::default());
    let own_key = crate::proto::NodeRecord::decode_body(&deps.local_record.borrow().body)
        .map(|r| r.wireguard_public)
        .ok();
    let mut buf = vec![0u8; 2048];
    let mut last_answer: Option<tokio::time::Instant> = None;
    let mut answer_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let record = record_rx.borrow().clone();
                announce(&socket, &sender, group, &deps, &addresses, &record).await;
            }
            Ok(()) = addresses_rx.changed() => {
                let new = addresses_rx.borrow_and_update().clone();
                for a in new.iter().filter(|a| !addresses.contains(a)) {
                    if let Err(e) = sender.join_multicast_v4(group.ip(), a) {
                        tracing::debug!(interface = %a, error = %e, "cannot join the LAN group on this address");
                    }
                }
                tracing::info!(addresses = ?new, "LAN addresses changed");
                addresses = new;
            }
            Ok(()) = record_rx.changed() => {
                let record = record_rx.borrow_and_update().clone();
                announce(&socket, &sender, group, &deps, &addresses, &record).await;
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                if !limiter.allow(src.ip(), unix_now()) {
                    deps.metrics.inc(super::control_socket::REJECTED_METRIC, &[("reason", super::REASON_RATE_LIMIT)]);
                    continue;
                }
                // A newcomer hears us at once (or, within the answer rate, a little later)
                // instead of at our next periodic announce.
                if receive(&deps, &verifier_keys, own_key.as_ref(), &buf[..n], src) {
                    let earliest = last_answer.map_or_else(tokio::time::Instant::now, |t| t + ANSWER_AT_MOST_EVERY);
                    answer_at.get_or_insert(earliest);
                }
            }
            _ = tokio::time::sleep_until(answer_at.unwrap_or_else(far_future)), if answer_at.is_some() => {
                answer_at = None;
                last_answer = Some(tokio::time::Instant::now());
                let record = record_rx.borrow().clone();
                announce(&socket, &sender, group, &deps, &addresses, &record).await;
            }
        }
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

async fn announce(
    socket: &UdpSocket,
    sender: &socket2::SockRef<'_>,
    group: SocketAddrV4,
    deps: &LanDeps,
    addresses: &[Ipv4Addr],
    record: &SignedRecord,
) {
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
    for a in addresses {
        if sender.set_multicast_if_v4(a).is_ok() {
            let _ = socket.send_to(&datagram, SocketAddr::V4(group)).await;
        }
    }
}

/// Handles one datagram; `true` when it introduced a peer the store did not hold.
fn receive(
    deps: &LanDeps,
    keys: &MeshKeys,
    own: Option<&[u8; 32]>,
    datagram: &[u8],
    src: SocketAddr,
) -> bool {
    let reject = |reason: &str| {
        deps.metrics.inc(
            super::control_socket::REJECTED_METRIC,
            &[("reason", reason)],
        );
        false
    };
    let signed = match Message::open(keys, datagram) {
        Ok(Message::Announce { record }) => record,
        Ok(_) => return reject("type"),
        Err(e) => return reject(e.reason()),
    };
    let record = match RecordVerifier::new(keys).verify(&signed, None) {
        Ok(r) => r,
        Err(e) => return reject(e.reason()),
    };
    if own == Some(&record.wireguard_public) {
        return false;
    }
    let ip = src.ip().to_canonical();
    let endpoint = SocketAddr::new(ip, record.wireguard_port);
    let update = PeerUpdate::new(record, DiscoveryMethod::Lan)
        .with_signed(signed)
        .with_endpoint(endpoint);
    match deps.store.update(update, unix_now()) {
        Ok(outcome) => {
            deps.metrics
                .inc(super::control_socket::EVENTS_METRIC, &[("method", "lan")]);
            tracing::trace!(?outcome, %endpoint, "LAN announce");
            outcome == crate::mesh::UpdateOutcome::Added
        }
        Err(e) => {
            tracing::debug!(error = %e, "LAN announce refused by the store");
            false
        }
    }
}
