#!/usr/bin/env bash
# Data-API benchmark (issue 5). One command: bench/data.sh
#
# Reads a 100 000-row view (documents of unit 1 in the demo data at BENCH_SCALE=50) in 1000-row
# pages with a selective filter (status = 'APPROVED', about a fifth of the rows), through keygate
# (release build, `taskset -c 0`), and the same rows of the same SQLite table through Datasette
# (PyPI, same core) in the same run, with `wrk -t1 -cBENCH_CONNECTIONS` pinned to the other core.
# Each wrk request is one page; the script rotates through every page of the filtered result.
#   keygate:   /rest/v1/1/views/documents?limit=1000&offset=N&externalFilter=status='APPROVED'
#   Datasette: /keygate/documents.json?tenant_id__exact=1&unit_id__exact=1&status__exact=APPROVED
#              &_sort=id&_size=1000&_nocount=1&_shape=objects&_next=<last id of the previous page>
# Prints pages/s, p50 and p99 for both and the ratio; PASS when keygate is at least BENCH_MIN_X
# times Datasette's pages/s. Every load run is bounded by BENCH_DURATION seconds.
#
# Knobs: BENCH_SCALE=50  BENCH_DURATION=10  BENCH_CONNECTIONS=8  BENCH_MIN_X=5  BENCH_PORT=18180
#        BENCH_SERVER_CPU=0  BENCH_CLIENT_CPU=1  BENCH_SKIP_BUILD=1 (use target/release as is)
# Needs: cargo, wrk, taskset, python3 with pip (installs datasette when missing), sqlite via python.
set -euo pipefail

BENCH_SCALE=${BENCH_SCALE:-50}
BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-8}
BENCH_MIN_X=${BENCH_MIN_X:-5}
BENCH_PORT=${BENCH_PORT:-18180}
BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-0}
BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/keygate-bench-data.XXXXXX)
KEYGATE="$ROOT/target/release/keygate"
FILTER="status%3D%27APPROVED%27"
PIDS=()

say() { printf 'bench: %s\n' "$*" >&2; }
cleanup() {
    for pid in "${PIDS[@]:-}"; do [[ -n $pid ]] && kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # wait_http URL: up to 120 s
    for _ in $(seq 1 1200); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    say "no answer from $1"; exit 2
}

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
    say "building keygate (release)"
    cargo build --release -p keygate --manifest-path "$ROOT/Cargo.toml" >&2
fi
python3 -c 'import datasette' 2>/dev/null || { say "installing datasette from PyPI"; pip install -q datasette >&2; }

say "seeding demo data at scale $BENCH_SCALE and starting keygate on CPU $BENCH_SERVER_CPU"
for port in "$BENCH_PORT" "$((BENCH_PORT + 1))"; do
    ! curl -s -o /dev/null "http://127.0.0.1:$port/" || { say "port $port is already in use"; exit 2; }
done
# `exec` so that the recorded PID is keygate itself and the cleanup stops it.
(cd "$WORK" && exec env TOKIO_WORKER_THREADS=1 KEYGATE_LOG=warn taskset -c "$BENCH_SERVER_CPU" "$KEYGATE" demo --scale "$BENCH_SCALE" \
    --data-dir "$WORK/data" --listen "127.0.0.1:$BENCH_PORT" >"$WORK/demo.out" 2>"$WORK/demo.err") &
PIDS+=($!)
wait_http "http://127.0.0.1:$BENCH_PORT/healthz"
KEY=$(grep -m1 '^kg_' "$WORK/demo.out")
"$KEYGATE" --data-dir "$WORK/data" tenants rate-limit --tenant demo 1000000000 >/dev/null
sleep 1 # the serving process reads the change feed every 200 ms

