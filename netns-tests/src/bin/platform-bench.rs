//! Benchmark (prints figures; not a timed test): `platform-bench --backend userspace|kernel`.
//! In a fresh namespace: apply 1000 peers x 2 allowed IPs from empty, a no-change apply (must
//! make zero writes), and a change of 10 peers' endpoints — compared in the same run with
//! `wg setconf` of the same config (wireguard-tools' own netlink/UAPI path) and with a loop of
//! `wg set` invocations (what the old Go daemon did). Timings are medians of 5 rounds, except
//! the 1000 x `wg set` loop (1 round).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wgmesh::platform::linux::LinuxWireGuard;
use wgmesh::platform::{
    DeviceConfig, PeerConfig, PeerDiff, ResolvedBackend, WireGuardDevice, sync_peers,
};
use wgmesh_netns_tests::checks::{dump_matches, wg_dump};
use wgmesh_netns_tests::keys::{b64, keypair};
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::nsexec::NsExec;
use wgmesh_netns_tests::preflight;

const PEERS: usize = 1000;
const ROUNDS: usize = 5;

fn peers() -> Vec<PeerConfig> {
    (0..PEERS)
        .map(|i| {
            let (hi, lo) = (i / 250, i % 250 + 1);
            let mut p = PeerConfig::new(keypair().public);
            p.endpoint = Some(format!("198.18.{hi}.{lo}:51820").parse().expect("ep"));
            p.allowed_ips = vec![
                format!("10.100.{hi}.{lo}/32").parse().expect("ip"),
                format!("fd00:100::{hi}:{lo}/128").parse().expect("ip"),
            ];
            p
        })
        .collect()
}

