//! Hostile input against real daemons in namespaces (issue 6, "Hostile input"):
//! 1. forged, replayed, wrong-mesh, oversized and truncated datagrams sent to the control
//!    socket and to the LAN discovery socket are each dropped and counted under their reason
//!    (`wgmesh_rejected_messages_total{reason=…}`);
//! 2. a flood of 20 000 datagrams/s for 10 s from 1000 spoofed source addresses (raw socket in
//!    an attacker namespace on the LAN: garbage, another mesh's envelopes, and a replayed valid
//!    hello) leaves the mesh working — the two nodes keep pinging, a third node joins during
//!    the flood — and the daemon's memory bounded (RSS printed before/after).
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use wgmesh_netns_tests::daemon::{
    LanSite, Node, all_pairs_ping, control_port, new_secret_file, status_kib,
};
use wgmesh_netns_tests::hostile::{self, Crafter, FloodDatagram};
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::nsexec::NsExec;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::suite::{pass, run_suite};

const REJECTED: &str = "wgmesh_rejected_messages_total";
const LAN_PORT: u16 = 51830;
const FLOOD_RATE: u64 = 20_000;
const FLOOD_FOR: Duration = Duration::from_secs(10);
const SPOOFED_SOURCES: usize = 1000;

fn main() {
    preflight::require(true, "hostile-input tests");
    run_suite("hostile-input tests", run);
}

fn run(lab: &Lab) {
    let site = LanSite::new(lab);
    let secret = new_secret_file(lab, "mesh");
    let cport = control_port(&secret);
    let mut nodes: Vec<Node> = (1..=3u8)
        .map(|i| {
            let (ns, lan) = site.host(lab, i);
            Node::new(lab, &format!("x{i}"), ns, lan, &secret, 9400 + u16::from(i))
        })
        .collect();
    for n in nodes.iter_mut().take(2) {
        n.start(lab, &[]);
    }
    all_pairs_ping(&[&nodes[0], &nodes[1]], Duration::from_secs(20));
    let (atk_ns, atk_ip) = site.host_named(lab, "atk", 89);
    let attacker = NsExec::new(Some(&atk_ns)).unwrap_or_else(|e| panic!("{e}"));
    let target = match nodes[0].lan {
        std::net::IpAddr::V4(a) => a,
        other => panic!("x1 has no IPv4 LAN address: {other}"),
    };

    each_bad_datagram_is_counted_by_reason(&nodes[0], &attacker, &secret, target, cport);
    flood_leaves_the_mesh_working(lab, &mut nodes, attacker, &secret, target, cport, atk_ip);

    for n in nodes.iter_mut() {
        n.stop();
    }
    let _ = std::fs::remove_file(&secret);
}

/// Sends each datagram from the attacker's own address to `to`.
fn send_from(attacker: &NsExec, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
    attacker.sync(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("bind: {e}"));
        for d in datagrams {
            socket
                .send_to(&d, to)
                .unwrap_or_else(|e| panic!("send to {to}: {e}"));
        }
    });
}

fn each_bad_datagram_is_counted_by_reason(
    node: &Node,
    attacker: &NsExec,
    secret: &std::path::Path,
    target: Ipv4Addr,
    cport: u16,
) {
    println!("== forged, replayed, wrong-mesh, oversized and truncated datagrams to every socket");
    let crafter = Crafter::new(secret);
    const COPIES: usize = 3;
    for (socket, port) in [("control socket", cport), ("LAN socket", LAN_PORT)] {
        let to = SocketAddr::from((target, port));
        // The crafter's member identity first announces sequence 2, so sequence 1 is a replay.
        send_from(attacker, to, vec![crafter.announce(2)]);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", hostile::truncated(), "truncated"),
            ("oversized", hostile::oversized(), "size"),
            ("wrong mesh", crafter.wrong_mesh_announce(), "decrypt"),
            ("forged signature", crafter.forged_announce(), "signature"),
            ("replayed older record", crafter.announce(1), "stale"),
        ];
        for (what, datagram, reason) in cases {
            let label = format!("reason=\"{reason}\"");
            let before = node.metric_with(REJECTED, &label);
            send_from(attacker, to, vec![datagram; COPIES]);
            let want = before + COPIES as f64;
            let t0 = Instant::now();
            let mut now = before;
            while t0.elapsed() < Duration::from_secs(3) {
                now = node.metric_with(REJECTED, &label);
                if now >= want {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                now >= want,
                "{socket}: {COPIES} {what} datagrams should be counted as {label} (was {before}, now {now})\n{}",
                node.log_tail(20)
            );
            pass(&format!(
                "{socket}: {COPIES} {what} datagrams dropped, counted as {REJECTED}{{{label}}}"
            ));
        }
    }
}

