#!/usr/bin/env bash
# Platform benchmark (prints figures; not part of the test verdict): 1000 peers x 2 allowed IPs
# from empty, a no-change apply, 10 endpoint changes — wgmesh vs `wg setconf` vs a loop of
# `wg set`, per backend (userspace on this host, kernel inside the VM). Release build.
#   bash netns-tests/bench-platform.sh [userspace|kernel|all]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"; target=$(cd "$target" && pwd)
cargo build --locked -q --release -p wgmesh-netns-tests --bin platform-bench
case $which in userspace|all) "$target/release/platform-bench" --backend userspace ;; esac
case $which in kernel|all) bash netns-tests/kernel-vm.sh -- "$target/release/platform-bench" --backend kernel ;; esac