fn conf_file(private: &[u8; 32], peers: &[PeerConfig]) -> String {
    let mut s = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n",
        b64(private)
    );
    for p in peers {
        let ips: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
        s.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\nEndpoint = {}\n",
            b64(&p.public_key),
            ips.join(", "),
            p.endpoint.map(|e| e.to_string()).unwrap_or_default()
        ));
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = match args
        .iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        Some("kernel") => ResolvedBackend::Kernel,
        _ => ResolvedBackend::Userspace,
    };
    preflight::require(
        backend == ResolvedBackend::Userspace,
        &format!("platform benchmark ({backend})"),
    );
    let lab = Lab::new();
    let ns = lab.add_ns("bench");
    let ex = NsExec::new(Some(&ns)).expect("executor");
    let ifn = lab.ifname("bench");
    lab.record_socket(&ifn);
    let name = ifn.clone();
    let dev = Arc::new(
        ex.run(move || async move { LinuxWireGuard::create(&name, backend).await })
            .expect("create"),
    );
    if let Some(pid) = dev.userspace_pid() {
        lab.record_pid(pid);
    }
    let kp = keypair();
    let cfg = DeviceConfig {
        private_key: kp.private,
        listen_port: Some(51820),
        fwmark: None,
    };
    let d = Arc::clone(&dev);
    ex.run(move || async move { d.configure(&cfg).await })
        .expect("configure");
    let all = peers();
    let conf_path = format!("/tmp/{}-bench.conf", lab.id);
    {
        let mut f = std::fs::File::create(&conf_path).expect("conf file");
        f.write_all(conf_file(&kp.private, &all).as_bytes())
            .expect("write conf");
    }

    let clear = |dev: &Arc<LinuxWireGuard>| {
        let d = Arc::clone(dev);
        ex.run(move || async move {
            let st = d.read().await?;
            let diff = PeerDiff {
                remove: st.peers.iter().map(|p| p.config.public_key).collect(),
                ..Default::default()
            };
            d.apply(&diff).await
        })
        .expect("clear");
    };
    let sync = |dev: &Arc<LinuxWireGuard>, want: &[PeerConfig]| {
        let d = Arc::clone(dev);
        let w = want.to_vec();
        let t = Instant::now();
        let r = ex
            .run(move || async move { sync_peers(d.as_ref(), &w).await })
            .expect("sync");
        (t.elapsed(), r.writes)
    };
    let check = |want: &[PeerConfig]| {
        let n = ifn.clone();
        let dump = ex.sync(move || wg_dump(&n)).expect("dump");
        dump_matches(&dump, want).expect("dump matches");
    };
    let run_wg = |args: Vec<String>| {
        let t = Instant::now();
        ex.sync(move || sh("wg", &args.iter().map(String::as_str).collect::<Vec<_>>()));
        t.elapsed()
    };

    // 1. from empty; wgmesh and `wg setconf` alternate so load changes hit both alike
    let mut ours_empty = Vec::new();
    let mut setconf_empty = Vec::new();
    let mut writes_empty = 0;
    for _ in 0..ROUNDS {
        clear(&dev);
        let (t, w) = sync(&dev, &all);
        ours_empty.push(t);
        writes_empty = w;
        check(&all);
        clear(&dev);
        setconf_empty.push(run_wg(vec![
            "setconf".into(),
            ifn.clone(),
            conf_path.clone(),
        ]));
    }
    check(&all);
    // 2. no change
    let mut ours_nochange = Vec::new();
    for _ in 0..ROUNDS {
        let (t, w) = sync(&dev, &all);
        assert_eq!(w, 0, "no-change apply must make zero writes");
        ours_nochange.push(t);
    }
    let mut setconf_nochange = Vec::new();
    for _ in 0..ROUNDS {
        setconf_nochange.push(run_wg(vec![
            "setconf".into(),
            ifn.clone(),
            conf_path.clone(),
        ]));
    }
    // 3. change 10 endpoints
    let mut changed = all.clone();
    let mut ours_10 = Vec::new();
    for r in 0..ROUNDS {
        for (i, p) in changed.iter_mut().take(10).enumerate() {
            p.endpoint = Some(
                format!("203.0.113.{}:{}", i + 1, 40000 + r)
                    .parse()
                    .expect("ep"),
            );
        }
        let (t, w) = sync(&dev, &changed);
        assert_eq!(w, 1);
        ours_10.push(t);
    }
    check(&changed);
    let mut wgset_10 = Vec::new();
    for r in 0..ROUNDS {
        let t = Instant::now();
        for p in changed.iter().take(10) {
            run_wg(vec![
                "set".into(),
                ifn.clone(),
                "peer".into(),
                b64(&p.public_key),
                "endpoint".into(),
                format!("203.0.113.99:{}", 41000 + r),
            ]);
        }
        wgset_10.push(t.elapsed());
    }
    // 4. 1000 x wg set from empty
    clear(&dev);
    let t = Instant::now();
    for p in &all {
        let ips: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
        run_wg(vec![
            "set".into(),
            ifn.clone(),
            "peer".into(),
            b64(&p.public_key),
            "allowed-ips".into(),
            ips.join(","),
            "endpoint".into(),
            p.endpoint.map(|e| e.to_string()).unwrap_or_default(),
        ]);
    }
    let wgset_1000 = t.elapsed();
    check(&all);

    let (oe, se) = (median(ours_empty), median(setconf_empty));
    let (on, sn) = (median(ours_nochange), median(setconf_nochange));
    let (o10, s10) = (median(ours_10), median(wgset_10));
    println!(
        "BENCH platform backend={backend} peers={PEERS} allowed_ips_per_peer=2 (median of {ROUNDS} rounds; build: {})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  apply {PEERS} peers from empty : wgmesh {:8.1} ms ({writes_empty} write) | wg setconf {:8.1} ms | {PEERS} x wg set {:9.1} ms",
        ms(oe),
        ms(se),
        ms(wgset_1000)
    );
    println!(
        "      ratio wgmesh / wg setconf = {:.2}x ; wgmesh / {PEERS} x wg set = {:.3}x",
        ms(oe) / ms(se),
        ms(oe) / ms(wgset_1000)
    );
    println!(
        "  no-change apply              : wgmesh {:8.1} ms (0 writes: one read, diff empty) | wg setconf (rewrites all) {:8.1} ms | ratio {:.2}x",
        ms(on),
        ms(sn),
        ms(on) / ms(sn)
    );
    println!(
        "  change 10 endpoints          : wgmesh {:8.1} ms (1 write) | 10 x wg set {:8.1} ms | ratio {:.2}x",
        ms(o10),
        ms(s10),
        ms(o10) / ms(s10)
    );

    let d = Arc::clone(&dev);
    ex.run(move || async move { d.delete().await })
        .expect("delete");
    let _ = std::fs::remove_file(&conf_path);
    drop(ex);
    drop(lab);
}
