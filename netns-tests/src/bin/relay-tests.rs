//! Relay fallback with real daemons (issue 7, "Relay fallback" and "Failover"): three routed
//! sites (no shared LAN, so nothing is "on the LAN"), n3 an introducer, n1 and n2 given only
//! `--peer n3`. They mesh directly; then the router drops every packet between n1 and n2
//! during a running ping: traffic continues through n3 (the measured gap is printed and must
//! stay within 10 s), both sides show `relay via …`; after the cut is lifted both go direct
//! again within 60 s.
#![forbid(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wgmesh_netns_tests::daemon::{
    Node, all_pairs_ping, control_port, new_secret_file, ping_reply_times, unix_now, wait_until,
};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::routed::RoutedSites;
use wgmesh_netns_tests::suite::{pass, run_suite};

const GAP_LIMIT: Duration = Duration::from_secs(10);
const BACK_DIRECT_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    preflight::require(true, "relay tests");
    run_suite("relay tests", run);
}

/// The path `from` shows for `to` in `wgmesh show --json`.
fn path_to(from: &Node, to_key: &str) -> String {
    from.show().unwrap_or_default()["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["public_key"] == to_key)
        .and_then(|p| p["path"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn run(lab: &Lab) {
    // Sites on 172.29.i.0/24: outside 10/8, where the mesh derives its subnet (a 10.x site
    // network could be the mesh's own and be routed into the tunnel).
    println!("== three routed sites, n3 an introducer, n1 and n2 know only n3");
    let sites = RoutedSites::new(lab, 29);
    let secret = new_secret_file(lab, "mesh");
    let cport = control_port(&secret);
    let mut nodes: Vec<Node> = (1..=3u8)
        .map(|i| {
            let ns = sites.site(lab, &format!("s{i}"), i);
            let lan = sites.host_ip(i);
            Node::new(lab, &format!("r{i}"), ns, lan, &secret, 9500 + u16::from(i))
        })
        .collect();
    let seed = format!("172.29.3.10:{cport}");
    nodes[2].start(lab, &["--introducer".into()]);
    nodes[0].start(lab, &["--peer".into(), seed.clone()]);
    nodes[1].start(lab, &["--peer".into(), seed]);
    let took = all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(30));
    let (k1, k2) = (nodes[0].public_key(), nodes[1].public_key());
    assert_eq!(
        path_to(&nodes[0], &k2),
        "direct",
        "n1 -> n2 should start direct"
    );
    assert_eq!(
        path_to(&nodes[1], &k1),
        "direct",
        "n2 -> n1 should start direct"
    );
    pass(&format!(
        "every pair pings, n1 <-> n2 direct ({:.1} s)",
        took.as_secs_f64()
    ));

    println!("== the router drops everything between n1 and n2 during a running ping");
    let (n2_v4, _) = nodes[1].mesh_ips();
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &nodes[0].ns,
            "ping",
            "-D",
            "-n",
            "-i",
            "0.2",
        ])
        .args(["-W", "1", "-c", "250", &n2_v4])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ping: {e}"));
    lab.record_pid(ping.id());
    // Traffic flows for a while first (the daemon samples every second while it does).
    std::thread::sleep(Duration::from_secs(7));
    let cut_at = unix_now();
    sites.cut(1, 2);
    let relayed = wait_until(Duration::from_secs(20), || {
        path_to(&nodes[0], &k2).starts_with("relay via")
            && path_to(&nodes[1], &k1).starts_with("relay via")
    });
    let relayed = relayed.unwrap_or_else(|| {
        panic!(
            "n1 and n2 did not both move to the relay within 20 s of the cut (n1 -> n2: {:?}, n2 -> n1: {:?})\n--- n1 log:\n{}\n--- n2 log:\n{}",
            path_to(&nodes[0], &k2),
            path_to(&nodes[1], &k1),
            nodes[0].log_tail(30),
            nodes[1].log_tail(30)
        )
    });
    // Let the ping see the relayed path for a while, then read its replies.
    std::thread::sleep(Duration::from_secs(4));
    let back_from_cut = unix_now();
    // SIGINT: ping prints what it has and exits.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ping.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = ping
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let replies = ping_reply_times(&out);
    let before = replies.iter().rev().find(|t| **t <= cut_at).copied();
    let after = replies.iter().find(|t| **t > cut_at).copied();
    let (Some(before), Some(after)) = (before, after) else {
        panic!(
            "the ping saw no reply before and after the cut (cut at {cut_at}, until {back_from_cut}):\n{out}"
        );
    };
    let gap = after - before;
    println!(
        "    failover: last reply {:.1} s before the cut, first reply through the relay {:.1} s after it: gap {gap:.1} s; both sides relayed {:.1} s after the cut",
        cut_at - before,
        after - cut_at,
        relayed.as_secs_f64()
    );
    assert!(
        gap <= GAP_LIMIT.as_secs_f64(),
        "the ping gap across the failover was {gap:.1} s (limit {GAP_LIMIT:?})"
    );
    let (n1_v4, _) = nodes[0].mesh_ips();
    assert!(
        nodes[1].wait_ping(&n1_v4, Duration::from_secs(3)).is_some(),
        "n2 cannot ping n1 through the relay"
    );
    pass(&format!(
        "traffic continued through the relay: gap {gap:.1} s, both sides show `relay via …`"
    ));

    println!("== the cut is lifted: both go direct again");
    sites.uncut();
    let back = wait_until(BACK_DIRECT_LIMIT, || {
        path_to(&nodes[0], &k2) == "direct" && path_to(&nodes[1], &k1) == "direct"
    })
    .unwrap_or_else(|| {
        panic!(
            "n1 and n2 were not both direct within {BACK_DIRECT_LIMIT:?} of lifting the cut (n1 -> n2: {:?}, n2 -> n1: {:?})",
            path_to(&nodes[0], &k2),
            path_to(&nodes[1], &k1)
        )
    });
    assert!(
        nodes[0].wait_ping(&n2_v4, Duration::from_secs(5)).is_some(),
        "n1 cannot ping n2 directly after the cut was lifted"
    );
    let show: Value = nodes[0].show().unwrap_or_default();
    let endpoint = show["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["public_key"] == k2.as_str())
        .and_then(|p| p["endpoint"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert_eq!(
        endpoint, "172.29.2.10:51820",
        "n1's entry for n2 points at n2 again"
    );
    pass(&format!(
        "both direct again {:.1} s after the cut was lifted, and ping",
        back.as_secs_f64()
    ));
    for n in nodes.iter_mut() {
        n.stop();
    }
    let _ = std::fs::remove_file(&secret);
}
