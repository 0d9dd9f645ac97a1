//! Hole punching in the daemon: asks introducers for rendezvous (the core's schedule decides
//! when and which), answers offers when this node is an introducer (with the WireGuard
//! endpoints its own device recorded), runs the punch sessions that starts begin (the planner
//! points the peer's entry at each candidate in turn; the entry is re-created per candidate so
//! WireGuard initiates at once), and notices success in device samples: a handshake newer than
//! the session's start. The punched endpoint goes to the store with method `dht-rendezvous`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::discovery::rendezvous::RendezvousEvent;
use crate::mesh::punch::schedule::HOLD_AFTER_PUNCH;
use crate::mesh::punch::{
    Introductions, PunchScheduler, PunchSession, PunchStep, introducers_for, punch_role,
};
use crate::mesh::relay::INTRODUCER_FRESH_FOR;
use crate::mesh::{DiscoveryMethod, Millis, PeerStore, PeerUpdate, WgKey, short_key};
use crate::platform::DeviceState;
use crate::proto::NatType;
use crate::proto::messages::Message;
use crate::proto::rendezvous::RendezvousOffer;

/// What a punch tick asks of the daemon.
#[derive(Debug, Default)]
pub struct PunchTick {
    /// Peers whose entry must be re-created now (a new candidate: a fresh initiation).
    pub recreate: Vec<WgKey>,
    /// The planner's overrides changed (reconcile now).
    pub changed: bool,
}

/// Punch state across the daemon's loop.
#[derive(Default)]
pub struct Punching {
    scheduler: PunchScheduler,
    introductions: Introductions,
    sessions: BTreeMap<WgKey, PunchSession>,
    /// The step and shot each session's entry was last set up for.
    applied_step: BTreeMap<WgKey, (usize, u32)>,
    /// The endpoint the device recorded for each peer (an introducer hands these out).
    seen: BTreeMap<WgKey, SocketAddr>,
    handshakes: BTreeMap<WgKey, Option<Millis>>,
    /// When a punch to a peer last succeeded (refreshed by the held entry's handshakes).
    punched_at: BTreeMap<WgKey, Millis>,
    /// Punched peers whose entry is kept at the punched endpoint until the relay lets go of
    /// them: peer → (endpoint, success time).
    held: BTreeMap<WgKey, (SocketAddr, Millis)>,
    /// A hold ended since the last tick (the overrides must be recomputed).
    hold_changed: bool,
}

impl Punching {
    /// Takes one device sample; ends the sessions it shows succeeded (recording the endpoint
    /// in the store as `dht-rendezvous`). Returns whether the overrides changed.
    pub fn observe_device(&mut self, state: &DeviceState, store: &PeerStore, now: Millis) -> bool {
        // Only an entry that completed a handshake shows where the peer's packets come from;
        // before that its endpoint is merely what this node configured.
        self.seen = state
            .peers
            .iter()
            .filter(|p| super::local::handshake_at(p).is_some())
            .filter_map(|p| Some((p.config.public_key, p.config.endpoint?)))
            .collect();
        self.handshakes = state
            .peers
            .iter()
            .map(|p| (p.config.public_key, super::local::handshake_at(p)))
            .collect();
        // A held entry that keeps handshaking is fresh direct-path evidence.
        for (key, (_, since)) in &self.held {
            if self
                .handshakes
                .get(key)
                .copied()
                .flatten()
                .is_some_and(|h| h >= *since)
            {
                self.punched_at.insert(*key, now);
            }
        }
        let done: Vec<WgKey> = self
            .sessions
            .iter()
            .filter(|(k, s)| s.succeeded_by(self.handshakes.get(*k).copied().flatten()))
            .map(|(k, _)| *k)
            .collect();
        for key in &done {
            self.sessions.remove(key);
            self.applied_step.remove(key);
            self.scheduler.succeeded(key);
            self.punched_at.insert(*key, now);
            let endpoint = self.seen.get(key).copied();
            tracing::info!(peer = %short_key(key), endpoint = ?endpoint, "hole punched: direct handshake");
            if let Some(addr) = endpoint {
                self.held.insert(*key, (addr, now));
            }
            if let (Some(entry), Some(addr)) = (store.get(key), endpoint) {
                let update = PeerUpdate::new(entry.record.clone(), DiscoveryMethod::DhtRendezvous)
                    .with_endpoint(addr);
                let update = match entry.signed {
                    Some(s) => update.with_signed(s),
                    None => update,
                };
                if let Err(e) = store.update(update, now) {
                    tracing::debug!(error = %e, "punched endpoint not stored");
                }
            }
        }
        !done.is_empty()
    }

    /// Whether a hold ended since the last call (a tick is due).
    pub fn take_hold_changed(&mut self) -> bool {
        std::mem::take(&mut self.hold_changed)
    }

