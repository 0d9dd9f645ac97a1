#!/usr/bin/env bash
# kernel-vm.sh - runs a host-built command as root inside a small virtme-ng VM (QEMU, TCG
# unless WGMESH_VM_KVM=1) booted with a Debian kernel that ships wireguard.ko, so kernel
# WireGuard can be tested on hosts whose kernel lacks it. The guest sees the host's root
# filesystem read-only (9p) with throw-away overlays; OUTDIR is shared read-write and gets the
# guest's output (guest.log) and exit code (exit-code). vng returns the guest command's exit
# code.
#
#   bash netns-tests/kernel-vm.sh [-k /boot/vmlinuz-VER] [-m 1G] [-o OUTDIR] -- CMD ARGS...
#
# Prerequisites (netns-tests/install-deps.sh installs them): qemu-system-x86, busybox-static,
# file, kmod, virtme-ng (pip), a kernel image with wireguard.ko (linux-image-amd64).
# A missing prerequisite fails with what to install, unless WGMESH_SKIP_NETNS=1 (then: SKIP).
set -euo pipefail
KERNEL= OUT= MEM=1G
while getopts k:o:m:h opt; do
    case $opt in k) KERNEL=$OPTARG ;; o) OUT=$OPTARG ;; m) MEM=$OPTARG ;; *) sed -n 2,14p "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1)); [ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { sed -n 2,14p "$0"; exit 2; }
log() { printf '[vm %(%T)T] %s\n' -1 "$*" >&2; }

kernel_ok() { local v=${1#/boot/vmlinuz-}; ls /lib/modules/"$v"/kernel/drivers/net/wireguard/wireguard.ko* >/dev/null 2>&1; }
missing=()
[ "$(id -u)" = 0 ] || missing+=("root")
for c in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static file:file modprobe:kmod vng:"virtme-ng (pip install virtme-ng==1.42)"; do
    command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if [ -z "$KERNEL" ]; then
    for k in $(ls -1v /boot/vmlinuz-* 2>/dev/null | tac); do kernel_ok "$k" && { KERNEL=$k; break; }; done
fi
{ [ -n "$KERNEL" ] && kernel_ok "$KERNEL" && [ -r "$KERNEL" ]; } || missing+=("a kernel image with wireguard.ko (apt-get install linux-image-amd64)")
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${WGMESH_SKIP_NETNS:-}" = 1 ]; then echo "SKIP kernel VM: missing ${missing[*]}"; exit 0; fi
    echo "FAIL kernel VM: missing ${missing[*]}; run netns-tests/install-deps.sh, or set WGMESH_SKIP_NETNS=1 to skip" >&2
    exit 2
fi

WORK=$(mktemp -d /tmp/wgmesh-vm.XXXXXX)   # under /tmp: visible in the guest (overlay lower dir)
OUT=${OUT:-$WORK/out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
VMPID=
cleanup() {
    local rc=$?
    # vng runs in its own session (setsid): signal that process group only
    if [ -n "$VMPID" ] && kill -0 "$VMPID" 2>/dev/null; then kill -TERM -- "-$VMPID" 2>/dev/null || true; fi
    [ -n "${WGMESH_KEEP:-}" ] || rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT; trap 'exit 130' INT TERM HUP

cat >"$WORK/guest.sh" <<'GUEST'
#!/bin/bash
# runs as root inside the VM: $1 = OUTDIR, rest = the command
out=$1; shift
t0=$(date +%s.%N)
modprobe wireguard
echo "guest: kernel $(uname -r), wireguard $(cat /sys/module/wireguard/version 2>/dev/null), $(nproc) cpus"
rc=0; "$@" || rc=$?
echo "guest: command exit $rc after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s in guest"
echo "$rc" >"$out/exit-code"; exit $rc
GUEST
chmod +x "$WORK/guest.sh"

kvm_flag=--disable-kvm; [ -n "${WGMESH_VM_KVM:-}" ] && kvm_flag=
cmd="bash $(printf '%q ' "$WORK/guest.sh" "$OUT" "$@") 2>&1 | tee $(printf '%q' "$OUT/guest.log")"
log "kernel $KERNEL, ${kvm_flag:-KVM}, out $OUT"
t0=$(date +%s.%N)
setsid timeout 900 vng $kvm_flag --run "$KERNEL" --memory "$MEM" --cpus 2 --rwdir="$OUT" --exec "$cmd" \
    </dev/null >"$WORK/vm.log" 2>&1 &
VMPID=$!
rc=0; wait "$VMPID" || rc=$?
VMPID=
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
cat "$WORK/vm.log"
guest_rc=$(cat "$OUT/exit-code" 2>/dev/null || echo "none")
log "VM boot+run+shutdown: $secs s, vng exit $rc, guest command exit $guest_rc"
[ "$guest_rc" = 0 ] || { [ $rc != 0 ] || rc=1; }
exit $rc
