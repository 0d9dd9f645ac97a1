//! The reconciler: the one owner of what is applied to the platform. Each run takes a store
//! snapshot, asks the mesh core to `plan` and `diff` it against what is applied, and turns the
//! diff into platform calls (WireGuard peers, wgmesh routes, relay forwarding). A run with no
//! change makes no write; a failure is logged, counted, and retried on the next run (the
//! applied state only moves by what succeeded).

use std::time::Instant;

use crate::mesh::{
    self, DesiredPeer, DesiredState, HealthView, LocalPlanConfig, Millis, PeerOp, PeerStore, Plan,
};
use crate::metrics::Metrics;
use crate::platform::{Firewall, Network, PeerConfig, PeerDiff, Route, WireGuardDevice};

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// WireGuard peers this run added (the daemon nudges them into a handshake).
    pub added: Vec<mesh::WgKey>,
    /// When new peers held back by the handshake order are due (run again then).
    pub deferred_until: Option<Millis>,
    pub peer_ops: usize,
    pub route_ops: usize,
    pub writes: usize,
    pub failed: bool,
}

/// Maps a planned peer onto the platform's peer configuration.
pub fn peer_config(p: &DesiredPeer) -> PeerConfig {
    PeerConfig {
        public_key: p.public_key,
        preshared_key: Some(*p.preshared_key.as_bytes()),
        endpoint: p.endpoint,
        allowed_ips: p.allowed_ips.iter().copied().collect(),
        persistent_keepalive: p.persistent_keepalive_secs,
    }
}

/// Maps the core's peer operations onto the platform's diff.
pub fn peer_diff(ops: &[PeerOp]) -> PeerDiff {
    let mut d = PeerDiff::default();
    for op in ops {
        match op {
            PeerOp::Remove(k) => d.remove.push(*k),
            PeerOp::Update { peer, .. } => d.update.push(peer_config(peer)),
            PeerOp::Add(peer) => d.add.push(peer_config(peer)),
        }
    }
    d
}

/// The routes the platform installs: every advertised network through the mesh interface
/// (WireGuard's allowed IPs pick the peer, so no gateway is needed).
pub fn routes_of(desired: &DesiredState) -> Vec<Route> {
    desired
        .routes
        .keys()
        .map(|destination| Route {
            destination: *destination,
            gateway: None,
            metric: None,
        })
        .collect()
}

/// Owns the applied state of one interface.
pub struct Reconciler<D, N, F> {
    pub device: D,
    pub network: N,
    pub firewall: F,
    pub interface: String,
    applied: DesiredState,
    /// New peers held back by the handshake order: when they were first planned.
    first_planned: std::collections::BTreeMap<mesh::WgKey, Millis>,
    /// Whether relay forwarding is known to be in place (checked every run on relays).
    relay_on: bool,
    last_plan: Plan,
}

impl<D: WireGuardDevice, N: Network, F: Firewall> Reconciler<D, N, F> {
    pub fn new(device: D, network: N, firewall: F, interface: String) -> Self {
        Self {
            device,
            network,
            firewall,
            interface,
            applied: DesiredState::default(),
            first_planned: std::collections::BTreeMap::new(),
            relay_on: false,
            last_plan: Plan::default(),
        }
    }

    /// What is applied now.
    pub fn applied(&self) -> &DesiredState {
        &self.applied
    }

    /// The last plan (why peers are skipped or relayed, for `show`).
    pub fn last_plan(&self) -> &Plan {
        &self.last_plan
    }

    /// Forgets that a peer is applied, so the next run writes it again (health "re-apply").
    pub fn forget_peer(&mut self, key: &mesh::WgKey) {
        self.applied.peers.remove(key);
    }

    /// Removes `key`'s entry from the device now and forgets it, so the next run adds it
    /// afresh: a new entry starts a handshake at once (a punch needs one per candidate, and
    /// WireGuard initiates at most once per 5 s on an existing entry).
    pub async fn recreate_peer(&mut self, key: &mesh::WgKey) {
        if self.applied.peers.remove(key).is_none() {
            return;
        }
        let diff = PeerDiff {
            remove: vec![*key],
            ..PeerDiff::default()
        };
        if let Err(e) = self.device.apply(&diff).await {
            tracing::warn!(error = %e, "removing a peer to re-create it failed");
        }
    }

    /// Forgets everything applied (the device lost its state, e.g. wireguard-go restarted).
    pub fn forget_all(&mut self) {
        self.applied.peers.clear();
        self.applied.routes.clear();
    }