    /// Whether a punch session is under way.
    pub fn active(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// When a punch to `peer` last succeeded (direct-path evidence for a relayed peer).
    pub fn punched_at(&self, peer: &WgKey) -> Option<Millis> {
        self.punched_at.get(peer).copied()
    }

    /// Where to pull the peer list from: the control ports, at their mesh addresses, of the
    /// introducers heard from lately.
    pub fn introducer_addrs(store: &PeerStore, now: Millis) -> Vec<SocketAddr> {
        store
            .snapshot()
            .iter()
            .filter(|e| e.record.introducer && now.since(e.last_seen) < INTRODUCER_FRESH_FOR)
            .map(|e| SocketAddr::new(e.record.mesh_ipv4.into(), e.record.control_port))
            .collect()
    }

    /// The offers to send now: (introducer's mesh address and control port, offer).
    /// `relayed`: peers reached through a relay (no direct entry, so no direct handshake).
    pub fn offers(
        &mut self,
        local: &WgKey,
        store: &PeerStore,
        relayed: &BTreeMap<WgKey, WgKey>,
        now: Millis,
    ) -> Vec<(SocketAddr, RendezvousOffer)> {
        let peers = store.snapshot();
        let introducers: Vec<WgKey> = peers
            .iter()
            .filter(|e| e.record.introducer && now.since(e.last_seen) < INTRODUCER_FRESH_FOR)
            .map(|e| *e.key())
            .collect();
        if introducers.is_empty() {
            return Vec::new();
        }
        // A hold ends when the relay let go of the peer, or after its time.
        let before = self.held.len();
        self.held.retain(|k, (_, since)| {
            relayed.contains_key(k) && now.since(*since) < HOLD_AFTER_PUNCH
        });
        self.hold_changed |= self.held.len() != before;
        let mut out = Vec::new();
        for e in &peers {
            let key = *e.key();
            if e.found_by_lan() || self.sessions.contains_key(&key) || self.held.contains_key(&key)
            {
                continue;
            }
            let direct_handshake = if relayed.contains_key(&key) {
                None
            } else {
                self.handshakes.get(&key).copied().flatten()
            };
            if !self.scheduler.due(
                key,
                e.record.introducer,
                direct_handshake,
                e.first_seen,
                now,
            ) {
                continue;
            }
            for intro in introducers_for(local, &key, &introducers) {
                if let Some(i) = store.get(&intro) {
                    let to = SocketAddr::new(i.record.mesh_ipv4.into(), i.record.control_port);
                    tracing::debug!(peer = %short_key(&key), introducer = %short_key(&intro), "asking for a rendezvous");
                    out.push((to, RendezvousOffer { peer: key }));
                }
            }
        }
        out
    }

    /// A rendezvous message: as an introducer, the starts to send (to both ends' mesh
    /// addresses); as an end, a new session (nothing to send).
    pub fn on_event(
        &mut self,
        ev: RendezvousEvent,
        local_is_introducer: bool,
        local_nat: NatType,
        store: &PeerStore,
        now: Millis,
    ) -> Vec<(SocketAddr, Message)> {
        match ev {
            RendezvousEvent::Offer { from, offer, .. } => {
                if !local_is_introducer {
                    return Vec::new();
                }
                let (Some(a), Some(b)) = (store.get(&from), store.get(&offer.peer)) else {
                    return Vec::new();
                };
                let seen = |k: &WgKey| self.seen.get(k).copied();
                let Some(starts) = self.introductions.on_offer(&a, &b, seen, now) else {
                    return Vec::new();
                };
                tracing::info!(a = %short_key(&from), b = %short_key(&offer.peer), "introducing two peers for a hole punch");
                starts
                    .into_iter()
                    .filter_map(|(to, start)| {
                        let e = store.get(&to)?;
                        let addr =
                            SocketAddr::new(e.record.mesh_ipv4.into(), e.record.control_port);
                        Some((addr, Message::RendezvousStart(start)))
                    })
                    .collect()
            }
            RendezvousEvent::Start { from, start, .. } => {
                let introducer = store.get(&from).is_some_and(|e| e.record.introducer);
                let Some(peer) = store.get(&start.peer).filter(|_| introducer) else {
                    return Vec::new();
                };
                let local = store.config().local_key.unwrap_or_default();
                let role = punch_role(local_nat, peer.record.nat_type);
                let candidates = start.candidates;
                tracing::debug!(peer = %short_key(&start.peer), introducer = %short_key(&from), ?role, ?candidates, "punch session scheduled");
                if let Some(s) = PunchSession::with_role(
                    &local,
                    start.peer,
                    from,
                    candidates,
                    Millis(start.start_at),
                    now,
                    role,
                ) {
                    self.applied_step.remove(&start.peer);
                    self.sessions.insert(start.peer, s);
                }
                Vec::new()
            }
        }
    }

    /// Advances the sessions to `now`: `overrides` becomes peer → candidate tried now.
    pub fn tick(&mut self, now: Millis, overrides: &mut BTreeMap<WgKey, SocketAddr>) -> PunchTick {
        let mut out = PunchTick::default();
        let mut ended = Vec::new();
        let mut wanted: BTreeMap<WgKey, SocketAddr> = self
            .held
            .iter()
            .filter(|(k, _)| !self.sessions.contains_key(*k))
            .map(|(k, (addr, _))| (*k, *addr))
            .collect();
        for (key, s) in &self.sessions {
            match s.step(now) {
                PunchStep::Wait => {}
                PunchStep::Try { index, shot, addr } => {
                    wanted.insert(*key, addr);
                    if self.applied_step.get(key) != Some(&(index, shot)) {
                        self.applied_step.insert(*key, (index, shot));
                        out.recreate.push(*key);
                    }
                }
                PunchStep::Done => ended.push(*key),
            }
        }
        for key in ended {
            tracing::debug!(peer = %short_key(&key), "punch session ended without a handshake");
            self.sessions.remove(&key);
            self.applied_step.remove(&key);
        }
        if *overrides != wanted {
            *overrides = wanted;
            out.changed = true;
        }
        out
    }

    /// When the next session step begins.
    pub fn next_wake(&self, now: Millis) -> Option<Millis> {
        self.sessions
            .values()
            .filter_map(|s| s.next_change(now))
            .min()
    }
}
