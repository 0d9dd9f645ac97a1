#!/usr/bin/env bash
# Time-to-mesh benchmark (release build): 3 and 6 real nodes on one LAN, 5 runs each.
# Prints median and max; see netns-tests/src/bin/mesh-bench.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p wgmesh -p wgmesh-netns-tests --bins
exec target/release/mesh-bench
