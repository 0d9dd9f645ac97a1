#!/usr/bin/env bash
# Footprint benchmark of the daemon (release build): RSS with 1000 peers, idle wakeups with 100.
# Prints figures; see netns-tests/src/bin/daemon-bench.rs. Usage: bench-daemon.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p wgmesh -p wgmesh-netns-tests --bins
exec target/release/daemon-bench "${1:-60}"
