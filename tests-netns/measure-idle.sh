#!/usr/bin/env bash
# Measures the idle CPU and memory of `slirp attach --configure` on a real TAP.
#
# Usage (root): tests-netns/measure-idle.sh [SLIRP_BINARY] [SECONDS]
# Default binary: target/release/slirp (build it with `cargo build --release -p slirp-std`).
#
# Network safety: slirp runs inside a throwaway "host" namespace whose only route leads to a
# throwaway "internet" namespace (198.51.100.0/24); its resolver file points there too. Every
# namespace and process made here is removed on exit, by name and PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/slirp}
SECS=${2:-10}
[ "$(id -u)" = 0 ] || { echo "measure-idle: needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "measure-idle: $BIN missing (cargo build --release -p slirp-std)" >&2; exit 1; }

P="slirpm-$$"
HOST="$P-host" INET="$P-inet" GUEST="$P-guest"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    for ns in "$HOST" "$INET" "$GUEST"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "/etc/netns/$HOST"
}
trap cleanup EXIT

# shellcheck source=tests-netns/lab.sh
. tests-netns/lab.sh
lab_up "$HOST" "$INET" || exit 1
ip netns add "$GUEST"

ip netns exec "$HOST" "$BIN" attach --configure --netns "/run/netns/$GUEST" --log-level warn &
PID=$!
for _ in $(seq 100); do ip -n "$GUEST" link show tap0 >/dev/null 2>&1 && break; sleep 0.05; done
ip netns exec "$GUEST" ping -c 3 -i 0.2 -q 10.0.2.2 >/dev/null
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
wakeups() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$PID/status"; }
T0=$(ticks) W0=$(wakeups)
sleep "$SECS"
T1=$(ticks) W1=$(wakeups)
HZ=$(getconf CLK_TCK)
echo "idle for ${SECS}s: $((T1 - T0)) CPU ticks (CLK_TCK=$HZ) = $(awk -v t=$((T1 - T0)) -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.2f", 100 * t / hz / s }')% CPU"
echo "wakeups (voluntary context switches) in ${SECS}s: $((W1 - W0))"
grep -E 'VmRSS|VmHWM' "/proc/$PID/status"
ps -o pid,%cpu,rss,vsz,cmd -p "$PID"
