#!/usr/bin/env bash
# Prints systemd's exposure score of contrib/systemd/wgmesh@.service and fails above 1.7.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || { echo "unit-security.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
out=$(systemd-analyze security --offline=true contrib/systemd/wgmesh@.service 2>&1)
score=$(printf '%s\n' "$out" | grep -oE 'Overall exposure level for [^:]*: [0-9.]+' | grep -oE '[0-9.]+$')
[ -n "$score" ] || { printf '%s\n' "$out"; echo "unit-security.sh: no score in the output" >&2; exit 1; }
echo "systemd-analyze security --offline=true wgmesh@.service: exposure $score (limit 1.7)"
awk -v s="$score" 'BEGIN { exit !(s <= 1.7) }' || { printf '%s\n' "$out" | grep '✗'; exit 1; }
