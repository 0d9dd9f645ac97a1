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
# Platform tests (netns-tests/platform-tests.sh): namespaces, wireguard-go, independent readers
# (wg, ip -j, nft -j), ping; and the kernel-WireGuard VM (netns-tests/kernel-vm.sh): QEMU,
# busybox, file (virtme-ng runs it), kmod, virtme-ng from PyPI, a Debian kernel with wireguard.ko.
# Relay quality tests: `tc` (iproute2) with the kernel's sch_netem (kmod's modprobe loads it);
# on a kernel without it, python3 (packet sockets) runs netns-tests/tools/delay_bridge.py.
declare -A apt_pkg=(
    [iproute2]=/sbin/ip [nftables]=/usr/sbin/nft [wireguard-tools]=/usr/bin/wg
    [wireguard-go]=/usr/bin/wireguard-go [iputils-ping]=/bin/ping [kmod]=/sbin/modprobe
    [qemu-system-x86]=/usr/bin/qemu-system-x86_64 [busybox-static]=/bin/busybox
    [file]=/usr/bin/file [python3-pip]=/usr/bin/pip3 [systemd]=/usr/bin/systemd-analyze
    [coturn]=/usr/bin/turnserver
    # package tests (netns-tests/package-tests.sh, service-vm.sh): lint and a Debian 12 chroot
    [lintian]=/usr/bin/lintian [rpm]=/usr/bin/rpm [rpmlint]=/usr/bin/rpmlint
    [debootstrap]=/usr/sbin/debootstrap [dpkg-dev]=/usr/bin/dpkg-shlibdeps
    # a C compiler: ring (rustls) and rusqlite's bundled SQLite (wgmesh registry serve) build C
    [gcc]=/usr/bin/gcc
)
apt_missing=()
for p in "${!apt_pkg[@]}"; do [ -e "${apt_pkg[$p]}" ] || apt_missing+=("$p"); done
kernel_with_wg() {
    local k v
    for k in $(ls -1v /boot/vmlinuz-* 2>/dev/null | tac); do
        v=${k#/boot/vmlinuz-}
        ls /lib/modules/"$v"/kernel/drivers/net/wireguard/wireguard.ko* >/dev/null 2>&1 && { echo "$k"; return 0; }
    done
    return 1
}
kernel_with_wg >/dev/null || apt_missing+=(linux-image-amd64)
if [ ${#apt_missing[@]} -gt 0 ]; then
    need_root "${apt_missing[*]}"
    echo "apt-get install ${apt_missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    # The NAT tests run coturn in a namespace; the package's host-wide service is not wanted.
    if [[ " ${apt_missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now coturn >/dev/null 2>&1 || true
    fi
fi
if ! command -v vng >/dev/null; then
    need_root "virtme-ng"
    echo "pip install virtme-ng==1.42"
    python3 -m pip install -q "virtme-ng==1.42" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "virtme-ng==1.42"
fi
# DHT tests (netns-tests/src/bin/dht-tests.rs): a private Mainline DHT made of npm
# bittorrent-dht nodes (node + npm from Debian; the package pinned, installed once into
# WGMESH_DHT_NODE_DIR, default /var/cache/wgmesh-tests/dht).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    need_root "nodejs npm"
    echo "apt-get install nodejs npm"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
dht_dir=${WGMESH_DHT_NODE_DIR:-/var/cache/wgmesh-tests/dht}
dht_version=11.0.12
if [ "$(node -p "try{require('$dht_dir/node_modules/bittorrent-dht/package.json').version}catch(e){''}" 2>/dev/null)" != "$dht_version" ]; then
    echo "npm install bittorrent-dht@$dht_version into $dht_dir"
    mkdir -p "$dht_dir"
    (cd "$dht_dir" && { [ -f package.json ] || echo '{"name":"wgmesh-test-dht","private":true}' >package.json; } &&
        npm install --no-audit --no-fund --loglevel=error "bittorrent-dht@$dht_version" >/dev/null)
fi
# Packaging (contrib/package.sh): pinned versions, built once (~4 min each on 2 cores).
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
    name=${tool%@*} version=${tool#*@}
    if ! "$name" --version 2>/dev/null | grep -qF "$version"; then
        echo "cargo install --locked $tool"
        cargo install -q --locked "$tool"
    fi
done
