//! Prometheus metrics: a small registry of counter and gauge families with labels, rendered in
//! the text exposition format (0.0.4). The families and their help texts are declared once in
//! [`FAMILIES`]. Every edge (discovery, platform, control) and the daemon write to one shared
//! [`Metrics`]; it imports nothing of ours, so edges do not import each other to reach it. The
//! HTTP endpoint that serves it is `control::metrics_http`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Every metric the daemon exports: name, kind, help.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "wgmesh_peers",
        Kind::Gauge,
        "Peers by path type (direct, direct_lan, relay, inactive).",
    ),
    (
        "wgmesh_peer_handshake_age_seconds",
        Kind::Gauge,
        "Seconds since the latest WireGuard handshake, per peer.",
    ),
    (
        "wgmesh_peer_rx_bytes",
        Kind::Gauge,
        "Bytes received from the peer over WireGuard.",
    ),
    (
        "wgmesh_peer_tx_bytes",
        Kind::Gauge,
        "Bytes sent to the peer over WireGuard.",
    ),
    (
        "wgmesh_peer_rtt_seconds",
        Kind::Gauge,
        "Smoothed round-trip time of probes over the tunnel, per peer.",
    ),
    (
        "wgmesh_peer_jitter_seconds",
        Kind::Gauge,
        "Smoothed difference between consecutive probe round-trip times, per peer.",
    ),
    (
        "wgmesh_peer_probe_loss_ratio",
        Kind::Gauge,
        "Share of the last 100 probes to the peer that got no answer.",
    ),
    (
        "wgmesh_peer_link_quality",
        Kind::Gauge,
        "Link quality 0..100 from the smoothed round-trip time, per peer.",
    ),
    (
        "wgmesh_relay_load",
        Kind::Gauge,
        "Introducers: peers currently relayed through this node (advertised in its record).",
    ),
    (
        "wgmesh_relay_changes_total",
        Kind::Counter,
        "Relay choices for relayed peers, by outcome (took, switched, reverted, followed).",
    ),
    (
        "wgmesh_discovery_events_total",
        Kind::Counter,
        "Verified records received, by discovery method.",
    ),
    ("wgmesh_reconcile_total", Kind::Counter, "Reconcile runs."),
    (
        "wgmesh_reconcile_duration_seconds_total",
        Kind::Counter,
        "Time spent reconciling.",
    ),
    (
        "wgmesh_reconcile_last_duration_seconds",
        Kind::Gauge,
        "Duration of the last reconcile.",
    ),
    (
        "wgmesh_netlink_writes_total",
        Kind::Counter,
        "Writes to the kernel (or the userspace device) made by reconciles.",
    ),
    (
        "wgmesh_rejected_messages_total",
        Kind::Counter,
        "Control datagrams or records dropped, by reason.",
    ),
    (
        "wgmesh_stems_total",
        Kind::Counter,
        "Dandelion++ stems handled, by action (forward, fluff, embargo_fluff, stem_known, own_record).",
    ),
    (
        "wgmesh_stun_checks_total",
        Kind::Counter,
        "NAT checks (STUN) run, by reason (start, periodic, address-change, wake-up).",
    ),
    (
        "wgmesh_stun_latency_seconds",
        Kind::Gauge,
        "Round-trip time of the latest STUN answer, per server address.",
    ),
    (
        "wgmesh_nat_info",
        Kind::Gauge,
        "1, labelled with the NAT type and mapping of the latest check.",
    ),
    (
        "wgmesh_events_dropped_total",
        Kind::Counter,
        "Peer-store events lost by a lagging subscriber.",
    ),
    (
        "wgmesh_dht_routing_table_nodes",
        Kind::Gauge,
        "Nodes in the Mainline DHT routing table.",
    ),
    (
        "wgmesh_dht_bootstrap_failures_total",
        Kind::Counter,
        "DHT bootstrap attempts that found no node.",
    ),
    (
        "wgmesh_dht_announces_total",
        Kind::Counter,
        "DHT announces of the control port, by result.",
    ),
    (
        "wgmesh_dht_lookups_total",
        Kind::Counter,
        "DHT topic lookups, by result.",
    ),
    (
        "wgmesh_dht_peers_found_total",
        Kind::Counter,
        "Addresses found in DHT lookups (before the contact limit).",
    ),
    (
        "wgmesh_dht_contacts_total",
        Kind::Counter,
        "Addresses found in the DHT that were greeted with a hello.",
    ),
    (
        "wgmesh_dht_items_stored_total",
        Kind::Counter,
        "Stores of this node's BEP 44 item, by result.",
    ),
    (
        "wgmesh_dht_items_fetched_total",
        Kind::Counter,
        "Fetches of quiet peers' BEP 44 items, by result (newer, unchanged, none, invalid, error).",
    ),
    (
        "wgmesh_registry_requests_total",
        Kind::Counter,
        "Registry requests by registry, operation (publish, list, delete) and result (ok, error, rate-limited).",
    ),
    (
        "wgmesh_registry_records_learned_total",
        Kind::Counter,
        "New or newer peer records learned from a registry's entries, by registry.",
    ),
    (
        "wgmesh_registry_last_success_seconds",
        Kind::Gauge,
        "Unix time of the last successful request to a registry, by registry.",
    ),
];

