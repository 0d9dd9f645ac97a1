//! The facts `wgmesh show` reports, as sent over the control socket. The JSON keys here are
//! a stable interface (documented in docs/CONTROL.md): add keys, never rename or remove them.

use serde::{Deserialize, Serialize};

/// The interface block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InterfaceReport {
    pub name: String,
    pub public_key: String,
    pub listen_port: u16,
    /// Mesh IPv4 with the subnet's prefix length, e.g. "10.42.7.9/16".
    pub mesh_ipv4: String,
    /// Mesh IPv6 with /64, or null with --no-ipv6.
    pub mesh_ipv6: Option<String>,
    pub network_id: String,
    pub nat_type: String,
    /// The public address STUN reported, if any.
    pub public_endpoint: Option<String>,
    /// "kernel" or "userspace".
    pub backend: String,
    pub introducer: bool,
    pub peers_active: usize,
    pub peers_total: usize,
    /// The latest NAT check (null before the first one, or with --no-stun).
    #[serde(default)]
    pub nat: Option<NatReport>,
    /// The endpoint candidates this node's record lists.
    #[serde(default)]
    pub endpoint_candidates: Vec<CandidateReport>,
}

/// The latest NAT check of the daemon (STUN from the control port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NatReport {
    /// Some STUN server answered.
    pub udp: bool,
    /// IPv4 mapping: "endpoint-independent", "endpoint-dependent" or "unknown".
    pub mapping: String,
    /// Whether the NAT kept the control port (null without an answer).
    pub port_preserved: Option<bool>,
    /// IPv4 filtering (RFC 5780 servers only): "endpoint-independent", "address-dependent",
    /// "address-and-port-dependent", or null.
    pub filtering: Option<String>,
    /// The public IPv6 address STUN saw, if any.
    pub public_ipv6: Option<String>,
    /// Complete checks (mapping and filtering test) since start.
    pub checks: u64,
    /// Unix milliseconds of the latest result (a check first reports its mapping, then the
    /// filtering test's outcome).
    pub checked_at_ms: u64,
}

/// One endpoint candidate of this node's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CandidateReport {
    /// "lan", "stun", "observed", "public-ipv6" or "wireguard-mapped".
    pub kind: String,
    pub address: String,
}

/// One peer block: `wg show`'s facts plus the mesh's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PeerReport {
    pub public_key: String,
    pub hostname: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the latest handshake, null if none.
    pub latest_handshake: Option<u64>,
    pub transfer_rx: u64,
    pub transfer_tx: u64,
    pub persistent_keepalive: Option<u16>,
    pub mesh_ipv4: String,
    pub mesh_ipv6: Option<String>,
    /// "direct", "direct (lan)" or "relay via <hostname>".
    pub path: String,
    /// Why the peer is relayed (null when direct).
    pub relay_reason: Option<String>,
    pub nat_type: String,
    pub discovered_via: Vec<String>,
    /// Unix seconds the peer was last heard of directly.
    pub last_seen: Option<u64>,
    pub rtt_ms: Option<f64>,
    pub active: bool,
    /// Smoothed difference between consecutive probe RTTs, milliseconds.
    #[serde(default)]
    pub jitter_ms: Option<f64>,
    /// Share (0.0..=1.0) of the last `probes` probes (at most 100) that got no answer.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Probes the loss counts over.
    #[serde(default)]
    pub probes: usize,
    /// Link quality 0..=100 from the smoothed RTT (what the relay score uses).
    #[serde(default)]
    pub link_quality: Option<u8>,
    /// Introducers: the relay load their record advertises.
    #[serde(default)]
    pub relay_load: Option<RelayLoadReport>,
}

/// An introducer's advertised relay load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RelayLoadReport {
    /// Peers it relays now.
    pub relayed: u32,
    /// Its `--max-relayed-peers`.
    pub max: u32,
}

/// The Mainline DHT block (null with --no-dht).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DhtReport {
    /// "starting", "bootstrapping", "ready" or "backing-off".
    pub state: String,
    /// Where the current (or last) bootstrap took its nodes: "persisted", "configured",
    /// "public-routers".
    pub bootstrap_source: Option<String>,
    /// Failed bootstrap attempts in a row.
    pub bootstrap_failures: u32,
    /// Seconds until the next bootstrap attempt while backing off.
    pub retry_in_secs: Option<u64>,
    pub routing_table_nodes: usize,
    /// Where the DHT nodes see this node's DHT socket, once they agree.
    pub public_address: Option<String>,
    pub announces: u64,
    pub lookups: u64,
    /// Addresses found by lookups, and how many of them were greeted.
    pub peers_found: u64,
    pub contacts: u64,
    /// Sequence of the record last stored as this node's BEP 44 item.
    pub item_sequence: Option<u64>,
    pub items_stored: u64,
    pub items_fetched: u64,
    /// Fetched items that held a newer record of a quiet peer.
    pub items_newer: u64,
    /// Unix seconds of the last lookup.
    pub last_lookup: Option<u64>,
}

/// One `--registry` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegistryReport {
    /// The registry as configured: `https://host:port` or `github:OWNER/REPO`.
    pub registry: String,
    /// "starting", "ok", "backing-off" or "unusable" (it could not be set up).
    pub state: String,
    /// Unix seconds of the last request that succeeded.
    pub last_success: Option<u64>,
    /// The last error, and when (unix seconds); kept after a later success.
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    /// Seconds until the next try while backing off.
    pub retry_in_secs: Option<u64>,
    /// Sequence of this node's entry last published.
    pub published_sequence: Option<u64>,
    pub publishes: u64,
    pub fetches: u64,
    /// Entries in the last list (this node's included), and records learned from lists
    /// that were new or newer.
    pub entries_seen: usize,
    pub records_learned: u64,
}

/// Everything `wgmesh show` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShowReport {
    pub interface: InterfaceReport,
    pub peers: Vec<PeerReport>,
    /// The DHT block; null when the DHT is off.
    #[serde(default)]
    pub dht: Option<DhtReport>,
    /// One block per `--registry` (empty without).
    #[serde(default)]
    pub registries: Vec<RegistryReport>,
}
