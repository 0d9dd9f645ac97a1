//! Platform tests against real WireGuard: `platform-tests --backend userspace` (wireguard-go
//! in namespaces, on the host) or `--backend kernel` (kernel WireGuard; run inside the VM by
//! `netns-tests/platform-vm.sh`). Steps run serially; every resource is torn down at the end,
//! on failure and on Ctrl-C. Prints PASS/FAIL lines and exits non-zero on failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use wgmesh::platform::linux::{LinuxWireGuard, NftFirewall, RtnlNetwork};
use wgmesh::platform::{
    DEFAULT_MTU, DeviceConfig, Firewall, NetEvent, Network, PeerConfig, PeerDiff, ResolvedBackend,
    Route, WireGuardDevice, sync_peers,
};
use wgmesh_netns_tests::checks::{dump_matches, ip_json, nft_table, nft_tables, wg_dump};
use wgmesh_netns_tests::keys::{b64, keypair};
use wgmesh_netns_tests::lab::{Lab, sh};
use wgmesh_netns_tests::nsexec::NsExec;
use wgmesh_netns_tests::preflight;

fn pass(msg: &str) {
    println!("  PASS {msg}");
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test CIDR")
}

fn create(lab: &Lab, ex: &NsExec, ifn: &str, backend: ResolvedBackend) -> Arc<LinuxWireGuard> {
    lab.record_socket(ifn);
    let name = ifn.to_string();
    let dev = ex
        .run(move || async move { LinuxWireGuard::create(&name, backend).await })
        .unwrap_or_else(|e| panic!("create {ifn}: {e}"));
    if let Some(pid) = dev.userspace_pid() {
        lab.record_pid(pid);
    }
    Arc::new(dev)
}

fn apply(ex: &NsExec, dev: &Arc<LinuxWireGuard>, desired: &[PeerConfig]) -> usize {
    let d = Arc::clone(dev);
    let want = desired.to_vec();
    ex.run(move || async move { sync_peers(d.as_ref(), &want).await })
        .expect("sync peers")
        .writes
}

fn check_dump(ex: &NsExec, ifn: &str, want: &[PeerConfig], step: &str) {
    let name = ifn.to_string();
    let dump = ex.sync(move || wg_dump(&name)).expect("wg dump");
    dump_matches(&dump, want).unwrap_or_else(|e| panic!("{step}: {e}"));
    pass(&format!(
        "{step}: `wg show {ifn} dump` matches ({} peers)",
        want.len()
    ));
}

fn peer(i: u8) -> PeerConfig {
    let mut p = PeerConfig::new(keypair().public);
    p.endpoint = Some(format!("192.0.2.{i}:518{i:02}").parse().expect("endpoint"));
    p.allowed_ips = vec![
        net(&format!("10.1.{i}.0/24")),
        net(&format!("fd01::{i}/128")),
    ];
    if i == 1 {
        p.persistent_keepalive = Some(25);
    }
    if i == 2 {
        p.preshared_key = Some(keypair().private);
    }
    p
}

