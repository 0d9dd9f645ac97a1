//! Kernel WireGuard over generic netlink, through `wireguard-control`'s kernel backend. Its
//! calls block on netlink sockets, so each runs on tokio's blocking pool. A diff becomes one
//! `WG_CMD_SET_DEVICE` request split by the library into as few netlink messages as fit.
#![forbid(unsafe_code)]

use std::io;

use wireguard_control::{
    AllowedIp, Backend, Device, DeviceUpdate, InterfaceName, Key as WgKey, PeerConfigBuilder,
};

use crate::platform::PlatformError;
use crate::platform::error::check_interface_name;
use crate::platform::traits::WireGuardDevice;
use crate::platform::types::{
    ApplyReport, DeviceConfig, DeviceState, PeerConfig, PeerDiff, PeerState,
};

/// Errors of the kernel WireGuard backend.
#[derive(Debug, thiserror::Error)]
pub enum KernelWgError {
    #[error(
        "kernel WireGuard: {what} on {iface}: {source} (are you root with CAP_NET_ADMIN, and is the wireguard module loaded?)"
    )]
    Netlink {
        what: &'static str,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("kernel WireGuard worker thread failed: {0}")]
    Join(String),
}

/// A kernel WireGuard interface.
pub struct KernelDevice {
    name: String,
    ifname: InterfaceName,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KernelWgError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KernelWgError::Join(e.to_string()))
}

fn net_err(what: &'static str, iface: &str) -> impl FnOnce(io::Error) -> KernelWgError {
    let iface = iface.to_string();
    move |source| KernelWgError::Netlink {
        what,
        iface,
        source,
    }
}

fn allowed(p: &PeerConfig) -> Vec<AllowedIp> {
    p.allowed_ips
        .iter()
        .map(|n| AllowedIp {
            address: n.trunc().addr(),
            cidr: n.prefix_len(),
        })
        .collect()
}

/// Peer attributes: a new peer (`fresh`) carries only what differs from a new peer's
/// defaults; an updated peer carries everything (PSK and keepalive set or cleared, allowed IPs
/// replaced).
fn builder(p: &PeerConfig, fresh: bool) -> PeerConfigBuilder {
    let mut b = PeerConfigBuilder::new(&WgKey(p.public_key)).add_allowed_ips(&allowed(p));
    if !fresh {
        b = b.replace_allowed_ips();
    }
    if !fresh || p.keepalive().is_some() {
        b = b.set_persistent_keepalive_interval(p.persistent_keepalive.unwrap_or(0));
    }
    match p.preshared_key {
        Some(k) => b = b.set_preshared_key(WgKey(k)),
        None if !fresh => b = b.unset_preshared_key(),
        None => {}
    }
    if let Some(ep) = p.endpoint {
        b = b.set_endpoint(ep);
    }
    b
}

/// The `DeviceUpdate` for a diff (removals, additions, updates).
pub fn update_for(diff: &PeerDiff) -> DeviceUpdate {
    let mut u = DeviceUpdate::new();
    for k in &diff.remove {
        u = u.remove_peer_by_key(&WgKey(*k));
    }
    let peers: Vec<PeerConfigBuilder> = diff
        .add
        .iter()
        .map(|p| builder(p, true))
        .chain(diff.update.iter().map(|p| builder(p, false)))
        .collect();
    u.add_peers(&peers)
}

/// Merges the continuation entries of a split dump: when a peer's allowed IPs do not fit in
/// one netlink message, the kernel repeats the peer (public key + the remaining allowed IPs)
/// at the start of the next message, and `wireguard-control` returns each part as a peer.
pub fn merge_split_peers(peers: Vec<PeerState>) -> Vec<PeerState> {
    let mut out: Vec<PeerState> = Vec::with_capacity(peers.len());
    let mut index: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
    for p in peers {
        match index.get(&p.config.public_key) {
            Some(&i) => out[i].config.allowed_ips.extend(p.config.allowed_ips),
            None => {
                index.insert(p.config.public_key, out.len());
                out.push(p);
            }
        }
    }
    out
}

