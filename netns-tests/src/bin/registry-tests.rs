//! Registry discovery with real daemons (issue 9, "Must show"): three routed sites (one host
//! each, so LAN multicast finds nobody; `--no-dht`, `--no-stun`, no `--peer`) and a registry
//! host behind the same router. The mesh forms through the registry alone, once with the
//! GitHub stand-in (`netns-tests/github-standin.py`, the subset of the REST API the backend
//! uses) and once with `wgmesh registry serve` over TLS (`--registry-ca`): every pair pings,
//! `show --json` names the method `registry`, and the time to mesh is printed. A node that
//! stops cleanly removes its comment / entry. With the stand-in answering rate-limited, a
//! node backs off (no request while the `retry-after` runs) and publishes once it is lifted.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wgmesh::proto::registry::{authorization, decode_list, member_key};
use wgmesh::proto::{MeshKeys, MeshSecret};
use wgmesh_netns_tests::daemon::{Node, all_pairs_ping, new_secret_file, wait_until};
use wgmesh_netns_tests::lab::Lab;
use wgmesh_netns_tests::preflight;
use wgmesh_netns_tests::registry::{Server, TestCert};
use wgmesh_netns_tests::routed::RoutedSites;
use wgmesh_netns_tests::suite::{pass, run_suite};

const REG_IP: &str = "172.31.9.10";
const STANDIN_PORT: u16 = 8080;
const SERVER_PORT: u16 = 8443;
const REPO: &str = "acme/mesh";
const TOKEN: &str = "ghp_standin_token_for_wgmesh_tests";
const MESH_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    preflight::require(true, "registry tests");
    run_suite("registry tests", run);
}

