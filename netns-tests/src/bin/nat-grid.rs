//! The NAT grid (issue 7): one "internet" namespace holding coturn (STUN) and a private
//! Mainline DHT (npm bittorrent-dht), a public introducer, a public host, and sites behind
//! nftables NAT routers — two cone, full-cone, two symmetric, and two hosts behind the same
//! cone NAT on one LAN (to the outside, the second of them is not a cone: where both talk to
//! the same peer, the NAT must give it another port than the one it showed the introducer). Every node gets only `--dht-bootstrap` and `--stun` (no `--peer`); all
//! start at once and every ordered pair is measured in parallel: reachable (ping over mesh
//! IPv4), time from start to first ping, and the path `wgmesh show --json` reports. The table
//! is printed and, with `WGMESH_NAT_GRID_OUT=<file>`, written as markdown
//! (`netns-tests/nat-grid-doc.sh` regenerates docs/nat-grid.md). Asserts: every pair
//! reachable within 30 s; cone↔cone, cone↔public, same-LAN and full-cone pairs direct;
//! symmetric↔symmetric relayed.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wgmesh_netns_tests::daemon::{Node, new_secret_file, unix_now, wait_until};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::nat::{Internet, NatMode, STUN_1, STUN_2};
use wgmesh_netns_tests::suite::run_suite;
use wgmesh_netns_tests::{dht, preflight};

/// Every pair must ping within this time of the last node's start.
const REACH_LIMIT: Duration = Duration::from_secs(30);
/// How long direct-expected pairs get to settle on a direct path once they ping.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// What kind of site a node sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cone,
    FullCone,
    Symmetric,
    /// Behind the shared cone NAT, on one LAN with the other `Lan` node.
    Lan,
    Public,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Cone => "cone",
            Kind::FullCone => "full-cone",
            Kind::Symmetric => "symmetric",
            Kind::Lan => "cone (same LAN)",
            Kind::Public => "public",
        }
    }

    /// Endpoint-independent mapping behind a NAT.
    fn is_cone(self) -> bool {
        matches!(self, Kind::Cone | Kind::Lan)
    }
}

/// The path an unordered pair must show, if the requirement names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Direct,
    DirectLan,
    Relay,
    Any,
}

fn expect(a: Kind, b: Kind) -> Expect {
    use Kind::*;
    match (a, b) {
        (Lan, Lan) => Expect::DirectLan,
        (Symmetric, Symmetric) => Expect::Relay,
        (FullCone, _) | (_, FullCone) => Expect::Direct,
        (Cone, Cone) => Expect::Direct,
        (Public, y) | (y, Public) if y.is_cone() => Expect::Direct,
        _ => Expect::Any,
    }
}

fn path_ok(e: Expect, path: &str) -> bool {
    match e {
        Expect::Direct => path == "direct",
        Expect::DirectLan => path == "direct (lan)",
        Expect::Relay => path.starts_with("relay via"),
        Expect::Any => !path.is_empty(),
    }
}

fn main() {
    preflight::require(true, "NAT grid");
    let mut missing = dht::missing();
    if std::process::Command::new("turnserver")
        .arg("--help")
        .output()
        .is_err()
    {
        missing.push("`turnserver` (apt-get install coturn)".into());
    }
    if !missing.is_empty() {
        if std::env::var(preflight::SKIP_ENV).as_deref() == Ok("1") {
            println!(
                "SKIP NAT grid: {}=1 and missing: {}",
                preflight::SKIP_ENV,
                missing.join(", ")
            );
            return;
        }
        eprintln!(
            "FAIL NAT grid: missing {}; run netns-tests/install-deps.sh",
            missing.join(", ")
        );
        std::process::exit(2);
    }
    run_suite("NAT grid", run);
}

/// (from, to, time from the grid's start to the first ping reply).
type Reached = (usize, usize, Option<Duration>);

/// One measured ordered pair.
#[derive(Debug, Clone)]
struct Cell {
    from: usize,
    to: usize,
    /// Time from the grid's start to the first ping reply.
    first_ping: Option<Duration>,
    path: String,
    endpoint: String,
    /// A ping when the path was read.
    pings_now: bool,
}

