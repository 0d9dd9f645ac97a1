#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit/property tests, the independent Python checks of
# the protocol, and (as later issues add them) the namespace and VM tests, serially.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked
cargo test --locked
python3 netns-tests/protocol/check_protocol.py target/debug/wgmesh