/// Create, 3 peers, update one's endpoint + allowed IPs, remove one, no-change, delete.
fn test_peers(lab: &Lab, backend: ResolvedBackend) {
    println!("== peers lifecycle ({backend})");
    let ns = lab.add_ns("peers");
    let ex = NsExec::new(Some(&ns)).expect("ns executor");
    let ifn = lab.ifname("p");
    let dev = create(lab, &ex, &ifn, backend);
    let kp = keypair();
    let cfg = DeviceConfig {
        private_key: kp.private,
        listen_port: Some(51820),
        fwmark: Some(0x77),
    };
    let d = Arc::clone(&dev);
    ex.run(move || async move { d.configure(&cfg).await })
        .expect("configure");
    let name = ifn.clone();
    let dump = ex.sync(move || wg_dump(&name)).expect("dump");
    assert_eq!(dump.public_key, b64(&kp.public), "device public key");
    assert_eq!(dump.listen_port, 51820);
    assert_eq!(dump.fwmark, Some(0x77));
    pass("private key, listen port, fwmark set");

    let mut peers: Vec<PeerConfig> = (1..=3).map(peer).collect();
    assert_eq!(apply(&ex, &dev, &peers), 1, "adding 3 peers is one write");
    check_dump(&ex, &ifn, &peers, "add 3 peers");

    peers[1].endpoint = Some("198.51.100.7:40000".parse().expect("ep"));
    peers[1].allowed_ips = vec![net("10.2.0.0/16"), net("fd02::/64"), net("10.3.3.3/32")];
    assert_eq!(apply(&ex, &dev, &peers), 1);
    check_dump(
        &ex,
        &ifn,
        &peers,
        "update endpoint + allowed IPs of one peer",
    );

    let removed = peers.remove(0);
    assert_eq!(apply(&ex, &dev, &peers), 1);
    check_dump(&ex, &ifn, &peers, "remove one peer");
    let name = ifn.clone();
    let dump = ex.sync(move || wg_dump(&name)).expect("dump");
    assert!(
        dump.peers
            .iter()
            .all(|p| p.public_key != b64(&removed.public_key))
    );

    assert_eq!(
        apply(&ex, &dev, &peers),
        0,
        "no-change sync must make no write"
    );
    let d = Arc::clone(&dev);
    let r = ex
        .run(move || async move { d.apply(&PeerDiff::default()).await })
        .expect("empty apply");
    assert_eq!(r.writes, 0);
    pass("no-change sync and empty diff make zero writes");

    let d = Arc::clone(&dev);
    let state = ex.run(move || async move { d.read().await }).expect("read");
    let diff = PeerDiff::between(&state.peer_configs(), &peers);
    assert!(diff.is_empty(), "read-back differs from applied: {diff:?}");
    assert_eq!(state.public_key, Some(kp.public));
    pass("read() returns what was applied");

    // a device too large for one netlink message: the kernel splits peers (and a peer's
    // allowed IPs) across dump messages; the read must reassemble them
    let big: Vec<PeerConfig> = (0..200u32)
        .map(|i| {
            let mut p = PeerConfig::new(keypair().public);
            p.endpoint = Some(
                format!("198.18.{}.{}:51820", i / 250, i % 250 + 1)
                    .parse()
                    .expect("ep"),
            );
            p.allowed_ips = (0..8u32)
                .map(|j| net(&format!("10.{}.{}.{}/32", 100 + j, i / 250, i % 250 + 1)))
                .collect();
            p
        })
        .collect();
    assert_eq!(apply(&ex, &dev, &big), 1);
    check_dump(&ex, &ifn, &big, "200 peers x 8 allowed IPs");
    assert_eq!(
        apply(&ex, &dev, &big),
        0,
        "no-change sync of a large device must make no write"
    );
    pass("large device read back whole: no-change sync of 200 peers makes zero writes");
    assert_eq!(apply(&ex, &dev, &peers), 1);
    check_dump(&ex, &ifn, &peers, "back to 2 peers");

    if let (Some(pid), Some(mut restarts)) = (dev.userspace_pid(), dev.userspace_restarts()) {
        // supervision: wireguard-go dies -> restarted, device settings re-sent, peers restored
        // by the next sync
        let raw = i32::try_from(pid).expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill wireguard-go");
        let restarted = ex.run(move || async move {
            tokio::time::timeout(Duration::from_secs(10), restarts.changed())
                .await
                .is_ok()
        });
        assert!(restarted, "wireguard-go was not restarted");
        let new_pid = dev.userspace_pid().expect("new pid");
        lab.record_pid(new_pid);
        assert_ne!(new_pid, pid);
        let name = ifn.clone();
        let dump = ex.sync(move || wg_dump(&name)).expect("dump after restart");
        assert_eq!(
            dump.public_key,
            b64(&kp.public),
            "key re-sent after restart"
        );
        assert_eq!(dump.listen_port, 51820);
        assert!(dump.peers.is_empty());
        assert_eq!(apply(&ex, &dev, &peers), 1);
        check_dump(&ex, &ifn, &peers, "after wireguard-go restart, one sync");
        pass(&format!(
            "wireguard-go killed (pid {pid}) -> restarted (pid {new_pid}), key/port re-sent, peers restored"
        ));
    }

    let d = Arc::clone(&dev);
    ex.run(move || async move { d.delete().await })
        .expect("delete");
    let name = ifn.clone();
    let gone = ex.sync(move || !wgmesh_netns_tests::lab::sh_ok("ip", &["link", "show", &name]));
    assert!(gone, "interface still exists after delete");
    assert!(
        lab.leftover_sockets().is_empty(),
        "UAPI socket left: {:?}",
        lab.leftover_sockets()
    );
    pass("delete removes the interface (and wireguard-go, its socket)");
}

