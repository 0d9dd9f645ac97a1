//! Footprint benchmark of a real `wgmesh up` (userspace WireGuard) in a namespace. Prints
//! figures; it fails only if the daemon does not come up with the peers.
//!
//! 1. RSS with 1000 peers in the store: 1000 synthetic signed records (fresh identities, the
//!    same mesh secret) are fed through the peer cache file the daemon restores at start;
//!    once all 1000 are WireGuard peers, the daemon's VmRSS is read (and wireguard-go's,
//!    separately). Goal: daemon ≤ 15 MiB.
//! 2. Wakeups of an idle daemon with 100 peers: context switches of all its threads
//!    (/proc/PID/task/*/status) over 60 s. Goal: ≤ 2/s.
//!
//! Usage: daemon-bench [SECONDS_FOR_WAKEUPS]   (default 60)

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wgmesh::daemon::cache::{CacheEntry, cache_path, save_cache};
use wgmesh::identity::NodeIdentity;
use wgmesh::proto::{EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord};
use wgmesh_netns_tests::daemon::{Node, new_secret_file, status_kib};
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::preflight;

fn synthetic_cache(keys: &MeshKeys, n: usize, path: &Path) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let entries: Vec<CacheEntry> = (0..n)
        .map(|i| {
            let id = NodeIdentity::generate();
            let wg = id.wireguard_public();
            let ep: std::net::SocketAddr = format!("10.88.{}.{}:51820", 1 + i / 250, 1 + i % 250)
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let record = NodeRecord {
                ed25519_public: id.ed25519_public(),
                wireguard_public: wg,
                sequence: now,
                hostname: format!("synthetic-{i}"),
                address_nonce: 0,
                mesh_ipv4: keys.mesh_ipv4(&wg, 0),
                mesh_ipv6: keys.mesh_ipv6(&wg),
                endpoints: vec![EndpointCandidate {
                    kind: EndpointKind::Lan,
                    addr: ep,
                }],
                nat_type: NatType::Unknown,
                introducer: false,
                routes: vec![],
                control_port: keys.control_port(),
                wireguard_port: 51820,
                relay_load: None,
            };
            let signed = record
                .sign(keys.network_id(), |m| id.sign(m))
                .unwrap_or_else(|e| panic!("sign: {e}"));
            CacheEntry {
                record: signed,
                last_seen_unix_ms: now,
                endpoint: Some(ep),
            }
        })
        .collect();
    save_cache(path, &entries).unwrap_or_else(|e| panic!("cache: {e}"));
}

fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            s.lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn wireguard_go_pid(ns: &str) -> Option<u32> {
    sh("ip", &["netns", "pids", ns])
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "wireguard-go")
        })
}

fn run_with(lab: &Lab, secret: &Path, n: usize, tag: &str) -> (Node, Duration) {
    let ns = lab.add_ns(tag);
    let sink = lab.add_ns(&format!("{tag}s"));
    // The synthetic peers' endpoints (10.88.0.0/16) are routed to a sink namespace that drops
    // them (no forwarding there), so handshake attempts cost nothing but a packet.
    lab.link(&ns, "eth0", "10.99.0.1/24", &sink, "eth0", "10.99.0.2/24");
    sh(
        "ip",
        &[
            "-n",
            &ns,
            "route",
            "add",
            "10.88.0.0/16",
            "via",
            "10.99.0.2",
        ],
    );
    let mut node = Node::new(
        lab,
        tag,
        ns,
        "10.99.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        secret,
        9400,
    );
    let keys = MeshKeys::derive(
        &MeshSecret::parse_bytes(&std::fs::read(secret).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    synthetic_cache(&keys, n, &cache_path(&node.state_dir(), &node.iface));
    sh(
        "chmod",
        &["700", node.state_dir().to_str().unwrap_or_default()],
    );
    let t0 = Instant::now();
    node.start(lab, &[]);
    let iface = node.iface.clone();
    let ns = node.ns.clone();
    while t0.elapsed() < Duration::from_secs(120) {
        let dump = sh("ip", &["netns", "exec", &ns, "wg", "show", &iface, "peers"]);
        if dump.lines().count() >= n {
            return (node, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the daemon did not configure {n} WireGuard peers within 120 s:\n{}",
        node.log_tail(20)
    );
}

fn main() {
    preflight::require(true, "daemon benchmark");
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let lab = Lab::new();
    let result = std::panic::catch_unwind(|| {
        let secret = new_secret_file(&lab, "bench");

        let (mut node, took) = run_with(&lab, &secret, 1000, "big");
        std::thread::sleep(Duration::from_secs(3));
        let pid = node.pid.unwrap_or(0);
        let rss = status_kib(pid, "VmRSS:");
        let hwm = status_kib(pid, "VmHWM:");
        let wg_rss = wireguard_go_pid(&node.ns)
            .map(|p| status_kib(p, "VmRSS:"))
            .unwrap_or(0);
        println!(
            "footprint: 1000 peers restored and applied in {:.1} s",
            took.as_secs_f64()
        );
        println!(
            "footprint: wgmesh daemon RSS {:.1} MiB (peak {:.1} MiB), goal <= 15 MiB; wireguard-go RSS {:.1} MiB (not wgmesh's)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            wg_rss as f64 / 1024.0
        );
        node.stop();

        let (mut node, _) = run_with(&lab, &secret, 100, "idle");
        std::thread::sleep(Duration::from_secs(5));
        let pid = node.pid.unwrap_or(0);
        let c0 = context_switches(pid);
        std::thread::sleep(Duration::from_secs(secs));
        let c1 = context_switches(pid);
        println!(
            "footprint: idle daemon with 100 peers: {} context switches in {secs} s = {:.2} wakeups/s, goal <= 2/s",
            c1 - c0,
            (c1 - c0) as f64 / secs as f64
        );
        node.stop();
        let _ = std::fs::remove_file(&secret);
    });
    wgmesh_netns_tests::lab::cleanup_all();
    if result.is_err() {
        std::process::exit(1);
    }
}
