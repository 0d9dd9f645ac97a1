//! STUN / NAT-type tests: coturn (RFC 5780, two addresses) in an "internet" namespace, NAT
//! routers made with nftables, and real `wgmesh netcheck` / `wgmesh up` processes behind them.
//! Asserts the classifications on `wgmesh netcheck --json` (cone with port preserved,
//! symmetric, UDP blocked → unknown, and full cone through the RFC 5780 filtering test), that a
//! daemon behind the cone NAT publishes its STUN candidate (its own `show`) and NAT type (a
//! public peer's `show`), lists global vs ULA IPv6 addresses with the right kinds, and that
//! after an address change (roaming onto a symmetric NAT) it re-checks and re-publishes within
//! 2 s. Prints PASS lines and figures; everything is torn down at the end.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wgmesh_netns_tests::daemon::{Node, new_secret_file, wgmesh_bin};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::nat::{Internet, NatMode, STUN_1, STUN_2, Site};
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::suite::{pass, run_suite};

/// `wgmesh netcheck --json` in `ns` against `servers`.
fn netcheck(ns: &str, servers: &[&str]) -> Value {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(wgmesh_bin())
        .args(["netcheck", "--json"]);
    for s in servers {
        cmd.args(["--stun", s]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run netcheck: {e}"));
    assert!(
        out.status.success(),
        "netcheck in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netcheck output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn latencies(v: &Value) -> String {
    v["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| match s["latency_ms"].as_f64() {
                    Some(ms) => format!("{} {ms:.2} ms", s["address"].as_str().unwrap_or("?")),
                    None => format!("{} no answer", s["address"].as_str().unwrap_or("?")),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn expect(v: &Value, path: &[&str], want: Value, what: &str) {
    let got = path.iter().fold(v, |v, k| &v[*k]);
    assert_eq!(
        *got,
        want,
        "{what}: {} is {got}, want {want}\n{v:#}",
        path.join(".")
    );
}

fn public_ip(v: &Value) -> String {
    v["ipv4"]["public"]
        .as_str()
        .and_then(|s| s.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string())
        .unwrap_or_default()
}

fn main() {
    preflight::require(true, "NAT tests");
    if !std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("turnserver").is_file()))
    {
        if std::env::var(preflight::SKIP_ENV).as_deref() == Ok("1") {
            println!(
                "SKIP NAT tests: {}=1 and turnserver (coturn) is missing",
                preflight::SKIP_ENV
            );
            return;
        }
        eprintln!(
            "FAIL NAT tests: `turnserver` missing (apt-get install coturn; netns-tests/install-deps.sh does)"
        );
        std::process::exit(2);
    }
    run_suite("NAT tests", run);
}

fn run(lab: &Lab) {
    let mut inet = Internet::new(lab);
    let a = inet.site(lab, "a", 1, NatMode::Cone);
    let b = inet.site(lab, "b", 2, NatMode::Symmetric);
    let c = inet.site(lab, "c", 3, NatMode::Blocked);
    let d = inet.site(lab, "d", 4, NatMode::FullCone);
    inet.start_coturn(lab);
    println!("== wgmesh netcheck against coturn (RFC 5780, 192.0.2.1 + 192.0.2.2)");

    let v = netcheck(&a.host_ns, &[STUN_1, STUN_2]);
    expect(&v, &["udp"], true.into(), "cone");
    expect(
        &v,
        &["ipv4", "nat_type"],
        "port-restricted-cone".into(),
        "cone",
    );
    expect(
        &v,
        &["ipv4", "mapping"],
        "endpoint-independent".into(),
        "cone",
    );
    expect(&v, &["ipv4", "port_preserved"], true.into(), "cone");
    expect(
        &v,
        &["ipv4", "filtering"],
        "address-and-port-dependent".into(),
        "cone",
    );
    assert_eq!(
        public_ip(&v),
        a.wan,
        "cone: public address is the NAT's WAN\n{v:#}"
    );
    pass(&format!(
        "cone NAT: {} ({}, port preserved, {}), public {}; latency {}; {} ms",
        v["ipv4"]["nat_type"].as_str().unwrap_or_default(),
        v["ipv4"]["mapping"].as_str().unwrap_or_default(),
        v["ipv4"]["filtering"].as_str().unwrap_or_default(),
        v["ipv4"]["public"].as_str().unwrap_or_default(),
        latencies(&v),
        v["duration_ms"]
    ));

    let out = Command::new("ip")
        .args(["netns", "exec", &a.host_ns])
        .arg(wgmesh_bin())
        .args(["netcheck", "--stun", &format!("{STUN_1},{STUN_2}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run netcheck: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nat type: port-restricted-cone")
            && text.contains("mapping: endpoint-independent, port preserved"),
        "netcheck text output:\n{text}"
    );
    pass("netcheck text output says the same:");
    for line in text.lines() {
        println!("      {line}");
    }

    let v = netcheck(&a.host_ns, &[STUN_1]);
    expect(
        &v,
        &["ipv4", "mapping"],
        "endpoint-independent".into(),
        "one RFC 5780 server",
    );
    expect(
        &v,
        &["ipv4", "nat_type"],
        "port-restricted-cone".into(),
        "one RFC 5780 server",
    );
    assert!(
        v["alternate"]["reachable"].as_bool() == Some(true),
        "alternate address asked\n{v:#}"
    );
    pass(&format!(
        "one RFC 5780 server is enough: its alternate address {} gives the second mapping",
        v["alternate"]["address"].as_str().unwrap_or_default()
    ));

    let v = netcheck(&d.host_ns, &[STUN_1, STUN_2]);
    expect(&v, &["ipv4", "nat_type"], "full-cone".into(), "full cone");
    expect(
        &v,
        &["ipv4", "filtering"],
        "endpoint-independent".into(),
        "full cone",
    );
    expect(&v, &["ipv4", "port_preserved"], true.into(), "full cone");
    pass(&format!(
        "full-cone NAT (RFC 5780 filtering test): full-cone (endpoint-independent mapping and filtering); {} ms",
        v["duration_ms"]
    ));

    let v = netcheck(&b.host_ns, &[STUN_1, STUN_2]);
    expect(&v, &["udp"], true.into(), "symmetric");
    expect(&v, &["ipv4", "nat_type"], "symmetric".into(), "symmetric");
    expect(
        &v,
        &["ipv4", "mapping"],
        "endpoint-dependent".into(),
        "symmetric",
    );
    assert_eq!(
        public_ip(&v),
        b.wan,
        "symmetric: public address is the NAT's WAN\n{v:#}"
    );
    let mapped: Vec<&str> = v["servers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["mapped"].as_str()).collect())
        .unwrap_or_default();
    pass(&format!(
        "symmetric NAT: symmetric (endpoint-dependent: {}); latency {}; {} ms",
        mapped.join(" vs "),
        latencies(&v),
        v["duration_ms"]
    ));

    let v = netcheck(&c.host_ns, &[STUN_1, STUN_2]);
    expect(&v, &["udp"], false.into(), "blocked");
    expect(&v, &["ipv4", "nat_type"], "unknown".into(), "blocked");
    expect(&v, &["ipv4", "public"], Value::Null, "blocked");
    pass(&format!(
        "UDP blocked: unknown, no public address (udp: false); {} ms",
        v["duration_ms"]
    ));

    daemon_checks(lab, &inet, &a);
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

/// The NAT type a node's peer `key` has in its `show`.
fn peer_nat(node: &Node, key: &str) -> Option<String> {
    node.show()?["peers"]
        .as_array()?
        .iter()
        .find(|p| p["public_key"] == key)
        .and_then(|p| p["nat_type"].as_str().map(str::to_string))
}

/// The daemon behind the cone NAT publishes its STUN candidate, then roams onto a symmetric
/// NAT and re-checks within 2 s.
fn daemon_checks(lab: &Lab, inet: &Internet, a: &Site) {
    println!(
        "== a daemon behind the cone NAT (STUN from its control port), a peer on a public address"
    );
    let secret = new_secret_file(lab, "nat");
    let cport = control_port(&secret);
    let mut public = Node::new(
        lab,
        "p",
        inet.ns.clone(),
        [198, 51, a.n, 1].into(),
        &secret,
        9392,
    );
    public.start(lab, &["--no-lan-discovery".into()]);
    let mut node = Node::new(
        lab,
        "a",
        a.host_ns.clone(),
        [10, 0, a.n, 11].into(),
        &secret,
        9391,
    );
    let t0 = Instant::now();
    node.start(
        lab,
        &[
            "--no-lan-discovery".into(),
            "--stun".into(),
            format!("{STUN_1},{STUN_2}"),
            "--peer".into(),
            format!("198.51.{}.1:{cport}", a.n),
        ],
    );
    let show = wait_show(&node, Duration::from_secs(10), |v| {
        v["interface"]["nat"]["filtering"].is_string()
    })
    .unwrap_or_else(|| {
        panic!(
            "no NAT check with filtering within 10 s:\n{}",
            node.log_tail(40)
        )
    });
    let i = &show["interface"];
    let wg_port = i["listen_port"].as_u64().unwrap_or(0);
    expect(
        &show,
        &["interface", "nat_type"],
        "port-restricted-cone".into(),
        "daemon",
    );
    expect(
        &show,
        &["interface", "nat", "port_preserved"],
        true.into(),
        "daemon",
    );
    let want = format!("{}:{wg_port}", a.wan);
    let stun: Vec<&str> = i["endpoint_candidates"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["kind"] == "stun")
                .filter_map(|c| c["address"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        stun,
        vec![want.as_str()],
        "STUN candidate in the record\n{show:#}"
    );
    pass(&format!(
        "daemon: {} (public endpoint {}), record lists STUN candidate {want}; first full check {:.1} s after start",
        i["nat_type"].as_str().unwrap_or_default(),
        i["public_endpoint"].as_str().unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    ));

    println!("== IPv6 addresses on the host: global ones are kind public-ipv6, ULA stays lan");
    let checks = show["interface"]["nat"]["checks"].as_u64().unwrap_or(0);
    for a6 in ["2001:470:1::11/64", "fd00:1::11/64"] {
        wgmesh_netns_tests::lab::sh(
            "ip",
            &[
                "-n", &a.host_ns, "-6", "addr", "add", a6, "dev", "eth0", "nodad",
            ],
        );
    }
    let global = format!("[2001:470:1::11]:{wg_port}");
    let ula = format!("[fd00:1::11]:{wg_port}");
    let has = |v: &Value, kind: &str, addr: &str| {
        v["interface"]["endpoint_candidates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["kind"] == kind && c["address"] == addr))
    };
    // Also wait for the re-check this change started to complete (filtering test included).
    let show = wait_show(&node, Duration::from_secs(10), |v| {
        has(v, "public-ipv6", &global)
            && has(v, "lan", &ula)
            && v["interface"]["nat"]["checks"].as_u64().unwrap_or(0) > checks
    })
    .unwrap_or_else(|| {
        panic!(
            "IPv6 candidates not published within 10 s:\n{}",
            node.log_tail(40)
        )
    });
    pass(&format!(
        "record lists {global} as public-ipv6 and {ula} as lan ({} candidates)",
        show["interface"]["endpoint_candidates"]
            .as_array()
            .map_or(0, Vec::len)
    ));

    let key = i["public_key"].as_str().unwrap_or_default().to_string();
    let t_peer = Instant::now();
    while peer_nat(&public, &key).as_deref() != Some("port-restricted-cone") {
        assert!(
            t_peer.elapsed() < Duration::from_secs(10),
            "the public peer never saw a's NAT type:\n{}",
            public.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pass("the public peer's `show` has a's re-published record, NAT type port-restricted-cone");

    println!("== roaming onto a symmetric NAT: re-check on the address change");
    let checked_at = show["interface"]["nat"]["checked_at_ms"]
        .as_u64()
        .unwrap_or(0);
    a.set_mode(lab, NatMode::Symmetric);
    let t0 = Instant::now();
    a.roam_host();
    let after = wait_show(&node, Duration::from_secs(10), |v| {
        v["interface"]["nat"]["checked_at_ms"].as_u64().unwrap_or(0) > checked_at
            && v["interface"]["nat_type"] == "symmetric"
    })
    .unwrap_or_else(|| {
        panic!(
            "no re-check to symmetric within 10 s:\n{}",
            node.log_tail(40)
        )
    });
    let delay = t0.elapsed();
    let stun_now: Vec<String> = after["interface"]["endpoint_candidates"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["kind"] == "stun")
                .filter_map(|c| c["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        delay <= Duration::from_secs(2),
        "re-check took {delay:?} (> 2 s)\n{}",
        node.log_tail(30)
    );
    pass(&format!(
        "address change -> re-checked and re-published as symmetric in {:.2} s (STUN candidates now {stun_now:?})",
        delay.as_secs_f64()
    ));
    node.stop();
    public.stop();
    let _ = std::fs::remove_file(&secret);
}

fn wait_show(node: &Node, limit: Duration, ok: impl Fn(&Value) -> bool) -> Option<Value> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = node.show().filter(|v| ok(v)) {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
