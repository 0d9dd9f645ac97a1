//! Load benchmark of `wgmesh registry serve` (release build, in a namespace of its own, over
//! HTTPS): 1000 simulated nodes of one mesh each open their own TLS connection, publish their
//! sealed record (PUT) and fetch the mesh's list (GET), 32 nodes at a time; 3 rounds (the
//! first stores, the others replace with a newer seq). Prints requests/s and p50/p99 latency
//! per kind. `WGMESH_BENCH_NODES`, `WGMESH_BENCH_CONNECTIONS` (nodes at a time) and
//! `WGMESH_BENCH_ROUNDS` change the load.
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

/// Latencies measured by the bench clients.
#[derive(Default)]
struct Timings {
    connects: Vec<Duration>,
    puts: Vec<Duration>,
    gets: Vec<Duration>,
    fetched: usize,
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
    let rounds = env_or("WGMESH_BENCH_ROUNDS", 3).max(1);
    let ns = lab.add_ns("regbench");
    let exec = NsExec::new(Some(&ns)).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!(
        "registry-bench-{}-{:08x}",
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
    // (PUT path, entry bytes of each round) of every node, built before the clock starts
    let work: Vec<(String, Vec<Vec<u8>>)> = (0..nodes_n as u32)
        .map(|i| {
            let n = SimNode::new(&keys, "bench", i);
            let entries = (0..rounds as u64)
                .map(|r| n.entry(&keys, seq + r, 3600).encode())
                .collect();
            (slot_path(&rid, &n.slot_public()), entries)
        })
        .collect();
    let entry_bytes = work.iter().map(|(_, e)| e[0].len()).sum::<usize>() / work.len().max(1);
    let connector = cert.connector();
    let list_path = entries_path(&rid);

    let t0 = Instant::now();
    let mut timings = exec.run(move || async move {
        let mut all = Timings::default();
        for round in 0..rounds {
            let mut tasks = Vec::new();
            for w in 0..conns {
                let mine: Vec<(String, Vec<u8>)> = work
                    .iter()
                    .skip(w)
                    .step_by(conns)
                    .map(|(path, entries)| (path.clone(), entries[round].clone()))
                    .collect();
                let (connector, member, list_path) =
                    (connector.clone(), member.clone(), list_path.clone());
                tasks.push(tokio::spawn(async move {
                    let mut t = Timings::default();
                    // each node: its own TLS connection, publish, fetch the list, hang up
                    for (path, entry) in mine {
                        let t0 = Instant::now();
                        let mut c = Client::connect(listen, &connector)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        t.connects.push(t0.elapsed());
                        let t0 = Instant::now();
                        let a = c
                            .send(Some(&member), "PUT", &path, entry, unix_secs())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        t.puts.push(t0.elapsed());
                        assert_eq!(a.status, 204, "PUT: {}", String::from_utf8_lossy(&a.body));
                        let t0 = Instant::now();
                        let a = c
                            .send(Some(&member), "GET", &list_path, vec![], unix_secs())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        t.gets.push(t0.elapsed());
                        assert_eq!(a.status, 200);
                        t.fetched += a.body.len();
                    }
                    t
                }));
            }
            for task in tasks {
                let t = task.await.unwrap_or_else(|e| panic!("bench task: {e}"));
                all.connects.extend(t.connects);
                all.puts.extend(t.puts);
                all.gets.extend(t.gets);
                all.fetched += t.fetched;
            }
        }
        all
    });
    let wall = t0.elapsed();
    timings.connects.sort();
    timings.puts.sort();
    timings.gets.sort();
    let (puts, gets, fetched) = (&timings.puts, &timings.gets, timings.fetched);

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
        "registry bench: {nodes_n} nodes x {rounds} rounds of (TLS connect + publish + fetch), {conns} nodes at a time: {requests} requests in {:.2} s = {:.0} requests/s ({:.0} nodes/s)",
        wall.as_secs_f64(),
        requests as f64 / wall.as_secs_f64(),
        (nodes_n * rounds) as f64 / wall.as_secs_f64()
    );
    println!(
        "  TLS connect: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&timings.connects, 0.5),
        percentile(&timings.connects, 0.99)
    );
    println!(
        "  publish (PUT, {entry_bytes} B entry): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(puts, 0.5),
        percentile(puts, 0.99),
        percentile(puts, 1.0)
    );
    println!(
        "  fetch (GET, list of up to {nodes_n} entries, {:.0} KiB on average): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        fetched as f64 / gets.len().max(1) as f64 / 1024.0,
        percentile(gets, 0.5),
        percentile(gets, 0.99),
        percentile(gets, 1.0)
    );
    pass(&format!(
        "{nodes_n} publishes and fetches answered 204/200; the final list holds all {nodes_n} entries"
    ));
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
