//! The DHT discovery task: bootstraps the Mainline DHT node (persisted routing table, else
//! `--dht-bootstrap`, else the public routers; failures back off without blocking anything
//! else), announces the control port under the hourly topics, looks them up and greets every
//! address found through the peer exchange (each at most once a minute), stores this node's
//! record as a BEP 44 item and fetches quiet peers' items, and persists the routing table.
//! The schedule is the core's [`DhtSchedule`]; this file does the I/O and keeps the `show`
//! block and the metrics. Started by `node.rs` with [`start`]; [`DhtHandle`] is all it keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::local::now_millis;
use crate::control::report::DhtReport;
use crate::discovery::ControlSocket;
use crate::discovery::dht::nodes_file::{load_nodes, nodes_path, save_nodes};
use crate::discovery::dht::{DhtClient, ItemError, build_item, open_peer_item};
use crate::identity::NodeIdentity;
use crate::mesh::dht_schedule::{
    BootstrapSource, DhtPhase, DhtSchedule, DhtScheduleConfig, is_quiet,
};
use crate::mesh::{DiscoveryMethod, Millis, PeerStore, PeerUpdate, WgKey};
use crate::metrics::Metrics;
use crate::proto::dht_item::DhtItemError;
use crate::proto::{MeshKeys, NodeRecord, RecordError, SignedRecord};

/// The task wakes at least this often (quiet peers, routing table checks).
const TICK: Duration = Duration::from_secs(5);
/// The routing table is checked this often and saved when it changed …
const TABLE_CHECK_EVERY: Duration = Duration::from_secs(30);
/// … and first this soon after a bootstrap (the table fills within seconds).
const FIRST_TABLE_CHECK: Duration = Duration::from_secs(10);
/// How long name resolution of a bootstrap node may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the task needs from the daemon.
pub struct DhtDeps {
    pub keys: MeshKeys,
    pub identity: NodeIdentity,
    pub store: Arc<PeerStore>,
    pub exchange: ControlSocket,
    pub metrics: Arc<Metrics>,
    pub local_record: watch::Receiver<SignedRecord>,
    /// `--dht-bootstrap` (empty: the public routers).
    pub bootstrap: Vec<String>,
    pub state_dir: PathBuf,
    pub interface: String,
}

/// The running task: feed it handshake samples, read its `show` block, stop it.
pub struct DhtHandle {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    handshakes: watch::Sender<BTreeMap<WgKey, Option<Millis>>>,
    report: Arc<Mutex<DhtReport>>,
}

impl DhtHandle {
    /// The latest WireGuard handshake per peer (decides which peers are quiet).
    pub fn handshakes(&self, latest: &BTreeMap<WgKey, Option<Millis>>) {
        let _ = self.handshakes.send(latest.clone());
    }

    /// The `show` block.
    pub fn report(&self) -> DhtReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the task; it saves the routing table first (bounded by the caller's shutdown
    /// limit).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            tracing::debug!("the DHT task did not stop within 2 s");
        }
    }
}

/// Starts the DHT task (call only without `--no-dht`).
pub fn start(deps: DhtDeps) -> DhtHandle {
    let (stop, stop_rx) = watch::channel(false);
    let (handshakes, handshakes_rx) = watch::channel(BTreeMap::new());
    let report = Arc::new(Mutex::new(DhtReport {
        state: "starting".into(),
        ..DhtReport::default()
    }));
    let task = tokio::spawn(
        Task {
            nodes_file: nodes_path(&deps.state_dir, &deps.interface),
            deps,
            client: None,
            report: report.clone(),
            handshakes: handshakes_rx,
            saved_nodes: Vec::new(),
            next_table_check: Millis::ZERO,
        }
        .run(stop_rx),
    );
    DhtHandle {
        task,
        stop,
        handshakes,
        report,
    }
}

struct Task {
    deps: DhtDeps,
    nodes_file: PathBuf,
    client: Option<DhtClient>,
    report: Arc<Mutex<DhtReport>>,
    handshakes: watch::Receiver<BTreeMap<WgKey, Option<Millis>>>,
    saved_nodes: Vec<SocketAddrV4>,
    next_table_check: Millis,
}

fn random_unit() -> f64 {
    (OsRng.next_u32() as f64) / (u32::MAX as f64 + 1.0)
}

/// Resolves `HOST:PORT` entries to IPv4 addresses (the DHT is IPv4), each within 5 s.
async fn resolve_all(entries: &[String]) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for e in entries {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(e.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs.filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })),
            Ok(Err(err)) => {
                tracing::warn!(node = %e, error = %err, "cannot resolve DHT bootstrap node; check --dht-bootstrap")
            }
            Err(_) => tracing::warn!(node = %e, "resolving DHT bootstrap node timed out"),
        }
    }
    out.dedup();
    out
}

