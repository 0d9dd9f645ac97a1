#!/usr/bin/env bash
# demo.sh [N] - a local wgmesh demo: N real nodes (default 3, at most 20) in network namespaces
# on one bridged LAN, one shared secret, no --peer: they find each other by LAN multicast.
# Waits for the mesh, prints `wgmesh show` of node 1 and a ping matrix over the mesh IPv4
# addresses, then tears everything down (also on Ctrl-C). Needs root, iproute2, and
# wireguard-go when the kernel has no WireGuard module. Nothing leaves the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le 20 ] || { echo "usage: demo.sh [N]  (2..20 nodes)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (namespaces, WireGuard interfaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "demo.sh: needs iproute2 (apt-get install iproute2)" >&2; exit 1; }

ID=wgd$(( $$ % 100000 ))
DIR=$(mktemp -d "/tmp/$ID.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break; sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for i in $(seq "$N"); do ip netns del "$ID-h$i" 2>/dev/null || true; rm -f "/var/run/wireguard/${ID}n$i.sock"; done
    ip netns del "$ID-br" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building wgmesh..."
cargo build -q --bin wgmesh
BIN=$PWD/target/debug/wgmesh

ip netns add "$ID-br"
ip -n "$ID-br" link add br0 type bridge
ip -n "$ID-br" link set br0 type bridge mcast_snooping 0
ip -n "$ID-br" link set br0 up
(umask 077; "$BIN" secret new > "$DIR/mesh.secret")
for i in $(seq "$N"); do
    ns=$ID-h$i
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$ID-br"
    ip -n "$ID-br" link set "p$i" master br0
    ip -n "$ID-br" link set "p$i" up
    ip -n "$ns" addr add "10.78.0.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
done
t0=$(date +%s.%N)
for i in $(seq "$N"); do
    mkdir -p "$DIR/n$i"
    ip netns exec "$ID-h$i" "$BIN" up --interface "${ID}n$i" --secret-file "$DIR/mesh.secret" \
        --state-dir "$DIR/n$i/state" --runtime-dir "$DIR/n$i/run" --no-dht >"$DIR/n$i/log" 2>&1 &
    PIDS+=($!)
done

show() { ip netns exec "$ID-h$1" "$BIN" show "${ID}n$1" --runtime-dir "$DIR/n$1/run" "${@:2}" 2>/dev/null; }
active() { show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["interface"]["peers_active"])' 2>/dev/null || echo 0; }
echo "started $N nodes; waiting for the mesh..."
for _ in $(seq 300); do
    done_=1
    for i in $(seq "$N"); do [ "$(active "$i")" = $((N - 1)) ] || { done_=0; break; }; done
    [ $done_ = 1 ] && break
    sleep 0.1
done
[ $done_ = 1 ] || { echo "the mesh did not form in 30 s; node 1's log:"; tail -20 "$DIR/n1/log"; exit 1; }
echo "every node knows the other $((N - 1)) after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
echo
show 1
echo
declare -a IP
for i in $(seq "$N"); do IP[$i]=$(show "$i" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["interface"]["mesh_ipv4"].split("/")[0])'); done
printf 'ping matrix (mesh IPv4)\n%6s' ""; for j in $(seq "$N"); do printf '%5s' "n$j"; done; echo
fail=0
for i in $(seq "$N"); do
    printf '%6s' "n$i"
    for j in $(seq "$N"); do
        if [ "$i" = "$j" ]; then printf '%5s' "-"
        elif ip netns exec "$ID-h$i" ping -c 1 -W 2 "${IP[$j]}" >/dev/null 2>&1; then printf '%5s' "ok"
        else printf '%5s' "FAIL"; fail=1; fi
    done
    echo
done
[ $fail = 0 ] && echo "demo: all pings answered" || echo "demo: some pings failed (logs in $DIR before cleanup)"
exit $fail
