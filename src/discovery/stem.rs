//! Dandelion++ stems on the control socket (PROTOCOL.md §11), the I/O around the core's
//! policy (`mesh::dandelion`). Every node relays stems, with or without `--privacy`:
//! - every control datagram that opens and comes from a mesh address is noted as proof that
//!   the tunnel to that address works; relays are picked among peers proven so lately;
//! - a stem is accepted only from a mesh peer's mesh address (it came through the tunnel, so
//!   WireGuard authenticated the sender); anything else is dropped and counted (`stem_source`);
//! - its record is verified, then the core decides: forward to this epoch's relay (over the
//!   tunnel, to the relay's mesh address and control port; the record stays under embargo
//!   here) or fluff;
//! - fluffing puts the record in the peer store (method `gossip-transitive`) and greets every
//!   active peer at once, so the exchange spreads it; an embargo task fluffs records that did
//!   not come back in time;
//! - it also notes when another node shows that it holds this node's own record (a digest in a
//!   hello or reply, or the record in a records message): the origin's "fluffed" signal.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_core::OsRng;
use tokio::sync::{Notify, watch};
use tracing::{debug, trace};

use crate::mesh::dandelion::{
    IncomingStem, RelayAction, StemRelay, StemRoutes, TUNNEL_FRESH, epoch_of, relay_candidates,
};
use crate::mesh::{DiscoveryMethod, Millis, PeerEntry, WgKey, short_key};
use crate::proto::messages::{Message, Stem};
use crate::proto::{NodeRecord, SignedRecord};

use super::control_socket::{ControlSocket, ControlSocketError, Inner, lock, unix_now};

/// Reason label of stems not sent from a mesh peer's mesh address.
pub const REASON_STEM_SOURCE: &str = "stem_source";
/// Metric: stems handled, by what was done (`forward`, `fluff`, `embargo_fluff`, ...).
pub const STEMS_METRIC: &str = "wgmesh_stems_total";

/// Most mesh addresses remembered as heard over the tunnel.
const MAX_TUNNEL_SOURCES: usize = 4096;

type Held = (NodeRecord, SignedRecord);

/// The stem state of one control socket.
pub(crate) struct StemState {
    relay: Mutex<StemRelay<Held>>,
    /// Wakes the embargo task when a new embargo starts.
    wake: Notify,
    /// The newest sequence of this node's own record that another node showed it holds.
    own_seen: watch::Sender<u64>,
    /// When a control datagram last came from each mesh address (over the tunnel).
    tunnel: Mutex<BTreeMap<IpAddr, Millis>>,
}

impl Default for StemState {
    fn default() -> Self {
        Self {
            relay: Mutex::new(StemRelay::default()),
            tunnel: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            own_seen: watch::channel(0).0,
        }
    }
}

/// The peer whose mesh address is `ip`.
fn mesh_peer(inner: &Inner, ip: IpAddr, now: Millis) -> Option<PeerEntry> {
    inner
        .store
        .active(now)
        .into_iter()
        .find(|e| IpAddr::V4(e.record.mesh_ipv4) == ip || IpAddr::V6(e.record.mesh_ipv6) == ip)
}

/// Where to send control messages to `peer` over the tunnel.
fn tunnel_addr(entry: &PeerEntry) -> SocketAddr {
    SocketAddr::new(entry.record.mesh_ipv4.into(), entry.record.control_port)
}

/// Notes that an authenticated control datagram came from `src` at `now`: from a mesh
/// address, it came through the tunnel.
pub(crate) fn note_tunnel(inner: &Inner, src: SocketAddr, now: Millis) {
    let ip = src.ip();
    let in_mesh = match ip {
        IpAddr::V4(a) => inner.keys.ipv4_subnet().contains(&a),
        IpAddr::V6(a) => inner.keys.ipv6_prefix().contains(&a),
    };
    if !in_mesh {
        return;
    }
    let mut tunnel = lock(&inner.stem.tunnel);
    tunnel.insert(ip, now);
    if tunnel.len() > MAX_TUNNEL_SOURCES {
        tunnel.retain(|_, t| now.since(*t) < TUNNEL_FRESH);
        if tunnel.len() > MAX_TUNNEL_SOURCES
            && let Some(oldest) = tunnel.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a)
        {
            tunnel.remove(&oldest);
        }
    }
}

/// This node's stem routes at `now`: relays among the active peers heard over the tunnel
/// lately, for this epoch.
pub(crate) fn routes(inner: &Inner, now: Millis) -> Option<StemRoutes> {
    let own = inner.own_key()?;
    let seed = inner.keys.dandelion_epoch_seed(epoch_of(now));
    let peers: Vec<_> = {
        let tunnel = lock(&inner.stem.tunnel);
        inner
            .store
            .active(now)
            .into_iter()
            .map(|e| {
                let heard = [
                    IpAddr::V4(e.record.mesh_ipv4),
                    IpAddr::V6(e.record.mesh_ipv6),
                ]
                .iter()
                .filter_map(|a| tunnel.get(a).copied())
                .max();
                (e.record.wireguard_public, heard)
            })
            .collect()
    };
    Some(StemRoutes::new(seed, own, relay_candidates(peers, now)))
}

fn count(inner: &Inner, action: &str) {
    inner.metrics.inc(STEMS_METRIC, &[("action", action)]);
}

