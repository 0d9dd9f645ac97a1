#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 300) each, one after the other, and prints
# the executions and the outcome of each. Needs `cargo install cargo-fuzz` and a nightly
# toolchain (`rustup toolchain install nightly`), or RUSTC_BOOTSTRAP=1 with stable.
# Exit status is non-zero if any target found a crash (artifacts in fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
command -v cargo-fuzz >/dev/null || { echo "fuzz-all.sh: cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
toolchain=+nightly
rustup run nightly rustc --version >/dev/null 2>&1 || { toolchain=; export RUSTC_BOOTSTRAP=1; }
targets=$(cargo $toolchain fuzz list)
cargo $toolchain fuzz build $targets >/dev/null 2>&1 || cargo $toolchain fuzz build
rc=0
for t in $targets; do
    log=$(mktemp)
    mkdir -p "fuzz/corpus/$t"
    if cargo $toolchain fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        outcome="no crash"
    else
        outcome="CRASH (see fuzz/artifacts/$t)"; rc=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
    echo "fuzz $t: ${secs}s, $execs executions, $cov, $outcome"
    [ "$outcome" = "no crash" ] || tail -30 "$log"
    rm -f "$log"
done
exit $rc
