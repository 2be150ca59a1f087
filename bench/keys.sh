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
# Knobs: BENCH_KEYS=10000000  BENCH_SECONDS=5  BENCH_SKIP_POSTGRES=1  BENCH_SKIP_SQLITE=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KEYS=${BENCH_KEYS:-10000000}
SECONDS_EACH=${BENCH_SECONDS:-5}
say() { echo "bench/keys.sh: $*" >&2; }

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
    KEYGATE_LOG=warn $EX --data-dir "$dir" --tenant bench --user b@bench.example --count "$KEYS" --seed --seconds "$SECONDS_EACH" |
        sed 's/^RESULT/RESULT sqlite:/'
    du -sh "$dir" >&2
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
