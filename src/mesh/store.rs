//! The peer store: the runtime registry of peers, shared by discovery (writers), the reconciler,
//! health and `show` (readers). Owns the merge rules of a discovered record into a peer (newest
//! record wins, endpoint by rank, discovered-via accumulates, last-seen only on direct
//! discovery), flood protection (a cap on new peers), ageing (dead, then removed), the cache
//! snapshot/restore, and change events to subscribers.
//!
//! Thread-safe: one `RwLock` over the peers. Events are collected under the lock and sent after
//! it is released, with `try_send` on bounded channels: a lagging subscriber loses events
//! (counted) and never blocks the store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::proto::{NodeRecord, SignedRecord};

use super::collision::{AddressCheck, AddressError};
use super::events::{PeerEvent, RemoveReason};
use super::peer::{PeerEntry, PeerUpdate};
use super::rank::{DiscoveryMethod, EndpointClaim, pick_candidate, should_update_endpoint};
use super::time::Millis;
use super::{WgKey, short_key};

/// Default cap on the number of peers (flood protection).
pub const DEFAULT_MAX_PEERS: usize = 1000;
/// A peer not seen for this long is dead: it leaves the active set.
pub const DEAD_AFTER: Duration = Duration::from_secs(5 * 60);
/// A peer not seen for this long is removed by the cleanup.
pub const REMOVE_AFTER: Duration = Duration::from_secs(10 * 60);
/// How often the daemon should call [`PeerStore::cleanup`].
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// Cached peers older than this are not restored.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Capacity of each subscriber's channel.
pub const SUBSCRIBER_CAPACITY: usize = 16;

/// The store's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most peers held; a new peer beyond it is refused, updates always pass.
    pub max_peers: usize,
    pub dead_after: Duration,
    pub remove_after: Duration,
    pub cache_max_age: Duration,
    /// This node's own key: its own record (echoed back by gossip or the DHT) is refused.
    pub local_key: Option<WgKey>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_peers: DEFAULT_MAX_PEERS,
            dead_after: DEAD_AFTER,
            remove_after: REMOVE_AFTER,
            cache_max_age: CACHE_MAX_AGE,
            local_key: None,
        }
    }
}

/// Why the store refused a record.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum StoreError {
    #[error(
        "peer store is full ({cap} peers): new peer {peer} was dropped (known peers still update); if the mesh really is this large, raise the peer limit (--max-peers)"
    )]
    Full { cap: usize, peer: String },
    #[error("record {peer} is this node's own record; it is not a peer")]
    OwnRecord { peer: String },
    #[error(transparent)]
    Address(#[from] AddressError),
}

/// What an accepted update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// A new peer.
    Added,
    /// A known peer changed (an `Updated` event was sent).
    Updated,
    /// Nothing the planner or `show` uses changed (last-seen may have moved).
    Unchanged,
}

/// One peer as the cache file keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPeer {
    /// The record; the daemon verifies `signed` again when it loads the cache.
    pub record: NodeRecord,
    pub signed: SignedRecord,
    pub endpoint: Option<SocketAddr>,
    pub last_seen: Millis,
}

/// What [`PeerStore::restore`] did with a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    pub restored: usize,
    /// Last seen more than the cache's maximum age ago.
    pub too_old: usize,
    /// Refused by the store (full, own record, wrong address).
    pub refused: usize,
}

/// The peer registry. Cheap to share behind an `Arc`.
pub struct PeerStore {
    config: StoreConfig,
    address_check: AddressCheck,
    peers: RwLock<BTreeMap<WgKey, PeerEntry>>,
    subscribers: Mutex<Vec<(u64, SyncSender<PeerEvent>)>>,
    next_subscriber: AtomicU64,
    dropped_events: AtomicU64,
    /// Test probe: events sent while this thread could not take the peers lock.
    #[cfg(test)]
    sends_under_lock: AtomicU64,
}