/// The peer entry `from` shows for `to_key` in `wgmesh show --json`.
fn peer_of(from: &Node, to_key: &str) -> Value {
    from.show().unwrap_or_default()["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["public_key"] == to_key)
        .cloned()
        .unwrap_or_default()
}

fn run(lab: &Lab) {
    let mut inet = Internet::new(lab);
    inet.start_coturn(lab);
    let swarm = inet.start_dht(lab, 4);
    println!(
        "== one internet: coturn on {STUN_1}/{STUN_2}, a private DHT ({})",
        swarm.swarm.join(" ")
    );
    let secret = new_secret_file(lab, "mesh");
    let common = vec![
        swarm.bootstrap_arg(2),
        "--stun".to_string(),
        format!("{STUN_1},{STUN_2}"),
    ];

    // Sites: public introducer and host, cone, full-cone, two symmetric, two hosts on one LAN
    // behind a cone NAT.
    let (intro_ns, intro_addr) = inet.public_host(lab, "intro", 10);
    let (pub_ns, pub_addr) = inet.public_host(lab, "pub", 11);
    let (cone, _) = inet.site_lan(lab, "cone", 1, NatMode::Cone, 1);
    let (cone2, _) = inet.site_lan(lab, "conb", 6, NatMode::Cone, 1);
    let (full, _) = inet.site_lan(lab, "full", 2, NatMode::FullCone, 1);
    let (syma, _) = inet.site_lan(lab, "syma", 3, NatMode::Symmetric, 1);
    let (symb, _) = inet.site_lan(lab, "symb", 4, NatMode::Symmetric, 1);
    let (lan, lan_hosts) = inet.site_lan(lab, "lan", 5, NatMode::Cone, 2);
    let spec: Vec<(&str, Kind, String, std::net::IpAddr)> = vec![
        (
            "cone",
            Kind::Cone,
            cone.host_ns.clone(),
            [10, 0, 1, 11].into(),
        ),
        (
            "conb",
            Kind::Cone,
            cone2.host_ns.clone(),
            [10, 0, 6, 11].into(),
        ),
        (
            "full",
            Kind::FullCone,
            full.host_ns.clone(),
            [10, 0, 2, 11].into(),
        ),
        (
            "syma",
            Kind::Symmetric,
            syma.host_ns.clone(),
            [10, 0, 3, 11].into(),
        ),
        (
            "symb",
            Kind::Symmetric,
            symb.host_ns.clone(),
            [10, 0, 4, 11].into(),
        ),
        (
            "lan1",
            Kind::Lan,
            lan_hosts[0].clone(),
            [10, 0, 5, 11].into(),
        ),
        (
            "lan2",
            Kind::Lan,
            lan_hosts[1].clone(),
            [10, 0, 5, 12].into(),
        ),
        ("pub", Kind::Public, pub_ns, pub_addr),
    ];
    let _ = &lan;
    let mut intro = Node::new(lab, "intro", intro_ns, intro_addr, &secret, 9610);
    let mut nodes: Vec<Node> = spec
        .iter()
        .enumerate()
        .map(|(i, (name, _, ns, addr))| {
            Node::new(lab, name, ns.clone(), *addr, &secret, 9600 + i as u16)
        })
        .collect();
    let kinds: Vec<Kind> = spec.iter().map(|s| s.1).collect();

    println!(
        "== {} nodes and a public introducer start at once (only --dht-bootstrap and --stun)",
        nodes.len()
    );
    let t0 = Instant::now();
    let mut intro_args = common.clone();
    intro_args.push("--introducer".into());
    intro.start(lab, &intro_args);
    for n in nodes.iter_mut() {
        n.start(lab, &common);
    }
    let started = t0.elapsed();
    println!("    all started in {:.1} s", started.as_secs_f64());
    let ips: Vec<String> = nodes.iter().map(|n| n.mesh_ips().0).collect();
    let keys: Vec<String> = nodes.iter().map(Node::public_key).collect();

    // Every ordered pair pings in its own thread until the first reply.
    let firsts: Arc<Mutex<Vec<Reached>>> = Arc::default();
    std::thread::scope(|s| {
        for (a, node) in nodes.iter().enumerate() {
            for (b, ip) in ips.iter().enumerate() {
                if a == b {
                    continue;
                }
                let firsts = firsts.clone();
                s.spawn(move || {
                    let limit = (REACH_LIMIT + started).saturating_sub(t0.elapsed());
                    let got = node.wait_ping(ip, limit).map(|_| t0.elapsed());
                    if let Ok(mut f) = firsts.lock() {
                        f.push((a, b, got));
                    }
                });
            }
        }
    });
    let firsts = firsts.lock().map(|f| f.clone()).unwrap_or_default();

    // Paths: direct-expected pairs get a few seconds to settle; then every cell is read.
    let t_settle = Instant::now();
    loop {
        let settled = firsts.iter().all(|&(a, b, _)| {
            let e = expect(kinds[a], kinds[b]);
            e == Expect::Any
                || path_ok(
                    e,
                    peer_of(&nodes[a], &keys[b])["path"].as_str().unwrap_or(""),
                )
        });
        if settled || t_settle.elapsed() > SETTLE_LIMIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let read_at = wgmesh_netns_tests::daemon::unix_now();
    println!(
        "    paths read at unix {read_at:.1} ({:.1} s after settling began)",
        t_settle.elapsed().as_secs_f64()
    );
    let mut cells: Vec<Cell> = firsts
        .iter()
        .map(|&(a, b, first_ping)| {
            let p = peer_of(&nodes[a], &keys[b]);
            Cell {
                from: a,
                to: b,
                first_ping,
                path: p["path"].as_str().unwrap_or("(unknown)").to_string(),
                endpoint: p["endpoint"].as_str().unwrap_or("-").to_string(),
                pings_now: nodes[a].ping(&ips[b]),
            }
        })
        .collect();
    cells.sort_by_key(|c| (c.from, c.to));

    let names: Vec<&str> = spec.iter().map(|s| s.0).collect();
    let table = render(&names, &kinds, &cells);
    println!("{table}");
    if let Some(out) = std::env::var_os("WGMESH_NAT_GRID_OUT") {
        std::fs::write(&out, doc(&table, &cells, &kinds))
            .unwrap_or_else(|e| panic!("write {}: {e}", out.to_string_lossy()));
        println!("    table written to {}", out.to_string_lossy());
    }
    bench(&cells, &kinds);

    let mut failures = Vec::new();
    for c in &cells {
        let e = expect(kinds[c.from], kinds[c.to]);
        let what = format!(
            "{} ({}) -> {} ({})",
            names[c.from],
            kinds[c.from].label(),
            names[c.to],
            kinds[c.to].label()
        );
        if c.first_ping.is_none() {
            failures.push(format!("{what}: no ping within {REACH_LIMIT:?}"));
        }
        if !path_ok(e, &c.path) {
            // What the node says now (a late change shows as a different answer).
            let now = peer_of(&nodes[c.from], &keys[c.to]);
            failures.push(format!(
                "{what}: path {:?} (read at unix {read_at:.1}), required {e:?}; now (unix {:.1}): {now}",
                c.path,
                wgmesh_netns_tests::daemon::unix_now()
            ));
        }
    }
    if !failures.is_empty() {
        for n in nodes.iter().chain(std::iter::once(&intro)) {
            println!("--- {} log tail:\n{}", n.name, n.log_tail(15));
        }
        // Evidence for the report: what each WireGuard device holds, what the full cone learned.
        for n in nodes.iter().chain(std::iter::once(&intro)) {
            let dump = wgmesh_netns_tests::lab::sh(
                "ip",
                &["netns", "exec", &n.ns, "wg", "show", &n.iface, "dump"],
            );
            println!("--- {} wg show dump:\n{dump}", n.name);
        }
        let map = wgmesh_netns_tests::lab::sh(
            "ip",
            &[
                "netns",
                "exec",
                &full.nat_ns,
                "nft",
                "list",
                "map",
                "ip",
                "wgmnat",
                "fullcone",
            ],
        );
        println!("--- full-cone NAT map:\n{map}");
        if let Some(secs) = std::env::var("WGMESH_NAT_GRID_HOLD")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            println!("    (holding the lab {secs} s for inspection: WGMESH_NAT_GRID_HOLD)");
            std::thread::sleep(Duration::from_secs(secs));
        }
        panic!(
            "NAT grid requirements not met:\n  {}",
            failures.join("\n  ")
        );
    }
    println!(
        "  PASS every ordered pair ({}) pings within {REACH_LIMIT:?}; required paths hold",
        cells.len()
    );
    let f = failover(lab, &cone, &cone2.wan, &nodes[0], &nodes[1]);
    let r = roaming(lab, &cone2, &nodes[1], &nodes[0]);
    if let Some(out) = std::env::var_os("WGMESH_NAT_GRID_OUT") {
        let mut text = std::fs::read_to_string(&out).unwrap_or_default();
        text.push_str(&format!("{f}\n{r}\n"));
        std::fs::write(&out, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", out.to_string_lossy()));
    }
    for n in nodes.iter_mut().chain(std::iter::once(&mut intro)) {
        n.stop();
    }
    let _ = std::fs::remove_file(&secret);
}

/// The path `from` shows for `to`.
fn path(from: &Node, to: &Node) -> String {
    peer_of(from, &to.public_key())["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Failover: the direct UDP path between two cone sites is cut in one NAT during a running
/// ping; traffic must continue through the relay within 10 s and go direct again within 60 s
/// of lifting the cut.
fn failover(
    lab: &Lab,
    site: &wgmesh_netns_tests::nat::Site,
    other_wan: &str,
    a: &Node,
    b: &Node,
) -> String {
    use std::process::{Command, Stdio};
    println!(
        "== failover: {}'s NAT drops all UDP to/from {}'s NAT during a ping",
        a.name, b.name
    );
    let (b_v4, _) = b.mesh_ips();
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &a.ns, "ping", "-D", "-n", "-i", "0.2", "-W", "1",
        ])
        .args(["-c", "400", &b_v4])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ping: {e}"));
    lab.record_pid(ping.id());
    std::thread::sleep(Duration::from_secs(4));
    let cut_at = unix_now();
    let nft = |args: &str| {
        wgmesh_netns_tests::lab::sh(
            "ip",
            &[
                "netns",
                "exec",
                &site.nat_ns,
                "sh",
                "-c",
                &format!("nft {args}"),
            ],
        )
    };
    nft("add table inet cut");
    nft("'add chain inet cut block { type filter hook forward priority -10; }'");
    nft(&format!(
        "add rule inet cut block ip saddr {other_wan} meta l4proto udp drop"
    ));
    nft(&format!(
        "add rule inet cut block ip daddr {other_wan} meta l4proto udp drop"
    ));
    let relayed = wait_until(Duration::from_secs(20), || {
        path(a, b).starts_with("relay via") && path(b, a).starts_with("relay via")
    })
    .unwrap_or_else(|| {
        panic!(
            "{} and {} not both relayed within 20 s of the cut ({:?} / {:?})\n{}",
            a.name,
            b.name,
            path(a, b),
            path(b, a),
            a.log_tail(20)
        )
    });
    std::thread::sleep(Duration::from_secs(3));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ping.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = ping
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let replies = wgmesh_netns_tests::daemon::ping_reply_times(&out);
    let before = replies.iter().rev().find(|t| **t <= cut_at).copied();
    let after = replies.iter().find(|t| **t > cut_at).copied();
    let (Some(before), Some(after)) = (before, after) else {
        panic!("no ping reply before and after the cut:\n{out}");
    };
    let gap = after - before;
    println!(
        "    benchmark: failover gap {gap:.1} s (target ≤ 5 s, limit 10 s); both sides relayed {:.1} s after the cut",
        relayed.as_secs_f64()
    );
    assert!(gap <= 10.0, "failover gap {gap:.1} s > 10 s");
    println!("  PASS traffic continued through the relay after a {gap:.1} s gap");
    nft("delete table inet cut");
    let back = wait_until(Duration::from_secs(60), || {
        path(a, b) == "direct" && path(b, a) == "direct" && a.ping(&b_v4)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} and {} not direct again within 60 s of lifting the cut ({:?} / {:?})\n{}",
            a.name,
            b.name,
            path(a, b),
            path(b, a),
            a.log_tail(20)
        )
    });
    println!(
        "  PASS direct again {:.1} s after the cut was lifted",
        back.as_secs_f64()
    );
    format!(
        "failover ({} <-> {}, direct UDP cut in {}'s NAT during a ping): gap {gap:.1} s (target ≤ 5 s, limit 10 s); direct again {:.1} s after the cut was lifted (limit 60 s)",
        a.name,
        b.name,
        a.name,
        back.as_secs_f64()
    )
}

