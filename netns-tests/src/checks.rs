//! Independent readers of the kernel's state: `wg show IFACE dump` (wireguard-tools),
//! `ip -j` (iproute2) and `nft -j` through the `nftables` crate. Called on a namespace
//! thread ([`crate::nsexec::NsExec::sync`]) so the tools run inside that namespace.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::process::Command;

use wgmesh::platform::PeerConfig;

use crate::keys::b64;

/// One peer line of `wg show dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPeer {
    pub public_key: String,
    pub preshared_key: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: BTreeSet<String>,
    pub latest_handshake: u64,
    pub rx: u64,
    pub tx: u64,
    pub keepalive: Option<u16>,
}

/// `wg show IFACE dump`, parsed.
#[derive(Debug, Clone)]
pub struct Dump {
    pub public_key: String,
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    pub peers: Vec<DumpPeer>,
}

fn none(s: &str) -> Option<String> {
    (s != "(none)" && s != "off").then(|| s.to_string())
}

/// Runs and parses `wg show IFACE dump` in the current (thread's) namespace.
pub fn wg_dump(iface: &str) -> Result<Dump, String> {
    let out = Command::new("wg")
        .args(["show", iface, "dump"])
        .output()
        .map_err(|e| format!("run wg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wg show {iface} dump: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().ok_or("empty dump")?.split('\t').collect();
    if head.len() != 4 {
        return Err(format!("bad dump header {head:?}"));
    }
    let mut peers = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != 8 {
            return Err(format!("bad dump line {l:?}"));
        }
        peers.push(DumpPeer {
            public_key: f[0].to_string(),
            preshared_key: none(f[1]),
            endpoint: none(f[2]),
            allowed_ips: none(f[3])
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            latest_handshake: f[4].parse().unwrap_or(0),
            rx: f[5].parse().unwrap_or(0),
            tx: f[6].parse().unwrap_or(0),
            keepalive: none(f[7]).and_then(|k| k.parse().ok()),
        });
    }
    Ok(Dump {
        public_key: head[1].to_string(),
        listen_port: head[2].parse().unwrap_or(0),
        fwmark: none(head[3])
            .and_then(|m| u32::from_str_radix(m.trim_start_matches("0x"), 16).ok()),
        peers,
    })
}

/// Checks that the dump's peers are exactly `expected` (keys, PSK presence, endpoint,
/// allowed IPs, keepalive).
pub fn dump_matches(dump: &Dump, expected: &[PeerConfig]) -> Result<(), String> {
    if dump.peers.len() != expected.len() {
        return Err(format!(
            "dump has {} peers, expected {}",
            dump.peers.len(),
            expected.len()
        ));
    }
    for want in expected {
        let key = b64(&want.public_key);
        let got = dump
            .peers
            .iter()
            .find(|p| p.public_key == key)
            .ok_or_else(|| format!("peer {key} missing from dump"))?;
        let want_ips: BTreeSet<String> = want
            .allowed_ips
            .iter()
            .map(|n| n.trunc().to_string())
            .collect();
        let want_psk = want.preshared_key.map(|k| b64(&k));
        let want_ep = want.endpoint.map(|e| e.to_string());
        let want_ka = want.persistent_keepalive.filter(|k| *k != 0);
        if got.allowed_ips != want_ips
            || got.preshared_key != want_psk
            || got.endpoint != want_ep
            || got.keepalive != want_ka
        {
            return Err(format!(
                "peer {key}: dump has psk={:?} endpoint={:?} allowed={:?} keepalive={:?}; applied psk={:?} endpoint={want_ep:?} allowed={want_ips:?} keepalive={want_ka:?}",
                got.preshared_key.is_some(),
                got.endpoint,
                got.allowed_ips,
                got.keepalive,
                want_psk.is_some()
            ));
        }
    }
    Ok(())
}

/// `ip -j ARGS` in the current (thread's) namespace, parsed.
pub fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip -j {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_slice(&out.stdout).expect("ip -j output is JSON")
}

/// The `inet <table>` table read back with `nft -j list table inet <table>`.
/// `None` when it does not exist.
pub fn nft_table(table: &str) -> Option<nftables::schema::Nftables<'static>> {
    nftables::helper::get_current_ruleset_with_args(
        None::<&str>,
        ["list", "table", "inet", table].iter().copied(),
    )
    .ok()
}

/// Names of all tables (`nft -j list tables`).
pub fn nft_tables() -> Vec<String> {
    let r = nftables::helper::get_current_ruleset_with_args(
        None::<&str>,
        ["list", "tables"].iter().copied(),
    );
    let Ok(r) = r else { return vec![] };
    r.objects
        .iter()
        .filter_map(|o| match o {
            nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Table(t)) => {
                Some(t.name.to_string())
            }
            _ => None,
        })
        .collect()
}