/// `--backend auto|kernel|userspace` resolution against this kernel.
fn test_backend_choice(lab: &Lab, backend: ResolvedBackend) {
    use wgmesh::platform::BackendChoice;
    use wgmesh::platform::linux::detect::{genl_family_present, resolve_backend};
    println!("== backend selection ({backend})");
    let ns = lab.add_ns("detect");
    let ex = NsExec::new(Some(&ns)).expect("ns executor");
    let (auto, kernel, genl) = ex.run(|| async {
        let net = RtnlNetwork::new().expect("rtnetlink");
        let auto = resolve_backend(BackendChoice::Auto, &net)
            .await
            .expect("auto");
        let kernel = resolve_backend(BackendChoice::Kernel, &net).await;
        let genl = tokio::task::spawn_blocking(genl_family_present)
            .await
            .expect("join");
        (auto, kernel.map_err(|e| e.to_string()), genl)
    });
    if backend == ResolvedBackend::Kernel {
        assert!(genl, "wireguard genl family must be present in the VM");
        assert_eq!(auto, ResolvedBackend::Kernel);
        assert_eq!(kernel, Ok(ResolvedBackend::Kernel));
        pass("genl family `wireguard` found; auto -> kernel; --backend kernel accepted");
    } else if genl {
        assert_eq!(auto, ResolvedBackend::Kernel);
        pass("this host has kernel WireGuard: auto -> kernel");
    } else {
        assert_eq!(auto, ResolvedBackend::Userspace);
        let err = kernel.expect_err("kernel must be refused without the module");
        assert!(err.contains("wireguard-go"), "error says what to do: {err}");
        pass(&format!(
            "no kernel WireGuard here: auto -> userspace; --backend kernel refused: {err}"
        ));
    }
    let env = BackendChoice::from_flag_and_env(Some("kernel"), Some("userspace"));
    assert_eq!(env, Ok(BackendChoice::Userspace));
    pass("WGMESH_BACKEND overrides --backend");
}

struct Node {
    ex: NsExec,
    ifn: String,
    dev: Arc<LinuxWireGuard>,
    net: RtnlNetwork,
    kp: wgmesh_netns_tests::keys::KeyPair,
}

fn node(lab: &Lab, name: &str, backend: ResolvedBackend) -> Node {
    let ns = lab.add_ns(name);
    let ex = NsExec::new(Some(&ns)).expect("ns executor");
    let ifn = lab.ifname(name);
    let dev = create(lab, &ex, &ifn, backend);
    let net = ex.run(|| async { RtnlNetwork::new() }).expect("rtnetlink");
    let kp = keypair();
    let cfg = DeviceConfig {
        private_key: kp.private,
        listen_port: Some(51820),
        fwmark: None,
    };
    let d = Arc::clone(&dev);
    ex.run(move || async move { d.configure(&cfg).await })
        .expect("configure");
    Node {
        ex,
        ifn,
        dev,
        net,
        kp,
    }
}

fn ip_in(n: &Node, args: &[&str]) -> serde_json::Value {
    let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    n.ex.sync(move || ip_json(&a.iter().map(String::as_str).collect::<Vec<_>>()))
}

