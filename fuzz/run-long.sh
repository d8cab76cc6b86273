#!/usr/bin/env bash
# Long fuzzing campaigns, one target after another, one libFuzzer process at a time, under nice.
#
#   fuzz/run-long.sh [-c CPU_SECONDS | -t SECONDS] [--no-build] [TARGET...]
#       run each target (default: all) until it has used CPU_SECONDS of CPU time (default 1800:
#       on a shared machine, wall time under nice buys less), or for SECONDS of wall time
#   fuzz/run-long.sh --cmin [TARGET...]    minimize fuzz/corpus/TARGET in place (cargo fuzz cmin)
#   fuzz/run-long.sh --seeds [TARGET...]   rewrite fuzz/seeds/TARGET.tar.gz: at most SEEDS (400)
#                                          inputs of seeds + corpus, picked greedily for coverage
#                                          edges, then features, then small size
#
# Each run grows the persistent corpus fuzz/corpus/TARGET (libFuzzer's and cargo fuzz's default,
# not committed), starting from it and the committed seeds fuzz/seeds/TARGET.tar.gz (unpacked to
# a scratch directory: an archive keeps hundreds of tiny inputs small on disk and in git).
# Crashes land in fuzz/artifacts/TARGET/ (not committed); logs in fuzz/target/fuzz-logs/.
# After each run it prints executions, execs/s, the final cov: and ft: counters, CPU time and any
# new crash artifacts, and a table of all runs at the end. NICE (default 19) sets the priority.
set -euo pipefail
cd "$(dirname "$0")"

secs=0
cpu_budget=1800
build=1
mode=run
while [ $# -gt 0 ]; do
    case "$1" in
        -t | --time)
            secs="$2"
            cpu_budget=0
            shift 2
            ;;
        -c | --cpu)
            cpu_budget="$2"
            shift 2
            ;;
        --no-build)
            build=0
            shift
            ;;
        --cmin)
            mode=cmin
            shift
            ;;
        --seeds)
            mode=seeds
            shift
            ;;
        -h | --help)
            sed -n '2,17p' "$0"
            exit 0
            ;;
        -*)
            echo "unknown option $1" >&2
            exit 2
            ;;
        *) break ;;
    esac
done

nice_level="${NICE:-19}"
all=$(cargo +nightly fuzz list)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets <<<"$all"
fi
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$all" || {
        echo "no fuzz target $t (have: $(echo $all))" >&2
        exit 2
    }
done

triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin="target/$triple/release"
if [ "$build" = 1 ]; then
    if [ $# -eq 0 ]; then
        nice -n "$nice_level" cargo +nightly fuzz build
    else
        for t in "${targets[@]}"; do nice -n "$nice_level" cargo +nightly fuzz build "$t"; done
    fi
fi

mkdir -p seeds
# Unpacks the committed seeds of target $1 into directory $2 (nothing if there are none).
unpack_seeds() {
    if [ -f "seeds/$1.tar.gz" ]; then tar -xzf "seeds/$1.tar.gz" -C "$2"; fi
}

case "$mode" in
    cmin)
        for t in "${targets[@]}"; do
            mkdir -p "corpus/$t"
            before=$(find "corpus/$t" -type f | wc -l)
            nice -n "$nice_level" cargo +nightly fuzz cmin "$t" "corpus/$t" -- -rss_limit_mb=4096
            echo "$t: corpus $before -> $(find "corpus/$t" -type f | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
        done
        exit 0
        ;;
    seeds)
        for t in "${targets[@]}"; do
            mkdir -p "corpus/$t"
            scratch=$(mktemp -d)
            mkdir "$scratch/old" "$scratch/out" "$scratch/new"
            unpack_seeds "$t" "$scratch/old"
            # A merge run records the coverage edges (COV) and features (FT) of every input.
            nice -n "$nice_level" "$bin/$t" -merge=1 -merge_control_file="$scratch/control" -rss_limit_mb=4096 \
                "$scratch/out" "$scratch/old" "corpus/$t" >"$scratch/log" 2>&1 || {
                tail -20 "$scratch/log"
                exit 1
            }
            python3 - "$scratch/control" "${SEEDS:-400}" >"$scratch/picked" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
n, limit = int(lines[0]), int(sys.argv[2])
paths = lines[2:2 + n]
size, ft, cov = {}, {}, {}
for line in lines[2 + n:]:
    f = line.split()
    if len(f) < 2:
        continue
    i = int(f[1])
    if f[0] == "STARTED":
        size[i] = int(f[2])
    elif f[0] == "FT":
        ft[i] = set(f[2:])
    elif f[0] == "COV":
        cov[i] = set(f[2:])