pub(crate) fn state_from(device: Device) -> DeviceState {
    let mut state = state_from_parts(device);
    state.peers = merge_split_peers(std::mem::take(&mut state.peers));
    state
}

fn state_from_parts(device: Device) -> DeviceState {
    DeviceState {
        public_key: device.public_key.map(|k| k.0),
        listen_port: device.listen_port.unwrap_or(0),
        fwmark: device.fwmark.filter(|m| *m != 0),
        peers: device
            .peers
            .into_iter()
            .map(|p| PeerState {
                config: PeerConfig {
                    public_key: p.config.public_key.0,
                    preshared_key: p
                        .config
                        .preshared_key
                        .map(|k| k.0)
                        .filter(|k| *k != [0; 32]),
                    endpoint: p.config.endpoint,
                    allowed_ips: p
                        .config
                        .allowed_ips
                        .iter()
                        .filter_map(|a| ipnet::IpNet::new(a.address, a.cidr).ok())
                        .collect(),
                    persistent_keepalive: p
                        .config
                        .persistent_keepalive_interval
                        .filter(|k| *k != 0),
                },
                last_handshake: p.stats.last_handshake_time,
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
            })
            .collect(),
    }
}

impl KernelDevice {
    /// Creates the wireguard link `name` if it does not exist (one RTM_NEWLINK).
    pub async fn create(name: &str) -> Result<Self, PlatformError> {
        check_interface_name(name)?;
        let ifname: InterfaceName = name
            .parse()
            .map_err(|_| PlatformError::InvalidInterfaceName(name.to_string()))?;
        // An update with no settings sends only RTM_NEWLINK (EEXIST is ignored: adopt).
        blocking(move || DeviceUpdate::new().apply(&ifname, Backend::Kernel))
            .await?
            .map_err(net_err("create link", name))?;
        Ok(Self {
            name: name.to_string(),
            ifname,
        })
    }
}

impl WireGuardDevice for KernelDevice {
    fn name(&self) -> &str {
        &self.name
    }

    async fn configure(&self, config: &DeviceConfig) -> Result<(), PlatformError> {
        let mut u = DeviceUpdate::new()
            .set_private_key(WgKey(config.private_key))
            .set_fwmark(config.fwmark.unwrap_or(0));
        if let Some(port) = config.listen_port {
            u = u.set_listen_port(port);
        }
        let n = self.ifname;
        blocking(move || u.apply(&n, Backend::Kernel))
            .await?
            .map_err(net_err("set device", &self.name))?;
        Ok(())
    }

    async fn apply(&self, diff: &PeerDiff) -> Result<ApplyReport, PlatformError> {
        if diff.is_empty() {
            return Ok(ApplyReport::default());
        }
        let u = update_for(diff);
        let n = self.ifname;
        blocking(move || u.apply(&n, Backend::Kernel))
            .await?
            .map_err(net_err("apply peers", &self.name))?;
        Ok(ApplyReport {
            writes: 1,
            peers_changed: diff.len(),
        })
    }

    async fn read(&self) -> Result<DeviceState, PlatformError> {
        let n = self.ifname;
        let d = blocking(move || Device::get(&n, Backend::Kernel))
            .await?
            .map_err(net_err("read device", &self.name))?;
        Ok(state_from(d))
    }

    async fn delete(&self) -> Result<(), PlatformError> {
        let n = self.ifname;
        blocking(move || wireguard_control::backends::kernel::delete_interface(&n))
            .await?
            .map_err(net_err("delete link", &self.name))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_dump_entries_are_merged() {
        let mut a = PeerConfig::new([1; 32]);
        a.endpoint = Some("192.0.2.1:1".parse().unwrap());
        a.allowed_ips = vec!["10.0.0.1/32".parse().unwrap()];
        let mut cont = PeerConfig::new([1; 32]);
        cont.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
        let b = PeerConfig::new([2; 32]);
        let st = |c: PeerConfig| PeerState {
            config: c,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        };
        let merged = merge_split_peers(vec![st(a.clone()), st(cont), st(b)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].config.endpoint, a.endpoint);
        assert_eq!(merged[0].config.allowed_ips.len(), 2);
    }
}
