#!/usr/bin/env bash
# Runs every test of the project, serially: install what is missing (unless
# WGMESH_SKIP_INSTALL=1), formatting, clippy, unit/property tests, the independent Python checks
# of the protocol, and (as later parts add them) the namespace and VM tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${WGMESH_SKIP_INSTALL:-}" ]; then
    bash netns-tests/install-deps.sh
fi
steps_done=0
current=
step() {
    [ -n "$current" ] && steps_done=$((steps_done + 1))
    current=$*
    printf '\n=== %s\n' "$*"
}
summary() {
    local rc=$?
    if [ $rc = 0 ]; then
        [ -n "$current" ] && steps_done=$((steps_done + 1))
        echo "run-all: $steps_done passed, 0 failed"
    else
        echo "run-all: FAILED at step: $current"
        echo "run-all: $steps_done passed, 1 failed"
    fi
}
trap summary EXIT
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "no spawning of wg/ip/iptables/nft/sysctl in src/; only two files may start a process"
if grep -rnE 'Command::new\("(wg|ip|iptables|nft|sysctl)"\)' src/; then
    echo "FAIL: src/ must drive the kernel over netlink, not by running tools"; exit 1
fi
# the platform's one allowed spawn is wireguard-go itself
spawns=$(grep -rlE 'Command::new|std::process::Command|tokio::process::Command' src/platform/ | grep -v "src/platform/wireguard_go.rs" || true)
if [ -n "$spawns" ]; then
    echo "FAIL: only src/platform/wireguard_go.rs may spawn a process in src/platform: $spawns"; exit 1
fi
# ... and outside it only install-service's systemctl/systemd-sysusers (src/service/system_tools.rs)
spawns=$(grep -rlE 'Command::new|std::process::Command|tokio::process::Command' src/ |
    grep -vxE 'src/platform/wireguard_go.rs|src/service/system_tools.rs' || true)
if [ -n "$spawns" ]; then
    echo "FAIL: only src/platform/wireguard_go.rs and src/service/system_tools.rs may spawn a process: $spawns"; exit 1
fi
if grep -nE 'Command::new\(' src/service/system_tools.rs | grep -vq 'tool.program()'; then
    echo "FAIL: src/service/system_tools.rs runs only Tool::program() (systemctl, systemd-sysusers)"; exit 1
fi
step "cargo test"
cargo build --locked
cargo test --locked
step "independent protocol cross-check (Python)"
python3 netns-tests/protocol/check_protocol.py target/debug/wgmesh
step "systemd unit sandbox exposure"
bash netns-tests/unit-security.sh
step "man pages and completions from the clap definitions"
cargo xtask assets target/assets
for f in man/wgmesh.8 man/wgmesh-secret-inspect.8 completions/wgmesh.bash completions/_wgmesh completions/wgmesh.fish; do
    [ -s "target/assets/$f" ] || { echo "FAIL: target/assets/$f was not generated"; exit 1; }
done
step "platform tests: wireguard-go in namespaces, kernel WireGuard in a VM (WGMESH_SKIP_NETNS=1 skips)"
bash netns-tests/platform-tests.sh
step "daemon tests: real wgmesh processes in namespaces (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing)"
cargo build --locked -q --workspace --bins
target/debug/daemon-tests
step "relay fallback: failover through an introducer and back (routed namespaces)"
target/debug/relay-tests
step "registry server: wgmesh registry serve over HTTPS in a namespace (members only, own slots only, kill -9 + restart, expiry, no plaintext on disk, limits)"
target/debug/registry-server-tests
step "latency-aware relays: two introducers, 150 ms added to one (tc netem, or a user-space delay bridge without sch_netem); the pair picks the other, follows the delay within 90 s, ping gap under 3 s"
target/debug/relay-quality-tests
step "NAT tests: coturn + nftables NAT routers, wgmesh netcheck and a daemon behind a NAT (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing)"
target/debug/nat-tests
step "DHT tests: routed sites meet through a private npm bittorrent-dht swarm (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing; WGMESH_DHT_SKIP_ROAM=1 skips the ~2.5 min roaming step)"
target/debug/dht-tests
step "registry tests: three routed sites meet only through a registry, the GitHub stand-in and wgmesh registry serve over TLS; clean stop deletes the entry; rate-limit back-off (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing)"
target/debug/registry-tests
step "NAT grid: every pair of NAT sites (cone, full-cone, symmetric, same LAN, public) meets through the DHT + an introducer: reachable within 30 s, required paths (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing)"
target/debug/nat-grid
step "hostile input: bad datagrams counted by reason, a 20k/s spoofed flood (release build)"
cargo build --locked -q --release --workspace --bins
target/release/hostile-tests
step "registry load: 1000 nodes x (publish + fetch) against the release-built registry server over HTTPS (requests/s, p50/p99)"
target/release/registry-bench
step "packages: lintian, rpmlint, .deb install/upgrade/purge in a Debian 12 chroot (WGMESH_SKIP_NETNS=1 skips when prerequisites are missing)"
bash netns-tests/package-tests.sh
step "the daemon under the real unit: systemd as PID 1 in a VM, wgmesh@wg0 READY, CAP_NET_ADMIN only, pinged by a second node"
bash netns-tests/service-vm.sh
