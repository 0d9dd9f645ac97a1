//! Prerequisites: fail with a message saying what to install, or skip everything when
//! `WGMESH_SKIP_NETNS=1` is set.
#![forbid(unsafe_code)]

use std::path::Path;

/// Environment variable that turns missing prerequisites into a skip.
pub const SKIP_ENV: &str = "WGMESH_SKIP_NETNS";

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// What is missing for a run (`userspace`: wireguard-go is needed).
pub fn missing(userspace: bool) -> Vec<String> {
    let mut m = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        m.push("root (run as root: namespaces, netlink writes)".to_string());
    }
    for (cmd, pkg) in [
        ("ip", "iproute2"),
        ("wg", "wireguard-tools"),
        ("nft", "nftables"),
        ("ping", "iputils-ping"),
    ] {
        if !have(cmd) {
            m.push(format!("`{cmd}` (apt-get install {pkg})"));
        }
    }
    if userspace && !have("wireguard-go") && std::env::var_os("WGMESH_WIREGUARD_GO").is_none() {
        m.push("`wireguard-go` (apt-get install wireguard-go)".to_string());
    }
    if userspace && !Path::new("/dev/net/tun").exists() {
        m.push("/dev/net/tun (load the tun module)".to_string());
    }
    m
}

/// Exits the process: 0 with SKIP when `WGMESH_SKIP_NETNS=1`, else 2 with what to install.
/// Returns when nothing is missing.
pub fn require(userspace: bool, what: &str) {
    let m = missing(userspace);
    if std::env::var(SKIP_ENV).as_deref() == Ok("1") && !m.is_empty() {
        println!("SKIP {what}: {SKIP_ENV}=1 and missing: {}", m.join(", "));
        std::process::exit(0);
    }
    if !m.is_empty() {
        eprintln!(
            "FAIL {what}: missing prerequisites: {}.\nInstall them (netns-tests/install-deps.sh does) or set {SKIP_ENV}=1 to skip the namespace tests.",
            m.join(", ")
        );
        std::process::exit(2);
    }
}
