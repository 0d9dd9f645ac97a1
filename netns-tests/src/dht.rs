//! A small "internet" for the DHT tests: one router namespace (`inet`) that forwards between
//! sites and holds a private Mainline DHT — npm `bittorrent-dht` nodes bound to 192.0.2.21…
//! UDP 6881 (BEP 5 + BEP 44, never bootstrapping from the public routers) — and sites, each a
//! namespace on its own routed /28 (203.0.113.16·i + 2), so sites share no LAN (no multicast)
//! and meet only through the DHT. Nothing is linked to the root namespace.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, sh};

/// UDP port of every swarm node.
pub const SWARM_PORT: u16 = 6881;
/// The swarm script (copied next to `node_modules` at run time: ESM resolves from there).
const SWARM_JS: &str = include_str!("../dht/swarm.mjs");
/// The pinned npm package `install-deps.sh` installs.
pub const DHT_PACKAGE: &str = "bittorrent-dht@11.0.12";

/// Where `install-deps.sh` installs the npm packages (`WGMESH_DHT_NODE_DIR` overrides).
pub fn npm_dir() -> PathBuf {
    std::env::var_os("WGMESH_DHT_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/wgmesh-tests/dht"))
}

/// What is missing to run a private DHT, if anything.
pub fn missing() -> Vec<String> {
    let mut m = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        m.push("`node` (apt-get install nodejs npm)".to_string());
    }
    if !npm_dir()
        .join("node_modules/bittorrent-dht/package.json")
        .exists()
    {
        m.push(format!(
            "npm {DHT_PACKAGE} in {} (netns-tests/install-deps.sh installs it)",
            npm_dir().display()
        ));
    }
    m
}

/// A running private swarm.
pub struct Swarm {
    /// `IP:port` of every swarm node.
    pub swarm: Vec<String>,
    pub pid: u32,
    pub log: PathBuf,
}

impl Swarm {
    /// `--dht-bootstrap=` with the first `n` swarm nodes.
    pub fn bootstrap_arg(&self, n: usize) -> String {
        let list: Vec<&str> = self.swarm.iter().take(n).map(String::as_str).collect();
        format!("--dht-bootstrap={}", list.join(","))
    }
}

/// Starts a swarm of `nodes` DHT nodes on 192.0.2.21… (added to `ns`'s loopback) in namespace
/// `ns`; ready when this returns. Shared by the DHT tests and the NAT grid.
pub fn start_swarm(lab: &Lab, ns: &str, nodes: u8) -> Swarm {
    let ips: Vec<String> = (0..nodes)
        .map(|k| format!("192.0.2.{}", 21 + u32::from(k)))
        .collect();
    for ip in &ips {
        sh(
            "ip",
            &["-n", ns, "addr", "add", &format!("{ip}/32"), "dev", "lo"],
        );
    }
    let dir = npm_dir();
    let script = dir.join(format!("{}-swarm.mjs", lab.id));
    std::fs::write(&script, SWARM_JS).unwrap_or_else(|e| panic!("write {}: {e}", script.display()));
    let log_path = std::env::temp_dir().join(format!("{}-swarm.log", lab.id));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "node"])
        .arg(&script)
        .args([&ips.join(","), &SWARM_PORT.to_string(), "900"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start the DHT swarm: {e}"));
    // `ip netns exec` execs node in place: the PID is node's.
    let pid = child.id();
    lab.record_pid(pid);
    std::mem::forget(child);
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("\"ready\":true") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the DHT swarm did not get ready:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&script);
    Swarm {
        swarm: ips.iter().map(|ip| format!("{ip}:{SWARM_PORT}")).collect(),
        pid,
        log: log_path,
    }
}

/// The router namespace with the swarm.
pub struct Internet {
    pub router: String,
    /// `IP:port` of every swarm node.
    pub swarm: Vec<String>,
    pub swarm_pid: u32,
    pub swarm_log: PathBuf,
}

/// The host and router addresses of site `i` (1..=14) with host octet offset `host` (2, 3 …).
pub fn site_addrs(i: u8, host: u8) -> (String, String) {
    let base = 16 * u32::from(i);
    (
        format!("203.0.113.{}", base + u32::from(host)),
        format!("203.0.113.{}", base + 1),
    )
}

impl Internet {
    /// The router namespace with forwarding on and a swarm of `nodes` DHT nodes (ready when
    /// this returns).
    pub fn new(lab: &Lab, nodes: u8) -> Self {
        let router = lab.add_ns("inet");
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &router,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward",
            ],
        );
        let s = start_swarm(lab, &router, nodes);
        Self {
            router,
            swarm: s.swarm,
            swarm_pid: s.pid,
            swarm_log: s.log,
        }
    }

    /// `--dht-bootstrap=` with the first `n` swarm nodes.
    pub fn bootstrap_arg(&self, n: usize) -> String {
        let list: Vec<&str> = self.swarm.iter().take(n).map(String::as_str).collect();
        format!("--dht-bootstrap={}", list.join(","))
    }

    /// Site `i`: a namespace on its own routed link to the router; returns (namespace, address).
    pub fn site(&self, lab: &Lab, i: u8) -> (String, IpAddr) {
        let ns = lab.add_ns(&format!("s{i}"));
        let (host, gw) = site_addrs(i, 2);
        lab.link(
            &ns,
            "eth0",
            &format!("{host}/28"),
            &self.router,
            &format!("r{i}"),
            &format!("{gw}/28"),
        );
        sh("ip", &["-n", &ns, "route", "add", "default", "via", &gw]);
        (ns, host.parse().unwrap_or(IpAddr::from([203, 0, 113, 2])))
    }

    /// Moves site `i`'s host to host octet offset `host` (roaming: the old address goes away).
    pub fn move_site(&self, ns: &str, i: u8, from: u8, to: u8) -> IpAddr {
        let (old, gw) = site_addrs(i, from);
        let (new, _) = site_addrs(i, to);
        // Delete first: removing a primary address also removes secondaries in its subnet.
        sh(
            "ip",
            &["-n", ns, "addr", "del", &format!("{old}/28"), "dev", "eth0"],
        );
        sh(
            "ip",
            &["-n", ns, "addr", "add", &format!("{new}/28"), "dev", "eth0"],
        );
        let _ = crate::lab::sh_ok("ip", &["-n", ns, "route", "replace", "default", "via", &gw]);
        new.parse().unwrap_or(IpAddr::from([203, 0, 113, 3]))
    }
}
