//! The registry discovery task (`--registry`, repeatable): one loop per registry that files
//! this node's sealed entry in its slot and reads everyone else's, on the core's
//! [`RegistrySchedule`] (at start, when no peer was found for 30 s, every 15 minutes, when the
//! record changes; errors back off). Records learned go to the store with method `registry`
//! and are greeted on their control port; on shutdown each registry's entry is deleted
//! (bounded). Started by `node.rs` with [`start_for`]; [`RegistryHandle`] is all it keeps.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::local::now_millis;
use crate::control::report::RegistryReport;
use crate::discovery::ControlSocket;
use crate::discovery::registry::{
    DeleteRequest, EntryError, Registry, RegistryAccess, RegistryClientError, RegistryUrl, connect,
    open_entry,
};
use crate::mesh::registry_schedule::{RegistrySchedule, RegistryScheduleConfig};
use crate::mesh::{DiscoveryMethod, Millis, PeerStore, PeerUpdate, WgKey};
use crate::metrics::Metrics;
use crate::proto::registry::{Entry, delete_proof, seal_record, slot_key};
use crate::proto::{MeshKeys, NodeRecord, RecordError, SignedRecord};

/// The loop wakes at least this often (to notice that the node became lonely).
const TICK: Duration = Duration::from_secs(5);
/// Deleting this node's entries on shutdown may take this long in all.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the task needs from the daemon.
pub struct RegistryDeps {
    pub keys: MeshKeys,
    /// This node's slot key (derived from its identity seed and the registry id).
    pub slot: SigningKey,
    pub own_key: WgKey,
    pub store: Arc<PeerStore>,
    pub exchange: ControlSocket,
    pub metrics: Arc<Metrics>,
    pub local_record: watch::Receiver<SignedRecord>,
    pub registries: Vec<RegistryUrl>,
    pub access: RegistryAccess,
}

/// The running loops: read their `show` blocks, stop them (which deletes this node's entries).
pub struct RegistryHandle {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    reports: Vec<Arc<Mutex<RegistryReport>>>,
}

impl RegistryHandle {
    /// One `show` block per registry.
    pub fn report(&self) -> Vec<RegistryReport> {
        self.reports
            .iter()
            .map(|r| r.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }

    /// Stops every loop; each deletes its entry first (within [`DELETE_TIMEOUT`]).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(DELETE_TIMEOUT + Duration::from_millis(200), all)
            .await
            .is_err()
        {
            tracing::debug!("the registry tasks did not stop in time");
        }
    }
}

fn unix_secs(now: Millis) -> u64 {
    now.0 / 1000
}

/// Starts one loop per registry.
pub fn start(deps: RegistryDeps) -> RegistryHandle {
    let (stop, stop_rx) = watch::channel(false);
    let deps = Arc::new(deps);
    let mut tasks = Vec::new();
    let mut reports = Vec::new();
    for url in deps.registries.clone() {
        let report = Arc::new(Mutex::new(RegistryReport {
            registry: url.label(),
            state: "starting".into(),
            ..RegistryReport::default()
        }));
        reports.push(report.clone());
        let backend = match connect(&url, &deps.keys, &deps.access) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(registry = %url.label(), "registry not used: {e}");
                let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
                r.state = "unusable".into();
                r.last_error = Some(e.to_string());
                r.last_error_at = Some(unix_secs(now_millis()));
                continue;
            }
        };
        let task = Loop {
            deps: deps.clone(),
            label: url.label(),
            backend,
            report,
            schedule: RegistrySchedule::new(RegistryScheduleConfig::default(), now_millis()),
            last_entry_seq: None,
        };
        tasks.push(tokio::spawn(task.run(stop_rx.clone())));
    }
    RegistryHandle {
        tasks,
        stop,
        reports,
    }
}

struct Loop {
    deps: Arc<RegistryDeps>,
    label: String,
    backend: Box<dyn Registry>,
    report: Arc<Mutex<RegistryReport>>,
    schedule: RegistrySchedule,
    /// The seq of the entry last filed (its delete proof needs it).
    last_entry_seq: Option<u64>,
}

