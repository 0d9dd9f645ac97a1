//! Ring 3 wiring: the daemon (`wgmesh up`) connects discovery, the mesh core, the platform and
//! the control socket. Today it holds the pieces that need no backend: where the secret comes
//! from, the configuration (flags, file, reload), capability dropping and systemd readiness.

pub mod cache;
pub mod candidates;
pub mod config;
pub mod device_fallback;
pub mod dht_task;
pub mod gossip_task;
pub mod local;
pub mod node;
pub mod notify;
pub mod privacy;
pub mod privileges;
pub mod probes;
pub mod punching;
pub mod reconcile;
pub mod registry_task;
pub mod relaying;
pub mod secret_source;
pub mod show;
pub mod start;
pub mod stun_task;
