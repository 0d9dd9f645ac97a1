#!/usr/bin/env bash
# Discovery at scale, by simulation (no root, no namespaces): 1000 nodes running the peer
# exchange and in-mesh gossip under virtual time (benches/mesh_sim.rs). Prints the time until
# every node knows every other and control bytes/s per node.
# Usage: bench-sim.sh [NODES [SEED [greet|no-greet]]] (default: 1000 nodes, seed 1, both modes)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --locked -q --bench mesh_sim -- "${1:-1000}" "${2:-1}" ${3:+"$3"}
