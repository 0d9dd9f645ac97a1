//! Real `wgmesh up` processes in namespaces: a bridged LAN, node start/stop/kill with recorded
//! PIDs, and independent readers (`wgmesh show --json`, `wg show dump`, `ip -j`, ping,
//! `/proc/<pid>/status`, the metrics endpoint).
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab::{Lab, sh, sh_ok};

/// The wgmesh binary under test (built next to this test binary).
pub fn wgmesh_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WGMESH_BIN") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap_or_default();
    me.parent()
        .map(|d| d.join("wgmesh"))
        .unwrap_or_else(|| PathBuf::from("wgmesh"))
}

/// The second octets of the 10.X networks the lab itself uses (NAT sites 10.0, the bridged
/// LAN 10.77, the bench 10.88/10.99; routed sites use 172.x, see `routed`).
pub const LAB_10_NETWORKS: [u8; 4] = [0, 77, 88, 99];

/// A fresh mesh secret from `wgmesh secret new`, written mode 0600 to the temp dir as
/// `<lab id>-<name>.secret` (the caller removes it).
pub fn new_secret_file(lab: &Lab, name: &str) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = std::env::temp_dir().join(format!("{}-{name}.secret", lab.id));
    // A mesh derives its IPv4 subnet 10.X.0.0/16 from the secret: a secret whose subnet is one
    // of the lab's own 10.X networks (a 1-in-256 chance each) would route lab traffic into the
    // tunnel, so such secrets are drawn again.
    let secret = loop {
        let s = sh(
            wgmesh_bin().to_str().unwrap_or("wgmesh"),
            &["secret", "new"],
        );
        let subnet = wgmesh::proto::MeshSecret::parse(s.trim())
            .map(|m| wgmesh::proto::MeshKeys::derive(&m).ipv4_subnet())
            .unwrap_or_else(|e| panic!("wgmesh secret new printed an unusable secret: {e}"));
        if !LAB_10_NETWORKS.contains(&subnet.addr().octets()[1]) {
            break s;
        }
    };
    let _ = std::fs::remove_file(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A bridged LAN: namespace `br` holds bridge `br0`; hosts get 10.77.0.(10+i)/24.
pub struct LanSite {
    pub bridge_ns: String,
}

impl LanSite {
    pub fn new(lab: &Lab) -> Self {
        Self::named(lab, "br")
    }

    /// A LAN whose bridge namespace is `name` (several LANs in one lab).
    pub fn named(lab: &Lab, name: &str) -> Self {
        let bridge_ns = lab.add_ns(name);
        sh(
            "ip",
            &["-n", &bridge_ns, "link", "add", "br0", "type", "bridge"],
        );
        sh("ip", &["-n", &bridge_ns, "link", "set", "br0", "up"]);
        Self { bridge_ns }
    }

    /// A host namespace on the LAN; returns (namespace, LAN address).
    pub fn host(&self, lab: &Lab, i: u8) -> (String, IpAddr) {
        self.host_named(lab, &format!("h{i}"), i)
    }

    /// A host namespace named `name` with LAN address 10.77.0.(10+i).
    pub fn host_named(&self, lab: &Lab, name: &str, i: u8) -> (String, IpAddr) {
        let ns = self.attach(lab, name);
        let addr = format!("10.77.0.{}", 10 + u32::from(i));
        sh(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ],
        );
        (ns, addr.parse().unwrap_or(IpAddr::from([10, 77, 0, 10])))
    }

    /// A host namespace named `name` on the LAN with no IPv4 address: only the IPv6
    /// link-local address the kernel gives `eth0` (duplicate address detection off, so it is
    /// usable at once).
    pub fn host_link_local_only(&self, lab: &Lab, name: &str) -> String {
        self.attach(lab, name)
    }

    /// A new namespace `name` whose `eth0` is a port of the bridge, up.
    fn attach(&self, lab: &Lab, name: &str) -> String {
        let ns = lab.add_ns(name);
        let mut port = format!("p{name}");
        port.truncate(15);
        sh(
            "ip",
            &[
                "link",
                "add",
                "eth0",
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.bridge_ns,
            ],
        );
        sh(
            "ip",
            &["-n", &self.bridge_ns, "link", "set", &port, "master", "br0"],
        );
        sh("ip", &["-n", &self.bridge_ns, "link", "set", &port, "up"]);
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.eth0.accept_dad=0",
            ],
        );
        sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }
}