fn route_dsts(n: &Node, v6: bool, proto: Option<&str>) -> Vec<String> {
    let fam = if v6 { "-6" } else { "-4" };
    let mut args = vec![fam, "route", "show", "dev", &n.ifn];
    if let Some(p) = proto {
        args.extend(["proto", p]);
    }
    ip_in(n, &args)
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["dst"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Two namespaces, tunnels configured only by wgmesh, network + firewall checks.
fn test_tunnel(lab: &Lab, backend: ResolvedBackend) {
    println!("== tunnel, addresses, routes, MTU, events, relay forwarding ({backend})");
    let a = node(lab, "a", backend);
    let b = node(lab, "b", backend);
    lab.link(
        &lab.ns("a"),
        "veth0",
        "10.77.0.1/24",
        &lab.ns("b"),
        "veth0",
        "10.77.0.2/24",
    );

    let mut events = {
        let n = a.net.clone();
        a.ex.run(move || async move { n.subscribe() })
            .expect("subscribe")
    };

    for (me, other, my_ip, other_ip, my6, other6) in [
        (&a, &b, "100.96.0.1", "100.96.0.2", "fd96::1", "fd96::2"),
        (&b, &a, "100.96.0.2", "100.96.0.1", "fd96::2", "fd96::1"),
    ] {
        let mut p = PeerConfig::new(other.kp.public);
        let last = other_ip.rsplit('.').next().unwrap_or("0");
        p.endpoint = Some(format!("10.77.0.{last}:51820").parse().expect("ep"));
        p.allowed_ips = vec![
            net(&format!("{other_ip}/32")),
            net(&format!("{other6}/128")),
            net(&format!("10.200.{last}.0/24")),
        ];
        p.persistent_keepalive = Some(1);
        assert_eq!(apply(&me.ex, &me.dev, &[p]), 1);
        let (n, ifn) = (me.net.clone(), me.ifn.clone());
        let addrs = vec![net(&format!("{my_ip}/24")), net(&format!("{my6}/64"))];
        let writes = me
            .ex
            .run(move || async move {
                n.set_link(&ifn, true, Some(DEFAULT_MTU)).await?;
                let w1 = n.replace_addresses(&ifn, &addrs).await?;
                let w2 = n.replace_addresses(&ifn, &addrs).await?;
                Ok::<_, wgmesh::platform::PlatformError>((w1, w2))
            })
            .expect("link + addresses");
        assert_eq!(writes, (2, 0), "addresses: 2 writes, then none");
    }
    pass("link up, MTU 1420, addresses replaced idempotently (2 writes, then 0)");

    let link = ip_in(&a, &["link", "show", "dev", &a.ifn]);
    assert_eq!(link[0]["mtu"], 1420, "mtu: {link}");
    assert!(
        link[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "UP: {link}"
    );
    let addrs = ip_in(&a, &["addr", "show", "dev", &a.ifn]);
    let got: Vec<String> = addrs[0]["addr_info"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|i| i["scope"] != "link")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        got.contains(&"100.96.0.1/24".to_string()) && got.contains(&"fd96::1/64".to_string()),
        "addresses: {got:?}"
    );
    pass(&format!("`ip -j`: mtu 1420, UP, addresses {got:?}"));

    // a change of the wanted address set replaces exactly the difference
    let (n, ifn) = (a.net.clone(), a.ifn.clone());
    let w =
        a.ex.run(move || async move {
            let w = n
                .replace_addresses(
                    &ifn,
                    &[
                        net("100.96.0.1/24"),
                        net("fd96::1/64"),
                        net("100.96.9.1/32"),
                    ],
                )
                .await?;
            let back = n
                .replace_addresses(&ifn, &[net("100.96.0.1/24"), net("fd96::1/64")])
                .await?;
            Ok::<_, wgmesh::platform::PlatformError>((w, back))
        })
        .expect("address change");
    assert_eq!(w, (1, 1));
    pass("address set change: one add, one delete");

    // routes: wgmesh's own, plus a foreign one that must survive every sync
    sh(
        "ip",
        &[
            "-n",
            &lab.ns("a"),
            "route",
            "add",
            "10.201.0.0/24",
            "dev",
            &a.ifn,
        ],
    );
    let r1 = Route {
        destination: net("10.200.2.0/24"),
        gateway: Some("100.96.0.2".parse().expect("gw")),
        metric: None,
    };
    let r2 = Route {
        destination: net("fd96:200::/64"),
        gateway: None,
        metric: Some(100),
    };
    let steps: Vec<(Vec<Route>, (usize, usize))> = vec![
        (vec![r1.clone(), r2.clone()], (2, 0)),
        (vec![r1.clone(), r2.clone()], (0, 0)),
        (vec![r1.clone()], (0, 1)),
        (vec![r1.clone(), r2.clone()], (1, 0)),
    ];
    for (i, (want, (rep, del))) in steps.into_iter().enumerate() {
        let (n, ifn) = (a.net.clone(), a.ifn.clone());
        let w2 = want.clone();
        let (report, listed) =
            a.ex.run(move || async move {
                let rep = n.sync_routes(&ifn, &w2).await?;
                let listed = n.routes(&ifn).await?;
                Ok::<_, wgmesh::platform::PlatformError>((rep, listed))
            })
            .expect("route sync");
        assert_eq!(
            (report.replaced, report.deleted),
            (rep, del),
            "route sync step {i}"
        );
        let mut l = listed.clone();
        l.sort();
        let mut w = want.clone();
        w.sort();
        assert_eq!(l, w, "routes() after step {i}");
        let foreign = route_dsts(&a, false, None);
        assert!(
            foreign.contains(&"10.201.0.0/24".to_string()),
            "foreign route gone after step {i}: {foreign:?}"
        );
        let ours4 = route_dsts(&a, false, Some("119"));
        assert!(
            ours4.contains(&"10.200.2.0/24".to_string())
                && !ours4.contains(&"10.201.0.0/24".to_string()),
            "proto 119 v4: {ours4:?}"
        );
    }
    // a foreign route holding a destination wgmesh wants is left alone (no replace)
    sh(
        "ip",
        &[
            "-n",
            &lab.ns("a"),
            "route",
            "add",
            "10.202.0.0/24",
            "dev",
            &a.ifn,
        ],
    );
    let r3 = Route {
        destination: net("10.202.0.0/24"),
        gateway: Some("100.96.0.2".parse().expect("gw")),
        metric: None,
    };
    let (n, ifn) = (a.net.clone(), a.ifn.clone());
    let want = vec![r1.clone(), r2.clone(), r3];
    let report =
        a.ex.run(move || async move { n.sync_routes(&ifn, &want).await })
            .expect("sync with a foreign occupant");
    assert_eq!(
        (report.replaced, report.deleted, report.skipped_foreign),
        (0, 0, 1)
    );
    let held = ip_in(&a, &["-4", "route", "show", "10.202.0.0/24"]);
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    // `ip -j` omits the protocol for "boot", the default of `ip route add`
    assert!(
        held[0].get("protocol").is_none_or(|p| p == "boot"),
        "foreign route replaced: {held}"
    );
    assert!(
        held[0].get("gateway").is_none(),
        "foreign route replaced: {held}"
    );
    pass("a foreign route on a wanted destination is not replaced (skipped_foreign = 1)");
    let ours6 = route_dsts(&a, true, Some("119"));
    assert_eq!(ours6, vec!["fd96:200::/64".to_string()]);
    let gw = ip_in(&a, &["-4", "route", "show", "10.200.2.0/24", "dev", &a.ifn]);
    assert_eq!(gw[0]["gateway"], "100.96.0.2", "gateway: {gw}");
    assert_eq!(gw[0]["protocol"], "119", "protocol: {gw}");
    pass(
        "route sync: replace/delete only proto 119 routes; `ip -j` agrees; foreign route survived 4 syncs",
    );

    // ping through the tunnels
    let ping = |n: &Node, dst: &str| {
        let d = dst.to_string();
        n.ex.sync(move || {
            std::process::Command::new("ping")
                .args(["-c", "3", "-i", "0.2", "-W", "5", &d])
                .output()
                .map(|o| {
                    (
                        o.status.success(),
                        String::from_utf8_lossy(&o.stdout).into_owned(),
                    )
                })
                .unwrap_or((false, String::new()))
        })
    };
    for (n, dst) in [(&a, "100.96.0.2"), (&b, "100.96.0.1"), (&a, "fd96::2")] {
        let (ok, out) = ping(n, dst);
        assert!(ok, "ping {dst} failed: {out}");
        let line = out
            .lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("")
            .to_string();
        pass(&format!("ping {} -> {dst}: {line}", n.ex.ns));
    }
    let d = Arc::clone(&a.dev);
    let st =
        a.ex.run(move || async move { d.read().await })
            .expect("read");
    let p = &st.peers[0];
    assert!(
        p.last_handshake.is_some() && p.rx_bytes > 0 && p.tx_bytes > 0,
        "stats: {p:?}"
    );
    pass(&format!(
        "read(): handshake seen, rx {} B, tx {} B",
        p.rx_bytes, p.tx_bytes
    ));

    // events seen by the subscription (link up, addresses, routes)
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }
    let addr_ev = seen.iter().any(|e| matches!(e, NetEvent::AddressAdded { address, .. } if address.to_string() == "100.96.0.1"));
    let link_ev = seen
        .iter()
        .any(|e| matches!(e, NetEvent::LinkChanged { name: Some(n), up: true, .. } if *n == a.ifn));
    let route_ev = seen
        .iter()
        .any(|e| matches!(e, NetEvent::RouteRemoved { .. }));
    assert!(addr_ev && link_ev && route_ev, "events: {seen:?}");
    pass(&format!(
        "change events received ({} events: link up, address added, route removed)",
        seen.len()
    ));

    test_relay(lab, backend, &a, &b);

    for n in [&a, &b] {
        let d = Arc::clone(&n.dev);
        n.ex.run(move || async move { d.delete().await })
            .expect("delete");
        let i = n.ifn.clone();
        assert!(n.ex.sync(move || !wgmesh_netns_tests::lab::sh_ok("ip", &["link", "show", &i])));
    }
    pass("devices deleted");
}

fn peer_of(n: &Node, endpoint: &str, allowed: &[&str]) -> PeerConfig {
    let mut p = PeerConfig::new(n.kp.public);
    p.endpoint = Some(endpoint.parse().expect("endpoint"));
    p.allowed_ips = allowed.iter().map(|a| net(a)).collect();
    p.persistent_keepalive = Some(1);
    p
}

fn read_sys(n: &Node, path: String) -> String {
    n.ex.sync(move || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

fn ping_ok(n: &Node, dst: &str, count: &str) -> bool {
    let d = dst.to_string();
    let c = count.to_string();
    n.ex.sync(move || {
        std::process::Command::new("ping")
            .args(["-c", &c, "-i", "0.2", "-W", "2", &d])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// b relays between a and a third node c that only b can reach: nothing passes before
/// `ensure_relay`, pings pass after it (counted by the accept rule); flush/restore/remove.
fn test_relay(lab: &Lab, backend: ResolvedBackend, a: &Node, b: &Node) {
    let c = node(lab, "c", backend);
    lab.link(
        &lab.ns("b"),
        "veth1",
        "10.78.0.1/24",
        &lab.ns("c"),
        "veth0",
        "10.78.0.2/24",
    );
    let (n, i) = (c.net.clone(), c.ifn.clone());
    c.ex.run(move || async move {
        n.set_link(&i, true, Some(DEFAULT_MTU)).await?;
        n.replace_addresses(&i, &[net("100.96.0.3/24")]).await
    })
    .expect("c link + address");
    let to_b = |ep: &str| peer_of(b, ep, &["100.96.0.2/32", "fd96::2/128"]);
    let mut pa = to_b("10.77.0.2:51820");
    pa.allowed_ips.push(net("100.96.0.3/32"));
    // also b's other network (its veth to c): the relay must not forward mesh traffic there
    pa.allowed_ips.push(net("10.78.0.0/24"));
    let lan = Route {
        destination: net("10.78.0.0/24"),
        gateway: None,
        metric: None,
    };
    let (n, i) = (a.net.clone(), a.ifn.clone());
    a.ex.run(move || async move { n.replace_route(&i, &lan).await })
        .expect("route to b's LAN via the mesh");
    let mut pc = to_b("10.78.0.1:51820");
    pc.allowed_ips.push(net("100.96.0.1/32"));
    assert_eq!(apply(&a.ex, &a.dev, &[pa]), 1);
    assert_eq!(apply(&c.ex, &c.dev, &[pc]), 1);
    let b_peers = [
        peer_of(a, "10.77.0.1:51820", &["100.96.0.1/32", "fd96::1/128"]),
        peer_of(&c, "10.78.0.2:51820", &["100.96.0.3/32"]),
    ];
    assert_eq!(apply(&b.ex, &b.dev, &b_peers), 1);
    assert!(ping_ok(&c, "100.96.0.2", "2"), "c cannot reach the relay b");
    assert!(
        !ping_ok(a, "100.96.0.3", "2"),
        "a reached c before relaying was enabled"
    );
    pass("a -> c through b fails while b does not relay");

    let fw = NftFirewall::new(b.net.clone());
    let table = format!("wgmesh-{}", b.ifn);
    let ensure = |fw: &NftFirewall| {
        let (f, i) = (fw.clone(), b.ifn.clone());
        b.ex.run(move || async move { f.ensure_relay(&i).await })
            .expect("ensure_relay")
    };
    assert!(ensure(&fw), "first ensure writes");
    assert!(!ensure(&fw), "second ensure must not write");
    check_nft(b, &table);
    assert_eq!(
        read_sys(b, format!("/proc/sys/net/ipv4/conf/{}/forwarding", b.ifn)),
        "1"
    );
    assert_eq!(
        read_sys(b, "/proc/sys/net/ipv4/conf/all/forwarding".into()),
        "0"
    );
    assert_eq!(
        read_sys(b, "/proc/sys/net/ipv4/conf/veth0/forwarding".into()),
        "0"
    );
    pass(
        "relay: table written once, then no write; IPv4 forwarding on for the mesh interface only",
    );
    assert!(
        ping_ok(a, "100.96.0.3", "3"),
        "a cannot reach c through the relay"
    );
    let counted = rule_packets(b, &table, 0);
    assert!(counted >= 6, "accept rule counted {counted} packets");
    pass(&format!(
        "a -> c relayed by b: ping ok, accept rule counted {counted} packets"
    ));
    assert!(
        ping_ok(&c, "10.78.0.1", "1"),
        "c reaches b's LAN address directly"
    );
    assert!(
        !ping_ok(a, "10.78.0.2", "2"),
        "the relay forwarded mesh traffic to its LAN"
    );
    let dropped = rule_packets(b, &table, 1);
    assert!(dropped >= 2, "drop rule counted {dropped} packets");
    pass(&format!(
        "mesh -> b's other network is not forwarded (drop rule counted {dropped} packets)"
    ));

    b.ex.sync(|| sh("nft", &["flush", "ruleset"]));
    assert!(nft_table_in(b, &table).is_none());
    assert!(ensure(&fw), "ensure after flush must restore");
    check_nft(b, &table);
    pass("`nft flush ruleset` -> next ensure restores the table");
    for _ in 0..2 {
        let (f, i) = (fw.clone(), b.ifn.clone());
        b.ex.run(move || async move { f.remove_relay(&i).await })
            .expect("remove_relay");
    }
    assert!(b.ex.sync(nft_tables).is_empty(), "tables left");
    assert_eq!(
        read_sys(b, format!("/proc/sys/net/ipv4/conf/{}/forwarding", b.ifn)),
        "0"
    );
    assert!(
        !ping_ok(a, "100.96.0.3", "1"),
        "still relaying after remove_relay"
    );
    pass("remove_relay (twice): no table left, forwarding off, a -> c blocked again");

    let d = Arc::clone(&c.dev);
    c.ex.run(move || async move { d.delete().await })
        .expect("delete c");
}

/// Packets counted by rule number `index` of the relay chain (0: accept, 1: drop).
fn rule_packets(n: &Node, table: &str, index: usize) -> u64 {
    use nftables::schema::{NfListObject, NfObject};
    let t = nft_table_in(n, table).expect("table exists");
    let rule = t
        .objects
        .iter()
        .filter_map(|o| match o {
            NfObject::ListObject(NfListObject::Rule(r)) => Some(r.clone()),
            _ => None,
        })
        .nth(index)
        .expect("the rule");
    let v = serde_json::to_value(&rule.expr).expect("json");
    v.as_array()
        .and_then(|a| a.iter().find_map(|s| s.get("counter")))
        .and_then(|c| c.get("packets"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

fn nft_table_in(n: &Node, table: &str) -> Option<nftables::schema::Nftables<'static>> {
    let t = table.to_string();
    n.ex.sync(move || nft_table(&t))
}

fn check_nft(n: &Node, table: &str) {
    use nftables::schema::{NfListObject, NfObject};
    let t = nft_table_in(n, table).expect("table exists");
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    for o in t.objects.iter() {
        match o {
            NfObject::ListObject(NfListObject::Chain(c)) => chains.push(c.clone()),
            NfObject::ListObject(NfListObject::Rule(r)) => {
                rules.push(serde_json::to_string(&r.expr).expect("json"))
            }
            _ => {}
        }
    }
    assert_eq!(chains.len(), 1, "one chain: {chains:?}");
    let c = &chains[0];
    assert_eq!(c.name, "relay");
    assert_eq!(serde_json::to_string(&c.hook).expect("json"), "\"forward\"");
    assert_eq!(c.prio, Some(0));
    assert_eq!(serde_json::to_string(&c._type).expect("json"), "\"filter\"");
    assert_eq!(
        serde_json::to_string(&c.policy).expect("json"),
        "\"accept\""
    );
    assert_eq!(rules.len(), 2, "two rules: {rules:?}");
    let ifq = format!("\"{}\"", n.ifn);
    assert!(
        rules[0].contains("iifname")
            && rules[0].contains("oifname")
            && rules[0].contains(&ifq)
            && rules[0].contains("counter")
            && rules[0].contains("accept"),
        "rule 1: {}",
        rules[0]
    );
    assert!(
        rules[1].contains("iifname")
            && !rules[1].contains("oifname")
            && rules[1].contains("counter")
            && rules[1].contains("drop"),
        "rule 2: {}",
        rules[1]
    );
    pass(&format!(
        "nft -j: table inet {table}, chain relay (filter/forward/0/accept), rules: iif+oif {} counter accept; iif counter drop",
        n.ifn
    ));
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
        Some("userspace") | None => ResolvedBackend::Userspace,
        Some(other) => {
            eprintln!("usage: platform-tests [--backend userspace|kernel] (got {other})");
            std::process::exit(2);
        }
    };
    preflight::require(
        backend == ResolvedBackend::Userspace,
        &format!("platform tests ({backend})"),
    );
    let t0 = Instant::now();
    let lab = Lab::new();
    test_backend_choice(&lab, backend);
    test_peers(&lab, backend);
    test_tunnel(&lab, backend);
    wgmesh_netns_tests::lab::cleanup_all();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        lab.leftover_netns().is_empty(),
        "namespaces left: {:?}",
        lab.leftover_netns()
    );
    assert!(
        lab.leftover_sockets().is_empty(),
        "sockets left: {:?}",
        lab.leftover_sockets()
    );
    pass("teardown: no namespace, process or UAPI socket left");
    println!(
        "ALL PASS platform tests ({backend}) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