type Labels = Vec<(String, String)>;

struct Family {
    kind: Kind,
    help: &'static str,
    samples: BTreeMap<Labels, f64>,
}

/// The registry. Cheap to share (`Arc`); all methods take `&self`.
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A registry with every family of [`FAMILIES`] declared (empty).
    pub fn new() -> Self {
        let families = FAMILIES
            .iter()
            .map(|(name, kind, help)| {
                (
                    *name,
                    Family {
                        kind: *kind,
                        help,
                        samples: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Self {
            families: Mutex::new(families),
        }
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut Family) -> R) -> Option<R> {
        // A poisoned lock only means another thread panicked mid-update of a number.
        let mut fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        fams.get_mut(name).map(f)
    }

    /// Adds `by` to a counter (or gauge).
    pub fn add(&self, name: &str, pairs: &[(&str, &str)], by: f64) {
        self.with(name, |f| {
            *f.samples.entry(labels(pairs)).or_insert(0.0) += by
        });
    }

    /// Adds one.
    pub fn inc(&self, name: &str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, pairs: &[(&str, &str)], value: f64) {
        self.with(name, |f| {
            f.samples.insert(labels(pairs), value);
        });
    }

    /// Replaces every sample of a family (per-peer gauges after each health tick).
    pub fn replace(&self, name: &str, samples: Vec<(Vec<(&str, &str)>, f64)>) {
        self.with(name, |f| {
            f.samples = samples.into_iter().map(|(l, v)| (labels(&l), v)).collect();
        });
    }

    /// A sample's value (tests, `show`).
    pub fn get(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        self.with(name, |f| f.samples.get(&labels(pairs)).copied())
            .flatten()
    }

    /// The sum of a family's samples.
    pub fn total(&self, name: &str) -> f64 {
        self.with(name, |f| f.samples.values().sum()).unwrap_or(0.0)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let fams = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, f) in fams.iter() {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (l, v) in &f.samples {
                if l.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let inner: Vec<String> = l
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                        .collect();
                    let _ = writeln!(out, "{name}{{{}}} {v}", inner.join(","));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_sorted_escaped_labels() {
        let m = Metrics::new();
        m.inc("wgmesh_discovery_events_total", &[("method", "lan")]);
        m.add("wgmesh_discovery_events_total", &[("method", "lan")], 2.0);
        m.inc(
            "wgmesh_rejected_messages_total",
            &[("reason", "decrypt\"x")],
        );
        m.set("wgmesh_reconcile_last_duration_seconds", &[], 0.25);
        m.replace(
            "wgmesh_peers",
            vec![
                (vec![("path", "direct")], 2.0),
                (vec![("path", "relay")], 1.0),
            ],
        );
        let text = m.render();
        assert!(text.contains("# TYPE wgmesh_discovery_events_total counter"));
        assert!(text.contains("wgmesh_discovery_events_total{method=\"lan\"} 3"));
        assert!(text.contains("wgmesh_rejected_messages_total{reason=\"decrypt\\\"x\"} 1"));
        assert!(text.contains("wgmesh_reconcile_last_duration_seconds 0.25"));
        assert!(text.contains("wgmesh_peers{path=\"relay\"} 1"));
        assert_eq!(m.total("wgmesh_peers"), 3.0);
        assert_eq!(m.get("wgmesh_netlink_writes_total", &[]), None);
        m.inc("no_such_metric", &[]);
        assert!(!m.render().contains("no_such_metric"));
    }
}