got_cov, got_ft, picked, taken = set(), set(), [], set()
while len(picked) < limit:
    best = max(((len(cov.get(i, set()) - got_cov), len(ft.get(i, set()) - got_ft), -size.get(i, 0), i)
                for i in range(n) if i not in taken and i in ft), default=None)
    if best is None or best[:2] == (0, 0):
        break
    i = best[3]
    picked.append(i)
    taken.add(i)
    got_cov |= cov.get(i, set())
    got_ft |= ft.get(i, set())
all_cov = set().union(*cov.values()) if cov else set()
all_ft = set().union(*ft.values()) if ft else set()
print(f"{len(picked)} of {n} inputs: cov {len(got_cov)}/{len(all_cov)}, ft {len(got_ft)}/{len(all_ft)}", file=sys.stderr)
for i in picked:
    print(paths[i])
PY
            while read -r f; do cp "$f" "$scratch/new/"; done <"$scratch/picked"
            tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$scratch/new" -cf - . |
                gzip -9n >"seeds/$t.tar.gz"
            echo "$t: seeds/$t.tar.gz $(find "$scratch/new" -type f | wc -l) files, $(du -k "seeds/$t.tar.gz" | cut -f1) KiB"
            rm -rf "$scratch"
        done
        du -ch seeds/*.tar.gz | tail -1
        exit 0
        ;;
esac

logs=target/fuzz-logs
mkdir -p "$logs"
summary="$logs/summary-$(date -u +%Y%m%dT%H%M%SZ).txt"
printf '%-12s %8s %12s %8s %6s %7s %7s  %s\n' target cpu-min execs exec/s cov ft corpus crashes >"$summary"
tck=$(getconf CLK_TCK)
pid=
# Never leave a fuzzer running behind.
trap 'if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; fi; exit 130' INT TERM
# CPU seconds used so far by process $1 (user + system), from /proc.
cpu_of() { awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%d", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null; }
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seed_dir=$(mktemp -d)
    unpack_seeds "$t" "$seed_dir"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    log="$logs/$t-$stamp.log"
    marker=$(mktemp)
    limit=()
    if [ "$secs" -gt 0 ]; then limit=(-max_total_time="$secs"); fi
    echo "=== $t: $([ "$cpu_budget" -gt 0 ] && echo "$cpu_budget CPU-s" || echo "$secs s"), corpus/$t (+ seeds/$t.tar.gz), log $log"
    nice -n "$nice_level" "$bin/$t" "${limit[@]}" -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "corpus/$t" "$seed_dir" >"$log" 2>&1 &
    pid=$!
    used=0
    wall0=$(date +%s)
    while kill -0 "$pid" 2>/dev/null; do
        u=$(cpu_of "$pid" || true)
        if [ -n "$u" ]; then used=$u; fi
        if [ "$cpu_budget" -gt 0 ] && [ "$used" -ge "$cpu_budget" ]; then
            # libFuzzer prints its final stats on SIGINT, then exits (code 72).
            kill -INT "$pid" 2>/dev/null || true
            break
        fi
        sleep 2
    done
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" = 72 ] && [ "$cpu_budget" -gt 0 ] && [ "$used" -ge "$cpu_budget" ]; then rc=0; fi
    wall=$(($(date +%s) - wall0))
    cpu=$(awk -v u="$used" 'BEGIN { printf "%.1f", u / 60 }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    if [ -z "$execs" ]; then execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last"); fi
    crashes=$(find "artifacts/$t" -type f -newer "$marker" 2>/dev/null | sort || true)
    rm -rf "$marker" "$seed_dir"
    files=$(find "corpus/$t" -type f | wc -l)
    echo "$t: exit $rc, $execs execs, ${eps:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, ${cpu} CPU-min in $wall s, corpus $files files"
    grep -E '^(stat::|#[0-9]+ +DONE)' "$log" || true
    if [ -n "$crashes" ]; then
        echo "$t: CRASH ARTIFACTS:"
        echo "$crashes"
        grep -E -m1 -A25 'panicked|ERROR: (libFuzzer|AddressSanitizer)' "$log" || true
    fi
    printf '%-12s %8s %12s %8s %6s %7s %7s  %s\n' "$t" "${cpu:-?}" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
        "${ft:-?}" "$files" "$(echo $crashes)" >>"$summary"
done
echo
cat "$summary"
echo "(also in fuzz/$summary)"
