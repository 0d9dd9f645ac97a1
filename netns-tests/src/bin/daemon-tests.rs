//! Whole-daemon tests: real `wgmesh up` processes (userspace WireGuard) in namespaces on one
//! bridged LAN, meeting only through `--peer` static endpoints (no DHT, no LAN discovery).
//! Then LAN multicast discovery (6 nodes), roaming, and announce privacy (3 nodes with
//! `--privacy`: a record change travels a Dandelion++ stem and is fluffed by another node).
//! Serial steps, each asserting what issue "the daemon" asks to show; everything is torn down
//! at the end, on failure and on Ctrl-C. Prints PASS lines and figures; exits non-zero on
//! failure.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use wgmesh_netns_tests::daemon::{
    LanSite, Node, all_pairs_ping, control_port, new_secret_file, wgmesh_bin,
};
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::suite::{pass, run_suite};

/// `wg show dump` (independent reader) and `wgmesh show --json` agree on keys, endpoints and
/// allowed IPs.
fn show_matches_wg(node: &Node) {
    let iface = node.iface.clone();
    let dump = sh(
        "ip",
        &["netns", "exec", &node.ns, "wg", "show", &iface, "dump"],
    );
    let mut from_wg = BTreeSet::new();
    for line in dump.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            continue;
        }
        let mut ips: Vec<String> = f[3]
            .split(',')
            .filter(|s| *s != "(none)")
            .map(str::to_string)
            .collect();
        ips.sort();
        from_wg.insert((f[0].to_string(), f[2].to_string(), ips));
    }
    let show = node.show().unwrap_or_default();
    let mut from_show = BTreeSet::new();
    for p in show["peers"].as_array().into_iter().flatten() {
        let ips: Vec<String> = p["allowed_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if ips.is_empty() {
            continue; // known but not a WireGuard peer here (relayed/offline)
        }
        let mut ips = ips;
        ips.sort();
        let ep = p["endpoint"].as_str().unwrap_or("(none)").to_string();
        from_show.insert((
            p["public_key"].as_str().unwrap_or_default().to_string(),
            ep,
            ips,
        ));
    }
    assert_eq!(
        from_wg, from_show,
        "{}: wg show dump and wgmesh show --json disagree",
        node.name
    );
    assert!(!from_wg.is_empty(), "{}: no WireGuard peers", node.name);
    pass(&format!(
        "{}: `wg show dump` agrees with `wgmesh show --json` ({} peers)",
        node.name,
        from_wg.len()
    ));
}

fn routes_on(node: &Node) -> Vec<String> {
    ip_json_ns(&node.ns, &["route", "show", "dev", &node.iface])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["dst"].as_str().map(str::to_string))
        .collect()
}

