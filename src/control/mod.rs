//! Ring 3 edge: the local control API. A Unix socket speaking one-line JSON (documented in
//! docs/CONTROL.md) is the only interface `wgmesh show` and other tools use; the report types
//! are its stable keys; `show_text` renders them the way `wg show` does.

pub mod client;
pub mod metrics_http;
pub mod protocol;
pub mod report;
pub mod server;
pub mod show_text;
