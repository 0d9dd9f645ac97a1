#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12 (root). Idempotent: installs only what is
# missing. Later parts of the project add their packages here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need_root() { [ "$(id -u)" = 0 ] || { echo "install-deps.sh: $1 is missing; run as root (it installs with apt-get/pip) or install it yourself and set WGMESH_SKIP_INSTALL=1" >&2; exit 1; }; }
command -v cargo >/dev/null || { echo "install-deps.sh: cargo not found; install Rust with rustup first" >&2; exit 1; }
# Python: an independent implementation of the protocol's crypto checks the test vectors.
py_missing=()
python3 -c 'import nacl' 2>/dev/null || py_missing+=(pynacl)
python3 -c 'import argon2' 2>/dev/null || py_missing+=(argon2-cffi)
python3 -c 'import cryptography' 2>/dev/null || py_missing+=(cryptography)
python3 -c 'import cbor2' 2>/dev/null || py_missing+=(cbor2)
if [ ${#py_missing[@]} -gt 0 ]; then
    need_root "python packages ${py_missing[*]}"
    echo "pip install ${py_missing[*]}"
    python3 -m pip install -q "${py_missing[@]}" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "${py_missing[@]}"
fi
