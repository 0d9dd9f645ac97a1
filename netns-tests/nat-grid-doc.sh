#!/usr/bin/env bash
# Regenerates docs/nat-grid.md: runs the NAT grid (as root) and lets it write its table there.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q --workspace --bins
WGMESH_NAT_GRID_OUT="$PWD/docs/nat-grid.md" target/debug/nat-grid