/// Handles one stem from `src`.
pub(crate) async fn on_stem(inner: &Arc<Inner>, src: SocketAddr, stem: Stem, now: Millis) {
    let Some(sender) = mesh_peer(inner, src.ip(), now) else {
        debug!(from = %src, "stem not from a mesh peer's mesh address dropped");
        inner.reject(REASON_STEM_SOURCE);
        return;
    };
    let Some(record) = super::inbound::verify(inner, &stem.record, src) else {
        return;
    };
    let Some(routes) = routes(inner, now) else {
        return;
    };
    let incoming = IncomingStem {
        origin: record.wireguard_public,
        sequence: record.sequence,
        from: sender.record.wireguard_public,
        hop: stem.hop,
        record: (record, stem.record),
    };
    let held = inner.store.held_sequence(&incoming.origin);
    let action = lock(&inner.stem.relay).on_stem(incoming, held, &routes, &mut OsRng, now);
    match action {
        RelayAction::Forward {
            to,
            hop,
            record: (record, signed),
        } => {
            count(inner, "forward");
            trace!(origin = %short_key(&record.wireguard_public), to = %short_key(&to), hop, "stem forwarded");
            inner.stem.wake.notify_one();
            if let Err(e) = send_stem(inner, &to, signed, hop, now).await {
                debug!(to = %short_key(&to), error = %e, "stem not forwarded; the embargo will fluff it");
            }
        }
        RelayAction::Fluff((record, signed)) => {
            count(inner, "fluff");
            fluff(inner, record, signed, now);
        }
        RelayAction::Drop(why) => {
            count(inner, why.reason());
        }
    }
}

/// Sends `record` as stem hop `hop` to peer `to`, over the tunnel.
pub(crate) async fn send_stem(
    inner: &Inner,
    to: &WgKey,
    record: SignedRecord,
    hop: u8,
    now: Millis,
) -> Result<(), ControlSocketError> {
    let entry = inner
        .store
        .active(now)
        .into_iter()
        .find(|e| e.record.wireguard_public == *to)
        .ok_or(ControlSocketError::NotAPeer {
            peer: short_key(to),
        })?;
    inner
        .send(tunnel_addr(&entry), &Message::Stem(Stem { record, hop }))
        .await
}

/// Fluffs a record: into the store, then a hello to every active peer so it spreads now.
fn fluff(inner: &Arc<Inner>, record: NodeRecord, signed: SignedRecord, now: Millis) {
    debug!(origin = %short_key(&record.wireguard_public), sequence = record.sequence, "stem fluffed here");
    if !super::inbound::learn(
        inner,
        record,
        signed,
        DiscoveryMethod::GossipTransitive,
        None,
        now,
    ) {
        return;
    }
    push_to_active_peers(inner, now);
}

/// A hello to every active peer over the tunnel (the exchange then pushes what they lack).
/// One hello each, not a session: a session still running to a peer (an earlier exchange)
/// would swallow this one, and a lost hello is repaired by gossip.
pub(crate) fn push_to_active_peers(inner: &Arc<Inner>, now: Millis) {
    let socket = ControlSocket {
        inner: inner.clone(),
    };
    let peers: Vec<SocketAddr> = inner.store.active(now).iter().map(tunnel_addr).collect();
    tokio::spawn(async move {
        for to in peers {
            socket.send_hello_once(to).await;
        }
    });
}

/// Ends embargoes as they fall due, fluffing what did not come back (runs until shutdown).
pub(crate) async fn embargo_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = lock(&inner.stem.relay).next_deadline();
        let wait = next.map_or(Duration::from_secs(3600), |d| {
            Duration::from_millis(d.0.saturating_sub(unix_now().0))
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stem.wake.notified() => continue,
            _ = shutdown.changed() => return,
        }
        let now = unix_now();
        let due = lock(&inner.stem.relay).expired(now, |k| inner.store.held_sequence(k));
        for (record, signed) in due {
            count(&inner, "embargo_fluff");
            fluff(&inner, record, signed, now);
        }
    }
}

/// Another node showed it holds this node's record at `sequence`.
fn own_seen(inner: &Inner, sequence: u64) {
    inner
        .stem
        .own_seen
        .send_if_modified(|s| std::mem::replace(s, (*s).max(sequence)) < sequence);
}

/// Notes that another node showed it holds this node's record at `sequence` (the exchange
/// engine's digests, filters or relayed records).
pub(crate) fn note_own_sequence(inner: &Inner, sequence: u64) {
    own_seen(inner, sequence);
}

impl ControlSocket {
    /// This node's stem routes now (its relays among the active peers of this epoch).
    pub fn stem_routes(&self) -> Option<StemRoutes> {
        routes(&self.inner, unix_now())
    }

    /// Sends this node's own fresh record as stem hop 1 to peer `to` (over the tunnel).
    pub async fn send_own_stem(
        &self,
        to: &WgKey,
        record: SignedRecord,
    ) -> Result<(), ControlSocketError> {
        if let Ok(r) = NodeRecord::decode_body(&record.body) {
            // Peer filters show a record only to whoever knows its sequence.
            lock(&self.inner.engine).watch_own_sequence(r.sequence);
        }
        send_stem(&self.inner, to, record, 1, unix_now()).await
    }

    /// The newest sequence of this node's own record that another node showed it holds
    /// (digests or filters in hellos and replies, records received): an origin's "fluffed"
    /// signal.
    pub fn own_record_seen(&self) -> watch::Receiver<u64> {
        self.inner.stem.own_seen.subscribe()
    }
}
