#!/usr/bin/env bash
# Profiles one iperf3 transfer through `slirp attach` with `perf record -a -g` and prints where
# the machine's CPU time went: per process, then inside slirp (inclusive, kernel and user).
#
# Usage (root): bench/profile.sh [--mtu N] [--reverse] [--udp] [--seconds S] [--keep] [-- SLIRP ARGS]
#   --mtu N      guest MTU (default 65520)
#   --reverse    internet -> guest (iperf3 -R); default guest -> internet
#   --udp        64-byte UDP datagrams at full speed (iperf3 -u -l 64 -b 0) instead of TCP
#   --seconds S  length of the transfer (default 8; perf records the middle S-4 seconds)
#   --keep       keep perf.data in /tmp/slirp-profile-PID/ for `perf report -i`
# Needs perf, iperf3, iproute2; builds nothing: uses target/release/slirp
# (cargo build --release -p slirp-std).
#
# Network safety: as everywhere in this project, slirp runs in a throwaway "host" namespace whose
# only route leads to a throwaway "internet" namespace (198.51.100.0/24, checked by lab_up), with
# its own resolv.conf; every namespace and process made here is removed on exit, by name and PID.
set -euo pipefail
cd "$(dirname "$0")/.."
MTU=65520 REVERSE="" UDP="" SECS=8 KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --mtu) MTU=$2; shift 2 ;;
        --reverse) REVERSE=-R; shift ;;
        --udp) UDP=1; shift ;;
        --seconds) SECS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
BIN=target/release/slirp
[ "$(id -u)" = 0 ] || { echo "profile.sh: needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "profile.sh: $BIN missing (cargo build --release -p slirp-std)" >&2; exit 1; }
command -v perf >/dev/null && command -v iperf3 >/dev/null || { echo "profile.sh: needs perf and iperf3" >&2; exit 1; }
[ "$SECS" -ge 6 ] || { echo "profile.sh: --seconds must be at least 6" >&2; exit 2; }

P="slirpp-$$"
HOST="$P-host" INET="$P-inet" GUEST="$P-guest"
DIR="/tmp/slirp-profile-$$"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "$HOST" "$INET" "$GUEST"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "/etc/netns/$HOST"
    [ -n "$KEEP" ] || rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR"

# shellcheck source=tests-netns/lab.sh
. tests-netns/lab.sh
lab_up "$HOST" "$INET" || exit 1
ip netns add "$GUEST"

ip netns exec "$INET" iperf3 -s -B 198.51.100.1 >"$DIR/iperf3-server.log" 2>&1 &
PIDS+=($!)
ip netns exec "$HOST" "$BIN" attach --configure --mtu "$MTU" --log-level warn "$@" "/run/netns/$GUEST" \
    >"$DIR/slirp.log" 2>&1 &
SLIRP=$!
PIDS+=("$SLIRP")
for _ in $(seq 200); do ip -n "$GUEST" -4 route show default 2>/dev/null | grep -q 10.0.2.2 && break; sleep 0.05; done
sleep 0.3

if [ -n "$UDP" ]; then
    ARGS=(-u -l 64 -b 0)
else
    ARGS=()
fi
ip netns exec "$GUEST" iperf3 -c 198.51.100.1 $REVERSE "${ARGS[@]}" -t "$SECS" -f g >"$DIR/iperf3.txt" 2>&1 &
CLIENT=$!
PIDS+=("$CLIENT")
sleep 2
perf record -a -g -o "$DIR/perf.data" -- sleep $((SECS - 4)) >/dev/null 2>&1
wait "$CLIENT" || { cat "$DIR/iperf3.txt"; exit 1; }

if [ -n "$REVERSE" ]; then DIRECTION="internet -> guest"; else DIRECTION="guest -> internet"; fi
echo "== iperf3 (MTU $MTU, $DIRECTION${UDP:+, UDP 64 B})"
grep -E "sender|receiver" "$DIR/iperf3.txt"
# (`|| true`: `head` closing the pipe early is not a failure.)
echo "== share of all CPU samples, by process (2 CPUs = 100%)"
perf report -i "$DIR/perf.data" --no-children --sort pid --stdio -g none 2>/dev/null \
    | grep -vE '^#|^$' | head -6 || true
echo "== inside slirp (pid $SLIRP), inclusive, top 40"
perf report -i "$DIR/perf.data" --children --pid "$SLIRP" --sort sym --stdio -g none 2>/dev/null \
    | grep -vE '^#|^$' | head -40 || true
echo "== copies, by process"
perf report -i "$DIR/perf.data" --no-children --sort pid,sym --stdio -g none 2>/dev/null \
    | grep -E '_copy_(from|to)_iter|memmove|memcpy' | head -8 || true
[ -z "$KEEP" ] || echo "perf data kept: perf report -i $DIR/perf.data"
