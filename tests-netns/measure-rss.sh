#!/usr/bin/env bash
# Measures the resident memory of `slirp attach --configure` and of slirp4netns side by side, in
# one run on the same lab: idle, then (optionally) with N idle TCP connections held open through
# each, then with N busy ones (both directions stalled, so every buffer on the path is full).
#
# Usage (root): tests-netns/measure-rss.sh [SLIRP_BINARY] [CONNECTIONS]
# Default binary: target/release/slirp (build it with `cargo build --release -p slirp-std`);
# default connections: 0 (idle only). slirp4netns comes from PATH (apt-get install slirp4netns);
# SLIRP4NETNS=/path overrides it, SLIRP4NETNS=none skips it. Extra arguments for our binary can
# be given in SLIRP_ARGS (e.g. SLIRP_ARGS="--tcp-buffer 64K").
#
# Reported per process and phase: VmRSS and VmHWM (/proc/PID/status), the smaps_rollup split
# into anonymous and file-backed resident memory, and the largest resident mappings.
# Memory per connection is (RSS with N connections - RSS idle) / N.
#
# Network safety: both run inside a throwaway "host" namespace whose only route leads to a
# throwaway "internet" namespace (198.51.100.0/24); its resolver file points there too. Each has
# its own throwaway guest namespace. Every namespace and process made here is removed on exit,
# by name and PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/slirp}
CONNS=${2:-0}
S4N=${SLIRP4NETNS:-$(command -v slirp4netns || echo none)}
[ "$(id -u)" = 0 ] || { echo "measure-rss: needs root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "measure-rss: $BIN missing (cargo build --release -p slirp-std)" >&2; exit 1; }
if [ "$S4N" != none ] && [ ! -x "$S4N" ]; then
    echo "measure-rss: slirp4netns missing (apt-get install -y slirp4netns, or SLIRP4NETNS=none)" >&2
    exit 1
fi

P="slirpr-$$"
HOST="$P-host" INET="$P-inet"
TMP=$(mktemp -d)
PIDS=()       # long-lived processes, killed on exit
NAMES=()      # implementation names, parallel to GUESTS / IMPL_PIDS
GUESTS=()
IMPL_PIDS=()
cleanup() {
    exec 9>&- 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "$HOST" "$INET" "${GUESTS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "/etc/netns/$HOST" "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests-netns/lab.sh
. tests-netns/lab.sh
lab_up "$HOST" "$INET" || exit 1

start() { # NAME GUEST_NS COMMAND...
    local name=$1 guest=$2; shift 2
    ip netns add "$guest"
    GUESTS+=("$guest")
    ip netns exec "$HOST" "$@" &
    local pid=$!
    PIDS+=("$pid")
    NAMES+=("$name")
    IMPL_PIDS+=("$pid")
}
# shellcheck disable=SC2086
start slirp "$P-g1" "$BIN" attach --configure --netns "/run/netns/$P-g1" --log-level warn ${SLIRP_ARGS:-}
if [ "$S4N" != none ]; then
    start slirp4netns "$P-g2" "$S4N" --configure --netns-type=path "/run/netns/$P-g2" tap0 >/dev/null
fi
for g in "${GUESTS[@]}"; do
    for _ in $(seq 100); do ip -n "$g" addr show tap0 2>/dev/null | grep -q 'inet ' && break; sleep 0.05; done
    ip netns exec "$g" ping -c 3 -i 0.2 -q 10.0.2.2 >/dev/null
done
sleep 1

kib() { awk -v k="$1" '$1 == k":" {print $2}' "$2"; }
declare -A IDLE_RSS
report() { # PHASE [INDEX]: all processes, or only NAMES[INDEX]
    local phase=$1 only=${2:-} i
    echo "== $phase"
    printf '%-12s %9s %9s %9s %9s %9s %8s\n' "" "VmRSS" "VmHWM" "Anon" "File" "PrivDirty" "Threads"
    for i in "${!NAMES[@]}"; do
        if [ -n "$only" ] && [ "$i" != "$only" ]; then continue; fi
        local pid=${IMPL_PIDS[$i]} st="/proc/${IMPL_PIDS[$i]}/status" ro="/proc/${IMPL_PIDS[$i]}/smaps_rollup"
        local rss hwm anon rrss pd thr
        rss=$(kib VmRSS "$st") hwm=$(kib VmHWM "$st") thr=$(kib Threads "$st")
        rrss=$(kib Rss "$ro") anon=$(kib Anonymous "$ro") pd=$(kib Private_Dirty "$ro")
        printf '%-12s %6s kB %6s kB %6s kB %6s kB %6s kB %8s\n' "${NAMES[$i]}" "$rss" "$hwm" "$anon" \
            "$((rrss - anon))" "$pd" "$thr"
        if [ "$phase" = idle ]; then
            IDLE_RSS[$i]=$rss
        elif [ -n "$only" ]; then
            echo "             $(awk -v a="$rss" -v b="${IDLE_RSS[$i]}" -v n="$CONNS" \
                'BEGIN { printf "%+d kB over idle = %.1f kB per connection", a - b, (a - b) / n }')"
        fi
    done
}
mappings() { # top resident mappings of each process
    local i
    for i in "${!NAMES[@]}"; do
        echo "-- largest resident mappings of ${NAMES[$i]} (kB)"
        awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6); next }
             $1 == "Rss:" { rss[name] += $2 }
             END { for (n in rss) if (rss[n] > 0) printf "%8d  %s\n", rss[n], n }' \
            "/proc/${IMPL_PIDS[$i]}/smaps" | sort -rn | head -8
    done
}

report idle
mappings

if [ "$CONNS" -gt 0 ]; then
    # Holds CONNS connections from guest $1 to a fresh server in MODE $2 (idle or push, the
    # client does the same); leaves fd 9 open to the client. The server never reads, so it
    # cannot see the client close: `release` stops it, which closes the host side too.
    hold() {
        ip netns exec "$INET" python3 tests-netns/conns.py server 5001 "$2" >/dev/null &
        SERVER=$!
        PIDS+=("$SERVER")
        sleep 0.5
        rm -f "$TMP/in" "$TMP/out"
        mkfifo "$TMP/in"
        ip netns exec "$1" python3 tests-netns/conns.py client 198.51.100.1 5001 "$CONNS" "$2" \
            <"$TMP/in" >"$TMP/out" &
        CLIENT=$!
        PIDS+=("$CLIENT")
        exec 9>"$TMP/in"
        for _ in $(seq 600); do grep -q ready "$TMP/out" 2>/dev/null && return; sleep 0.1; done
        echo "measure-rss: client in $1 did not get $CONNS connections" >&2; exit 1
    }
    release() {
        exec 9>&-
        wait "$CLIENT" 2>/dev/null || true
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        sleep 3
    }
    for i in "${!NAMES[@]}"; do
        hold "${GUESTS[$i]}" idle
        sleep 2
        report "${NAMES[$i]}: $CONNS idle connections" "$i"
        release
        hold "${GUESTS[$i]}" push
        sleep 4
        report "${NAMES[$i]}: $CONNS busy connections (both directions stalled, buffers full)" "$i"
        release
        report "${NAMES[$i]}: after closing them" "$i"
    done
    mappings
fi
