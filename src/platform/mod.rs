//! Ring 3 edge: the platform. Owns every write to the operating system's network stack —
//! the WireGuard device, links, addresses, routes and relay forwarding — behind three small
//! traits ([`WireGuardDevice`], [`Network`], [`Firewall`]). Nothing outside this module knows
//! which backend (kernel WireGuard over generic netlink, or userspace `wireguard-go` over its
//! UAPI socket; macOS utun + PF_ROUTE) is in use.
//!
//! Inputs and outputs are this module's own small types ([`PeerConfig`], [`PeerDiff`],
//! [`DeviceState`], [`Route`]); the daemon maps the mesh planner's output onto them.
//!
//! Linux never runs `wg`, `ip`, `iptables`, `nft` or `sysctl`: everything goes over netlink
//! (IPv6 forwarding, which netlink cannot set per interface, is left to the administrator; see
//! [`linux::forwarding`]). The one process spawned is `wireguard-go` itself, for the userspace
//! backend.
//!
//! Map:
//! - [`types`], [`traits`], [`diff`] (`PeerDiff::between`, [`sync_peers`]), [`backend`]
//!   (`--backend auto|kernel|userspace`, `WGMESH_BACKEND`), [`error`];
//! - [`uapi`]: the cross-platform UAPI protocol (pure encode/decode + socket client);
//!   [`wireguard_go`] supervises the process, [`userspace`] is the UAPI device;
//! - `linux`: `kernel_wg` (wireguard-control, genl), `detect` (neli), `device` (kernel or
//!   userspace behind one type), `rtnl` (links, addresses, routes, events), `forwarding`
//!   (per-interface IPv4 devconf), `nft` (relay table batch + nfnetlink socket);
//! - [`macos`]: PF_ROUTE and address-ioctl encodings (pure), syscall glue, `Network` impl.
//!
//! A userspace device loses its peers and addresses when wireguard-go is restarted; the
//! supervisor re-sends key/port/fwmark and bumps `LinuxWireGuard::userspace_restarts`, on which
//! the daemon should reconcile at once (peers and addresses come back through the usual
//! idempotent sync).
#![deny(unsafe_code)] // forbidden in every file below except macos/sys.rs (ioctl)

pub mod backend;
pub mod diff;
pub mod error;
pub mod inspect;
pub mod traits;
pub mod types;
pub mod uapi;
#[cfg(unix)]
pub mod userspace;
#[cfg(unix)]
pub mod wireguard_go;

#[cfg(target_os = "linux")]
pub mod linux;
pub mod macos;

pub use backend::{BackendChoice, ResolvedBackend};
pub use diff::sync_peers;
pub use error::PlatformError;
pub use traits::{Firewall, Network, WireGuardDevice};
pub use types::{
    ApplyReport, DEFAULT_MTU, DeviceConfig, DeviceState, Key, NetEvent, PeerConfig, PeerDiff,
    PeerState, Route, RouteSyncReport, WGMESH_ROUTE_PROTOCOL,
};
