#!/usr/bin/env bash
# Ten million keys (issue 20). One command: bench/keys.sh
#
# Release build. For SQLite (a fresh data directory) and then PostgreSQL (a server of its own,
# .ci/postgres.sh): makes a tenant and a programmatic user with the CLI, bulk-inserts BENCH_KEYS
# keys, and runs crates/keygate/examples/bench_keys.rs in process with the default settings: cold
# verification p50/p99, memory per cached key, RSS with the key cache at its capacity, and warm
# verifications/s with one key, a Zipf choice over the keys the cache holds and over all keys, and
# a uniform choice. Each database is deleted after its run.
#
# Then, on the SQLite database, the same comparison as users run it, over HTTP: a fresh
# `keygate serve` with the defaults (the access log on, to a file; TOKIO_WORKER_THREADS=1, pinned
# to CPU 0) and wrk (bench/rotate.lua, one thread, 64 connections, pinned to CPU 1) on
# GET /rest/v1/1/capability. The Zipf keys are bench_keys's `--draws`: 262 144 draws over the keys
# the default cache holds. Every drawn key is sent once first, then BENCH_TURNS turns of one key and
# of the Zipf draws, BENCH_SECONDS each; the figure is the median of the turns' ratios, and each
# Zipf run's key reads come from /metrics (the last turns run 45 s or more after the keys were first
# sent: keygate then reads them again in the background, ahead of their 60 s TTL).
# Then the same turns on bench/api.sh's baseline (a bare axum server, an immutable HashMap of the
# same keys, answering keygate's bytes), started in the same way: what any server with these keys
# in a table pays for the Zipf choice on this machine.
# Last, `bench_keys --floor`: what a Zipf choice costs more than one key on this machine for the
# least state a verification could touch (see its doc comment).
#
# Knobs: BENCH_KEYS=10000000  BENCH_SECONDS=5  BENCH_TURNS=5  BENCH_PORT=18095
#        BENCH_SKIP_POSTGRES=1  BENCH_SKIP_SQLITE=1  BENCH_SKIP_HTTP=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KEYS=${BENCH_KEYS:-10000000}
SECONDS_EACH=${BENCH_SECONDS:-5}
TURNS=${BENCH_TURNS:-5}
PORT=${BENCH_PORT:-18095}
say() { echo "bench/keys.sh: $*" >&2; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# key_reads: keygate's key cache's database reads so far, from /metrics: "IN_CALLS AHEAD" (inside
# calls that missed, and in the background ahead of the TTL).
key_reads() {
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk '
        /^keygate_cache_loads_total\{cache="key"\}/ { calls = $2 }
        /^keygate_key_reads_ahead_total\{outcome="(renewed|dropped|superseded|failed)"\}/ { ahead += $2 }
        END { printf "%d %d\n", calls, ahead }'
}

# key_lookups: the key cache's lookups so far (hits and database reads), from /metrics.
key_lookups() {
    curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk '/^keygate_cache_(hits|loads)_total\{cache="key"\}/ { n += $2 } END { printf "%d\n", n }'
}

# wrk_rps PORT KEYFILE SECONDS: req/s of one wrk run going round KEYFILE (every answer must be a 200).
wrk_rps() {
    local out line
    out=$(timeout $(($3 + 60)) taskset -c 1 wrk -t1 -c64 -d"$3s" --timeout 5s -s bench/rotate.lua \
        "http://127.0.0.1:$1/rest/v1/1/capability" -- "$2" 0 0 2>&1) || { echo "wrk failed: $out" >&2; return 1; }
    line=$(grep '^RESULT ' <<<"$out") || { echo "no RESULT from wrk: $out" >&2; return 1; }
    [ "$(field non2xx "$line")" = 0 ] || { echo "answers that were not 200: $line" >&2; return 1; }
    field rps "$line"
}

# turns LABEL PORT DIR: BENCH_TURNS turns of one key ($DIR/one.txt) and the Zipf draws ($DIR/draws.txt)
# on the server at PORT; prints the median of the turns' ratios and the ratios.
turns() {
    local label=$1 port=$2 dir=$3 one zipf before="" after reads="" ratios="" turn
    for turn in $(seq 1 "$TURNS"); do
        one=$(wrk_rps "$port" "$dir/one.txt" "$SECONDS_EACH") || return 1
        [ "$label" != keygate ] || before=$(key_reads)
        zipf=$(wrk_rps "$port" "$dir/draws.txt" "$SECONDS_EACH") || return 1
        [ "$label" != keygate ] || after=$(key_reads)
        [ -z "${before:-}" ] || reads=$(awk -v b="$before" -v a="$after" 'BEGIN {
            split(b, x, " "); split(a, y, " "); printf " (%d key reads in calls, %d ahead)", y[1] - x[1], y[2] - x[2] }')
        say "HTTP, $label, turn $turn: one key $one req/s, Zipf $zipf req/s${reads:-}"
        ratios="$ratios $(awk -v z="$zipf" -v o="$one" 'BEGIN { printf "%.3f", z / o }')"
    done
    echo "$(tr ' ' '\n' <<<"$ratios" | grep . | sort -g |
        awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }') (turns:$ratios)"
}

