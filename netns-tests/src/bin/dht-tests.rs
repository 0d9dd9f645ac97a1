//! DHT discovery tests: real `wgmesh up` processes in sites that route to each other through
//! an "internet" router namespace but share no LAN (no multicast) and get no `--peer`: they
//! meet only through a private Mainline DHT of npm `bittorrent-dht` nodes (`--dht-bootstrap`;
//! no test touches the public DHT). Shows: the mesh forms (every pair pings, time-to-mesh
//! printed), the routing table is persisted and bootstraps a restart whose configured
//! bootstrap node is dead, and two nodes that roam at once find each other again through their
//! BEP 44 items (no new announce round).

use std::time::{Duration, Instant};

use serde_json::Value;
use wgmesh_netns_tests::daemon::{Node, new_secret_file, wgmesh_bin};
use wgmesh_netns_tests::dht::{self, Internet};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::suite::{pass, run_suite};

fn main() {
    preflight::require(true, "DHT tests");
    let missing = dht::missing();
    if !missing.is_empty() {
        if std::env::var(preflight::SKIP_ENV).as_deref() == Ok("1") {
            println!(
                "SKIP DHT tests: {}=1 and missing: {}",
                preflight::SKIP_ENV,
                missing.join(", ")
            );
            return;
        }
        eprintln!(
            "FAIL DHT tests: missing {}; run netns-tests/install-deps.sh",
            missing.join(", ")
        );
        std::process::exit(2);
    }
    run_suite("DHT tests", run);
}

/// Every ordered pair pings over mesh IPv4 within `limit`.
fn pairs_ping(nodes: &[&Node], limit: Duration) {
    let t0 = Instant::now();
    for a in nodes {
        for b in nodes {
            if a.name == b.name {
                continue;
            }
            let (v4, _) = b.mesh_ips();
            if a.wait_ping(&v4, limit.saturating_sub(t0.elapsed()))
                .is_none()
            {
                panic!(
                    "{} cannot ping {} at {v4} within {limit:?}\n--- {} log:\n{}\n--- {} log:\n{}",
                    a.name,
                    b.name,
                    a.name,
                    a.log_tail(30),
                    b.name,
                    b.log_tail(30)
                );
            }
        }
    }
}