# The filtered result, page by page: keygate paths by offset, Datasette paths by keyset.
total=$(curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$BENCH_PORT/rest/v1/1/views/documents?limit=1&columns=id" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["metadata"]["count"])')
[[ $total == 1 ]] || { say "the documents view did not answer"; exit 2; }
python3 - "$WORK" "$KEY" "$BENCH_PORT" "$FILTER" <<'PY'
import json, sys, urllib.request
work, key, port, filt = sys.argv[1:5]
kg, ds, offset, last_id, rows = [], [], 0, None, 0
while True:
    path = f"/rest/v1/1/views/documents?limit=1000&offset={offset}&externalFilter={filt}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    page = json.load(urllib.request.urlopen(req))
    kg.append(path)
    nxt = "" if last_id is None else f"&_next={last_id}"
    ds.append("/keygate/documents.json?tenant_id__exact=1&unit_id__exact=1&status__exact=APPROVED"
              f"&_sort=id&_size=1000&_nocount=1&_nofacet=1&_shape=objects{nxt}")
    rows += page["metadata"]["count"]
    last_id = page["data"][-1]["id"]
    if page["metadata"]["nextOffset"] is None:
        break
    offset = page["metadata"]["nextOffset"]
open(f"{work}/keygate.paths", "w").write("\n".join(kg) + "\n")
open(f"{work}/datasette.paths", "w").write("\n".join(ds) + "\n")
print(f"bench: {rows} matching rows in {len(kg)} pages", file=sys.stderr)
PY
view_rows=$(curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$BENCH_PORT/rest/v1/1/views/documents?limit=10000&offset=0&columns=id" \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["metadata"]["count"])')
say "the view has at least $view_rows rows per 10 000-row page (BENCH_SCALE=50 gives 100 000)"

run() { # run NAME PORT PATHFILE [KEY] → RESULT line
    taskset -c "$BENCH_CLIENT_CPU" wrk -t1 -c"$BENCH_CONNECTIONS" -d2s -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$2" -- "$3" "${4:-}" >/dev/null
    taskset -c "$BENCH_CLIENT_CPU" wrk -t1 -c"$BENCH_CONNECTIONS" -d"${BENCH_DURATION}s" --timeout 10s -s "$ROOT/bench/paths.lua" \
        "http://127.0.0.1:$2" -- "$3" "${4:-}" | grep '^RESULT' | sed "s/^RESULT/$1/"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

say "loading keygate for ${BENCH_DURATION}s"
KG=$(run keygate "$BENCH_PORT" "$WORK/keygate.paths" "$KEY")
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()

say "starting Datasette on the same SQLite file, CPU $BENCH_SERVER_CPU"
cp "$WORK/data/keygate.db" "$WORK/keygate.db"
taskset -c "$BENCH_SERVER_CPU" python3 -m datasette serve --port "$((BENCH_PORT + 1))" --host 127.0.0.1 \
    --setting max_returned_rows 1000 --setting sql_time_limit_ms 10000 --immutable "$WORK/keygate.db" >"$WORK/datasette.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$((BENCH_PORT + 1))/-/versions.json"
first=$(curl -s "http://127.0.0.1:$((BENCH_PORT + 1))$(head -1 "$WORK/datasette.paths")" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["rows"]))')
[[ $first == 1000 ]] || { say "Datasette's first page has $first rows, expected 1000"; exit 2; }
say "loading Datasette for ${BENCH_DURATION}s"
DS=$(run datasette "$((BENCH_PORT + 1))" "$WORK/datasette.paths")

for line in "$KG" "$DS"; do
    [[ $(field non2xx "$line") == 0 && $(field errors "$line") == 0 ]] || { say "errors during the run: $line"; exit 2; }
done
ratio=$(awk -v a="$(field rps "$KG")" -v b="$(field rps "$DS")" 'BEGIN { printf "%.1f", a / b }')
printf '\n%-10s %12s %10s %10s\n' server pages/s p50 p99
for line in "$KG" "$DS"; do
    printf '%-10s %12s %8s µs %8s µs\n' "${line%% *}" "$(field rps "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")"
done
printf '\nkeygate / Datasette: %s× (target ≥ %s×)\n' "$ratio" "$BENCH_MIN_X"
if awk -v r="$ratio" -v m="$BENCH_MIN_X" 'BEGIN { exit !(r >= m) }'; then echo "PASS"; else echo "FAIL"; exit 1; fi
