#!/bin/bash
# The benchmark harness of issue 6: slirp, slirp4netns and pasta measured alternately in one run,
# plus a plain veth as the ceiling; writes bench/RESULTS.md. See bench/bench.py for the lab.
#
# Usage: sudo bench/run.sh [--quick] [--ipv6] [bench.py options; --help lists them]
#        --ipv6: every NAT serves IPv6 too and the TCP, rr, crr and loopback rows are measured over
#        IPv6 as well (to 2001:db8:1::1, the stand-in's documentation-prefix address), with v6/v4 ratios
#        --out FILE: write the report elsewhere (e.g. /tmp/quick.md for a trial run)
# Env:   NO_BUILD=1 to skip `cargo build --release -p slirp-std`
#        NO_INSTALL=1 to fail instead of apt-get installing iperf3, slirp4netns, passt
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, TAP devices): sudo $0 $*" >&2; exit 1; }

missing=()
for t in iperf3:iperf3 slirp4netns:slirp4netns pasta:passt; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ -z "${NO_INSTALL:-}" ] || { echo "missing: ${missing[*]}" >&2; exit 1; }
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

if [ -z "${NO_BUILD:-}" ]; then
    # Build as the invoking user when run through sudo, so target/ keeps its owner.
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        sudo -u "$SUDO_USER" -H bash -lc "cd '$ROOT' && cargo build --release -p slirp-std" >&2
    elif command -v cargo >/dev/null; then
        (cd "$ROOT" && cargo build --release -p slirp-std) >&2
    fi
fi
exec python3 "$HERE/bench.py" "$@"
