//! wgmesh: a decentralised WireGuard mesh daemon.
//!
//! The crate is organised in three rings (see `docs/ARCHITECTURE.md`):
//! - ring 1, base: [`proto`] (secret, derivations, records, envelopes) and [`identity`] (keys);
//! - ring 2, core: [`mesh`] (peer store and every policy), pure and virtual-time tested;
//! - ring 3, edges: platform, discovery, control; [`daemon`] wires them.
//!
//! Arrows point down only: `proto`/`identity` import nothing of ours, `mesh` imports only them.

pub mod cli;
pub mod control;
pub mod daemon;
pub mod discovery;
pub mod identity;
pub mod mesh;
pub mod metrics;
pub mod platform;
pub mod proto;
pub mod registry_server;
pub mod service;
