#!/usr/bin/env bash
# service-vm.sh - the daemon under the real unit: boots systemd as PID 1 (virtme-ng --systemd,
# QEMU TCG, the Debian kernel with wireguard.ko) on a Debian 12 root with this .deb installed,
# starts wgmesh@wg0 with its secret as a credential and shows that it reaches READY (Type=notify:
# `systemctl start` returns only then), runs as user wgmesh with CapEff = CAP_NET_ADMIN only,
# brings up a kernel WireGuard interface, and that a second node (userspace WireGuard, in a
# network namespace inside the VM) pings it over the mesh.
#
# Uses what netns-tests/package-tests.sh left: target/debian/wgmesh_*.deb and the cached
# target/pkgtest/bookworm.tar; the root with systemd-sysv, iproute2, ping and wireguard-go is
# cached as target/pkgtest/vmbase.tar. Needs root, vng, qemu, a kernel with wireguard.ko.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$PWD/target/pkgtest
log() { printf '[svc-vm %(%T)T] %s\n' -1 "$*"; }
fail() { echo "FAIL service-vm: $*" >&2; exit 1; }
DEB=$(ls -t target/debian/wgmesh_*.deb 2>/dev/null | head -1 || true)
KERNEL=
for k in $(ls -1v /boot/vmlinuz-* 2>/dev/null | tac); do
    ls /lib/modules/"${k#/boot/vmlinuz-}"/kernel/drivers/net/wireguard/wireguard.ko* >/dev/null 2>&1 && { KERNEL=$k; break; }