fn ip_json_ns(ns: &str, args: &[&str]) -> Value {
    let mut full = vec!["netns", "exec", ns, "ip", "-j"];
    full.extend_from_slice(args);
    let out = sh("ip", &full);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

fn main() {
    preflight::require(true, "daemon tests");
    run_suite("daemon tests", run);
}

fn run(lab: &Lab) {
    let site = LanSite::new(lab);
    let secret = new_secret_file(lab, "mesh");
    let cport = control_port(&secret);

    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| {
            let (ns, lan) = site.host(lab, i);
            Node::new(lab, &format!("n{i}"), ns, lan, &secret, 9300 + u16::from(i))
        })
        .collect();
    // These sections prove --peer and the cache alone: no LAN discovery.
    for n in nodes.iter_mut() {
        n.extra_args = vec!["--no-lan-discovery".into()];
    }
    // n1 advertises a route from a config file (changed later with SIGHUP).
    let cfg = nodes[0].dir.join("wgmesh.toml");
    std::fs::write(&cfg, "advertise-routes = [\"192.168.200.0/24\"]\n").unwrap_or_default();
    let cfg_arg = vec!["--config".to_string(), cfg.display().to_string()];
    let seed = format!("{}:{cport}", nodes[0].lan);

    println!("== two nodes meet through --peer");
    let t0 = Instant::now();
    nodes[0].start(lab, &cfg_arg);
    nodes[1].start(lab, &["--peer".into(), seed.clone()]);
    let took = all_pairs_ping(&[&nodes[0], &nodes[1]], Duration::from_secs(30));
    pass(&format!(
        "n1 <-> n2 ping over mesh IPv4 and IPv6 ({:.1} s after start)",
        (t0.elapsed()).as_secs_f64().max(took.as_secs_f64())
    ));

    println!("== a third node, known only to n1, meets n2 through the exchange");
    nodes[2].start(lab, &["--peer".into(), seed.clone()]);
    let took = all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(40));
    pass(&format!(
        "every pair of 3 nodes pings over IPv4 and IPv6 (last pair after {:.1} s)",
        took.as_secs_f64()
    ));
    for n in &nodes {
        show_matches_wg(n);
    }

    println!("== least privilege");
    for n in &nodes {
        assert_eq!(
            n.cap_eff(),
            "0000000000001000",
            "{}: effective capabilities",
            n.name
        );
    }
    pass("every daemon's effective capabilities are exactly CAP_NET_ADMIN (CapEff 0x1000)");

    println!("== a no-change reconcile makes no write");
    let (r0, w0) = (
        nodes[1].metric("wgmesh_reconcile_total").unwrap_or(0.0),
        nodes[1]
            .metric("wgmesh_netlink_writes_total")
            .unwrap_or(-1.0),
    );
    std::thread::sleep(Duration::from_secs(11));
    let (r1, w1) = (
        nodes[1].metric("wgmesh_reconcile_total").unwrap_or(0.0),
        nodes[1]
            .metric("wgmesh_netlink_writes_total")
            .unwrap_or(-2.0),
    );
    assert!(
        r1 >= r0 + 2.0,
        "expected at least 2 reconciles in 11 s, saw {r0} -> {r1}"
    );
    assert_eq!(w0, w1, "netlink writes grew during no-change reconciles");
    pass(&format!(
        "{} reconciles in 11 s, netlink writes stayed at {w1}",
        r1 - r0
    ));

    println!("== SIGHUP changes advertised routes without dropping the tunnel");
    wait_for(
        Duration::from_secs(10),
        "n2 to install 192.168.200.0/24",
        || routes_on(&nodes[1]).iter().any(|r| r == "192.168.200.0/24"),
    );
    let (n1_v4, _) = nodes[0].mesh_ips();
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &nodes[1].ns,
            "ping",
            "-i",
            "0.2",
            "-c",
            "40",
            "-W",
            "1",
            &n1_v4,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ping: {e}"));
    lab.record_pid(ping.id());
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&cfg, "advertise-routes = [\"192.168.201.0/24\"]\n").unwrap_or_default();
    let t_hup = Instant::now();
    nodes[0].signal("HUP");
    let took = wait_for(
        Duration::from_secs(6),
        "n2 to swap the advertised route",
        || {
            let r = routes_on(&nodes[1]);
            r.iter().any(|x| x == "192.168.201.0/24") && !r.iter().any(|x| x == "192.168.200.0/24")
        },
    );
    let out = ping
        .wait_with_output()
        .unwrap_or_else(|e| panic!("ping: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping lost packets across the reload:\n{text}"
    );
    pass(&format!(
        "route withdrawn and added on n2 {:.1} s after SIGHUP; ping 40/40 across it ({:.1} s)",
        took.as_secs_f64(),
        t_hup.elapsed().as_secs_f64()
    ));

    println!("== kill -9 and restart from the cache, with no discovery");
    let killed = nodes[2].crash();
    assert_eq!(
        killed, 1,
        "the crashed daemon's wireguard-go should be killed too"
    );
    assert!(
        !sh("ip", &["-n", &nodes[2].ns, "-br", "link"]).contains(&nodes[2].iface),
        "the interface outlived the crash"
    );
    let (v4_1, _) = nodes[0].mesh_ips();
    let t_restart = Instant::now();
    nodes[2].start(lab, &[]);
    let took = nodes[2]
        .wait_ping(&v4_1, Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "n3 did not ping n1 within 10 s of its restart\n{}",
                nodes[2].log_tail(30)
            )
        });
    let show = nodes[2].show().unwrap_or_default();
    let restored = show["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["discovered_via"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == "cache"))
        })
        .count();
    assert_eq!(
        restored, 2,
        "n3 should know both peers from its cache: {show}"
    );
    pass(&format!(
        "n3 restarted after kill -9 pings n1 {:.1} s after start ({:.1} s after exec)",
        took.as_secs_f64(),
        t_restart.elapsed().as_secs_f64()
    ));

    println!("== a truncated cache is reported and ignored");
    nodes[2].stop();
    let cache = nodes[2]
        .state_dir()
        .join(format!("{}-peers.cbor", nodes[2].iface));
    let bytes = std::fs::read(&cache).unwrap_or_else(|e| panic!("cache {}: {e}", cache.display()));
    let cut = 1 + (std::process::id() as usize % (bytes.len() - 1));
    std::fs::write(&cache, &bytes[..cut]).unwrap_or_default();
    nodes[2].start(lab, &[]);
    let log = std::fs::read_to_string(nodes[2].log_path()).unwrap_or_default();
    assert!(
        log.contains("is corrupt"),
        "the corrupt cache was not reported:\n{}",
        nodes[2].log_tail(20)
    );
    pass(&format!(
        "cache cut at byte {cut} of {}: reported as corrupt, the node started anyway",
        bytes.len()
    ));

    println!("== shutdown leaves nothing behind");
    for n in nodes.iter_mut() {
        let took = n.stop();
        assert!(
            took < Duration::from_secs(5),
            "{} took {took:?} to stop",
            n.name
        );
        let links = sh("ip", &["-n", &n.ns, "-br", "link"]);
        assert!(
            !links.contains(&n.iface),
            "{}: interface left: {links}",
            n.name
        );
        let tables = sh("ip", &["netns", "exec", &n.ns, "nft", "list", "tables"]);
        assert!(
            !tables.contains("wgmesh"),
            "{}: nftables table left: {tables}",
            n.name
        );
        assert!(
            !Path::new(&format!("/var/run/wireguard/{}.sock", n.iface)).exists(),
            "{}: UAPI socket left",
            n.name
        );
        assert!(
            !n.runtime_dir().join(format!("{}.sock", n.iface)).exists(),
            "{}: control socket left",
            n.name
        );
        let routes = sh("ip", &["-n", &n.ns, "route", "show", "proto", "119"]);
        assert!(
            routes.trim().is_empty(),
            "{}: wgmesh routes left: {routes}",
            n.name
        );
        pass(&format!(
            "{} stopped in {:.2} s: no interface, table, route or socket left",
            n.name,
            took.as_secs_f64()
        ));
    }

    println!("== LAN multicast discovery: six nodes, no --peer, no cache");
    for n in nodes.iter_mut() {
        n.extra_args.clear();
        let _ = std::fs::remove_file(n.state_dir().join(format!("{}-peers.cbor", n.iface)));
    }
    for i in 4..=6u8 {
        let (ns, lan) = site.host(lab, i);
        nodes.push(Node::new(
            lab,
            &format!("n{i}"),
            ns,
            lan,
            &secret,
            9300 + u16::from(i),
        ));
    }
    let t0 = Instant::now();
    for n in nodes.iter_mut() {
        n.start(lab, &[]);
    }
    let started = t0.elapsed();
    let all: Vec<&Node> = nodes.iter().collect();
    let took = all_pairs_ping(&all, Duration::from_secs(30));
    for n in &nodes {
        let via_lan = n.show().unwrap_or_default()["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["path"] == "direct (lan)"
                    && p["discovered_via"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|x| x == "lan"))
            })
            .count();
        assert_eq!(
            via_lan, 5,
            "{} should reach all 5 peers directly on the LAN",
            n.name
        );
    }
    pass(&format!(
        "6 nodes: every pair pings over IPv4 and IPv6, all peers found by `lan` ({:.1} s to start them all, pings done {:.1} s later)",
        started.as_secs_f64(),
        took.as_secs_f64()
    ));

    println!("== roaming: n2 moves to another LAN address");
    let n2_key = nodes[1].public_key();
    let (n2_v4, _) = nodes[1].mesh_ips();
    // Delete first: deleting a primary address also removes the secondaries of its subnet.
    let n2_ns = nodes[1].ns.clone();
    sh(
        "ip",
        &["-n", &n2_ns, "addr", "del", "10.77.0.12/24", "dev", "eth0"],
    );
    sh(
        "ip",
        &["-n", &n2_ns, "addr", "add", "10.77.0.42/24", "dev", "eth0"],
    );
    let t_move = Instant::now();
    let endpoint_of_n2 = |n: &Node| -> String {
        n.show().unwrap_or_default()["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["public_key"] == n2_key.as_str())
            .and_then(|p| p["endpoint"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let took = wait_for(
        Duration::from_secs(5),
        "n1 to follow n2 to 10.77.0.42",
        || endpoint_of_n2(&nodes[0]) == "10.77.0.42:51820",
    );
    assert!(
        nodes[0].wait_ping(&n2_v4, Duration::from_secs(5)).is_some(),
        "n1 cannot ping n2 after the move"
    );
    pass(&format!(
        "n1 uses n2's new address {:.1} s after the move and pings it ({:.1} s)",
        took.as_secs_f64(),
        t_move.elapsed().as_secs_f64()
    ));
    for n in nodes.iter_mut() {
        n.stop();
    }
    privacy(lab, &mut nodes[..3]);
    let _ = std::fs::remove_file(&secret);
    lan_over_ipv6_link_local(lab);
}

/// Two nodes on a LAN with no IPv4 at all find each other on the IPv6 link-local group and
/// use each other's `fe80::…%eth0` address as the WireGuard endpoint.
fn lan_over_ipv6_link_local(lab: &Lab) {
    println!("== LAN discovery over IPv6 link-local only (no IPv4 on the LAN)");
    let site = LanSite::named(lab, "br6");
    let secret = new_secret_file(lab, "mesh6");
    let mut nodes: Vec<Node> = (1..=2u8)
        .map(|i| {
            let name = format!("l{i}");
            let ns = site.host_link_local_only(lab, &name);
            let unspecified = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
            Node::new(lab, &name, ns, unspecified, &secret, 9320 + u16::from(i))
        })
        .collect();
    let t0 = Instant::now();
    for n in nodes.iter_mut() {
        n.start(lab, &[]);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    all_pairs_ping(&all, Duration::from_secs(20));
    let took = t0.elapsed();
    for n in &nodes {
        let peers = n.show().unwrap_or_default()["peers"].clone();
        let endpoint = peers[0]["endpoint"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            endpoint.starts_with("[fe80::"),
            "{}: the peer's endpoint should be its IPv6 link-local address, got {endpoint:?} in {peers}",
            n.name
        );
    }
    pass(&format!(
        "2 nodes with only IPv6 link-local addresses: found on ff12::7767:6d32:…, endpoints fe80::…, pings both ways ({:.1} s)",
        took.as_secs_f64()
    ));
    for n in nodes.iter_mut() {
        n.stop();
    }
    let _ = std::fs::remove_file(&secret);
    transitive(lab, &site);
}

/// The mesh IPv4 subnet a secret derives.
fn mesh_subnet(secret: &Path) -> String {
    let out = sh(
        wgmesh_bin().to_str().unwrap_or("wgmesh"),
        &[
            "secret",
            "inspect",
            "--json",
            "--secret-file",
            secret.to_str().unwrap_or_default(),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_default();
    v["ipv4_subnet"].as_str().unwrap_or_default().to_string()
}

/// The methods `viewer` lists for the peer with public key `key` (empty if unknown).
fn methods_for(viewer: &Node, key: &str) -> Vec<String> {
    viewer.show().unwrap_or_default()["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["public_key"] == key)
        .and_then(|p| p["discovered_via"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

/// A and C meet only through B: `--peer B` each, no LAN discovery, and A's control traffic
/// outside the tunnel blocked (nftables in A's namespace) once A and B are meshed. So C learns
/// A from B's exchange answer (`dht-transitive`), and A can learn C only by gossip with B over
/// the tunnel (`gossip-transitive`); then A and C ping each other.
fn transitive(lab: &Lab, site: &LanSite) {
    println!("== transitive discovery: A-B-C, A and C learn of each other only through B");
    // A secret whose mesh subnet does not cover the LAN (10.77.0.0/24), or routes would clash.
    let secret = (0..16)
        .map(|_| new_secret_file(lab, "transitive"))
        .find(|s| !mesh_subnet(s).starts_with("10.77."))
        .unwrap_or_else(|| panic!("no secret with a mesh subnet outside the LAN"));
    let cport = control_port(&secret).to_string();
    let mut abc: Vec<Node> = [("ta", 7u8), ("tb", 8), ("tc", 9)]
        .into_iter()
        .map(|(name, i)| {
            let (ns, lan) = site.host_named(lab, name, i);
            let mut n = Node::new(lab, name, ns, lan, &secret, 9300 + u16::from(i));
            n.extra_args = vec!["--no-lan-discovery".into()];
            n
        })
        .collect();
    let b_peer = format!("{}:{cport}", abc[1].lan);
    abc[1].start(lab, &[]);
    abc[0].start(lab, &["--peer".into(), b_peer.clone()]);
    let (b_v4, _) = abc[1].mesh_ips();
    abc[0]
        .wait_ping(&b_v4, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("A cannot ping B\n{}", abc[0].log_tail(30)));
    // From now on A's control messages go through the tunnel only.
    let a_ns = abc[0].ns.clone();
    let nft = |args: &[&str]| {
        let mut full = vec!["netns", "exec", a_ns.as_str(), "nft"];
        full.extend_from_slice(args);
        sh("ip", &full);
    };
    nft(&["add", "table", "inet", "blk"]);
    for (chain, hook, dir) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
        nft(&[
            "add", "chain", "inet", "blk", chain, "{", "type", "filter", "hook", hook, "priority",
            "0", ";", "}",
        ]);
        nft(&[
            "add", "rule", "inet", "blk", chain, dir, "eth0", "udp", "dport", &cport, "drop",
        ]);
        nft(&[
            "add", "rule", "inet", "blk", chain, dir, "eth0", "udp", "sport", &cport, "drop",
        ]);
    }
    let t0 = Instant::now();
    abc[2].start(lab, &["--peer".into(), b_peer]);
    let (key_a, key_c) = (abc[0].public_key(), abc[2].public_key());
    let took = wait_for(Duration::from_secs(10), "C to learn A through B", || {
        !methods_for(&abc[2], &key_a).is_empty()
    });
    let via = methods_for(&abc[2], &key_a);
    assert!(
        via.iter().any(|m| m == "dht-transitive"),
        "C should know A through B's exchange answer (dht-transitive): {via:?}"
    );
    pass(&format!(
        "C learned A through B's exchange answer ({via:?}) {:.1} s after C started",
        took.as_secs_f64()
    ));
    let took = wait_for(Duration::from_secs(30), "A to learn C by gossip", || {
        !methods_for(&abc[0], &key_c).is_empty()
    });
    let via = methods_for(&abc[0], &key_c);
    assert_eq!(
        via,
        vec!["gossip-transitive".to_string()],
        "A can only have learned C by gossip with B over the tunnel"
    );
    let via_b = methods_for(&abc[1], &key_a);
    assert!(
        via_b.iter().any(|m| m == "gossip"),
        "B should have heard A's gossip over the tunnel: {via_b:?}"
    );
    pass(&format!(
        "A learned C by gossip over the tunnel (gossip-transitive) {:.1} s after C started; B lists A as {via_b:?}",
        took.as_secs_f64()
    ));
    let (a_v4, _) = abc[0].mesh_ips();
    let (c_v4, _) = abc[2].mesh_ips();
    let ac = abc[0].wait_ping(&c_v4, Duration::from_secs(15));
    let ca = abc[2].wait_ping(&a_v4, Duration::from_secs(15));
    assert!(
        ac.is_some() && ca.is_some(),
        "A and C cannot ping each other\n--- A:\n{}\n--- C:\n{}",
        abc[0].log_tail(30),
        abc[2].log_tail(30)
    );
    pass(&format!(
        "A and C ping each other ({:.1} s after C started)",
        t0.elapsed().as_secs_f64()
    ));
    for n in abc.iter_mut() {
        n.stop();
    }
    let _ = std::fs::remove_file(&secret);
}

/// How many times `needle` occurs in `node`'s log after byte `from`.
fn log_count_since(node: &Node, from: usize, needle: &str) -> usize {
    let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
    log.get(from..).unwrap_or_default().matches(needle).count()
}

fn log_len(node: &Node) -> usize {
    std::fs::metadata(node.log_path()).map_or(0, |m| m.len() as usize)
}

/// Three nodes with `--privacy` (Dandelion++): the mesh forms, and n1's record change (a new
/// advertised route, SIGHUP) reaches the others first from another node's fluff.
fn privacy(lab: &Lab, nodes: &mut [Node]) {
    println!("== announce privacy (--privacy): three nodes, a record change travels a stem");
    let cfg = nodes[0].dir.join("privacy.toml");
    std::fs::write(
        &cfg,
        "privacy = true\nadvertise-routes = [\"192.168.210.0/24\"]\n",
    )
    .unwrap_or_default();
    let t0 = Instant::now();
    nodes[0].start(lab, &["--config".into(), cfg.display().to_string()]);
    for n in nodes[1..].iter_mut() {
        n.start(lab, &["--privacy".into()]);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let took = all_pairs_ping(&all, Duration::from_secs(30));
    pass(&format!(
        "3 nodes with --privacy: every pair pings ({:.1} s after the first start)",
        t0.elapsed().as_secs_f64().max(took.as_secs_f64())
    ));
    for n in &nodes[1..] {
        wait_for(Duration::from_secs(10), "the first route to arrive", || {
            routes_on(n).iter().any(|r| r == "192.168.210.0/24")
        });
    }
    let marks: Vec<usize> = nodes.iter().map(log_len).collect();
    std::fs::write(
        &cfg,
        "privacy = true\nadvertise-routes = [\"192.168.211.0/24\"]\n",
    )
    .unwrap_or_default();
    let t_hup = Instant::now();
    nodes[0].signal("HUP");
    let mut arrived = Vec::new();
    for n in &nodes[1..] {
        wait_for(Duration::from_secs(10), "n1's new record to arrive", || {
            routes_on(n).iter().any(|r| r == "192.168.211.0/24")
        });
        arrived.push(format!("{} {:.1} s", n.name, t_hup.elapsed().as_secs_f64()));
    }
    let took = t_hup.elapsed();
    let actions: Vec<String> = nodes
        .iter()
        .map(|n| {
            let m = |a: &str| {
                n.metric(&format!("wgmesh_stems_total{{action=\"{a}\"}}"))
                    .unwrap_or(0.0)
            };
            format!(
                "{}: forward {} fluff {} embargo_fluff {}",
                n.name,
                m("forward"),
                m("fluff"),
                m("embargo_fluff")
            )
        })
        .collect();
    println!(
        "    stems: {}; arrived: {}",
        actions.join(", "),
        arrived.join(", ")
    );
    assert!(
        took < Duration::from_secs(3),
        "the stem should fluff at once, not at a relay's embargo (3-6 s): {took:?}\n--- n1 log:\n{}",
        nodes[0].log_tail(30)
    );
    let fluffed_elsewhere = log_count_since(&nodes[0], marks[0], "fluffed by another node");
    let embargo = log_count_since(&nodes[0], marks[0], "stem embargo ended");
    let fluffers: Vec<&str> = nodes[1..]
        .iter()
        .zip(&marks[1..])
        .filter(|(n, m)| log_count_since(n, **m, "stem fluffed here") > 0)
        .map(|(n, _)| n.name.as_str())
        .collect();
    assert!(
        fluffed_elsewhere == 1 && embargo == 0 && !fluffers.is_empty(),
        "n1's new record should be fluffed by n2 or n3 and seen back by n1 (seen back {fluffed_elsewhere}, embargo {embargo}, fluffed by {fluffers:?})\n--- n1 log:\n{}",
        nodes[0].log_tail(30)
    );
    pass(&format!(
        "n1's new record went down the stem, was fluffed by {} and installed on n2 and n3 {:.1} s after SIGHUP",
        fluffers.join(" and "),
        took.as_secs_f64()
    ));
    for n in nodes.iter_mut() {
        n.stop();
    }
}
