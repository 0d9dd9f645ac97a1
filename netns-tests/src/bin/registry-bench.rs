//! Load benchmark of `wgmesh registry serve` (release build, in a namespace of its own, over
//! HTTPS): 1000 simulated nodes of one mesh each publish their sealed record (PUT) and fetch
//! the mesh's list (GET), over 32 keep-alive connections; prints requests/s and p50/p99
//! latency per kind. `WGMESH_BENCH_NODES` and `WGMESH_BENCH_CONNECTIONS` change the load.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wgmesh::proto::registry::{self, decode_list};
use wgmesh::proto::{MeshKeys, MeshSecret};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::nsexec::NsExec;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::registry::{
    Client, Server, SimNode, TestCert, entries_path, slot_path, unix_secs,
};
use wgmesh_netns_tests::suite::{pass, run_suite};

const LISTEN: &str = "127.0.0.1:8443";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    preflight::require(false, "registry bench");
    run_suite("registry bench", run);
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn run(lab: &Lab) {
    let nodes_n = env_or("WGMESH_BENCH_NODES", 1000);
    let conns = env_or("WGMESH_BENCH_CONNECTIONS", 32).max(1);
    let ns = lab.add_ns("regbench");
    let exec = NsExec::new(Some(&ns)).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!(
        "{}-regbench-{:08x}",
        lab.id,
        rand_core::RngCore::next_u32(&mut rand_core::OsRng)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cert = TestCert::new(&dir);
    let listen: SocketAddr = LISTEN.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut server = Server::new(Some(ns), listen, dir.join("data"), dir.join("server.log"));
    let flags = [
        "--rate",
        "1000000/s",
        "--burst",
        "1000000",
        "--max-connections-per-ip",
        "1024",
    ]
    .map(String::from);
    server.start(lab, &cert, &flags);

    let keys = MeshKeys::derive(&MeshSecret::generate());
    let member = registry::member_key(&keys);
    let rid = keys.registry_id();
    let seq = unix_secs() * 1000;
    // (PUT path, entry bytes) of every node, built before the clock starts
    let work: Vec<(String, Vec<u8>)> = (0..nodes_n as u32)
        .map(|i| {
            let n = SimNode::new(&keys, "bench", i);
            (
                slot_path(&rid, &n.slot_public()),
                n.entry(&keys, seq, 3600).encode(),
            )
        })
        .collect();
    let entry_bytes = work.iter().map(|(_, e)| e.len()).sum::<usize>() / work.len().max(1);
    let connector = cert.connector();
    let list_path = entries_path(&rid);

    let t0 = Instant::now();
    let (mut puts, mut gets, fetched) = exec.run(move || async move {
        let mut tasks = Vec::new();
        for w in 0..conns {
            let mine: Vec<(String, Vec<u8>)> =
                work.iter().skip(w).step_by(conns).cloned().collect();
            let (connector, member, list_path) =
                (connector.clone(), member.clone(), list_path.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(listen, &connector)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let (mut puts, mut gets, mut bytes) = (Vec::new(), Vec::new(), 0usize);
                for (path, entry) in mine {
                    let t = Instant::now();
                    let a = c
                        .send(Some(&member), "PUT", &path, entry, unix_secs())
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    puts.push(t.elapsed());
                    assert_eq!(a.status, 204, "PUT: {}", String::from_utf8_lossy(&a.body));
                    let t = Instant::now();
                    let a = c
                        .send(Some(&member), "GET", &list_path, vec![], unix_secs())
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    gets.push(t.elapsed());
                    assert_eq!(a.status, 200);
                    bytes += a.body.len();
                }
                (puts, gets, bytes)
            }));
        }
        let (mut puts, mut gets, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for t in tasks {
            let (p, g, b) = t.await.unwrap_or_else(|e| panic!("bench task: {e}"));
            puts.extend(p);
            gets.extend(g);
            bytes += b;
        }
        (puts, gets, bytes)
    });
    let wall = t0.elapsed();
    puts.sort();
    gets.sort();

    // every node's entry is listed at the end
    let final_list = exec.run({
        let connector = cert.connector();
        let member = registry::member_key(&keys);
        let path = entries_path(&rid);
        move || async move {
            let mut c = Client::connect(listen, &connector)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            c.send(Some(&member), "GET", &path, vec![], unix_secs())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    });
    let listed = decode_list(&final_list.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), nodes_n, "every published entry is listed");

    let requests = puts.len() + gets.len();
    println!(
        "registry bench: {nodes_n} nodes x (publish + fetch) over HTTPS on {conns} connections: {requests} requests in {:.2} s = {:.0} requests/s",
        wall.as_secs_f64(),
        requests as f64 / wall.as_secs_f64()
    );
    println!(
        "  publish (PUT, {entry_bytes} B entry): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&puts, 0.5),
        percentile(&puts, 0.99),
        percentile(&puts, 1.0)
    );
    println!(
        "  fetch (GET, list of up to {nodes_n} entries, {:.0} KiB on average): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        fetched as f64 / gets.len().max(1) as f64 / 1024.0,
        percentile(&gets, 0.5),
        percentile(&gets, 0.99),
        percentile(&gets, 1.0)
    );
    pass(&format!(
        "{nodes_n} publishes and fetches answered 204/200; the final list holds all {nodes_n} entries"
    ));
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
