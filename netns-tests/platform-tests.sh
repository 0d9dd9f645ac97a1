#!/usr/bin/env bash
# Platform tests against real WireGuard, serially:
#   1. userspace backend: wireguard-go in network namespaces on this host;
#   2. kernel backend: the same test binary inside one virtme-ng VM boot (kernel-vm.sh).
# Needs root and the packages install-deps.sh installs; a missing prerequisite fails with what
# to install, unless WGMESH_SKIP_NETNS=1 (then those parts print SKIP). WGMESH_SKIP_VM=1 skips
# only the VM part.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"; target=$(cd "$target" && pwd)
cargo test --locked -q -p wgmesh-netns-tests --lib
cargo build --locked -q -p wgmesh-netns-tests --bin platform-tests
t0=$(date +%s.%N)
"$target/debug/platform-tests" --backend userspace
t1=$(date +%s.%N)
echo "userspace platform tests: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
if [ "${WGMESH_SKIP_VM:-}" = 1 ]; then
    echo "SKIP kernel platform tests (WGMESH_SKIP_VM=1)"
    exit 0
fi
bash netns-tests/kernel-vm.sh -- "$target/debug/platform-tests" --backend kernel
t2=$(date +%s.%N)
echo "kernel platform tests (VM boot + run): $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}') s"
