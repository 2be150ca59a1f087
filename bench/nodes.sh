#!/usr/bin/env bash
# Benchmark of a keygate cluster on one PostgreSQL (issue 13). One command: bench/nodes.sh
#
#   1. Revocation across nodes: three release-build nodes on a PostgreSQL of their own, every node
#      loaded with other keys; over BENCH_TRIALS trials a key is disabled through the service layer
#      (as `keygate keys disable` does) and the time from its commit until every node refuses it is
#      measured, with the number of calls any node accepted later than 1 s after the commit
#      (crates/keygate/examples/bench_nodes.rs). Targets: p99 <= 50 ms, 0 accepted after 1 s.
#   2. The hot-path cost of the change listener and of the cluster-wide limits: one node with both (the
#      default) against one with KEYGATE_CHANGE_LISTENER=false and KEYGATE_CLUSTER_LIMITS=false (a
#      single node's behaviour), on the same database, measured in alternating pairs
#      of BENCH_DURATION s wrk runs on GET /rest/v1/1/capability; prints listener/without as the
#      median of the pairs' ratios. Target: >= 95 %.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRIALS=${BENCH_TRIALS:-30}   # BENCH_SKIP_REVOCATION=1 runs part 2 only
PAIRS=${BENCH_PAIRS:-5}
DURATION=${BENCH_DURATION:-4}
CONNECTIONS=${BENCH_CONNECTIONS:-16}

say() { echo "bench/nodes.sh: $*" >&2; }
command -v wrk >/dev/null || { say "wrk is not installed (apt-get install wrk)"; exit 1; }

say "building release binaries"
cargo build --release -q -p keygate --bin keygate --example bench_nodes
BIN=target/release/keygate

if [[ -z ${BENCH_SKIP_REVOCATION:-} ]]; then
    say "1. revocation across three nodes ($TRIALS trials)"
    target/release/examples/bench_nodes --bin "$BIN" --trials "$TRIALS"
fi

say "2. hot-path cost of the change listener and the cluster-wide limits"
work=$(mktemp -d)
pg_env=$(.ci/postgres.sh start)
eval "$pg_env"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    .ci/postgres.sh stop "$KEYGATE_PG_DIR" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export KEYGATE_DATABASE_URL=$KEYGATE_TEST_POSTGRES_URL KEYGATE_LOG=warn
$BIN init --tenant bench --admin-email admin@bench.example >/dev/null
$BIN tenants api on --tenant bench >/dev/null
$BIN tenants rate-limit --tenant bench 1000000000 >/dev/null
$BIN users create --tenant bench --email b@bench.example --name B --category programmatic >/dev/null
KEY=$($BIN keys issue --tenant bench --user b@bench.example --purpose bench --ip 127.0.0.0/8 2>/dev/null)

start_node() { # start_node CLUSTER PORT
    KEYGATE_CHANGE_LISTENER=$1 KEYGATE_CLUSTER_LIMITS=$1 $BIN serve --listen "127.0.0.1:$2" >"$work/node-$2.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.1; done
    say "node on $2 did not start"; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p_on=$(free_port); start_node true "$p_on"; pid_on=${pids[-1]}
p_off=$(free_port); start_node false "$p_off"; pid_off=${pids[-1]}
run() { # run PORT -> requests/s
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$1/rest/v1/1/capability" |
        awk '/Requests\/sec/ {print $2}'
}
run "$p_on" >/dev/null; run "$p_off" >/dev/null # warm both
ratios=()
for i in $(seq "$PAIRS"); do
    if ((i % 2)); then order=("on" "off"); else order=("off" "on"); fi
    for which in "${order[@]}"; do
        if [[ $which == on ]]; then kill -STOP "$pid_off"; r_on=$(run "$p_on"); kill -CONT "$pid_off"
        else kill -STOP "$pid_on"; r_off=$(run "$p_off"); kill -CONT "$pid_on"; fi
    done
    ratio=$(python3 -c "print(f'{100*$r_on/$r_off:.1f}')")
    ratios+=("$ratio")
    say "pair $i: cluster node $r_on req/s, single-node behaviour $r_off req/s: $ratio %"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "RESULT cluster_node_ratio=${median}% (listener and cluster limits on vs off; median of $PAIRS pairs; target >= 95 %)"