/// Runs `python3 -c` in a namespace: one HTTP request; returns (status, body bytes).
fn http(
    ns: &str,
    method: &str,
    url: &str,
    body: &[u8],
    headers: &[(&str, String)],
    ca: Option<&Path>,
) -> (u16, Vec<u8>) {
    const SCRIPT: &str = r#"
import json, ssl, sys, urllib.request, urllib.error
m, u, b, h, ca = sys.argv[1:6]
req = urllib.request.Request(u, data=bytes.fromhex(b) if b else None, method=m, headers=json.loads(h))
ctx = ssl.create_default_context(cafile=ca) if ca else None
try:
    r = urllib.request.urlopen(req, timeout=5, context=ctx)
    status, data = r.status, r.read()
except urllib.error.HTTPError as e:
    status, data = e.code, e.read()
except Exception as e:
    status, data = 0, str(e).encode()
print(status)
print(data.hex())
"#;
    let hdrs: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", SCRIPT, method, url])
        .arg(hex(body))
        .arg(Value::Object(hdrs).to_string())
        .arg(ca.map(|p| p.display().to_string()).unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let status = lines.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = unhex(lines.next().unwrap_or_default());
    (status, body)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A background process in a namespace, recorded for the lab's teardown.
fn spawn_in(lab: &Lab, ns: &str, program: &str, args: &[String], log: &Path) -> u32 {
    let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let pid = child.id();
    lab.record_pid(pid);
    std::mem::forget(child);
    pid
}

fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
}

/// Three host sites and the registry's site on one router (172.31.n.0/24; the registry is
/// site 9).
struct Sites {
    routed: RoutedSites,
    hosts: Vec<String>,
    reg: String,
}

impl Sites {
    /// Host `i`'s (0-based) address.
    fn host_ip(&self, i: usize) -> std::net::IpAddr {
        self.routed.host_ip(i as u8 + 1)
    }
}

fn build(lab: &Lab) -> Sites {
    let routed = RoutedSites::new(lab, 31);
    let hosts = (1..=3u8)
        .map(|i| routed.site(lab, &format!("s{i}"), i))
        .collect();
    let reg = routed.site(lab, "reg", 9);
    Sites { routed, hosts, reg }
}

fn run(lab: &Lab) {
    let sites = build(lab);
    let secret = new_secret_file(lab, "mesh");
    let text = std::fs::read_to_string(&secret).unwrap_or_default();
    let keys =
        MeshKeys::derive(&MeshSecret::parse(text.trim()).unwrap_or_else(|e| panic!("secret: {e}")));
    misconfigured(lab, &sites, &secret);
    github(lab, &sites, &secret, &keys);
    self_hosted(lab, &sites, &secret, &keys);
    let _ = std::fs::remove_file(&secret);
}

/// The discovery methods `from` shows per peer.
fn methods(n: &Node) -> Vec<Vec<String>> {
    n.show().unwrap_or_default()["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p["discovered_via"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

/// Every node knows both others and none from the LAN (the DHT is off and no `--peer` is
/// given: a method `dht` here is the engine's name for a hello received outside the tunnel,
/// sent by a node that found this one in the registry); the nodes that fetched after the
/// others had published show `registry` (at least one peer of two nodes; the first node to
/// publish may have been greeted by the others before its own fetch found them). Returns how
/// many (node, peer) pairs show `registry`.
fn check_methods(nodes: &[&Node]) -> usize {
    let mut by_registry = 0;
    let mut nodes_with = 0;
    for n in nodes {
        let m = methods(n);
        assert_eq!(m.len(), 2, "{} knows {} peers: {m:?}", n.name, m.len());
        for via in &m {
            assert!(
                via.iter().all(|v| v != "lan"),
                "{}: a peer came by {via:?}",
                n.name
            );
        }
        let here = m
            .iter()
            .filter(|via| via.iter().any(|v| v == "registry"))
            .count();
        by_registry += here;
        nodes_with += usize::from(here > 0);
    }
    assert!(
        nodes_with >= 2,
        "at least two nodes learned peers from the registry: {:?}",
        nodes.iter().map(|n| methods(n)).collect::<Vec<_>>()
    );
    by_registry
}

fn registry_block(n: &Node) -> Value {
    n.show().unwrap_or_default()["registries"][0].clone()
}

// ---------------------------------------------------------------- GitHub stand-in

fn standin_url(path: &str) -> String {
    format!("http://{REG_IP}:{STANDIN_PORT}{path}")
}

fn standin_state(ns: &str) -> Value {
    let (status, body) = http(ns, "GET", &standin_url("/_standin/state"), &[], &[], None);
    assert_eq!(
        status,
        200,
        "stand-in state: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_default()
}

/// (open issues titled for the mesh, closed ones, entry comments in the open ones).
fn mesh_issue(ns: &str, keys: &MeshKeys) -> (usize, usize, usize) {
    let title = format!("wgmesh-{}", keys.registry_id_hex());
    let state = standin_state(ns);
    let issues: Vec<&Value> = state["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["title"] == title.as_str() && i["pull_request"] == false)
        .collect();
    let open: Vec<&&Value> = issues.iter().filter(|i| i["state"] == "open").collect();
    let entries = open
        .iter()
        .flat_map(|i| i["comments"].as_array().into_iter().flatten())
        .filter(|c| {
            c["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("wgmesh-entry v1\n"))
        })
        .count();
    (open.len(), issues.len() - open.len(), entries)
}

fn github(lab: &Lab, sites: &Sites, secret: &Path, keys: &MeshKeys) {
    println!("== GitHub stand-in: three routed sites meet through issue comments only");
    let dir = std::env::temp_dir().join(format!("{}-github", lab.id));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let token_file = dir.join("github-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("token: {e}"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/github-standin.py");
    // Two items per page: the backend has to follow the Link header.
    let standin = spawn_in(
        lab,
        &sites.reg,
        "python3",
        &[
            script.into(),
            "--listen".into(),
            format!("{REG_IP}:{STANDIN_PORT}"),
            "--repo".into(),
            REPO.into(),
            "--token".into(),
            TOKEN.into(),
            "--max-per-page".into(),
            "2".into(),
            "--noise".into(),
        ],
        &dir.join("standin.log"),
    );
    let probe = &sites.hosts[0];
    wait_until(Duration::from_secs(10), || {
        http(
            probe,
            "GET",
            &standin_url("/_standin/state"),
            &[],
            &[],
            None,
        )
        .0 == 200
    })
    .unwrap_or_else(|| panic!("the GitHub stand-in did not start"));
    // The stand-in checks the token like GitHub does.
    let (status, _) = http(
        probe,
        "GET",
        &standin_url(&format!("/repos/{REPO}/issues")),
        &[],
        &[
            ("authorization", "Bearer wrong".into()),
            ("user-agent", "t".into()),
        ],
        None,
    );
    assert_eq!(status, 401, "a wrong token is refused");

    let args = vec![
        "--registry".to_string(),
        format!("github:{REPO}"),
        "--registry-token-file".into(),
        token_file.display().to_string(),
    ];
    let mut nodes: Vec<Node> = sites
        .hosts
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let mut n = Node::new(
                lab,
                &format!("g{}", i + 1),
                ns.clone(),
                sites.host_ip(i),
                secret,
                9610 + i as u16,
            );
            n.env = vec![(
                "WGMESH_GITHUB_API".into(),
                format!("http://{REG_IP}:{STANDIN_PORT}"),
            )];
            n
        })
        .collect();
    // All at once: each finds no issue and may create one; they must settle on one.
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for n in nodes.iter_mut() {
            let args = &args;
            s.spawn(move || n.start(lab, args));
        }
    });
    all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], MESH_LIMIT);
    let took = t0.elapsed();
    let by_registry = check_methods(&[&nodes[0], &nodes[1], &nodes[2]]);
    let (open, closed, entries) = mesh_issue(probe, keys);
    assert_eq!(
        (open, entries),
        (1, 3),
        "one open mesh issue with three entries"
    );
    let reg = registry_block(&nodes[2]);
    assert_eq!(reg["state"], "ok", "{reg}");
    assert!(reg["last_success"].as_u64().is_some(), "{reg}");
    pass(&format!(
        "the mesh forms through the GitHub stand-in alone: time to mesh {:.1} s (3 nodes started at once, all pairs ping v4+v6; {by_registry} of 6 peer views say registry; 1 issue, {closed} duplicate(s) closed, 3 entries)",
        took.as_secs_f64()
    ));

    println!("== a node that stops cleanly deletes its comment");
    let stopped_in = nodes[2].stop();
    let (_, _, entries) = mesh_issue(probe, keys);
    assert_eq!(entries, 2, "g3's comment is gone right after it stopped");
    pass(&format!(
        "g3 stopped in {:.1} s and its comment is gone (2 left)",
        stopped_in.as_secs_f64()
    ));

    rate_limited(lab, probe, keys, &mut nodes[2], &args, "secondary", 15);
    nodes[2].stop();
    rate_limited(lab, probe, keys, &mut nodes[2], &args, "primary", 10);
    for n in nodes.iter_mut() {
        n.stop();
    }
    let (_, _, entries) = mesh_issue(probe, keys);
    assert_eq!(entries, 0, "every node deleted its comment");
    pass("all stopped: no entry comment left");
    kill(standin);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the stand-in refusing every request (`secondary`: 429 + retry-after; `primary`: 403
/// with x-ratelimit-remaining 0 and a reset `secs` ahead), the stopped `node` starts: it
/// backs off, sends nothing while the wait runs, and publishes once the limit is lifted.
fn rate_limited(
    lab: &Lab,
    probe: &str,
    keys: &MeshKeys,
    node: &mut Node,
    args: &[String],
    kind: &str,
    secs: u64,
) {
    println!("== rate-limited ({kind}, {secs} s): the node backs off, then publishes");
    let refused_before = standin_state(probe)["limited"].as_u64().unwrap_or(0);
    let switch = format!(r#"{{"on": true, "kind": "{kind}", "retry_after": {secs}}}"#);
    let (s, _) = http(
        probe,
        "POST",
        &standin_url("/_standin/rate-limit"),
        switch.as_bytes(),
        &[("content-type", "application/json".into())],
        None,
    );
    assert_eq!(s, 204);
    let limited_at = Instant::now();
    node.start(lab, args);
    wait_until(Duration::from_secs(10), || {
        registry_block(node)["state"] == "backing-off"
    })
    .unwrap_or_else(|| panic!("{} did not back off: {}", node.name, registry_block(node)));
    let reg = registry_block(node);
    let err = reg["last_error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("rate-limit"), "{reg}");
    assert!(
        reg["retry_in_secs"].as_u64().unwrap_or(0) >= secs / 2,
        "{reg}"
    );
    let refused = standin_state(probe)["limited"].as_u64().unwrap_or(0) - refused_before;
    std::thread::sleep(Duration::from_secs(secs / 2));
    let refused_later = standin_state(probe)["limited"].as_u64().unwrap_or(0) - refused_before;
    assert_eq!(refused_later, refused, "no request while the wait runs");
    let (s, _) = http(
        probe,
        "POST",
        &standin_url("/_standin/rate-limit"),
        br#"{"on": false}"#,
        &[("content-type", "application/json".into())],
        None,
    );
    assert_eq!(s, 204);
    let back = wait_until(Duration::from_secs(40), || mesh_issue(probe, keys).2 == 3)
        .unwrap_or_else(|| {
            panic!(
                "{} did not publish after the limit: {}",
                node.name,
                node.log_tail(20)
            )
        });
    // The stand-in's wait counts down from the switch (whole seconds).
    assert!(
        limited_at.elapsed() >= Duration::from_secs(secs - 1),
        "published before the wait ran out"
    );
    let counted = node.metric_with(
        "wgmesh_registry_requests_total",
        &format!("op=\"publish\",registry=\"github:{REPO}\",result=\"rate-limited\""),
    );
    assert!(counted >= 1.0, "the metric counts the refusal");
    pass(&format!(
        "{} backed off ({refused} request(s) refused, none while waiting: {err:?}) and published {:.1} s after the limit was lifted",
        node.name,
        back.as_secs_f64()
    ));
}

/// A malformed `--registry` stops `wgmesh up` with a message saying what is expected; a
/// GitHub registry without a token leaves the node running, the registry marked unusable.
fn misconfigured(lab: &Lab, sites: &Sites, secret: &Path) {
    println!("== misconfiguration: a bad --registry, a GitHub registry without a token");
    let out = Command::new(wgmesh_netns_tests::daemon::wgmesh_bin())
        .args(["up", "--registry", "registry.example:8443", "--secret-file"])
        .arg(secret)
        .output()
        .unwrap_or_else(|e| panic!("wgmesh up: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wgmesh up accepted a bad --registry");
    assert!(
        err.contains("github:OWNER/REPO") && err.contains("https://"),
        "{err}"
    );
    let mut n = Node::new(
        lab,
        "t1",
        sites.hosts[0].clone(),
        sites.host_ip(0),
        secret,
        9630,
    );
    n.env = vec![
        ("GITHUB_TOKEN".into(), String::new()),
        ("CREDENTIALS_DIRECTORY".into(), String::new()),
    ];
    n.start(lab, &["--registry".into(), format!("github:{REPO}")]);
    let reg = registry_block(&n);
    assert_eq!(reg["state"], "unusable", "{reg}");
    let last = reg["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("GITHUB_TOKEN"), "{reg}");
    n.stop();
    pass(&format!(
        "a bad --registry is refused ({}); without a token the node runs, registry unusable",
        err.lines().next().unwrap_or_default().trim()
    ));
}

// ---------------------------------------------------------------- self-hosted server

/// The live entries the server holds for this mesh (a signed `GET`, as a member).
fn server_entries(ns: &str, keys: &MeshKeys, ca: &Path) -> usize {
    let path = format!("/v1/meshes/{}/entries", keys.registry_id_hex());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let auth = authorization(&member_key(keys), "GET", &path, now, &[]);
    let (status, body) = http(
        ns,
        "GET",
        &format!("https://{REG_IP}:{SERVER_PORT}{path}"),
        &[],
        &[("authorization", auth), ("x-wgmesh-time", now.to_string())],
        Some(ca),
    );
    assert_eq!(status, 200, "list: {}", String::from_utf8_lossy(&body));
    decode_list(&body)
        .unwrap_or_else(|e| panic!("list: {e}"))
        .len()
}

/// A self-signed (end-entity) certificate for the registry host's address, made with rcgen.
fn make_cert(dir: &Path) -> TestCert {
    let ck = rcgen::generate_simple_self_signed(vec![REG_IP.to_string()])
        .unwrap_or_else(|e| panic!("rcgen: {e}"));
    let cert_pem = dir.join("cert.pem");
    let key_pem = dir.join("key.pem");
    std::fs::write(&cert_pem, ck.cert.pem()).unwrap_or_else(|e| panic!("write cert: {e}"));
    std::fs::write(&key_pem, ck.signing_key.serialize_pem())
        .unwrap_or_else(|e| panic!("write key: {e}"));
    TestCert {
        cert_pem,
        key_pem,
        der: ck.cert.der().clone(),
    }
}

fn self_hosted(lab: &Lab, sites: &Sites, secret: &Path, keys: &MeshKeys) {
    println!("== wgmesh registry serve (TLS, --registry-ca): the mesh forms through it alone");
    let dir = std::env::temp_dir().join(format!("{}-regserve", lab.id));
    std::fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let tls = make_cert(&dir);
    let cert = tls.cert_pem.clone();
    let listen = format!("{REG_IP}:{SERVER_PORT}")
        .parse()
        .unwrap_or_else(|e| panic!("listen: {e}"));
    let mut server = Server::new(
        Some(sites.reg.clone()),
        listen,
        dir.join("data"),
        dir.join("server.log"),
    );
    server.start(lab, &tls, &[]);
    let probe = &sites.hosts[0];
    let args = vec![
        "--registry".to_string(),
        format!("https://{REG_IP}:{SERVER_PORT}"),
        "--registry-ca".into(),
        cert.display().to_string(),
    ];
    let mut nodes: Vec<Node> = sites
        .hosts
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            Node::new(
                lab,
                &format!("h{}", i + 1),
                ns.clone(),
                sites.host_ip(i),
                secret,
                9620 + i as u16,
            )
        })
        .collect();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for n in nodes.iter_mut() {
            let args = &args;
            s.spawn(move || n.start(lab, args));
        }
    });
    all_pairs_ping(&[&nodes[0], &nodes[1], &nodes[2]], MESH_LIMIT);
    let took = t0.elapsed();
    let by_registry = check_methods(&[&nodes[0], &nodes[1], &nodes[2]]);
    assert_eq!(server_entries(probe, keys, &cert), 3);
    pass(&format!(
        "the mesh forms through the self-hosted registry alone: time to mesh {:.1} s ({by_registry} of 6 peer views say registry; 3 entries held)",
        took.as_secs_f64()
    ));
    println!("== a node that stops cleanly deletes its entry");
    let stopped_in = nodes[2].stop();
    assert_eq!(
        server_entries(probe, keys, &cert),
        2,
        "h3's entry is gone right after it stopped"
    );
    pass(&format!(
        "h3 stopped in {:.1} s and its entry is gone (2 left)",
        stopped_in.as_secs_f64()
    ));
    for n in nodes.iter_mut() {
        n.stop();
    }
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
