//! The platform's own input/output values: peer configurations, the peer diff the
//! WireGuard backends apply, the device state they read back, and routes. Independent of the
//! mesh core's planner types (the daemon maps one onto the other).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use ipnet::IpNet;

/// A WireGuard key (Curve25519 public key, private key, or preshared key): 32 raw bytes.
pub type Key = [u8; 32];

/// Default MTU of the mesh interface: 1420 fits WireGuard over IPv6 on a 1500-byte path.
pub const DEFAULT_MTU: u32 = 1420;

/// Routing protocol number (`rtm_protocol`) that marks wgmesh's routes. Routes with any other
/// protocol number — the kernel's own, a user's `ip route add` (boot/static) — are never
/// changed or deleted by wgmesh. 0x77 (119) is unassigned in `/etc/iproute2/rt_protos` and in
/// `include/uapi/linux/rtnetlink.h` (assigned numbers stop at 99 and 186-192); `ip route`
/// shows it as `proto 119`.
pub const WGMESH_ROUTE_PROTOCOL: u8 = 0x77;

/// Desired configuration of one WireGuard peer.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: Key,
    pub preshared_key: Option<Key>,
    /// `None` leaves the endpoint the device has (WireGuard cannot unset an endpoint; a
    /// roaming peer's learnt endpoint is kept).
    pub endpoint: Option<SocketAddr>,
    /// Replaced as a whole on every add/update.
    pub allowed_ips: Vec<IpNet>,
    /// Seconds; `None` (or 0) disables keepalives.
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with only its public key set.
    pub fn new(public_key: Key) -> Self {
        Self {
            public_key,
            preshared_key: None,
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: None,
        }
    }

    /// Allowed IPs normalised (host bits cleared) and de-duplicated, for comparisons.
    pub fn allowed_ip_set(&self) -> BTreeSet<IpNet> {
        self.allowed_ips.iter().map(IpNet::trunc).collect()
    }

    /// Keepalive with 0 folded into `None` (both mean "off").
    pub fn keepalive(&self) -> Option<u16> {
        self.persistent_keepalive.filter(|k| *k != 0)
    }
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("public_key", &short_key(&self.public_key))
            .field("preshared_key", &self.preshared_key.map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish()
    }
}

/// First 8 hex digits of a public key, for logs and debug output.
pub fn short_key(key: &Key) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Changes to a device's peer set. `add` entries are peers the device does not have (only
/// their non-default fields are sent); `update` entries replace the whole peer configuration
/// (allowed IPs replaced, preshared key and keepalive set or cleared, endpoint set if given).
/// [`PeerDiff::between`] computes it from the device's read-back state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerDiff {
    pub add: Vec<PeerConfig>,
    pub update: Vec<PeerConfig>,
    pub remove: Vec<Key>,
}

impl PeerDiff {
    /// True when applying it would change nothing (and so must not write anything).
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }

    /// Number of peers touched.
    pub fn len(&self) -> usize {
        self.add.len() + self.update.len() + self.remove.len()
    }
}

/// Device-level settings: private key, listen port, firewall mark.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub private_key: Key,
    /// `None`: let the device pick a port.
    pub listen_port: Option<u16>,
    /// `None` or 0: no mark.
    pub fwmark: Option<u32>,
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("private_key", &"<redacted>")
            .field("listen_port", &self.listen_port)
            .field("fwmark", &self.fwmark)
            .finish()
    }
}

/// One peer as the device reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub config: PeerConfig,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The device as read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub public_key: Option<Key>,
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    pub peers: Vec<PeerState>,
}

impl DeviceState {
    /// The peers' configurations, for diffing.
    pub fn peer_configs(&self) -> Vec<PeerConfig> {
        self.peers.iter().map(|p| p.config.clone()).collect()
    }
}

/// What an apply did. `writes` counts write requests to the backend: 0 for an empty diff,
/// else 1 — one UAPI `set=1` request, or one `WG_CMD_SET_DEVICE` update that
/// `wireguard-control` packs into as few netlink messages as fit (about 60 peers with two
/// allowed IPs per 8 KiB message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub writes: usize,
    pub peers_changed: usize,
}

/// A route on the mesh interface owned by wgmesh (marked with [`WGMESH_ROUTE_PROTOCOL`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub destination: IpNet,
    /// Next hop on the mesh interface (installed "onlink"); `None` for a direct route.
    pub gateway: Option<IpAddr>,
    /// Route priority (metric); `None` for the kernel default.
    pub metric: Option<u32>,
}

/// What a route sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteSyncReport {
    pub replaced: usize,
    pub deleted: usize,
    /// Desired routes not installed because a route wgmesh does not own holds the same
    /// destination and metric (logged; retried on the next sync).
    pub skipped_foreign: usize,
}

/// A change the kernel reported on links, addresses or routes (for roaming detection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    LinkChanged {
        index: u32,
        name: Option<String>,
        up: bool,
    },
    LinkRemoved {
        index: u32,
    },
    AddressAdded {
        index: u32,
        address: IpAddr,
    },
    AddressRemoved {
        index: u32,
        address: IpAddr,
    },
    RouteChanged {
        destination: Option<IpNet>,
    },
    RouteRemoved {
        destination: Option<IpNet>,
    },
}
