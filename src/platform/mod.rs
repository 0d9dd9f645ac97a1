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
//! (or `/proc/sys` for the one knob netlink cannot set). The one process spawned is
//! `wireguard-go` itself, for the userspace backend.
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