/// One wgmesh node in a namespace.
pub struct Node {
    pub name: String,
    pub ns: String,
    pub iface: String,
    pub dir: PathBuf,
    pub lan: IpAddr,
    pub pid: Option<u32>,
    pub extra_args: Vec<String>,
    /// Environment variables added to the daemon's.
    pub env: Vec<(String, String)>,
    pub metrics_port: u16,
}

impl Node {
    pub fn new(
        lab: &Lab,
        name: &str,
        ns: String,
        lan: IpAddr,
        secret: &Path,
        metrics_port: u16,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-{name}", lab.id));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let _ = std::fs::copy(secret, dir.join("mesh.secret"));
        let iface = lab.ifname(name);
        lab.record_socket(&iface);
        Self {
            name: name.into(),
            ns,
            iface,
            dir,
            lan,
            pid: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            metrics_port,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("wgmesh.log")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts `wgmesh up` (userspace backend) with `args` added; waits until `show` answers.
    pub fn start(&mut self, lab: &Lab, args: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("log {}: {e}", self.log_path().display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let bin = wgmesh_bin();
        // No test may touch the public DHT: without a private --dht-bootstrap, the DHT is off.
        let private_dht = self
            .extra_args
            .iter()
            .chain(args)
            .any(|a| a.starts_with("--dht-bootstrap"));
        let no_dht: &[&str] = if private_dht { &[] } else { &["--no-dht"] };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&bin)
            .args([
                "up",
                "--interface",
                &self.iface,
                "--backend",
                "userspace",
                "--log-level",
                "debug",
            ])
            .arg("--secret-file")
            .arg(self.dir.join("mesh.secret"))
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .args(["--metrics", &format!("127.0.0.1:{}", self.metrics_port)])
            .args(no_dht)
            .args(&self.extra_args)
            .args(args)
            // No test asks the public STUN servers: tests that want STUN pass the lab's.
            .args(
                (!self
                    .extra_args
                    .iter()
                    .chain(args)
                    .any(|a| a.starts_with("--stun")))
                .then_some("--no-stun"),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        let pid = child.id();
        // `ip netns exec` execs wgmesh in place: the PID is wgmesh's.
        lab.record_pid(pid);
        self.pid = Some(pid);
        std::mem::forget(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if self.show().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not start:\n{}", self.name, self.log_tail(40));
    }

    /// Sends a signal to the node.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid {
            let _ = sh_ok("kill", &[&format!("-{sig}"), &pid.to_string()]);
        }
    }

    /// SIGTERM and wait for the exit; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10));
        t0.elapsed()
    }

    /// SIGKILL (no cleanup by the daemon).
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(5));
    }

    /// A crash as systemd handles it: SIGKILL to the daemon and to the wireguard-go it
    /// started (systemd kills the whole cgroup). wireguard-go is found among the PIDs of this
    /// node's namespace, which only this test's processes live in.
    pub fn crash(&mut self) -> usize {
        self.kill9();
        let mut killed = 0;
        for pid in sh("ip", &["netns", "pids", &self.ns]).split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "wireguard-go" && sh_ok("kill", &["-KILL", pid]) {
                killed += 1;
            }
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5)
            && sh("ip", &["-n", &self.ns, "-br", "link"]).contains(&self.iface)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        killed
    }

    fn wait_exit(&mut self, limit: Duration) {
        let Some(pid) = self.pid else { return };
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            // Reap if it is our child (ip netns exec → wgmesh is our direct child).
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            if !Path::new(&format!("/proc/{pid}")).exists() {
                self.pid = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} (pid {pid}) did not exit within {limit:?}:\n{}",
            self.name,
            self.log_tail(30)
        );
    }

    /// `wgmesh show --json` answered by the daemon itself (not the no-daemon fallback).
    pub fn show(&self) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(wgmesh_bin())
            .args(["show", &self.iface, "--json", "--runtime-dir"])
            .arg(self.runtime_dir())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        // Without a daemon, `show` prints the bare device (no network id): not an answer.
        v["interface"]["network_id"]
            .as_str()
            .filter(|id| !id.is_empty())?;
        Some(v)
    }

    /// This node's mesh IPv4 and IPv6 (without prefix).
    pub fn mesh_ips(&self) -> (String, String) {
        let s = self
            .show()
            .unwrap_or_else(|| panic!("{} does not answer", self.name));
        let strip = |v: &Value| {
            v.as_str()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        (
            strip(&s["interface"]["mesh_ipv4"]),
            strip(&s["interface"]["mesh_ipv6"]),
        )
    }

    pub fn public_key(&self) -> String {
        let s = self
            .show()
            .unwrap_or_else(|| panic!("{} does not answer", self.name));
        s["interface"]["public_key"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// One ping (1 s timeout) from this node to `ip`.
    pub fn ping(&self, ip: &str) -> bool {
        sh_ok(
            "ip",
            &["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "1", ip],
        )
    }

    /// Waits until `ip` answers pings; returns the time it took.
    ///
    /// One `ping` sends every 0.2 s until the first reply or the deadline, so the time is
    /// within 0.2 s of when the path began to work (a `-c 1 -W 1` loop only learns it up to
    /// a second late). Ping exits early when the address is not routed yet; then it is run
    /// again.
    pub fn wait_ping(&self, ip: &str, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let left = (limit - t0.elapsed()).as_secs().max(1).to_string();
            let args = [
                "netns", "exec", &self.ns, "ping", "-n", "-q", "-c", "1", "-i", "0.2", "-W", "1",
                "-w", &left, ip,
            ];
            if sh_ok("ip", &args) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A metric's value from the node's /metrics endpoint.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metric_line(name, |rest| rest.starts_with([' ', '{']))
    }

    /// The value of `name{labels}` (e.g. `reason="decrypt"`), 0 when the series is absent.
    pub fn metric_with(&self, name: &str, labels: &str) -> f64 {
        let series = format!("{{{labels}}} ");
        self.metric_line(name, |rest| rest.starts_with(&series))
            .unwrap_or(0.0)
    }

    fn metric_line(&self, name: &str, matches: impl Fn(&str) -> bool) -> Option<f64> {
        let out = sh(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns,
                "python3",
                "-c",
                &format!(
                    "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{}/metrics',timeout=3).read().decode())",
                    self.metrics_port
                ),
            ],
        );
        out.lines()
            .find(|l| l.starts_with(name) && matches(&l[name.len()..]))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The effective capabilities of the daemon (hex from /proc/PID/status).
    pub fn cap_eff(&self) -> String {
        let pid = self.pid.unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
            .unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.pid.is_some() {
            self.signal("TERM");
            let t0 = Instant::now();
            while let Some(pid) = self.pid {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid as i32),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
                if !Path::new(&format!("/proc/{pid}")).exists()
                    || t0.elapsed() > Duration::from_secs(6)
                {
                    self.pid = None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if std::env::var_os("WGMESH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `/proc/<pid>/status` field in KiB (e.g. `VmRSS:`), 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The mesh's derived control port, from `wgmesh secret inspect --json`.
pub fn control_port(secret: &Path) -> u16 {
    let out = sh(
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

/// Every ordered pair pings over mesh IPv4 and IPv6 within `limit`.
pub fn all_pairs_ping(nodes: &[&Node], limit: Duration) -> Duration {
    let t0 = Instant::now();
    for a in nodes {
        for b in nodes {
            if a.name == b.name {
                continue;
            }
            let (v4, v6) = b.mesh_ips();
            for ip in [&v4, &v6] {
                let left = limit.saturating_sub(t0.elapsed());
                let t_pair = Instant::now();
                let ok = a.wait_ping(ip, left).is_some();
                if t_pair.elapsed() > Duration::from_millis(900) {
                    println!(
                        "    (slow pair: {} -> {} at {ip}: {:.1} s)",
                        a.name,
                        b.name,
                        t_pair.elapsed().as_secs_f64()
                    );
                }
                if !ok {
                    panic!(
                        "{} cannot ping {} at {ip} within {limit:?}\n--- {} log:\n{}\n--- {} log:\n{}",
                        a.name,
                        b.name,
                        a.name,
                        a.log_tail(25),
                        b.name,
                        b.log_tail(25)
                    );
                }
            }
        }
    }
    t0.elapsed()
}

/// Polls `f` every 100 ms until it holds (returns how long that took) or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Unix time in seconds (to compare with `ping -D` timestamps).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The replies of `ping -D` output as unix timestamps (seconds), in order.
pub fn ping_reply_times(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|t| t.parse().ok())
        })
        .collect()
}
