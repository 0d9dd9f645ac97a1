//! NAT topologies for the STUN tests, written after the lab recipes (own code, no lab script
//! sourced): an "internet" namespace with STUN server addresses 192.0.2.1/.2 on its loopback
//! and coturn (STUN only, RFC 5780 with two IPs, alternate port 3479) on them, and NAT routers
//! (nftables masquerade) each with one host behind it:
//!
//! ```text
//!  <site>1 10.0.<n>.11 ── lan 10.0.<n>.1  nat<site>  wan 198.51.<n>.2 ── inet 198.51.<n>.1
//!                                                                       lo 192.0.2.1, 192.0.2.2
//! ```
//! Modes: `cone` (masquerade persistent: endpoint-independent mapping, port kept), `full-cone`
//! (the same plus endpoint-independent filtering through a learned nftables map), `symmetric`
//! (masquerade fully-random: a new port per destination), `blocked` (cone, but forwarded UDP
//! is dropped). Filtering is Linux conntrack's (address-and-port-dependent); the router drops
//! unsolicited inbound to itself. coturn is started with a recorded PID (killed by the lab's
//! teardown, only while inside our namespace).
#![forbid(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, sh, sh_ok};

/// The STUN server addresses (coturn listens on both, ports 3478 and 3479).
pub const STUN_1: &str = "192.0.2.1:3478";
pub const STUN_2: &str = "192.0.2.2:3478";

/// NAT behaviour of a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatMode {
    Cone,
    /// Cone mapping and endpoint-independent filtering: a dynamic map learns mapped port ->
    /// inside address:port on the way out, inbound UDP to a mapped port is DNATed through it.
    FullCone,
    Symmetric,
    Blocked,
}

/// The internet namespace with its STUN server.
pub struct Internet {
    pub ns: String,
    pub coturn_pid: Option<u32>,
    log: std::path::PathBuf,
}

/// A NAT router with one host behind it.
pub struct Site {
    pub nat_ns: String,
    pub host_ns: String,
    /// The router's public (WAN) address.
    pub wan: String,
    /// The site's number (its addresses: 10.0.N.0/24 inside, 198.51.N.0/24 outside).
    pub n: u8,
}

fn ns_sh(ns: &str, cmd: &str) {
    sh("ip", &["netns", "exec", ns, "sh", "-c", cmd]);
}

impl Internet {
    pub fn new(lab: &Lab) -> Self {
        let ns = lab.add_ns("inet");
        ns_sh(&ns, "echo 1 > /proc/sys/net/ipv4/ip_forward");
        for a in ["192.0.2.1/32", "192.0.2.2/32"] {
            sh("ip", &["-n", &ns, "addr", "add", a, "dev", "lo"]);
        }
        let log = std::env::temp_dir().join(format!("{}-coturn.log", lab.id));
        Self {
            ns,
            coturn_pid: None,
            log,
        }
    }

