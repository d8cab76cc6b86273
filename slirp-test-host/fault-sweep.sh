#!/bin/sh
# The fault sweep (tests/fault_sweep.rs) in release: bulk TCP both ways under a seeded mix of
# loss, duplication, reordering, bit flips, delay and jitter, SEEDS seeds (default 1000) from
# START (default 0). Prints each failing seed with its mix and how to run it alone, the summary
# and the wall time.
#
#   slirp-test-host/fault-sweep.sh [SEEDS] [START]
#
# Environment: FAULT_SWEEP_THREADS (default: every CPU), FAULT_SWEEP_LOG=1 (a line per passing
# seed). One seed alone, verbosely, with a capture:
#   FAULT_SWEEP_SEED=N FAULT_SWEEP_PCAP=/tmp/seed.pcap cargo test --release -p slirp-test-host \
#       --test fault_sweep -- --ignored --nocapture
set -eu
cd "$(dirname "$0")/.."
seeds=${1:-1000}
start=${2:-0}
begin=$(date +%s)
status=0
FAULT_SWEEP_SEEDS=$seeds FAULT_SWEEP_START=$start \
    cargo test --release -p slirp-test-host --test fault_sweep -- --ignored --nocapture || status=$?
end=$(date +%s)
echo "fault-sweep.sh: seeds $start..$((start + seeds)): $([ "$status" = 0 ] && echo passed || echo FAILED)," \
    "wall time $((end - begin)) s (build included)"
exit "$status"