fn random_unit() -> f64 {
    (OsRng.next_u32() as f64) / (u32::MAX as f64 + 1.0)
}

impl Loop {
    fn with_report(&self, f: impl FnOnce(&mut RegistryReport)) {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn count(&self, op: &str, result: &str) {
        self.deps.metrics.inc(
            "wgmesh_registry_requests_total",
            &[("registry", &self.label), ("op", op), ("result", result)],
        );
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut record_rx = self.deps.local_record.clone();
        loop {
            // A stop cancels a request in flight: the delete below must fit its time limit.
            tokio::select! {
                _ = self.step() => {}
                _ = stop.changed() => break,
            }
            let now = now_millis();
            let seq = self.record_seq();
            let due = self.schedule.next_wake(seq);
            let wake = due.min(now.plus(TICK));
            self.with_report(|r| {
                r.retry_in_secs = (self.schedule.failures() > 0)
                    .then(|| due.0.saturating_sub(now.0).div_ceil(1000));
            });
            let sleep = Duration::from_millis(wake.0.saturating_sub(now.0));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = record_rx.changed() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        self.delete_own().await;
    }

    fn record_seq(&self) -> u64 {
        let signed = self.deps.local_record.borrow().clone();
        NodeRecord::decode_body(&signed.body).map_or(0, |r| r.sequence)
    }

    /// Whatever the schedule says is due now.
    async fn step(&mut self) {
        let now = now_millis();
        let active = self.deps.store.active(now).len();
        self.schedule.observe_peers(now, active);
        let seq = self.record_seq();
        let round = self.schedule.due(now, seq);
        if round.publish {
            match self.publish().await {
                Ok(entry_seq) => {
                    self.schedule.published(now_millis(), seq);
                    self.succeeded("publish");
                    self.with_report(|r| {
                        r.publishes += 1;
                        r.published_sequence = Some(entry_seq);
                    });
                }
                Err(e) => return self.failed("publish", e),
            }
        }
        if round.fetch {
            match self.backend.list().await {
                Ok(entries) => {
                    self.schedule.fetched(now_millis());
                    self.succeeded("list");
                    self.learn(&entries);
                }
                Err(e) => self.failed("list", e),
            }
        }
    }

    fn succeeded(&self, op: &str) {
        let now = now_millis();
        self.count(op, "ok");
        self.deps.metrics.set(
            "wgmesh_registry_last_success_seconds",
            &[("registry", &self.label)],
            unix_secs(now) as f64,
        );
        self.with_report(|r| {
            r.state = "ok".into();
            r.last_success = Some(unix_secs(now));
            r.retry_in_secs = None;
        });
    }

    fn failed(&mut self, op: &str, e: RegistryClientError) {
        let now = now_millis();
        let wait = self.schedule.failed(now, e.retry_after(), random_unit());
        let limited = matches!(e, RegistryClientError::RateLimited { .. });
        self.count(op, if limited { "rate-limited" } else { "error" });
        tracing::warn!(registry = %self.label, op, retry_in = ?wait, "registry request failed: {e}");
        self.with_report(|r| {
            r.state = "backing-off".into();
            r.last_error = Some(e.to_string());
            r.last_error_at = Some(unix_secs(now));
            r.retry_in_secs = Some(wait.as_secs());
        });
    }

    /// Files this node's current record; returns the entry's seq.
    async fn publish(&mut self) -> Result<u64, RegistryClientError> {
        let signed = self.deps.local_record.borrow().clone();
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let sealed = seal_record(&self.deps.keys, &signed, &nonce)?;
        // Strictly increasing per slot: unix milliseconds, past the last one filed.
        let seq = now_millis().0.max(self.last_entry_seq.map_or(0, |s| s + 1));
        let entry = Entry::sign(
            &self.deps.slot,
            &self.deps.keys.registry_id(),
            seq,
            self.schedule.ttl_secs(),
            sealed,
        )?;
        // Remembered before the request: a stop may cancel it after the registry took it,
        // and a delete proof for a higher seq still deletes the entry held.
        self.last_entry_seq = Some(seq);
        self.backend.publish(&entry).await?;
        tracing::debug!(registry = %self.label, seq, "published this node's registry entry");
        Ok(seq)
    }

    /// Verified records from a list into the store; their control ports are greeted.
    fn learn(&self, entries: &[Entry]) {
        let now = now_millis();
        let own_slot = self.deps.slot.verifying_key().to_bytes();
        let mut learned = 0u64;
        for e in entries.iter().filter(|e| e.slot != own_slot) {
            let opened = open_entry(&self.deps.keys, e, now.0, |k| {
                self.deps.store.held_sequence(k)
            });
            let (record, signed) = match opened {
                Ok(r) => r,
                Err(EntryError::Record(RecordError::Stale { .. })) | Err(EntryError::Expired) => {
                    continue;
                }
                Err(err) => {
                    tracing::debug!(registry = %self.label, error = %err, "a registry entry was refused");
                    continue;
                }
            };
            if record.wireguard_public == self.deps.own_key {
                continue;
            }
            let key = record.wireguard_public;
            let targets: Vec<SocketAddr> = record
                .endpoints
                .iter()
                .map(|c| SocketAddr::new(c.addr.ip(), record.control_port))
                .collect();
            let update = PeerUpdate::new(record, DiscoveryMethod::Registry).with_signed(signed);
            match self.deps.store.update(update, now) {
                Ok(outcome) => {
                    learned += 1;
                    tracing::info!(registry = %self.label, peer = %crate::mesh::short_key(&key), ?outcome, "learned a peer from the registry");
                    self.deps
                        .metrics
                        .inc("wgmesh_discovery_events_total", &[("method", "registry")]);
                }
                Err(err) => {
                    tracing::debug!(error = %err, "a registry record was not stored");
                    continue;
                }
            }
            for t in targets {
                self.deps.exchange.send_hello_to(t);
            }
        }
        if learned > 0 {
            self.deps.metrics.add(
                "wgmesh_registry_records_learned_total",
                &[("registry", &self.label)],
                learned as f64,
            );
        }
        self.with_report(|r| {
            r.fetches += 1;
            r.entries_seen = entries.len();
            r.records_learned += learned;
        });
    }

    /// Removes this node's entry (shutdown), within [`DELETE_TIMEOUT`].
    async fn delete_own(&mut self) {
        let Some(seq) = self.last_entry_seq else {
            return;
        };
        let request = DeleteRequest {
            slot: self.deps.slot.verifying_key().to_bytes(),
            proof: delete_proof(&self.deps.slot, &self.deps.keys.registry_id(), seq),
        };
        match tokio::time::timeout(DELETE_TIMEOUT, self.backend.delete(&request)).await {
            Ok(Ok(())) => {
                self.count("delete", "ok");
                tracing::info!(registry = %self.label, "deleted this node's registry entry");
            }
            Ok(Err(e)) => {
                self.count("delete", "error");
                tracing::warn!(registry = %self.label, "could not delete this node's registry entry (it expires within an hour): {e}");
            }
            Err(_) => {
                tracing::warn!(registry = %self.label, "deleting this node's registry entry timed out (it expires within an hour)")
            }
        }
    }
}

/// [`start`] with what `node.rs` has at hand; None without `--registry`.
pub fn start_for(
    config: &super::config::DaemonConfig,
    keys: &MeshKeys,
    identity: &crate::identity::NodeIdentity,
    store: &Arc<PeerStore>,
    exchange: &ControlSocket,
    metrics: &Arc<Metrics>,
    local_record: watch::Receiver<SignedRecord>,
) -> Option<RegistryHandle> {
    if config.registries.is_empty() {
        return None;
    }
    Some(start(RegistryDeps {
        keys: keys.clone(),
        slot: slot_key(&identity.seed(), &keys.registry_id()),
        own_key: identity.wireguard_public(),
        store: store.clone(),
        exchange: exchange.clone(),
        metrics: metrics.clone(),
        local_record,
        registries: config.registries.clone(),
        access: RegistryAccess::from_env(
            config.registry_token_file.clone(),
            config.registry_ca.clone(),
        ),
    }))
}