done
missing=()
[ "$(id -u)" = 0 ] || missing+=(root)
for c in vng qemu-system-x86_64 modprobe depmod; do command -v $c >/dev/null || missing+=("$c"); done
[ -n "$KERNEL" ] || missing+=("a kernel with wireguard.ko (linux-image-amd64)")
[ -n "$DEB" ] && [ -s "$W/bookworm.tar" ] || missing+=("the .deb and chroot (run netns-tests/package-tests.sh first)")
if [ ${#missing[@]} -gt 0 ]; then
    [ "${WGMESH_SKIP_NETNS:-}" = 1 ] && { echo "SKIP service VM: missing ${missing[*]}"; exit 0; }
    fail "missing ${missing[*]}; run netns-tests/install-deps.sh (or WGMESH_SKIP_NETNS=1 to skip)"
fi
KVER=${KERNEL#/boot/vmlinuz-}
t0=$SECONDS
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
R=$W/vmroot
VMPID=
cleanup() {
    local rc=$?
    if [ -n "$VMPID" ] && kill -0 "$VMPID" 2>/dev/null; then kill -TERM -- "-$VMPID" 2>/dev/null || true; fi
    for m in "$R/proc" "$R/dev"; do mountpoint -q "$m" && umount -l "$m"; done
    [ -n "${WGMESH_KEEP:-}" ] || rm -rf "$R"
    exit $rc
}
trap cleanup EXIT
rm -rf "$R"; mkdir -p "$R"
if [ ! -s "$W/vmbase.tar" ]; then
    log "building the VM root (bookworm + systemd-sysv iproute2 iputils-ping wireguard-go kmod procps), cached"
    tar -C "$R" -xf "$W/bookworm.tar"
    cp /etc/resolv.conf "$R/etc/resolv.conf"
    mount -t proc proc "$R/proc"
    in_root sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd-sysv iproute2 iputils-ping wireguard-go kmod procps && apt-get clean' >"$W/vmbase.log" 2>&1 ||
        { tail -20 "$W/vmbase.log"; fail "apt-get in the VM root"; }
    umount "$R/proc"
    # no udev in the guest: nothing would ever bring up a serial getty
    in_root systemctl mask serial-getty@ttyS0.service getty-static.service >/dev/null 2>&1
    tar -C "$R" -cf "$W/vmbase.tar.tmp" . && mv "$W/vmbase.tar.tmp" "$W/vmbase.tar"
    rm -rf "$R"; mkdir -p "$R"
fi
tar -C "$R" -xf "$W/vmbase.tar"
cp "$DEB" "$R/tmp/wgmesh.deb"
in_root dpkg -i /tmp/wgmesh.deb >/dev/null
# wireguard.ko, tun.ko (the userspace node's wireguard-go), veth.ko and their dependencies
modprobe -S "$KVER" --show-depends -a wireguard tun veth | awk '$1 == "insmod" {print $2}' | while read -r ko; do
    mkdir -p "$R$(dirname "$ko")"; cp "$ko" "$R$ko"
done
cp /lib/modules/"$KVER"/modules.{builtin,builtin.modinfo,order} "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"
# the instance: a secret as the credential file (0600 root), a config
in_root sh -c 'umask 077; wgmesh secret new > /etc/wgmesh/wg0.secret; cp /etc/wgmesh/wg0.secret /root/peer.secret'
port=$(in_root wgmesh secret inspect --json --secret-file /etc/wgmesh/wg0.secret | sed -n 's/.*"control_port": *\([0-9]*\).*/\1/p')
[ -n "$port" ] || fail "no control port from wgmesh secret inspect"
printf 'no-dht = true\nstun = []\nlog-level = "debug"\n' >"$R/etc/wgmesh/wg0.toml"
mkdir -p "$R/root/out"
cat >"$R/root/vmtest.sh" <<GUEST
#!/bin/bash
# runs in the guest as a oneshot unit after boot; results in /root/out
exec >/root/out/guest.log 2>&1
set -x
pass() { echo "PASS \$*" >>/root/out/result; }
bad() { echo "FAIL \$*" >>/root/out/result; }
echo "uptime at test start: \$(cut -d' ' -f1 /proc/uptime) s; PID 1: \$(cat /proc/1/comm)"
[ "\$(cat /proc/1/comm)" = systemd ] && pass "systemd is PID 1" || bad "PID 1 is \$(cat /proc/1/comm)"
lsmod | grep -q '^wireguard' && pass "modules-load.d loaded wireguard" || bad "wireguard not loaded"
ip netns add peer
ip link add v0 type veth peer name v1 || bad "no veth pair"
ip link set v1 netns peer
ip addr add 10.77.0.1/24 dev v0; ip link set v0 up
ip -n peer addr add 10.77.0.2/24 dev v1; ip -n peer link set v1 up; ip -n peer link set lo up
t=\$(date +%s.%N)
if systemctl start wgmesh@wg0.service; then
    pass "systemctl start wgmesh@wg0 returned (READY=1 received) after \$(awk -v a=\$t -v b=\$(date +%s.%N) 'BEGIN{printf "%.1f", b-a}') s"
else
    bad "systemctl start wgmesh@wg0"
fi
systemctl show -p Type,ActiveState,SubState,MainPID,User,WatchdogUSec,StatusText wgmesh@wg0.service | tee /root/out/show.txt
grep -qx ActiveState=active /root/out/show.txt && pass "wgmesh@wg0 active" || bad "wgmesh@wg0 not active"
pid=\$(systemctl show -p MainPID --value wgmesh@wg0.service)
grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/\$pid/status | tee /root/out/caps.txt
uid=\$(id -u wgmesh)
grep -qE "^Uid:\s+\$uid\s+\$uid\s+\$uid\s+\$uid" /root/out/caps.txt && pass "runs as user wgmesh (uid \$uid)" || bad "not running as wgmesh"
grep -qE '^CapEff:\s+0000000000001000$' /root/out/caps.txt && pass "CapEff = CAP_NET_ADMIN only" || bad "CapEff is not CAP_NET_ADMIN only"
grep -qE '^CapBnd:\s+0000000000001000$' /root/out/caps.txt && pass "CapBnd = CAP_NET_ADMIN only" || bad "CapBnd"
grep -qE '^NoNewPrivs:\s+1$' /root/out/caps.txt && pass "NoNewPrivs" || bad "NoNewPrivs"
ip -d link show wg0 | tee /root/out/wg0.txt
grep -q wireguard /root/out/wg0.txt && grep -q 'state UP\|,UP' /root/out/wg0.txt && pass "wg0 is a kernel WireGuard interface, up" || bad "wg0 not a kernel wireguard interface"
mesh_ip=\$(ip -4 -o addr show dev wg0 | awk '{print \$4}' | cut -d/ -f1 | head -1)
echo "mesh ip \$mesh_ip"
modprobe tun
ls /sys/class/net; ip netns exec peer ls /sys/class/net; grep -E ' /sys ' /proc/mounts
# state and control socket on tmpfs: the root is a virtiofs/9p export, which has no unix sockets
mkdir -p /run/peer-state /run/peer-run
ip netns exec peer wgmesh --log-level debug up --interface wg1 --backend userspace --secret-file /root/peer.secret \\
    --state-dir /run/peer-state --runtime-dir /run/peer-run --no-dht --stun '' \\
    --peer 10.77.0.1:$port >/root/out/peer.log 2>&1 &
ok=
for i in \$(seq 1 120); do
    if ip netns exec peer ping -c1 -W1 "\$mesh_ip" >/dev/null 2>&1; then ok=\$i; break; fi
    sleep 1
done
[ -n "\$ok" ] && pass "the userspace node in a namespace pings wgmesh@wg0 at \$mesh_ip (after ~\$ok s)" || bad "no ping to \$mesh_ip over the mesh"
ip netns exec peer ping -c3 -i0.3 "\$mesh_ip" | tail -2
systemctl stop wgmesh@wg0.service && ! ip link show wg0 >/dev/null 2>&1 && pass "stop removes wg0" || bad "stop"
# install-service / uninstall-service against the real systemctl (the packaged unit is used)
if wgmesh install-service --interface wg2 --secret-file /root/peer.secret --no-dht >/root/out/install.txt 2>&1 &&
    systemctl is-enabled wgmesh@wg2.service && systemctl is-active wgmesh@wg2.service &&
    [ "\$(stat -c '%a %U' /etc/wgmesh/wg2.secret)" = "600 root" ]; then
    pass "install-service: wgmesh@wg2 enabled and active, secret 0600 root"
else
    bad "install-service"
fi
wgmesh install-service --interface wg2 --secret-file /root/peer.secret --no-dht >/root/out/install2.txt 2>&1 &&
    grep -q '^unchanged' /root/out/install2.txt && ! grep -qE '^(created|replaced)' /root/out/install2.txt &&
    pass "install-service again: idempotent (nothing written)" || bad "install-service again"
cat /root/out/install2.txt >>/root/out/install.txt
if wgmesh uninstall-service --interface wg2 >>/root/out/install.txt 2>&1 &&
    ! systemctl is-enabled wgmesh@wg2.service && ! systemctl is-active wgmesh@wg2.service &&
    [ ! -e /etc/wgmesh/wg2.secret ] && [ ! -e /etc/wgmesh/wg2.toml ] && [ ! -e /etc/wgmesh/wg2.install ]; then
    pass "uninstall-service: wgmesh@wg2 stopped, disabled, its files gone"
else
    bad "uninstall-service"
fi
journalctl -u wgmesh@wg0.service --no-pager -o short-monotonic | tail -40 >/root/out/journal.txt
kill %1 2>/dev/null; sleep 1
echo done >>/root/out/result
sync
systemctl poweroff
GUEST
chmod 755 "$R/root/vmtest.sh"
cat >"$R/etc/systemd/system/wgmesh-vmtest.service" <<'EOF2'
[Unit]
Description=wgmesh service-vm test
After=basic.target systemd-modules-load.service
[Service]
Type=oneshot
ExecStart=/root/vmtest.sh
[Install]
WantedBy=multi-user.target
EOF2
in_root systemctl enable wgmesh-vmtest.service >/dev/null 2>&1
log "booting systemd in the VM ($KERNEL, TCG)"
tb=$SECONDS
setsid timeout 1200 vng --disable-kvm --systemd --root "$R" --rw --run "$KERNEL" --memory 1G --cpus 2 -a no_timer_check \
    </dev/null >"$W/service-vm.log" 2>&1 &
VMPID=$!
rc=0; wait "$VMPID" || rc=$?
VMPID=
log "VM boot + test + poweroff: $((SECONDS - tb)) s (vng exit $rc)"
for f in caps.txt show.txt wg0.txt journal.txt peer.log install.txt guest.log; do
    [ -s "$R/root/out/$f" ] && { echo "--- guest $f"; tail -40 "$R/root/out/$f"; }
done
[ -s "$R/root/out/result" ] || { sed 's/\x1b\[[0-9;]*m//g' "$W/service-vm.log" | tail -40; fail "the guest test did not run"; }
echo "--- result"; cat "$R/root/out/result"
grep -q '^FAIL' "$R/root/out/result" && fail "guest checks failed (above)"
grep -qx done "$R/root/out/result" || fail "the guest test did not finish"
log "service VM test passed in $((SECONDS - t0)) s"