impl std::fmt::Debug for PeerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStore")
            .field("peers", &self.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PeerStore {
    /// An empty store; `address_check` is run on every new record.
    pub fn new(config: StoreConfig, address_check: AddressCheck) -> Self {
        Self {
            config,
            address_check,
            peers: RwLock::new(BTreeMap::new()),
            subscribers: Mutex::new(Vec::new()),
            next_subscriber: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
            #[cfg(test)]
            sends_under_lock: AtomicU64::new(0),
        }
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<WgKey, PeerEntry>> {
        // A panic while holding the lock cannot leave an entry half-merged (merges build the
        // new values before assigning), so a poisoned lock's data is still consistent.
        self.peers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<WgKey, PeerEntry>> {
        self.peers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Merges a verified record found by `update.method` at `now`.
    pub fn update(&self, mut update: PeerUpdate, now: Millis) -> Result<UpdateOutcome, StoreError> {
        let key = update.record.wireguard_public;
        if update
            .endpoint
            .is_some_and(|e| self.address_check.is_mesh_address(e.ip()))
        {
            // Heard through the tunnel: the source is a mesh address, not an endpoint.
            update.endpoint = None;
        }
        if self.config.local_key == Some(key) {
            return Err(StoreError::OwnRecord {
                peer: short_key(&key),
            });
        }
        let outcome = {
            let mut peers = self.write();
            match peers.get_mut(&key) {
                Some(entry) => {
                    if update.record.sequence > entry.record.sequence {
                        self.address_check.check(&update.record)?;
                    }
                    if merge(entry, update, now, &self.address_check) {
                        UpdateOutcome::Updated
                    } else {
                        UpdateOutcome::Unchanged
                    }
                }
                None => {
                    if peers.len() >= self.config.max_peers {
                        return Err(StoreError::Full {
                            cap: self.config.max_peers,
                            peer: short_key(&key),
                        });
                    }
                    self.address_check.check(&update.record)?;
                    peers.insert(key, new_entry(update, now, &self.address_check));
                    UpdateOutcome::Added
                }
            }
        };
        match outcome {
            UpdateOutcome::Added => self.notify(&[PeerEvent::Added(key)]),
            UpdateOutcome::Updated => self.notify(&[PeerEvent::Updated(key)]),
            UpdateOutcome::Unchanged => {}
        }
        Ok(outcome)
    }

    /// A copy of one peer.
    pub fn get(&self, key: &WgKey) -> Option<PeerEntry> {
        self.read().get(key).cloned()
    }

    /// The sequence of the record held for `key` (discovery passes it to the verifier).
    pub fn held_sequence(&self, key: &WgKey) -> Option<u64> {
        self.read().get(key).map(|e| e.record.sequence)
    }

    /// How many peers are held (alive or dead).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of every peer, in key order.
    pub fn snapshot(&self) -> Vec<PeerEntry> {
        self.read().values().cloned().collect()
    }

    /// What `f` picks from each peer, in key order, without copying whole entries (the
    /// anti-entropy reads every peer per exchange).
    pub fn scan<T>(&self, f: impl FnMut(&PeerEntry) -> Option<T>) -> Vec<T> {
        self.read().values().filter_map(f).collect()
    }

    /// [`Self::scan`] over the peers whose keys lie in `from..=to` only.
    pub fn scan_range<T>(
        &self,
        from: &WgKey,
        to: &WgKey,
        f: impl FnMut(&PeerEntry) -> Option<T>,
    ) -> Vec<T> {
        if from > to {
            return Vec::new();
        }
        self.read()
            .range(*from..=*to)
            .map(|(_, e)| e)
            .filter_map(f)
            .collect()
    }

    /// Copies of the peers alive at `now`, in key order.
    pub fn active(&self, now: Millis) -> Vec<PeerEntry> {
        let dead_after = self.config.dead_after;
        self.read()
            .values()
            .filter(|e| e.is_alive(now, dead_after))
            .cloned()
            .collect()
    }

    /// Removes one peer (health eviction, goodbye). `true` when it was held.
    pub fn remove(&self, key: &WgKey, reason: RemoveReason) -> bool {
        let removed = self.write().remove(key).is_some();
        if removed {
            self.notify(&[PeerEvent::Removed(*key, reason)]);
        }
        removed
    }

    /// Removes peers not seen for the removal age; run every [`CLEANUP_INTERVAL`].
    pub fn cleanup(&self, now: Millis) -> Vec<WgKey> {
        let remove_after = self.config.remove_after;
        let removed: Vec<WgKey> = {
            let mut peers = self.write();
            let expired: Vec<WgKey> = peers
                .values()
                .filter(|e| now.since(e.liveness_base()) >= remove_after)
                .map(|e| *e.key())
                .collect();
            for k in &expired {
                peers.remove(k);
            }
            expired
        };
        let events: Vec<PeerEvent> = removed
            .iter()
            .map(|k| PeerEvent::Removed(*k, RemoveReason::Expired))
            .collect();
        self.notify(&events);
        removed
    }

    /// The peers worth caching: every peer whose signed record is known.
    pub fn cache_entries(&self) -> Vec<CachedPeer> {
        self.read()
            .values()
            .filter_map(|e| {
                Some(CachedPeer {
                    record: e.record.clone(),
                    signed: e.signed.clone()?,
                    endpoint: e.endpoint_addr(),
                    last_seen: e.last_seen,
                })
            })
            .collect()
    }

    /// Restores cached peers (method `cache`): keeps each one's cached last-seen, skips those
    /// older than the cache's maximum age, merges into peers already known.
    pub fn restore(&self, cached: Vec<CachedPeer>, now: Millis) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut events = Vec::new();
        {
            let mut peers = self.write();
            for c in cached {
                if now.since(c.last_seen) > self.config.cache_max_age {
                    report.too_old += 1;
                    continue;
                }
                let key = c.record.wireguard_public;
                if self.config.local_key == Some(key)
                    || self.address_check.check(&c.record).is_err()
                {
                    report.refused += 1;
                    continue;
                }
                let update = PeerUpdate {
                    record: c.record,
                    signed: Some(c.signed),
                    method: DiscoveryMethod::Cache,
                    endpoint: c.endpoint,
                };
                let held = peers.len();
                if let Some(entry) = peers.get_mut(&key) {
                    if merge(entry, update, now, &self.address_check) {
                        events.push(PeerEvent::Updated(key));
                    }
                } else if held >= self.config.max_peers {
                    report.refused += 1;
                    continue;
                } else {
                    let mut entry = new_entry(update, now, &self.address_check);
                    entry.last_seen = c.last_seen;
                    entry.restored_at = Some(now);
                    if let Some(claim) = entry.endpoint.as_mut() {
                        claim.confirmed_at = c.last_seen;
                    }
                    peers.insert(key, entry);
                    events.push(PeerEvent::Added(key));
                }
                report.restored += 1;
            }
        }
        self.notify(&events);
        report
    }

    /// A new subscriber: a bounded channel of [`SUBSCRIBER_CAPACITY`] events.
    pub fn subscribe(&self) -> Receiver<PeerEvent> {
        let (tx, rx) = sync_channel(SUBSCRIBER_CAPACITY);
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, tx));
        rx
    }

    /// Events lost because a subscriber's channel was full (metric).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// Sends events to every subscriber. Never called with the peers lock held.
    fn notify(&self, events: &[PeerEvent]) {
        if events.is_empty() {
            return;
        }
        #[cfg(test)]
        if self.peers.try_write().is_err() {
            self.sends_under_lock.fetch_add(1, Ordering::Relaxed);
        }
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut gone = Vec::new();
        for (id, tx) in &subscribers {
            for event in events {
                match tx.try_send(*event) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        self.dropped_events.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        gone.push(*id);
                        break;
                    }
                }
            }
        }
        if !gone.is_empty() {
            self.subscribers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(id, _)| !gone.contains(id));
        }
    }
}