impl Task {
    fn with_report(&self, f: impl FnOnce(&mut DhtReport)) {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner));
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let persisted = match load_nodes(&self.nodes_file) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        let mut schedule = DhtSchedule::new(
            DhtScheduleConfig::default(),
            !persisted.is_empty(),
            !self.deps.bootstrap.is_empty(),
        );
        let mut record_rx = self.deps.local_record.clone();
        loop {
            self.step(&mut schedule).await;
            let now = now_millis();
            let wake = schedule.next_wake(now).min(now.plus(TICK));
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
        if let Some(c) = &self.client {
            let nodes = c.routing_nodes().await;
            self.save(&nodes);
        }
    }

    fn save(&mut self, nodes: &[SocketAddrV4]) {
        let mut sorted = nodes.to_vec();
        sorted.sort();
        if sorted == self.saved_nodes {
            return;
        }
        match save_nodes(&self.nodes_file, &sorted) {
            Ok(true) => {
                tracing::debug!(nodes = sorted.len(), path = %self.nodes_file.display(), "DHT routing table saved");
                self.saved_nodes = sorted;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// One pass: whatever the schedule says is due now.
    async fn step(&mut self, schedule: &mut DhtSchedule) {
        if let Some(source) = schedule.bootstrap_due(now_millis()) {
            self.bootstrap(schedule, source).await;
        }
        let Some(client) = self.client.clone() else {
            self.publish_phase(schedule);
            return;
        };
        if now_millis() >= self.next_table_check {
            self.next_table_check = now_millis().plus(TABLE_CHECK_EVERY);
            let nodes = client.routing_nodes().await;
            self.deps
                .metrics
                .set("wgmesh_dht_routing_table_nodes", &[], nodes.len() as f64);
            let public = client.public_address().await;
            self.with_report(|r| {
                r.routing_table_nodes = nodes.len();
                r.public_address = public.map(|a| a.to_string());
            });
            if nodes.is_empty() {
                tracing::warn!("the DHT routing table is empty: bootstrapping again");
                self.client = None;
                let wait = schedule.bootstrap_failed(now_millis(), random_unit());
                self.deps
                    .metrics
                    .inc("wgmesh_dht_bootstrap_failures_total", &[]);
                tracing::info!(retry_in = ?wait, "DHT bootstrap backs off");
                self.publish_phase(schedule);
                return;
            }
            self.save(&nodes);
        }
        if schedule.announce_due(now_millis()) {
            self.announce(&client).await;
            schedule.announced(now_millis());
        }
        if schedule.lookup_due(now_millis()) {
            self.lookup(&client, schedule).await;
        }
        self.store_item(&client, schedule).await;
        self.fetch_quiet(&client, schedule).await;
        self.publish_phase(schedule);
    }

    fn publish_phase(&self, schedule: &DhtSchedule) {
        let phase = schedule.phase();
        let now = now_millis();
        self.with_report(|r| {
            r.state = phase.as_str().into();
            r.bootstrap_failures = schedule.failures();
            r.retry_in_secs = match phase {
                DhtPhase::BackingOff(at) => Some(at.0.saturating_sub(now.0).div_ceil(1000)),
                _ => None,
            };
            if let DhtPhase::Bootstrapping(s) | DhtPhase::Ready(s) = phase {
                r.bootstrap_source = Some(s.as_str().into());
            }
        });
    }

    async fn bootstrap(&mut self, schedule: &mut DhtSchedule, source: BootstrapSource) {
        self.publish_phase(schedule);
        let nodes = match source {
            BootstrapSource::Persisted => load_nodes(&self.nodes_file).unwrap_or_default(),
            BootstrapSource::Configured => resolve_all(&self.deps.bootstrap).await,
            BootstrapSource::PublicRouters => {
                let routers: Vec<String> = mainline::DEFAULT_BOOTSTRAP_NODES
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                resolve_all(&routers).await
            }
        };
        let started = std::time::Instant::now();
        let client = if nodes.is_empty() {
            None
        } else {
            match DhtClient::start(nodes.clone()).await {
                Ok(c) if c.bootstrapped().await => Some(c),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        };
        match client {
            Some(c) => {
                let table = c.routing_nodes().await;
                tracing::info!(
                    source = source.as_str(),
                    seeds = nodes.len(),
                    routing_table = table.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "DHT bootstrapped"
                );
                self.deps
                    .metrics
                    .set("wgmesh_dht_routing_table_nodes", &[], table.len() as f64);
                self.with_report(|r| r.routing_table_nodes = table.len());
                self.save(&table);
                self.client = Some(c);
                // The table is still filling: look (and save) again soon.
                self.next_table_check = now_millis().plus(FIRST_TABLE_CHECK);
                schedule.bootstrap_succeeded(now_millis());
                self.publish_phase(schedule);
            }
            None => {
                let wait = schedule.bootstrap_failed(now_millis(), random_unit());
                self.deps
                    .metrics
                    .inc("wgmesh_dht_bootstrap_failures_total", &[]);
                tracing::warn!(source = source.as_str(), seeds = nodes.len(), retry_in = ?wait, "DHT bootstrap found no node; LAN and static discovery go on");
                self.publish_phase(schedule);
            }
        }
    }

    async fn announce(&self, client: &DhtClient) {
        let port = self.deps.keys.control_port();
        let topics = self.deps.keys.dht_topics_at(now_millis().0 / 1000);
        let results =
            futures_util::future::join_all(topics.iter().map(|(_, t)| client.announce(*t, port)))
                .await;
        for ((hour, _), r) in topics.iter().zip(results) {
            let result = match r {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::debug!(hour, error = %e, "DHT announce failed");
                    "error"
                }
            };
            self.deps
                .metrics
                .inc("wgmesh_dht_announces_total", &[("result", result)]);
            if result == "ok" {
                self.with_report(|r| r.announces += 1);
            }
        }
        tracing::debug!(port, "announced the control port in the DHT");
    }

    /// Addresses not to greet: this node's own (its record's endpoints and the DHT's view,
    /// at the control port) and peers that are fine (endpoint known, not quiet).
    fn skip_set(&self, public: Option<SocketAddrV4>) -> BTreeSet<SocketAddr> {
        let port = self.deps.keys.control_port();
        let mut skip = BTreeSet::new();
        if let Ok(own) = NodeRecord::decode_body(&self.deps.local_record.borrow().body) {
            for c in own.endpoints {
                skip.insert(SocketAddr::new(c.addr.ip(), own.control_port));
            }
        }
        if let Some(p) = public {
            skip.insert(SocketAddr::new((*p.ip()).into(), port));
        }
        let now = now_millis();
        let handshakes = self.handshakes.borrow().clone();
        for p in self.deps.store.snapshot() {
            let hs = handshakes.get(p.key()).copied().flatten();
            if let Some(ep) = p.endpoint_addr()
                && !is_quiet(hs, p.first_seen, now)
            {
                skip.insert(SocketAddr::new(ep.ip(), p.record.control_port));
            }
        }
        skip
    }

    async fn lookup(&self, client: &DhtClient, schedule: &mut DhtSchedule) {
        let topics = self.deps.keys.dht_topics_at(now_millis().0 / 1000);
        let results =
            futures_util::future::join_all(topics.iter().map(|(_, t)| client.lookup(*t))).await;
        let mut found: Vec<SocketAddr> = Vec::new();
        for r in results {
            let result = match r {
                Ok(peers) => {
                    for p in peers {
                        if !found.contains(&p) {
                            found.push(p);
                        }
                    }
                    "ok"
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DHT lookup failed");
                    "error"
                }
            };
            self.deps
                .metrics
                .inc("wgmesh_dht_lookups_total", &[("result", result)]);
        }
        let public = client.public_address().await;
        let skip = self.skip_set(public);
        let now = now_millis();
        let contacts = schedule.contacts(now, found.iter().copied(), &skip);
        for c in &contacts {
            self.deps.exchange.send_hello_to(*c);
        }
        self.deps
            .metrics
            .add("wgmesh_dht_peers_found_total", &[], found.len() as f64);
        self.deps
            .metrics
            .add("wgmesh_dht_contacts_total", &[], contacts.len() as f64);
        if !contacts.is_empty() {
            tracing::info!(found = found.len(), greeted = ?contacts, "DHT lookup found peers");
        } else {
            tracing::debug!(found = found.len(), "DHT lookup: nobody new");
        }
        self.with_report(|r| {
            r.lookups += 1;
            r.peers_found += found.len() as u64;
            r.contacts += contacts.len() as u64;
            r.last_lookup = Some(now.0 / 1000);
        });
        let active = self.deps.store.active(now).len();
        schedule.looked_up(now, active);
    }

    async fn store_item(&self, client: &DhtClient, schedule: &mut DhtSchedule) {
        let signed = self.deps.local_record.borrow().clone();
        let Ok(record) = NodeRecord::decode_body(&signed.body) else {
            return;
        };
        if !schedule.item_due(now_millis(), record.sequence) {
            return;
        }
        let id = &self.deps.identity;
        let item = match build_item(
            &self.deps.keys,
            id.ed25519_public(),
            &record,
            &signed,
            |m| id.sign(m),
        ) {
            Ok(i) => i,
            Err(e @ DhtItemError::RecordTooLarge(_)) => {
                tracing::warn!("{e}");
                schedule.item_stored(now_millis(), record.sequence);
                return;
            }
            Err(e) => {
                tracing::warn!("cannot build this node's DHT item: {e}");
                schedule.item_failed(now_millis(), record.sequence);
                return;
            }
        };
        // A fetch first refreshes the closest nodes' write tokens, which are bound to this
        // node's address: after roaming, a store with the old tokens is refused.
        let _ = client
            .get_item(&id.ed25519_public(), self.deps.keys.dht_item_salt())
            .await;
        match client.put_item(item).await {
            Ok(n) => {
                tracing::debug!(sequence = record.sequence, stored_at = n, "DHT item stored");
                schedule.item_stored(now_millis(), record.sequence);
                self.deps
                    .metrics
                    .inc("wgmesh_dht_items_stored_total", &[("result", "ok")]);
                self.with_report(|r| {
                    r.items_stored += 1;
                    r.item_sequence = Some(record.sequence);
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "DHT item store failed; retrying in 30 s");
                schedule.item_failed(now_millis(), record.sequence);
                self.deps
                    .metrics
                    .inc("wgmesh_dht_items_stored_total", &[("result", "error")]);
            }
        }
    }

    /// Notes every peer's state, then fetches the items of quiet ones that are due.
    async fn fetch_quiet(&self, client: &DhtClient, schedule: &mut DhtSchedule) {
        let now = now_millis();
        let handshakes = self.handshakes.borrow().clone();
        let mut healthy = BTreeSet::new();
        for p in self.deps.store.snapshot() {
            let quiet = is_quiet(
                handshakes.get(p.key()).copied().flatten(),
                p.first_seen,
                now,
            );
            schedule.observe_peer(
                now,
                *p.key(),
                p.record.ed25519_public,
                p.record.sequence,
                quiet,
            );
            if !quiet {
                healthy.insert(*p.key());
            }
        }
        let salt = *self.deps.keys.dht_item_salt();
        for (key, ed25519, seq) in schedule.fetches_due(now, &healthy) {
            let result = match client.get_item(&ed25519, &salt).await {
                Ok(None) => "none",
                Err(e) => {
                    tracing::debug!(error = %e, "DHT item fetch failed");
                    "error"
                }
                Ok(Some(item)) => match open_peer_item(&self.deps.keys, &item, Some(seq)) {
                    Ok((record, signed)) if record.wireguard_public == key => {
                        self.found_again(record, signed, schedule);
                        "newer"
                    }
                    Ok(_) => "invalid",
                    Err(ItemError::Record(RecordError::Stale { .. })) => "unchanged",
                    Err(e) => {
                        tracing::debug!(error = %e, "a peer's DHT item was refused");
                        "invalid"
                    }
                },
            };
            self.deps
                .metrics
                .inc("wgmesh_dht_items_fetched_total", &[("result", result)]);
            self.with_report(|r| {
                r.items_fetched += 1;
                if result == "newer" {
                    r.items_newer += 1;
                }
            });
        }
    }

    /// A quiet peer's item held a newer record: into the store (the reconciler points
    /// WireGuard at its new endpoint) and a hello to its new addresses.
    fn found_again(&self, record: NodeRecord, signed: SignedRecord, schedule: &mut DhtSchedule) {
        let now = now_millis();
        let key = record.wireguard_public;
        let seq = record.sequence;
        let control_port = record.control_port;
        let targets: Vec<SocketAddr> = record
            .endpoints
            .iter()
            .map(|c| SocketAddr::new(c.addr.ip(), control_port))
            .collect();
        let update = PeerUpdate::new(record, DiscoveryMethod::Dht).with_signed(signed);
        match self.deps.store.update(update, now) {
            Ok(outcome) => {
                tracing::info!(peer = %crate::mesh::short_key(&key), sequence = seq, ?outcome, "found a quiet peer again through its DHT item");
                self.deps
                    .metrics
                    .inc("wgmesh_discovery_events_total", &[("method", "dht")]);
            }
            Err(e) => tracing::debug!(error = %e, "a peer's DHT item was not stored"),
        }
        for t in targets {
            self.deps.exchange.send_hello_to(t);
        }
        schedule.fetched_newer(now, &key, seq);
    }
}

/// [`start`] with what `node.rs` has at hand.
pub fn start_for(
    config: &super::config::DaemonConfig,
    keys: &MeshKeys,
    identity: &NodeIdentity,
    store: &Arc<PeerStore>,
    exchange: &ControlSocket,
    metrics: &Arc<Metrics>,
    local_record: watch::Receiver<SignedRecord>,
) -> DhtHandle {
    start(DhtDeps {
        keys: keys.clone(),
        identity: NodeIdentity::from_seed(&identity.seed()),
        store: store.clone(),
        exchange: exchange.clone(),
        metrics: metrics.clone(),
        local_record,
        bootstrap: config.dht_bootstrap.clone(),
        state_dir: config.state_dir.clone(),
        interface: config.interface.clone(),
    })
}
