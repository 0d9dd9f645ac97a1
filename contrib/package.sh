#!/usr/bin/env bash
# Builds target/debian/wgmesh_*.deb (cargo-deb) and target/generate-rpm/wgmesh-*.rpm
# (cargo-generate-rpm) from a checkout: the release binary, then the man pages and completions
# from the clap definitions (cargo xtask assets), then both packages from the metadata in
# Cargo.toml. Extra arguments go to cargo deb (e.g. --deb-version 0.0.1-1 for a test build).
#
#   bash contrib/package.sh [--deb-version V]
#
# Needs: cargo-deb 3.8.0 and cargo-generate-rpm 0.21.1 (netns-tests/install-deps.sh installs
# them with `cargo install --locked`), dpkg (for cargo deb's dependency lookup).
set -euo pipefail
cd "$(dirname "$0")/.."
for c in cargo-deb cargo-generate-rpm; do
    command -v "$c" >/dev/null || { echo "package.sh: $c missing: run netns-tests/install-deps.sh" >&2; exit 1; }
done
cargo build --locked --release -p wgmesh
rm -rf target/assets
cargo xtask assets target/assets
# rpm does not compress man pages itself (cargo deb does); both get the same pages
for m in target/assets/man/*.8; do gzip -9nc "$m" >"$m.gz"; done
cargo deb --locked --no-build "$@"
cargo generate-rpm -p .
ls -l target/debian/*.deb target/generate-rpm/*.rpm
