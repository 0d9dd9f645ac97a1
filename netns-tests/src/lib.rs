//! wgmesh's own namespace/VM test harness: network namespaces and veth links created with
//! `ip` (tests may use the system tools; `src/` may not), one OS thread per namespace running
//! a tokio runtime inside it (so the platform code under test opens its netlink sockets and
//! spawns wireguard-go there), independent readers (`wg show dump`, `ip -j`, `nft -j`), and a
//! cleanup registry that tears everything down on success, failure, panic or Ctrl-C.
#![forbid(unsafe_code)]

pub mod checks;
pub mod daemon;
pub mod dht;
pub mod hostile;
pub mod keys;
pub mod lab;
pub mod nat;
pub mod nsexec;
pub mod preflight;
pub mod registry;
pub mod routed;
pub mod suite;