# start_server PORT LOG COMMAND...: starts COMMAND on CPU 0 with one worker thread; waits for PORT.
start_server() {
    local port=$1 log=$2
    shift 2
    TOKIO_WORKER_THREADS=1 taskset -c 0 "$@" 2>"$log" &
    SERVE_PID=$!
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.1
    done
    say "the server for port $port did not start: $(tail -3 "$log")"
    return 1
}

stop_server() {
    kill "$SERVE_PID"
    wait "$SERVE_PID" || true
    SERVE_PID=
}

# http_zipf DATA_DIR WORK_DIR: one key against the Zipf draws over HTTP (see the top), on keygate and
# then on the baseline. WORK_DIR holds draws.txt and cached.txt.
http_zipf() {
    local data=$1 work=$2 keygate baseline
    head -1 "$work/draws.txt" >"$work/one.txt"
    start_server "$PORT" "$work/serve.log" $BIN --data-dir "$data" serve --listen "127.0.0.1:$PORT"
    wrk_rps "$PORT" "$work/one.txt" 2 >/dev/null
    # Every drawn key once: rotate.lua sends the file's lines in order on each connection's turn.
    local sent warm lines
    sent=$(key_lookups)
    timeout 120 taskset -c 1 wrk -t1 -c64 -d60s -s bench/rotate.lua "http://127.0.0.1:$PORT/rest/v1/1/capability" \
        -- "$work/draws.txt" 0 0 >/dev/null 2>&1 &
    warm=$!
    lines=$(wc -l <"$work/draws.txt")
    while kill -0 $warm 2>/dev/null && [ $(($(key_lookups) - sent)) -lt "$lines" ]; do
        sleep 0.2
    done
    kill $warm 2>/dev/null || true
    wait $warm 2>/dev/null || true
    say "HTTP: the $lines drawn keys sent, key reads (in calls, ahead): $(key_reads)"
    keygate=$(turns keygate "$PORT" "$work") || return 1
    stop_server
    start_server $((PORT + 1)) "$work/baseline.log" $BASELINE --listen "127.0.0.1:$((PORT + 1))" \
        --keys "$work/cached.txt" --answer keygate
    wrk_rps $((PORT + 1)) "$work/draws.txt" 2 >/dev/null
    baseline=$(turns baseline $((PORT + 1)) "$work") || return 1
    stop_server
    echo "RESULT sqlite: over HTTP, Zipf over the cached keys / one key, median of $TURNS turns: keygate (serve," \
        "defaults) $keygate; baseline (its HashMap of the same keys, keygate's answer) $baseline"
}

command -v wrk >/dev/null || [[ -n ${BENCH_SKIP_HTTP:-} ]] || { say "wrk is needed for the HTTP turns (or BENCH_SKIP_HTTP=1)"; exit 2; }
say "building release binaries"
cargo build --release -q -p keygate --bin keygate --example bench_keys
[[ -n ${BENCH_SKIP_HTTP:-} ]] || cargo build --release -q -p keygate-web --example baseline
BIN=target/release/keygate
BASELINE=target/release/examples/baseline
EX=target/release/examples/bench_keys

prepare() { # with KEYGATE_DATABASE_URL or --data-dir in "$@"
    KEYGATE_LOG=warn $BIN "$@" init --tenant bench --admin-email admin@bench.example >/dev/null
    KEYGATE_LOG=warn $BIN "$@" tenants api on --tenant bench >/dev/null
    KEYGATE_LOG=warn $BIN "$@" tenants rate-limit --tenant bench 1000000000 >/dev/null
    KEYGATE_LOG=warn $BIN "$@" users create --tenant bench --email b@bench.example --name B --category programmatic >/dev/null
}

if [[ -z ${BENCH_SKIP_SQLITE:-} ]]; then
    dir=$(mktemp -d /tmp/keygate-bench-keys.XXXXXX)
    mkdir "$dir.http"
    trap '[ -z "${SERVE_PID:-}" ] || kill "$SERVE_PID" 2>/dev/null; rm -rf "$dir" "$dir.http"' EXIT
    say "SQLite: $KEYS keys in $dir"
    prepare --data-dir "$dir"
    KEYGATE_LOG=warn $EX --data-dir "$dir" --tenant bench --user b@bench.example --count "$KEYS" --seed --seconds "$SECONDS_EACH" \
        --draws "$dir.http/draws.txt" --cached-keys "$dir.http/cached.txt" | sed 's/^RESULT/RESULT sqlite:/'
    du -sh "$dir" >&2
    [[ -n ${BENCH_SKIP_HTTP:-} ]] || http_zipf "$dir" "$dir.http"
    rm -rf "$dir" "$dir.http"
fi

if [[ -z ${BENCH_SKIP_POSTGRES:-} ]]; then
    pg_env=$(.ci/postgres.sh start)
    eval "$pg_env"
    trap '.ci/postgres.sh stop "$KEYGATE_PG_DIR" >/dev/null 2>&1 || true' EXIT
    say "PostgreSQL: $KEYS keys"
    KEYGATE_DATABASE_URL=$KEYGATE_TEST_POSTGRES_URL prepare
    KEYGATE_LOG=warn $EX --database-url "$KEYGATE_TEST_POSTGRES_URL" --tenant bench --user b@bench.example \
        --count "$KEYS" --seed --seconds "$SECONDS_EACH" | sed 's/^RESULT/RESULT postgres:/'
    du -sh "$KEYGATE_PG_DIR" >&2 || true
fi

$EX --floor
