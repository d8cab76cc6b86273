#!/bin/bash
# Throughput through `slirp attach` next to slirp4netns, in the same run, with iperf3.
#
# Three network namespaces, made here and deleted on exit (by name; processes killed by PID):
#   inet  - the stand-in internet: 198.51.100.1, iperf3 server
#   host  - where the NAT runs: 198.51.100.2, default route to inet and nowhere else
#   guest - a fresh one per measurement: tap0 made and configured by the NAT (10.0.2.100)
# Nothing leaves the machine: the host namespace routes only to the inet namespace (checked
# before anything runs), and the NAT never runs in the root namespace.
#
# Usage: sudo bench/iperf.sh [SECONDS] [MTU...]      (defaults: 10 s, MTUs 1500 65520)
# Env:   SLIRP=path/to/slirp (default target/release/slirp; build with cargo build --release)
#        IMPLS="slirp slirp4netns" (which to measure)  SLIRP_ARGS="..." (extra slirp flags)
#        LOGS=DIR (keep each NAT's log there; slirp logs at info level then, with its counters)
# Output: one Markdown table row per (implementation, MTU, direction), Gbit/s as iperf3's
# receiver measured it.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
shift || true
MTUS=${*:-1500 65520}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SLIRP=${SLIRP:-$HERE/target/release/slirp}
IMPLS=${IMPLS:-slirp slirp4netns}
SLIRP_ARGS=${SLIRP_ARGS:-}
LOGS=${LOGS:-}

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, TAP)" >&2; exit 1; }
for t in ip iperf3 python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done

P=slirpb-$$
HOST=$P-host INET=$P-inet
PIDS=()
NSS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "/etc/netns/$HOST" "/tmp/$P"
}
trap cleanup EXIT
mkdir -p "/tmp/$P"

for ns in $HOST $INET; do ip netns add $ns; NSS+=($ns); done
ip -n $HOST link add inet0 type veth peer name host0 netns $INET
ip -n $INET addr add 198.51.100.1/24 dev host0
ip -n $INET link set host0 up
ip -n $INET link set lo up
ip -n $HOST addr add 198.51.100.2/24 dev inet0
ip -n $HOST link set inet0 up
ip -n $HOST link set lo up
ip -n $HOST route add default via 198.51.100.1
mkdir -p /etc/netns/$HOST
echo "nameserver 198.51.100.1" > /etc/netns/$HOST/resolv.conf
# Safety: every IPv4 route of the host namespace stays inside the lab.
while read -r dest rest; do
    case "$dest" in
        default) [[ "$rest" == "via 198.51.100.1 "* ]] || { echo "unsafe route: $dest $rest" >&2; exit 1; } ;;
        198.51.100.0/24) ;;
        *) echo "unsafe route: $dest $rest" >&2; exit 1 ;;
    esac
done < <(ip -n $HOST -4 route show)

ip netns exec $INET iperf3 -s -B 198.51.100.1 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ip netns exec $INET ss -Hntl | grep -q ':5201 ' && break; sleep 0.05; done

measure() { # impl mtu
    local impl=$1 mtu=$2 guest=$P-guest-$1-$2 pid
    ip netns add $guest; NSS+=($guest)
    case $impl in
        slirp) ip netns exec $HOST "$SLIRP" attach --configure --mtu "$mtu" $SLIRP_ARGS \
                   --log-level "$([ -n "$LOGS" ] && echo info || echo warn)" "/run/netns/$guest" >"/tmp/$P/$impl-$mtu.log" 2>&1 & ;;
        slirp4netns) ip netns exec $HOST slirp4netns --configure --mtu="$mtu" --netns-type=path \
                   "/run/netns/$guest" tap0 >"/tmp/$P/$impl-$mtu.log" 2>&1 & ;;
    esac
    pid=$!
    PIDS+=($pid)
    for _ in $(seq 200); do
        ip -n $guest -4 route show default 2>/dev/null | grep -q 10.0.2.2 && break
        sleep 0.05
    done
    ip -n $guest -4 route show default | grep -q 10.0.2.2 || { echo "$impl: guest not configured" >&2; cat "/tmp/$P/$impl-$mtu.log" >&2; exit 1; }
    for dir in up down; do
        local rflag=""
        [ $dir = down ] && rflag=-R
        local out="/tmp/$P/$impl-$mtu-$dir.json"
        if ip netns exec $guest timeout $((SECONDS_PER_RUN + 20)) iperf3 -c 198.51.100.1 -t "$SECONDS_PER_RUN" $rflag -J >"$out" 2>&1; then
            local gbps
            gbps=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$out")
            local retr
            retr=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["end"]["sum_sent"].get("retransmits","-"))' "$out")
            printf '| %s | %s | %s | %s | %s |\n' "$impl" "$mtu" "$([ $dir = up ] && echo 'guest → internet' || echo 'internet → guest (-R)')" "$gbps" "$retr"
        else
            printf '| %s | %s | %s | failed | - |\n' "$impl" "$mtu" "$dir"
            tail -5 "$out" >&2
        fi
    done
    kill $pid; wait $pid 2>/dev/null || true
    [ -n "$LOGS" ] && mkdir -p "$LOGS" && cp "/tmp/$P/$impl-$mtu.log" "$LOGS/"
    ip netns del $guest
}

echo "| implementation | MTU | direction | Gbit/s | sender retransmits |"
echo "|---|---|---|---|---|"
for mtu in $MTUS; do
    for impl in $IMPLS; do
        measure $impl $mtu
    done
done