/// A new entry for a peer first found by `update`.
fn new_entry(update: PeerUpdate, now: Millis, check: &AddressCheck) -> PeerEntry {
    let endpoint = update
        .endpoint
        .or_else(|| pick_candidate(&update.record, update.method))
        .filter(|a| !check.is_mesh_address(a.ip()))
        .map(|addr| EndpointClaim {
            addr,
            method: update.method,
            confirmed_at: now,
        });
    PeerEntry {
        record: update.record,
        signed: update.signed,
        endpoint,
        discovered_via: vec![update.method],
        first_seen: now,
        last_seen: now,
        restored_at: None,
    }
}

/// Merges `update` into `entry`; `true` when something the planner or `show` uses changed.
fn merge(entry: &mut PeerEntry, update: PeerUpdate, now: Millis, check: &AddressCheck) -> bool {
    let PeerUpdate {
        record,
        signed,
        method,
        endpoint,
    } = update;
    let mut changed = false;
    let held = entry.record.sequence;
    // The endpoint this discovery vouches for: what it observed, else the record's candidate —
    // only with a record at least as new as the one held: an older record is a replay (or a
    // late copy) and moves nothing, whatever address it came from.
    let offered = (record.sequence >= held)
        .then(|| endpoint.or_else(|| pick_candidate(&record, method)))
        .flatten()
        .filter(|a| !check.is_mesh_address(a.ip()));
    if record.sequence > held {
        // Records are signed and whole: the newer one replaces everything it says (routes it
        // drops are withdrawn, the introducer flag is always the latest).
        changed |= differs_beyond_sequence(&entry.record, &record);
        entry.record = record;
        entry.signed = signed;
    } else if record.sequence == held && entry.signed.is_none() && signed.is_some() {
        entry.signed = signed;
    }
    if let Some(addr) = offered {
        let claim = EndpointClaim {
            addr,
            method,
            confirmed_at: now,
        };
        if should_update_endpoint(entry.endpoint.as_ref(), &claim) {
            changed |= entry.endpoint_addr() != Some(addr);
            entry.endpoint = Some(claim);
        }
    }
    if !entry.discovered_via.contains(&method) {
        entry.discovered_via.push(method);
        changed = true;
    }
    if method.is_direct() {
        entry.last_seen = entry.last_seen.max(now);
    }
    changed
}

fn differs_beyond_sequence(old: &NodeRecord, new: &NodeRecord) -> bool {
    old.hostname != new.hostname
        || old.address_nonce != new.address_nonce
        || old.mesh_ipv4 != new.mesh_ipv4
        || old.mesh_ipv6 != new.mesh_ipv6
        || old.endpoints != new.endpoints
        || old.nat_type != new.nat_type
        || old.introducer != new.introducer
        || old.routes != new.routes
        || old.control_port != new.control_port
        || old.wireguard_port != new.wireguard_port
        || old.ed25519_public != new.ed25519_public
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