    /// One reconcile.
    pub async fn run(
        &mut self,
        store: &PeerStore,
        local: &LocalPlanConfig,
        health: &HealthView,
        now: Millis,
        metrics: &Metrics,
    ) -> ReconcileReport {
        let started = Instant::now();
        let snapshot = store.snapshot();
        let plan = mesh::plan(&snapshot, local, health, now);
        let mut diff = mesh::diff(&plan.desired, &self.applied);
        // New peers wait their turn (mesh::handshake_order); the rest goes ahead.
        let mut deferred_until: Option<Millis> = None;
        self.first_planned.retain(|k, _| {
            plan.desired.peers.contains_key(k) && !self.applied.peers.contains_key(k)
        });
        diff.peers.retain(|op| {
            let PeerOp::Add(p) = op else { return true };
            let peer_nat = snapshot
                .iter()
                .find(|e| e.key() == &p.public_key)
                .map_or(crate::proto::NatType::Unknown, |e| e.record.nat_type);
            let delay = mesh::handshake_order::first_add_delay(
                &local.wireguard_public,
                &p.public_key,
                local.nat_type,
                peer_nat,
            );
            let since = *self.first_planned.entry(p.public_key).or_insert(now);
            let due = since.plus(delay);
            if now.0 >= due.0 {
                true
            } else {
                deferred_until =
                    Some(deferred_until.map_or(due, |d: Millis| if due.0 < d.0 { due } else { d }));
                false
            }
        });
        let mut report = ReconcileReport {
            deferred_until,
            peer_ops: diff.peers.len(),
            route_ops: diff.routes.len(),
            ..Default::default()
        };
        let mut next = self.applied.clone();

        if !diff.peers.is_empty() {
            match self.device.apply(&peer_diff(&diff.peers)).await {
                Ok(r) => {
                    report.writes += r.writes;
                    report.added = diff
                        .peers
                        .iter()
                        .filter_map(|op| match op {
                            PeerOp::Add(p) => Some(p.public_key),
                            _ => None,
                        })
                        .collect();
                    let peers_only = mesh::Diff {
                        peers: diff.peers.clone(),
                        ..mesh::Diff::default()
                    };
                    mesh::apply_diff(&mut next, &peers_only);
                }
                Err(e) => {
                    report.failed = true;
                    tracing::warn!(error = %e, ops = diff.peers.len(), "applying WireGuard peers failed; retrying on the next reconcile");
                }
            }
        }
        if !diff.routes.is_empty() {
            match self
                .network
                .sync_routes(&self.interface, &routes_of(&plan.desired))
                .await
            {
                Ok(r) => {
                    report.writes += r.replaced + r.deleted;
                    next.routes = plan.desired.routes.clone();
                }
                Err(e) => {
                    report.failed = true;
                    tracing::warn!(error = %e, "syncing routes failed; retrying on the next reconcile");
                }
            }
        }
        let want_relay = plan.desired.relay_forwarding;
        if want_relay || self.relay_on {
            let result = if want_relay {
                // Checked every run: restores the table if someone flushed the ruleset.
                self.firewall
                    .ensure_relay(&self.interface)
                    .await
                    .map(usize::from)
            } else {
                self.firewall
                    .remove_relay(&self.interface)
                    .await
                    .map(|()| 1)
            };
            match result {
                Ok(w) => {
                    report.writes += w;
                    self.relay_on = want_relay;
                    next.relay_forwarding = want_relay;
                }
                Err(e) => {
                    report.failed = true;
                    tracing::warn!(error = %e, "relay forwarding could not be set; retrying on the next reconcile");
                }
            }
        }
        self.applied = next;
        self.last_plan = plan;
        let secs = started.elapsed().as_secs_f64();
        metrics.inc("wgmesh_reconcile_total", &[]);
        metrics.add("wgmesh_reconcile_duration_seconds_total", &[], secs);
        metrics.set("wgmesh_reconcile_last_duration_seconds", &[], secs);
        metrics.add("wgmesh_netlink_writes_total", &[], report.writes as f64);
        if report.writes > 0 {
            tracing::info!(
                peers = report.peer_ops,
                routes = report.route_ops,
                writes = report.writes,
                "reconciled"
            );
        }
        report
    }

    /// Removes everything this reconciler applied (relay table); the caller deletes the device.
    pub async fn teardown(&mut self) {
        if self.relay_on {
            if let Err(e) = self.firewall.remove_relay(&self.interface).await {
                tracing::warn!(error = %e, "could not remove the relay forwarding table");
            }
            self.relay_on = false;
        }
    }
}