fn control_port(secret: &std::path::Path) -> u16 {
    let out = wgmesh_netns_tests::lab::sh(
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
    v["control_port"].as_u64().unwrap_or(0) as u16
}

fn dht_block(n: &Node) -> Value {
    n.show().map(|s| s["dht"].clone()).unwrap_or_default()
}

/// The DHT block once `f` holds of it (or the last one after `limit`).
fn dht_when(n: &Node, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let d = dht_block(n);
        if f(&d) || t0.elapsed() > limit {
            return d;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(lab: &Lab) {
    let net = Internet::new(lab, 6);
    println!(
        "== private DHT: {} npm bittorrent-dht nodes ({})",
        net.swarm.len(),
        net.swarm.join(" ")
    );
    let secret = new_secret_file(lab, "mesh");
    let mut nodes: Vec<Node> = (1..=3u8)
        .map(|i| {
            let (ns, addr) = net.site(lab, i);
            Node::new(
                lab,
                &format!("d{i}"),
                ns,
                addr,
                &secret,
                9400 + u16::from(i),
            )
        })
        .collect();
    let boot = net.bootstrap_arg(2);

    println!("== three sites, no shared LAN, no --peer: the mesh forms through the DHT");
    let t0 = Instant::now();
    for n in nodes.iter_mut() {
        n.start(lab, std::slice::from_ref(&boot));
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    pairs_ping(&refs, Duration::from_secs(90));
    let took = t0.elapsed();
    let mut lookups = Vec::new();
    for n in &nodes {
        let d = dht_when(n, Duration::from_secs(40), |d| {
            d["state"] == "ready" && d["items_stored"].as_u64() > Some(0)
        });
        assert_eq!(d["state"], "ready", "{}: {d}", n.name);
        assert!(d["items_stored"].as_u64() > Some(0), "{}: {d}", n.name);
        assert_eq!(d["bootstrap_source"], "configured", "{}: {d}", n.name);
        assert!(
            d["routing_table_nodes"].as_u64() > Some(0),
            "{}: {d}",
            n.name
        );
        let show = n.show().unwrap_or_default();
        let via_dht = show["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["discovered_via"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|v| v == "dht" || v == "dht-transitive"))
            })
            .count();
        assert_eq!(
            via_dht, 2,
            "{}: peers not found through the DHT: {show}",
            n.name
        );
        lookups.push(format!(
            "{}: {} lookups, {} addresses found, {} greeted",
            n.name, d["lookups"], d["peers_found"], d["contacts"]
        ));
    }
    pass(&format!(
        "all 6 ordered pairs ping; time-to-mesh via DHT {:.1} s ({})",
        took.as_secs_f64(),
        lookups.join("; ")
    ));

    println!("== the routing table is persisted and used on restart");
    for n in &nodes {
        let file = n.state_dir().join(format!("{}-dht.nodes", n.iface));
        let t = Instant::now();
        let mut text = String::new();
        while t.elapsed() < Duration::from_secs(40) {
            text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.lines().count() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            text.lines().count() >= 2,
            "{}: {} holds {text:?}",
            n.name,
            file.display()
        );
    }
    let d3 = &mut nodes[2];
    d3.stop();
    // Without its peer cache, d3 can only find the others through the DHT; its configured
    // bootstrap node is dead, so only the persisted routing table can bootstrap it.
    let _ = std::fs::remove_file(d3.state_dir().join(format!("{}-peers.cbor", d3.iface)));
    let t1 = Instant::now();
    d3.start(lab, &["--dht-bootstrap=192.0.2.99:6881".to_string()]);
    let refs: Vec<&Node> = nodes.iter().collect();
    pairs_ping(&refs, Duration::from_secs(90));
    let d = dht_when(&nodes[2], Duration::from_secs(10), |d| {
        d["state"] == "ready"
    });
    assert_eq!(d["bootstrap_source"], "persisted", "d3: {d}");
    assert_eq!(d["state"], "ready", "d3: {d}");
    pass(&format!(
        "every node saved its routing table; d3 restarted with a dead --dht-bootstrap and no peer cache bootstrapped from the saved table and re-meshed in {:.1} s",
        t1.elapsed().as_secs_f64()
    ));

    println!("== a failing bootstrap backs off and does not hold up static discovery");
    let (ns4, addr4) = net.site(lab, 4);
    let mut d4 = Node::new(lab, "d4", ns4, addr4, &secret, 9404);
    let t3 = Instant::now();
    d4.start(
        lab,
        &[
            "--dht-bootstrap=192.0.2.99:6881".to_string(),
            "--peer".to_string(),
            format!("{}:{}", nodes[0].lan, control_port(&secret)),
        ],
    );
    let (v4_1, _) = nodes[0].mesh_ips();
    assert!(
        d4.wait_ping(&v4_1, Duration::from_secs(30)).is_some(),
        "d4 (dead DHT bootstrap) cannot reach d1 through --peer:\n{}",
        d4.log_tail(30)
    );
    let meshed = t3.elapsed();
    let d = dht_when(&d4, Duration::from_secs(30), |d| {
        d["bootstrap_failures"].as_u64() >= Some(2)
    });
    assert_eq!(d["state"], "backing-off", "d4: {d}");
    assert!(d["retry_in_secs"].as_u64() <= Some(75), "d4: {d}");
    pass(&format!(
        "d4 with a dead --dht-bootstrap reached d1 through --peer in {:.1} s while the DHT backed off ({} failures, next try in {} s)",
        meshed.as_secs_f64(),
        d["bootstrap_failures"],
        d["retry_in_secs"]
    ));
    d4.stop();

    if std::env::var_os("WGMESH_DHT_SKIP_ROAM").is_some() {
        println!("  (roaming through BEP 44 items skipped: WGMESH_DHT_SKIP_ROAM)");
        return;
    }
    println!("== two nodes roam at once and find each other again through their BEP 44 items");
    nodes[2].stop();
    let (ns1, ns2) = (nodes[0].ns.clone(), nodes[1].ns.clone());
    let t2 = Instant::now();
    net.move_site(&ns1, 1, 2, 3);
    net.move_site(&ns2, 2, 2, 3);
    let (v4_2, _) = nodes[1].mesh_ips();
    let (v4_1, _) = nodes[0].mesh_ips();
    let limit = Duration::from_secs(240);
    let ok = nodes[0].wait_ping(&v4_2, limit).is_some()
        && nodes[1]
            .wait_ping(&v4_1, limit.saturating_sub(t2.elapsed()))
            .is_some();
    assert!(
        ok,
        "d1 and d2 did not find each other again within {limit:?}\n--- d1:\n{}\n--- d2:\n{}",
        nodes[0].log_tail(40),
        nodes[1].log_tail(40)
    );
    let newer: u64 = nodes[..2]
        .iter()
        .map(|n| dht_block(n)["items_newer"].as_u64().unwrap_or(0))
        .sum();
    assert!(newer >= 1, "no node used a DHT item to find the other");
    pass(&format!(
        "d1 and d2 both moved; they ping again after {:.1} s, found through {newer} fetched item(s)",
        t2.elapsed().as_secs_f64()
    ));
}