/// `RcvbufErrors` of UDP in namespace `ns` (datagrams dropped because a socket's buffer was
/// full), from `/proc/net/snmp` as seen in that namespace.
fn udp_receive_drops(ns: &str) -> u64 {
    let snmp = sh("ip", &["netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// `utime + stime` of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn flood_leaves_the_mesh_working(
    lab: &Lab,
    nodes: &mut [Node],
    attacker: NsExec,
    secret: &std::path::Path,
    target: Ipv4Addr,
    cport: u16,
    atk_ip: std::net::IpAddr,
) {
    println!(
        "== a flood of {FLOOD_RATE} datagrams/s for {} s from {SPOOFED_SOURCES} spoofed sources",
        FLOOD_FOR.as_secs()
    );
    // Answers to the spoofed sources go back to the attacker's namespace, which drops them.
    sh(
        "ip",
        &[
            "-n",
            &nodes[0].ns,
            "route",
            "add",
            "198.18.0.0/15",
            "via",
            &atk_ip.to_string(),
        ],
    );
    let crafter = Crafter::new(secret);
    let wrong_mesh: Vec<Vec<u8>> = (0..8).map(|_| crafter.wrong_mesh_announce()).collect();
    let hello = crafter.hello(3);
    let datagrams: Vec<FloodDatagram> = (0..SPOOFED_SOURCES)
        .map(|i| {
            let src = Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8);
            let (port, payload) = match i % 4 {
                0 => (cport, hostile::truncated()),
                1 => (cport, wrong_mesh[i % 8].clone()),
                2 => (LAN_PORT, wrong_mesh[i % 8].clone()),
                _ => (cport, hello.clone()),
            };
            FloodDatagram {
                src,
                dst: SocketAddrV4::new(target, port),
                payload,
            }
        })
        .collect();
    let pid = nodes[0].pid.unwrap_or_else(|| panic!("x1 is not running"));
    let kernel_drops_before = udp_receive_drops(&nodes[0].ns);
    let rss_before = status_kib(pid, "VmRSS:");
    let cpu_before = cpu_seconds(pid);
    let reasons = ["ratelimit", "truncated", "decrypt", "amplification"];
    let rejected_before: Vec<f64> = reasons
        .iter()
        .map(|r| nodes[0].metric_with(REJECTED, &format!("reason=\"{r}\"")))
        .collect();

    let flooder = std::thread::spawn(move || {
        attacker.sync(move || hostile::flood(&datagrams, FLOOD_RATE, FLOOD_FOR))
    });
    let t0 = Instant::now();
    // During the flood: x1 keeps pinging x2, and x3 joins and meshes with both.
    let (x2_v4, _) = nodes[1].mesh_ips();
    let (mut pings, mut ok) = (0u32, 0u32);
    let mut joined: Option<Duration> = None;
    while t0.elapsed() < FLOOD_FOR - Duration::from_millis(500) {
        pings += 1;
        ok += u32::from(nodes[0].ping(&x2_v4));
        if joined.is_none() && t0.elapsed() > Duration::from_secs(2) {
            let t_join = Instant::now();
            nodes[2].start(lab, &[]);
            all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(6));
            joined = Some(t_join.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = flooder
        .join()
        .unwrap_or_else(|_| panic!("the flooder panicked"));
    let rss_during = status_kib(pid, "VmRSS:");
    let cpu = cpu_seconds(pid) - cpu_before;
    let rejected: Vec<String> = reasons
        .iter()
        .zip(&rejected_before)
        .map(|(r, b)| {
            let now = nodes[0].metric_with(REJECTED, &format!("reason=\"{r}\""));
            format!("{r} +{}", now - b)
        })
        .collect();
    println!(
        "    flood: {} datagrams sent in {:.1} s ({:.0}/s), {} send errors",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.sent as f64 / report.elapsed.as_secs_f64(),
        report.failed
    );
    println!(
        "    x1's kernel dropped {} datagrams its sockets had no room for (UDP RcvbufErrors)",
        udp_receive_drops(&nodes[0].ns) - kernel_drops_before
    );
    println!(
        "    x1: RSS {rss_before} KiB before, {rss_during} KiB after; CPU {cpu:.2} s over the flood; rejected: {}",
        rejected.join(", ")
    );
    let achieved = report.sent as f64 / report.elapsed.as_secs_f64();
    assert!(
        achieved >= FLOOD_RATE as f64 * 0.9,
        "the flooder reached only {achieved:.0} datagrams/s (wanted {FLOOD_RATE})"
    );
    let handled: f64 = reasons
        .iter()
        .zip(&rejected_before)
        .map(|(r, b)| nodes[0].metric_with(REJECTED, &format!("reason=\"{r}\"")) - b)
        .sum();
    assert!(
        handled > 1000.0,
        "the flood should have reached x1's sockets and been counted (counted {handled})"
    );
    assert!(
        rss_during < rss_before + 16 * 1024,
        "x1's memory grew from {rss_before} KiB to {rss_during} KiB under the flood"
    );
    assert!(
        f64::from(ok) >= f64::from(pings) * 0.9,
        "x1 -> x2 pings during the flood: {ok}/{pings}"
    );
    let joined = joined.unwrap_or_else(|| panic!("x3 did not get to join during the flood"));
    pass(&format!(
        "mesh kept working under the flood: x1 -> x2 {ok}/{pings} pings, x3 joined and all pairs pinged {:.1} s after its start; RSS {rss_before} -> {rss_during} KiB",
        joined.as_secs_f64()
    ));
    // The flood stopped: things are still fine afterwards.
    let took = all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], Duration::from_secs(10));
    pass(&format!(
        "after the flood every pair still pings ({:.1} s)",
        took.as_secs_f64()
    ));
}
