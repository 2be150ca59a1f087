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
# Zipf run's key reads (cache misses: the 60 s TTL runs out during the turns) come from /metrics.
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

# key_reads: the key cache's database reads so far, from /metrics.
key_reads() {
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^keygate_cache_loads_total\{cache="key"\}/ { print $2 }'
}

# key_lookups: the key cache's lookups so far (hits and database reads), from /metrics.
key_lookups() {
    curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk '/^keygate_cache_(hits|loads)_total\{cache="key"\}/ { n += $2 } END { printf "%d\n", n }'
}

# wrk_rps KEYFILE SECONDS: req/s of one wrk run going round KEYFILE (every answer must be a 200).
wrk_rps() {
    local out line
    out=$(timeout $(($2 + 60)) taskset -c 1 wrk -t1 -c64 -d"$2s" --timeout 5s -s bench/rotate.lua \
        "http://127.0.0.1:$PORT/rest/v1/1/capability" -- "$1" 0 0 2>&1) || { echo "wrk failed: $out" >&2; return 1; }
    line=$(grep '^RESULT ' <<<"$out") || { echo "no RESULT from wrk: $out" >&2; return 1; }
    [ "$(field non2xx "$line")" = 0 ] || { echo "answers that were not 200: $line" >&2; return 1; }
    field rps "$line"
}

# http_zipf DATA_DIR DRAWS_FILE: one key against the Zipf draws over HTTP (see the top).
http_zipf() {
    local data=$1 draws=$2 work pid one zipf before after ratios="" turn
    work=$(dirname "$draws")
    head -1 "$draws" >"$work/one.txt"
    TOKIO_WORKER_THREADS=1 taskset -c 0 $BIN --data-dir "$data" serve --listen "127.0.0.1:$PORT" 2>"$work/serve.log" &
    pid=$!
    SERVE_PID=$pid
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { say "keygate serve did not start: $(tail -3 "$work/serve.log")"; return 1; }
    wrk_rps "$work/one.txt" 2 >/dev/null
    # Every drawn key once: rotate.lua sends the file's lines in order on each connection's turn.
    local sent
    sent=$(key_lookups)
    timeout 120 taskset -c 1 wrk -t1 -c64 -d60s -s bench/rotate.lua "http://127.0.0.1:$PORT/rest/v1/1/capability" \
        -- "$draws" 0 0 >/dev/null 2>&1 &
    local warm=$! lines
    lines=$(wc -l <"$draws")
    while kill -0 $warm 2>/dev/null && [ $(($(key_lookups) - sent)) -lt "$lines" ]; do
        sleep 0.2
    done
    kill $warm 2>/dev/null || true
    wait $warm 2>/dev/null || true
    say "HTTP: the $lines drawn keys sent, $(key_reads) key reads"
    for turn in $(seq 1 "$TURNS"); do
        one=$(wrk_rps "$work/one.txt" "$SECONDS_EACH")
        before=$(key_reads)
        zipf=$(wrk_rps "$draws" "$SECONDS_EACH")
        after=$(key_reads)
        say "HTTP turn $turn: one key $one req/s, Zipf $zipf req/s ($((after - before)) key reads)"
        ratios="$ratios $(awk -v z="$zipf" -v o="$one" 'BEGIN { printf "%.3f", z / o }')"
    done
    kill "$pid"
    wait "$pid" || true
    SERVE_PID=
    echo "RESULT sqlite: over HTTP (keygate serve, defaults): Zipf over the cached keys / one key, median of $TURNS turns:" \
        "$(tr ' ' '\n' <<<"$ratios" | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
        "(turns:$ratios)"
}

command -v wrk >/dev/null || [[ -n ${BENCH_SKIP_HTTP:-} ]] || { say "wrk is needed for the HTTP turns (or BENCH_SKIP_HTTP=1)"; exit 2; }
say "building release binaries"
cargo build --release -q -p keygate --bin keygate --example bench_keys
BIN=target/release/keygate
EX=target/release/examples/bench_keys

prepare() { # with KEYGATE_DATABASE_URL or --data-dir in "$@"
    KEYGATE_LOG=warn $BIN "$@" init --tenant bench --admin-email admin@bench.example >/dev/null
    KEYGATE_LOG=warn $BIN "$@" tenants api on --tenant bench >/dev/null
    KEYGATE_LOG=warn $BIN "$@" tenants rate-limit --tenant bench 1000000000 >/dev/null
    KEYGATE_LOG=warn $BIN "$@" users create --tenant bench --email b@bench.example --name B --category programmatic >/dev/null
}

if [[ -z ${BENCH_SKIP_SQLITE:-} ]]; then
    dir=$(mktemp -d /tmp/keygate-bench-keys.XXXXXX)
    trap 'rm -rf "$dir"' EXIT
    say "SQLite: $KEYS keys in $dir"
    prepare --data-dir "$dir"
    KEYGATE_LOG=warn $EX --data-dir "$dir" --tenant bench --user b@bench.example --count "$KEYS" --seed --seconds "$SECONDS_EACH" \
        --draws "$dir.draws" | sed 's/^RESULT/RESULT sqlite:/'
    du -sh "$dir" >&2
    if [[ -z ${BENCH_SKIP_HTTP:-} ]]; then
        mkdir -p "$dir.http" && mv "$dir.draws" "$dir.http/draws.txt"
        trap '[ -z "${SERVE_PID:-}" ] || kill "$SERVE_PID" 2>/dev/null; rm -rf "$dir" "$dir.http"' EXIT
        http_zipf "$dir" "$dir.http/draws.txt"
        rm -rf "$dir.http"
    fi
    rm -f "$dir.draws"
    rm -rf "$dir"
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
