#!/usr/bin/env bash
# User-space instructions per request of keygate and of bench/api.sh's baseline, counted by
# valgrind's callgrind. One command: bench/instructions.sh
#
# Time on this shared VM swings by 10–15 % between runs; instruction counts do not (the same
# binary and load give the same count within about 1 %). This is how the hot path's user-space
# cost is compared between two versions of the code; bench/api.sh is what judges throughput.
#
# What it does: builds the release `keygate`, `bench_seed` and `baseline` (as bench/api.sh does),
# sets up a throw-away data dir with one tenant, user and BENCH_KEYS keys, then for each server:
# starts it under callgrind (TOKIO_WORKER_THREADS=1, as in bench/api.sh), warms it up with
# wrk for 3 s, zeroes the counters, loads it with `wrk -t1 -c64` for BENCH_SECONDS on
# GET /rest/v1/1/capability with one key, dumps the counters, and prints the instructions
# counted divided by the requests wrk completed. The kernel's share (about 70 % of the time) is
# not counted: callgrind sees user space only. keygate is counted twice: with the defaults (the
# access log on, to a file) and with KEYGATE_ACCESS_LOG=off; the difference is the access log's
# cost per call. The baseline is counted twice too: with its own small answer and answering
# keygate's bytes (`--answer keygate`, as bench/api.sh's fourth server). Profile: `release`, as shipped and as bench/api.sh measures (callgrind counts the
# same without line tables; build `--profile profiling` to annotate sources).
#
# Knobs: BENCH_SECONDS=10, BENCH_KEYS=1000, BENCH_PORT=18090, BENCH_SKIP_BUILD=1,
#        BENCH_KEEP=1 (keep the work dir with the callgrind files, for callgrind_annotate),
#        BENCH_LOG= (keygate's KEYGATE_LOG; unset: the default, access log on).
# Needs: cargo, valgrind, wrk. Takes about two minutes after compiling.

set -euo pipefail
export RUST_BACKTRACE=0

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_KEYS=${BENCH_KEYS:-1000}
BENCH_PORT=${BENCH_PORT:-18090}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-}
BENCH_KEEP=${BENCH_KEEP:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
URL="http://127.0.0.1:$BENCH_PORT/rest/v1/1/capability"

say() { printf 'instructions: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 2
}
for tool in cargo valgrind callgrind_control wrk; do
    command -v "$tool" >/dev/null || die "$tool is required (valgrind's package has callgrind_control)"
done

cd "$ROOT"
if [ -z "$BENCH_SKIP_BUILD" ]; then
    say "building (release)…"
    cargo build --release --quiet -p keygate --bin keygate --example bench_seed
    cargo build --release --quiet -p keygate-web --example baseline
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
KEYGATE="$TARGET/release/keygate"
SEED="$TARGET/release/examples/bench_seed"
BASELINE="$TARGET/release/examples/baseline"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keygate-instructions.XXXXXX")
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ -n "$BENCH_KEEP" ]; then say "work dir kept: $WORK (it holds plaintext benchmark keys)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<>"/dev/tcp/127.0.0.1/$BENCH_PORT") 2>/dev/null; then
    die "127.0.0.1:$BENCH_PORT is already in use (set BENCH_PORT)"
fi

say "setting up a tenant and $BENCH_KEYS keys…"
(
    export KEYGATE_LOG=warn
    "$KEYGATE" --data-dir "$WORK/data" init --tenant bench --admin-email admin@bench.example
    "$KEYGATE" --data-dir "$WORK/data" tenants api on --tenant bench
    "$KEYGATE" --data-dir "$WORK/data" tenants rate-limit --tenant bench 1000000000
    "$KEYGATE" --data-dir "$WORK/data" users create --tenant bench --email bench@bench.example \
        --name "Bench integration" --category programmatic
    "$SEED" --data-dir "$WORK/data" --tenant bench --user bench@bench.example --count "$BENCH_KEYS" --out "$WORK/keys.txt"
) >"$WORK/setup.log" 2>&1 || die "setup failed: $(tail -3 "$WORK/setup.log")"

# count NAME ENV COMMAND...: prints NAME's instructions per request (ENV: a VAR=value to add, or
# -), and sets C_NAME to it.
count() {
    local name=$1 extra=$2 i requests total dump
    shift 2
    [ "$extra" != - ] || extra=KEYGATE_BENCH=1
    env "$extra" ${BENCH_LOG:+KEYGATE_LOG=$BENCH_LOG} TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p" \
        "$@" >"$WORK/$name.log" 2>&1 &
    PID=$!
    for i in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$BENCH_PORT") 2>/dev/null && break
        kill -0 "$PID" 2>/dev/null || die "$name exited under valgrind: $(tail -3 "$WORK/$name.log")"
        sleep 0.2
    done
    wrk -t1 -c64 -d3s -s "$ROOT/bench/rotate.lua" "$URL" -- "$WORK/keys.txt" 0 1 >/dev/null
    callgrind_control -z "$PID" >/dev/null 2>&1
    requests=$(wrk -t1 -c64 -d"${BENCH_SECONDS}s" -s "$ROOT/bench/rotate.lua" "$URL" -- "$WORK/keys.txt" 0 1 |
        sed -n 's/^RESULT .* requests=\([0-9]*\) .*/\1/p')
    callgrind_control -d "$PID" >/dev/null 2>&1
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
    # The dump asked for above, not the one written at exit.
    dump=$(grep -l '^desc: Trigger: .*dump' "$WORK/$name".*) || die "no callgrind dump for $name"
    total=$(grep -h '^summary:' $dump | awk '{ s += $2 } END { print s }')
    [ "${requests:-0}" -gt 0 ] || die "wrk completed no request against $name"
    printf '%-8s %9d requests  %7d instructions per request\n' "$name" "$requests" "$((total / requests))"
    printf -v "C_$name" %s "$((total / requests))"
}

echo "user-space instructions per request, GET /rest/v1/1/capability with one key, wrk -t1 -c64 -d${BENCH_SECONDS}s, under callgrind, release profile (as shipped)"
echo "keygate: the defaults (access log on, to a file); quiet: KEYGATE_ACCESS_LOG=off"
count keygate - "$KEYGATE" --data-dir "$WORK/data" serve --listen "127.0.0.1:$BENCH_PORT"
count quiet KEYGATE_ACCESS_LOG=off "$KEYGATE" --data-dir "$WORK/data" serve --listen "127.0.0.1:$BENCH_PORT"
count baseline - "$BASELINE" --listen "127.0.0.1:$BENCH_PORT" --keys "$WORK/keys.txt"
count answer - "$BASELINE" --listen "127.0.0.1:$BENCH_PORT" --keys "$WORK/keys.txt" --answer keygate
echo "the access log: $((C_keygate - C_quiet)) instructions per call (keygate − quiet)"
