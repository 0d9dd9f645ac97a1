//! The discovery simulation as a benchmark (figures, not a timed test): 1000 nodes start
//! within 5 s, each knowing 3 earlier nodes (what a DHT lookup gives), then peer exchange and
//! in-mesh gossip under virtual time, 10–80 ms latency and 1 % loss. Prints the time until
//! every node knows every other and the control bytes/s per node during convergence and in the
//! steady state. Goals (issue "Discovery I"): ≤ 30 virtual seconds, ≤ 5 KB/s per node.
//!
//! `cargo bench --bench mesh_sim [-- NODES [SEED [greet|no-greet]]]`; `netns-tests/bench-sim.sh`
//! runs it.

use std::time::Instant;

use wgmesh::discovery::sim::{SimConfig, run};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let nodes = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seed = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let modes: &[bool] = match args.get(2).map(String::as_str) {
        Some("greet") => &[true],
        Some("no-greet") => &[false],
        _ => &[true, false],
    };
    for &greet in modes {
        let t0 = Instant::now();
        let mut config = SimConfig {
            nodes,
            seed,
            greet,
            ..SimConfig::default()
        };
        // Experiments: WGMESH_SIM_CATCH_UP_MS, WGMESH_SIM_PATIENCE, WGMESH_SIM_RECORDS_MESSAGES,
        // WGMESH_SIM_GREET_BELOW (greet only while holding fewer peers).
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(ms) = env("WGMESH_SIM_CATCH_UP_MS") {
            config.gossip.catch_up_every = std::time::Duration::from_millis(ms);
        }
        if let Some(p) = env("WGMESH_SIM_PATIENCE") {
            config.gossip.patience = p as u32;
        }
        if let Some(m) = env("WGMESH_SIM_RECORDS_MESSAGES") {
            config.exchange.max_records_messages = m as usize;
        }
        if let Some(n) = env("WGMESH_SIM_GREET_BELOW") {
            config.greet_below = n as usize;
        }
        let capped = if config.greet_below == usize::MAX {
            String::new()
        } else {
            format!(", only below {} peers", config.greet_below)
        };
        let report = run(config);
        println!(
            "== mesh simulation, seed {seed}, greeting of transitive peers {}{capped} ({:.1} s of real time)",
            if greet {
                "on (the daemon's behaviour)"
            } else {
                "off"
            },
            t0.elapsed().as_secs_f64()
        );
        println!("{report}");
    }
}