/// Roaming: `site`'s NAT switches from cone to symmetric mid-session (the host moves to its
/// second inside subnet so that new flows take the new mapping); the pair must work again,
/// direct or relayed, within 30 s.
fn roaming(lab: &Lab, site: &wgmesh_netns_tests::nat::Site, a: &Node, b: &Node) -> String {
    println!(
        "== roaming: {}'s NAT switches from cone to symmetric mid-session",
        a.name
    );
    let (b_v4, _) = b.mesh_ips();
    let (a_v4, _) = a.mesh_ips();
    let t0 = Instant::now();
    site.set_mode(lab, NatMode::Symmetric);
    site.roam_host();
    let ok = wait_until(Duration::from_secs(30), || a.ping(&b_v4) && b.ping(&a_v4));
    let took = ok.unwrap_or_else(|| {
        panic!(
            "{} <-> {} not working again within 30 s of the NAT switch ({:?} / {:?})\n{}",
            a.name,
            b.name,
            path(a, b),
            path(b, a),
            a.log_tail(30)
        )
    });
    let _ = t0;
    let line = format!(
        "roaming ({}'s NAT switched cone -> symmetric mid-session): {} <-> {} working again {:.1} s after the switch (limit 30 s), path {}",
        a.name,
        a.name,
        b.name,
        took.as_secs_f64(),
        path(a, b)
    );
    println!("  PASS {line}");
    line
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} s", d.as_secs_f64()))
        .unwrap_or_else(|| "—".into())
}

