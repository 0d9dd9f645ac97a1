//! `wgmesh show` without a daemon: what the WireGuard device itself reports, in the same
//! shape (the mesh's own facts — hostnames, paths, discovery — are unknown then).

use crate::control::report::{InterfaceReport, PeerReport, ShowReport};
use crate::control::show_text::print_report;
use crate::proto::keys::base64_key;

/// Prints the device `iface` as `show` would, or explains why it cannot.
pub fn print_device(iface: &str, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let state = match runtime.block_on(crate::platform::inspect::read_existing(iface)) {
        Ok(s) => s,
        Err(e) => anyhow::bail!("and the WireGuard interface {iface} cannot be read either: {e}"),
    };
    let peers = state
        .peers
        .iter()
        .map(|p| PeerReport {
            public_key: base64_key(&p.config.public_key),
            endpoint: p.config.endpoint.map(|e| e.to_string()),
            allowed_ips: p.config.allowed_ips.iter().map(|n| n.to_string()).collect(),
            latest_handshake: p
                .last_handshake
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            transfer_rx: p.rx_bytes,
            transfer_tx: p.tx_bytes,
            persistent_keepalive: p.config.keepalive(),
            path: "unknown (no daemon)".into(),
            nat_type: "unknown".into(),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let report = ShowReport {
        interface: InterfaceReport {
            name: iface.to_string(),
            public_key: state.public_key.map(|k| base64_key(&k)).unwrap_or_default(),
            listen_port: state.listen_port,
            nat_type: "unknown".into(),
            backend: "unknown (no daemon)".into(),
            peers_total: peers.len(),
            ..Default::default()
        },
        peers,
        dht: None,
        registries: Vec::new(),
    };
    Ok(print_report(&report, json)?)
}
