//! Time-to-mesh benchmark: N real nodes on one bridged LAN, no `--peer`, no cache; the time
//! from the last daemon start (its control socket answers) until every ordered pair pings over
//! mesh IPv4. 5 runs each for 3 and 6 nodes; prints median and max. Goal (issue "discovery
//! I"): median ≤ 1.5 s for 3 nodes. Prints figures; fails only if a mesh does not form.

use std::time::{Duration, Instant};

use wgmesh_netns_tests::daemon::{LanSite, Node, new_secret_file};
use wgmesh_netns_tests::lab::{Lab, sh_ok};
use wgmesh_netns_tests::preflight;

fn one_run(lab: &Lab, site: &LanSite, secret: &std::path::Path, n: u8, run: u32) -> Duration {
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| {
            let (ns, lan) = site.host_named(lab, &format!("r{run}h{i}"), i);
            Node::new(
                lab,
                &format!("r{run}n{i}"),
                ns,
                lan,
                secret,
                9500 + u16::from(i),
            )
        })
        .collect();
    for node in nodes.iter_mut() {
        node.start(lab, &[]);
    }
    let t0 = Instant::now();
    let ips: Vec<String> = nodes.iter().map(|x| x.mesh_ips().0).collect();
    for a in &nodes {
        for (j, ip) in ips.iter().enumerate() {
            if a.name == nodes[j].name {
                continue;
            }
            if a.wait_ping(ip, Duration::from_secs(30).saturating_sub(t0.elapsed()))
                .is_none()
            {
                panic!("{} cannot ping {ip}:\n{}", a.name, a.log_tail(20));
            }
        }
    }
    let took = t0.elapsed();
    for node in nodes.iter_mut() {
        node.stop();
    }
    for node in &nodes {
        let _ = sh_ok("ip", &["netns", "del", &node.ns]);
    }
    took
}

fn main() {
    preflight::require(true, "time-to-mesh benchmark");
    let lab = Lab::new();
    let result = std::panic::catch_unwind(|| {
        let site = LanSite::new(&lab);
        let secret = new_secret_file(&lab, "tt");
        let mut run = 0;
        for n in [3u8, 6] {
            let mut times: Vec<Duration> = (0..5)
                .map(|_| {
                    run += 1;
                    one_run(&lab, &site, &secret, n, run)
                })
                .collect();
            times.sort();
            let ms: Vec<String> = times.iter().map(|t| format!("{}", t.as_millis())).collect();
            println!(
                "time-to-mesh, {n} nodes on one LAN (last start -> all {} pairs ping), 5 runs: median {:.2} s, max {:.2} s  [ms: {}]",
                u32::from(n) * (u32::from(n) - 1),
                times[2].as_secs_f64(),
                times[4].as_secs_f64(),
                ms.join(" ")
            );
        }
        let _ = std::fs::remove_file(&secret);
    });
    wgmesh_netns_tests::lab::cleanup_all();
    if result.is_err() {
        std::process::exit(1);
    }
}