/// The grid as a markdown table, one row per ordered pair.
fn render(names: &[&str], kinds: &[Kind], cells: &[Cell]) -> String {
    let mut t = String::from(
        "| from | to | reachable | first ping | path | endpoint | required |\n|---|---|---|---|---|---|---|\n",
    );
    for c in cells {
        let e = expect(kinds[c.from], kinds[c.to]);
        t.push_str(&format!(
            "| {} ({}) | {} ({}) | {} | {} | {} | {} | {} |\n",
            names[c.from],
            kinds[c.from].label(),
            names[c.to],
            kinds[c.to].label(),
            if c.first_ping.is_some() && c.pings_now {
                "yes"
            } else if c.first_ping.is_some() {
                "yes (not at the end)"
            } else {
                "no"
            },
            secs(c.first_ping),
            c.path,
            c.endpoint,
            match e {
                Expect::Direct => "direct",
                Expect::DirectLan => "direct (lan)",
                Expect::Relay => "relay",
                Expect::Any => "any",
            }
        ));
    }
    t
}

fn doc(table: &str, cells: &[Cell], kinds: &[Kind]) -> String {
    format!(
        "# The NAT grid\n\n\
         Generated by `netns-tests/nat-grid-doc.sh` (the `nat-grid` test binary, run as root): \
         real `wgmesh up` processes (userspace backend) in network namespaces, one \"internet\" \
         namespace with coturn and a private Mainline DHT (npm bittorrent-dht), a public \
         introducer, and sites behind nftables NAT routers. Every node gets only \
         `--dht-bootstrap` and `--stun`. \"first ping\" counts from the first node's start; \
         \"path\" and \"endpoint\" are what the `from` node's `wgmesh show --json` reports for \
         `to` once the pairs have settled (all nodes run on one machine, so every hostname, and \
         the introducer's in `relay via`, is the machine's).\n\n{table}\n{}\n",
        bench_text(cells, kinds)
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn bench_text(cells: &[Cell], kinds: &[Kind]) -> String {
    let pick = |f: &dyn Fn(Kind, Kind) -> bool| -> Vec<f64> {
        cells
            .iter()
            .filter(|c| f(kinds[c.from], kinds[c.to]))
            .filter_map(|c| c.first_ping.map(|d| d.as_secs_f64()))
            .collect()
    };
    let cone = pick(&|a, b| a == Kind::Cone && b == Kind::Cone);
    let sym = pick(&|a, b| a == Kind::Symmetric && b == Kind::Symmetric);
    let fmt = |v: &[f64]| {
        median(v.to_vec())
            .map(|m| format!("median {m:.1} s over {} ordered pairs", v.len()))
            .unwrap_or_else(|| "no pair reached".into())
    };
    format!(
        "benchmark: time to first ping cone↔cone through the DHT + introducer: {} (target ≤ 5 s)\n\
         benchmark: time to first ping symmetric↔symmetric via relay: {} (target ≤ 5 s)\n",
        fmt(&cone),
        fmt(&sym)
    )
}

fn bench(cells: &[Cell], kinds: &[Kind]) {
    print!("{}", bench_text(cells, kinds));
}