    /// Starts coturn (STUN only, RFC 5780) and waits until its four UDP listeners are bound.
    pub fn start_coturn(&mut self, lab: &Lab) {
        let dir = std::env::temp_dir();
        let db = dir.join(format!("{}-turndb", lab.id));
        let pidfile = dir.join(format!("{}-turnserver.pid", lab.id));
        let log = std::fs::File::create(&self.log).unwrap_or_else(|e| panic!("coturn log: {e}"));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("coturn log: {e}"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "turnserver",
                "-n",
                "--stun-only",
                "--no-cli",
            ])
            .args([
                "--no-tls",
                "--no-dtls",
                "-L",
                "192.0.2.1",
                "-L",
                "192.0.2.2",
            ])
            .args([
                "-p",
                "3478",
                "--alt-listening-port",
                "3479",
                "--log-file",
                "stdout",
            ])
            .arg("--simple-log")
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--userdb")
            .arg(&db)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver: {e}"));
        // `ip netns exec` execs turnserver in place: the PID is coturn's.
        let pid = child.id();
        lab.record_pid(pid);
        self.coturn_pid = Some(pid);
        std::mem::forget(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let ss = sh("ip", &["netns", "exec", &self.ns, "ss", "-Hlun"]);
            let bound = [
                "192.0.2.1:3478",
                "192.0.2.1:3479",
                "192.0.2.2:3478",
                "192.0.2.2:3479",
            ]
            .iter()
            .all(|a| ss.contains(a));
            if bound {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(
                    !text.contains("RFC5780 disabled"),
                    "coturn says RFC5780 disabled (needs two -L addresses)"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "coturn did not bind its 4 UDP listeners within 10 s:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// A NAT router `nat<name>` and host `<name>1` behind it, as site number `n` (1..=250).
    pub fn site(&self, lab: &Lab, name: &str, n: u8, mode: NatMode) -> Site {
        let nat_ns = lab.add_ns(&format!("nat{name}"));
        let host_ns = lab.add_ns(&format!("{name}1"));
        ns_sh(&nat_ns, "echo 1 > /proc/sys/net/ipv4/ip_forward");
        let wan = format!("198.51.{n}.2");
        let up = format!("up{name}");
        lab.link(
            &self.ns,
            &up,
            &format!("198.51.{n}.1/24"),
            &nat_ns,
            "wan",
            &format!("{wan}/24"),
        );
        sh(
            "ip",
            &[
                "-n",
                &nat_ns,
                "route",
                "add",
                "default",
                "via",
                &format!("198.51.{n}.1"),
            ],
        );
        lab.link(
            &nat_ns,
            "lan",
            &format!("10.0.{n}.1/24"),
            &host_ns,
            "eth0",
            &format!("10.0.{n}.11/24"),
        );
        // A second inside subnet, for roaming tests (the host moves to 10.0.(n+100).11).
        sh(
            "ip",
            &[
                "-n",
                &nat_ns,
                "addr",
                "add",
                &format!("10.0.{}.1/24", n + 100),
                "dev",
                "lan",
            ],
        );
        sh(
            "ip",
            &[
                "-n",
                &host_ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.0.{n}.1"),
            ],
        );
        let site = Site {
            nat_ns,
            host_ns,
            wan,
            n,
        };
        site.set_mode(lab, mode);
        site
    }
}

impl Internet {
    /// Starts a private Mainline DHT swarm (npm bittorrent-dht, 192.0.2.21… port 6881) in
    /// this namespace: the NAT grid's one internet holds both STUN and the DHT.
    pub fn start_dht(&self, lab: &Lab, nodes: u8) -> crate::dht::Swarm {
        crate::dht::start_swarm(lab, &self.ns, nodes)
    }

    /// A host `name` with a public address 198.51.`n`.2 (no NAT) directly on the internet.
    pub fn public_host(&self, lab: &Lab, name: &str, n: u8) -> (String, std::net::IpAddr) {
        let ns = lab.add_ns(name);
        lab.link(
            &self.ns,
            &format!("up{name}"),
            &format!("198.51.{n}.1/24"),
            &ns,
            "eth0",
            &format!("198.51.{n}.2/24"),
        );
        sh(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("198.51.{n}.1"),
            ],
        );
        (ns, [198, 51, n, 2].into())
    }

    /// A NAT router `nat<name>` whose inside is a bridge `lan` (10.0.`n`.1/24) with `hosts`
    /// hosts `<name>1`, `<name>2` … (10.0.`n`.11, .12 …) on it: hosts behind the same NAT on
    /// one LAN. `Site::host_ns` is the first host; all are returned.
    pub fn site_lan(
        &self,
        lab: &Lab,
        name: &str,
        n: u8,
        mode: NatMode,
        hosts: u8,
    ) -> (Site, Vec<String>) {
        let nat_ns = lab.add_ns(&format!("nat{name}"));
        ns_sh(&nat_ns, "echo 1 > /proc/sys/net/ipv4/ip_forward");
        let wan = format!("198.51.{n}.2");
        lab.link(
            &self.ns,
            &format!("up{name}"),
            &format!("198.51.{n}.1/24"),
            &nat_ns,
            "wan",
            &format!("{wan}/24"),
        );
        sh(
            "ip",
            &[
                "-n",
                &nat_ns,
                "route",
                "add",
                "default",
                "via",
                &format!("198.51.{n}.1"),
            ],
        );
        sh(
            "ip",
            &["-n", &nat_ns, "link", "add", "lan", "type", "bridge"],
        );
        sh(
            "ip",
            &[
                "-n",
                &nat_ns,
                "addr",
                "add",
                &format!("10.0.{n}.1/24"),
                "dev",
                "lan",
            ],
        );
        // A second inside subnet, for roaming (`Site::roam_host`).
        sh(
            "ip",
            &[
                "-n",
                &nat_ns,
                "addr",
                "add",
                &format!("10.0.{}.1/24", n + 100),
                "dev",
                "lan",
            ],
        );
        sh("ip", &["-n", &nat_ns, "link", "set", "lan", "up"]);
        let mut list = Vec::new();
        for k in 1..=hosts {
            let host_ns = lab.add_ns(&format!("{name}{k}"));
            let port = format!("p{k}");
            sh(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &host_ns, "type", "veth", "peer", "name",
                    &port, "netns", &nat_ns,
                ],
            );
            sh(
                "ip",
                &["-n", &nat_ns, "link", "set", &port, "master", "lan"],
            );
            sh("ip", &["-n", &nat_ns, "link", "set", &port, "up"]);
            sh(
                "ip",
                &[
                    "-n",
                    &host_ns,
                    "addr",
                    "add",
                    &format!("10.0.{n}.{}/24", 10 + k),
                    "dev",
                    "eth0",
                ],
            );
            sh("ip", &["-n", &host_ns, "link", "set", "eth0", "up"]);
            sh(
                "ip",
                &[
                    "-n",
                    &host_ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.0.{n}.1"),
                ],
            );
            list.push(host_ns);
        }
        let site = Site {
            nat_ns,
            host_ns: list.first().cloned().unwrap_or_default(),
            wan,
            n,
        };
        site.set_mode(lab, mode);
        (site, list)
    }
}

impl Drop for Internet {
    /// Removes coturn's files (its log stays after a failure, for the report).
    fn drop(&mut self) {
        let dir = std::env::temp_dir();
        let id = self.ns.trim_end_matches("-inet");
        for f in [format!("{id}-turndb"), format!("{id}-turnserver.pid")] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        if std::thread::panicking() {
            eprintln!("coturn log kept: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Site {
    /// (Re)writes the router's nftables table for `mode` (new flows only; existing conntrack
    /// entries keep their mapping).
    pub fn set_mode(&self, lab: &Lab, mode: NatMode) {
        let flags = match mode {
            NatMode::Cone | NatMode::FullCone | NatMode::Blocked => "persistent",
            NatMode::Symmetric => "fully-random",
        };
        let block = if mode == NatMode::Blocked {
            "iifname \"lan\" meta l4proto udp drop"
        } else {
            ""
        };
        let full_cone = if mode == NatMode::FullCone {
            "map fullcone { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout 180s; }\n\
             chain fc_pre { type nat hook prerouting priority -100; policy accept;\n\
               iifname \"wan\" meta l4proto udp dnat ip to udp dport map @fullcone\n}\n\
             chain fc_learn { type filter hook postrouting priority 110; policy accept;\n\
               oifname \"wan\" meta l4proto udp ct direction original update @fullcone { ct reply proto-dst timeout 180s : ct original ip saddr . ct original proto-src }\n}\n"
        } else {
            ""
        };
        let rules = format!(
            "table ip wgmnat\ndelete table ip wgmnat\ntable ip wgmnat {{\n{full_cone}\
             chain nat_post {{ type nat hook postrouting priority 100; policy accept;\n\
               oifname \"wan\" masquerade {flags}\n}}\n\
             chain nat_forward {{ type filter hook forward priority 0; policy accept;\n\
               {block}\n\
               iifname \"wan\" ct state established,related accept\n\
               iifname \"wan\" ct status dnat accept\n\
               iifname \"wan\" drop\n}}\n\
             chain nat_input {{ type filter hook input priority 0; policy accept;\n\
               iifname \"wan\" ct state established,related accept\n\
               iifname \"wan\" meta l4proto icmp accept\n\
               iifname \"wan\" drop\n}}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("{}-{}.nft", lab.id, self.nat_ns));
        std::fs::write(&file, rules).unwrap_or_else(|e| panic!("nft rules: {e}"));
        let ok = sh_ok(
            "ip",
            &[
                "netns",
                "exec",
                &self.nat_ns,
                "nft",
                "-f",
                file.to_str().unwrap_or_default(),
            ],
        );
        let _ = std::fs::remove_file(&file);
        assert!(ok, "nft rules for {} ({mode:?}) failed", self.nat_ns);
    }

    /// Moves the host to the second inside subnet (an address change, like roaming).
    pub fn roam_host(&self) {
        let n = self.n;
        let h = &self.host_ns;
        sh(
            "ip",
            &[
                "-n",
                h,
                "addr",
                "add",
                &format!("10.0.{}.11/24", n + 100),
                "dev",
                "eth0",
            ],
        );
        sh(
            "ip",
            &[
                "-n",
                h,
                "addr",
                "del",
                &format!("10.0.{n}.11/24"),
                "dev",
                "eth0",
            ],
        );
        sh(
            "ip",
            &[
                "-n",
                h,
                "route",
                "replace",
                "default",
                "via",
                &format!("10.0.{}.1", n + 100),
            ],
        );
    }
}
