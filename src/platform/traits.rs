//! The three platform traits the daemon programs against. Each backend implements them; the
//! futures are `Send` so the daemon can drive them from any tokio task.
#![forbid(unsafe_code)]

use std::future::Future;

use ipnet::IpNet;
use tokio::sync::mpsc;

use crate::platform::PlatformError;
use crate::platform::types::{
    ApplyReport, DeviceConfig, DeviceState, NetEvent, PeerDiff, Route, RouteSyncReport,
};

/// One WireGuard interface. Created (or adopted) by the backend's constructor.
pub trait WireGuardDevice: Send + Sync {
    /// The interface name.
    fn name(&self) -> &str;

    /// Sets private key, listen port and fwmark (one write).
    fn configure(
        &self,
        config: &DeviceConfig,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Applies a peer diff in as few round trips as the backend allows. An empty diff makes
    /// no write.
    fn apply(
        &self,
        diff: &PeerDiff,
    ) -> impl Future<Output = Result<ApplyReport, PlatformError>> + Send;

    /// Reads the device: keys, port, every peer with endpoint, allowed IPs, last handshake
    /// and transfer counters.
    fn read(&self) -> impl Future<Output = Result<DeviceState, PlatformError>> + Send;

    /// Removes the interface (and stops the userspace process, if any).
    fn delete(&self) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// Links, addresses and routes of the mesh interface.
pub trait Network: Send + Sync {
    /// Sets the link up or down and its MTU (`None`: leave the MTU). Writes only on change.
    fn set_link(
        &self,
        iface: &str,
        up: bool,
        mtu: Option<u32>,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Makes the interface's addresses exactly `addresses` (IPv6 link-local ones are kept).
    /// Returns how many writes it made (0 when already right).
    fn replace_addresses(
        &self,
        iface: &str,
        addresses: &[IpNet],
    ) -> impl Future<Output = Result<usize, PlatformError>> + Send;

    /// The interface's addresses (without IPv6 link-local ones).
    fn addresses(
        &self,
        iface: &str,
    ) -> impl Future<Output = Result<Vec<IpNet>, PlatformError>> + Send;

    /// Adds or replaces one wgmesh route on `iface`.
    fn replace_route(
        &self,
        iface: &str,
        route: &Route,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Deletes one wgmesh route on `iface` (no error when it is already gone).
    fn delete_route(
        &self,
        iface: &str,
        route: &Route,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// wgmesh's routes on `iface` (only those with wgmesh's protocol number).
    fn routes(&self, iface: &str)
    -> impl Future<Output = Result<Vec<Route>, PlatformError>> + Send;

    /// Makes wgmesh's routes on `iface` exactly `desired`; other routes are never touched.
    fn sync_routes(
        &self,
        iface: &str,
        desired: &[Route],
    ) -> impl Future<Output = Result<RouteSyncReport, PlatformError>> + Send;

    /// Subscribes to link, address and route changes.
    fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<NetEvent>, PlatformError>;
}

/// Relay forwarding: on relay nodes, forward between WireGuard peers on the mesh interface
/// and nothing else.
pub trait Firewall: Send + Sync {
    /// Makes sure forwarding on `iface` is in place (restores it if someone removed it).
    /// Returns whether it had to write.
    fn ensure_relay(&self, iface: &str)
    -> impl Future<Output = Result<bool, PlatformError>> + Send;

    /// Removes wgmesh's forwarding for `iface` (no error when it is not there).
    fn remove_relay(&self, iface: &str) -> impl Future<Output = Result<(), PlatformError>> + Send;
}
