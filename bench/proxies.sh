#!/usr/bin/env bash
# What keygate's forward-auth costs behind real proxies (issue 12). One command: bench/proxies.sh
#
# Requests go through Debian's nginx and Caddy to a fast static upstream (a `return 200` server of
# the same nginx), with and without keygate in front, in the same run, and the result is printed
# as a ratio (with keygate / without). The proxies run the configurations that tests/proxies/run.sh
# checks (deploy/nginx/test.conf.template, deploy/caddy/Caddyfile.test.template, with the snippets
# of deploy/ unchanged):
#   nginx        :PORT        auth_request to keygate, keep-alive     vs :OPEN_PORT  no auth
#   nginx cached :CACHED_PORT the same with the 5 s auth cache        vs :OPEN_PORT
#   caddy        :PORT        forward_auth to keygate, keep-alive     vs :OPEN_PORT  no auth
# and, for reference, the static upstream and keygate's /v1/forward-auth asked directly.
#
# Every server (keygate with TOKIO_WORKER_THREADS=1, nginx with one worker, Caddy with
# GOMAXPROCS=1) is pinned to CPU BENCH_SERVER_CPU and wrk (one thread) to CPU BENCH_CLIENT_CPU, so
# a ratio is what one core's worth of proxy (+ keygate) does with and without keygate. Each round
# runs each pair back to back, alternating which goes first; the ratio printed is the median of
# the rounds' ratios (this VM's speed drifts over minutes; two runs seconds apart cancel most of
# it). The servers' CPU time is read from /proc around each run: a run in which they got less than
# BENCH_MIN_CPU % of their core (other work on the machine took it) is run again, up to three
# times, and besides req/s the summary gives requests per server CPU-second: the cost figure to
# read. Plain nginx proxying to a static upstream is too cheap for one wrk thread to saturate its
# core (it runs at 50-70 % CPU: the client is the limit), so its req/s understates what keygate
# costs nginx; requests per CPU-second do not, and other work on the machine disturbs them less. Every request carries a valid key (same bytes with and
# without keygate); a run with any non-2xx answer is reported as invalid. keygate is a release
# build (`cargo build --release -p keygate`, or KEYGATE_BIN=path) on a fresh SQLite data dir, key
# rate limit 10^9/min, KEYGATE_LOG=warn.
#
# Knobs (environment): BENCH_ROUNDS=3, BENCH_DURATION=5 (s per run), BENCH_WARMUP=2 (s),
# BENCH_CONNECTIONS=32, BENCH_MIN_CPU=30, BENCH_SERVER_CPU=0, BENCH_CLIENT_CPU=1, KEYGATE_BIN.
set -euo pipefail

if [[ -z ${KEYGATE_BENCH_TIMED:-} ]]; then
    export KEYGATE_BENCH_TIMED=1
    exec timeout --kill-after=10s "${BENCH_TIMEOUT:-900}" bash "${BASH_SOURCE[0]}" "$@"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
MIN_CPU=${BENCH_MIN_CPU:-30}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}

for tool in wrk nginx caddy curl taskset python3; do
    command -v "$tool" >/dev/null || { echo "ERROR: $tool is required (apt-get install wrk nginx caddy)" >&2; exit 1; }
done
if [[ -n ${KEYGATE_BIN:-} ]]; then
    KG=$KEYGATE_BIN
else
    (cd "$ROOT" && cargo build --release -p keygate)
    KG=$ROOT/target/release/keygate
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-bench-proxies.XXXXXX")
pids=()
cleanup() {
    local status=$?
    if ((status)); then
        for log in "$T"/keygate.log "$T"/nginx/error.log "$T"/caddy/caddy.log "$T"/caddy/stdout.log; do
            [[ -s $log ]] && { echo "----- $log (last lines)"; tail -n 15 "$log"; } >&2
        done
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$T"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

read -r KG_PORT NGINX_PORT NGINX_CACHED_PORT NGINX_OPEN_PORT STATIC_PORT CADDY_PORT CADDY_OPEN_PORT < <(
    python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])'
)

export KEYGATE_DATA_DIR=$T/data KEYGATE_LOG=warn
"$KG" init --tenant bench --admin-email admin@bench.example >/dev/null
"$KG" users create --tenant bench --email bot@bench.example --name "Bench bot" --category programmatic >/dev/null
"$KG" tenants api on --tenant bench >/dev/null
KEY=$("$KG" keys issue --tenant bench --user bot@bench.example --purpose bench --ip 127.0.0.0/8 \
    --rate-limit 1000000000 2>/dev/null)
# Like the proxies (access_log off), keygate writes no access log unless BENCH_LOG=info.
KEYGATE_LOG=${BENCH_LOG:-warn} TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" "$KG" serve --listen "127.0.0.1:$KG_PORT" \
    --trusted-proxies 127.0.0.1 >"$T/keygate.log" 2>&1 &
pids+=($!)
KG_PID=$!

fill() { # fill TEMPLATE OUT PORT OPEN_PORT: the test configurations, with the static upstream as the app
    sed -e "s#@DIR@#$(dirname "$2")#g" -e "s#@USER@#$([[ $EUID -eq 0 ]] && echo 'user root;')#" \
        -e "s#@WORKERS@#1#" -e "s#@ACCESS_LOG@#off#" \
        -e "s#@KEYGATE_PORT@#$KG_PORT#g" -e "s#@APP_PORT@#$STATIC_PORT#g" \
        -e "s#@PORT@#$3#g" -e "s#@CACHED_PORT@#$NGINX_CACHED_PORT#g" -e "s#@OPEN_PORT@#$4#g" \
        -e "s#@STATIC_PORT@#$STATIC_PORT#g" -e "s#@TENANT@#bench#g" "$1" >"$2"
}
mkdir -p "$T/nginx/tmp" "$T/caddy"
cp -r "$ROOT/deploy/nginx/snippets" "$T/nginx/"
fill "$ROOT/deploy/nginx/test.conf.template" "$T/nginx/nginx.conf" "$NGINX_PORT" "$NGINX_OPEN_PORT"
taskset -c "$SERVER_CPU" nginx -e "$T/nginx/error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/nginx/stdout.log" 2>&1 &
pids+=($!)
NGINX_PID=$!
cp "$ROOT/deploy/caddy/keygate.caddy" "$T/caddy/"
fill "$ROOT/deploy/caddy/Caddyfile.test.template" "$T/caddy/Caddyfile" "$CADDY_PORT" "$CADDY_OPEN_PORT"
HOME=$T/caddy XDG_DATA_HOME=$T/caddy XDG_CONFIG_HOME=$T/caddy GOMAXPROCS=1 taskset -c "$SERVER_CPU" \
    caddy run --config "$T/caddy/Caddyfile" --adapter caddyfile >"$T/caddy/stdout.log" 2>&1 &
pids+=($!)
CADDY_PID=$!

for port in "$KG_PORT" "$STATIC_PORT" "$NGINX_OPEN_PORT" "$CADDY_OPEN_PORT"; do
    for _ in $(seq 150); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

declare -A URL=(
    [static]=http://127.0.0.1:$STATIC_PORT/
    [keygate]=http://127.0.0.1:$KG_PORT/v1/forward-auth
    [nginx_open]=http://127.0.0.1:$NGINX_OPEN_PORT/
    [nginx_auth]=http://127.0.0.1:$NGINX_PORT/
    [nginx_cached]=http://127.0.0.1:$NGINX_CACHED_PORT/
    [caddy_open]=http://127.0.0.1:$CADDY_OPEN_PORT/
    [caddy_auth]=http://127.0.0.1:$CADDY_PORT/
)
# Sanity: every target answers 200 with the key; the protected ones refuse without it.
for name in "${!URL[@]}"; do
    status=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Authorization: Bearer $KEY" "${URL[$name]}")
    [[ $status == 200 ]] || { echo "ERROR: $name (${URL[$name]}) answers $status with a valid key" >&2; exit 1; }
done
for name in nginx_auth nginx_cached caddy_auth keygate; do
    status=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "${URL[$name]}")
    [[ $status == 401 ]] || { echo "ERROR: $name answers $status without a key" >&2; exit 1; }
done

# CPU time (clock ticks) used so far by the servers: keygate, nginx's master and worker, Caddy.
server_ticks() {
    local total=0 pid f
    for pid in "$KG_PID" "$NGINX_PID" $(pgrep -P "$NGINX_PID") "$CADDY_PID"; do
        [[ -r /proc/$pid/stat ]] || continue
        read -r -a f < <(sed 's/.*) //' "/proc/$pid/stat") # from field 3 on: utime is 14, stime 15
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
TICKS=$(getconf CLK_TCK)

# run NAME SECONDS [warmup]: one wrk run; appends "NAME req/s p50 p99 non2xx cpu%" to $T/results.
# A run whose servers got less than BENCH_MIN_CPU % of their core (something else on the machine
# took it, or starved wrk) is run again, up to three times; the last try is kept. The two
# references are not: one wrk thread is their limit.
run() {
    local out line try t0 c0 cpu
    for try in 1 2 3; do
        t0=$(date +%s%N) c0=$(server_ticks)
        out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency \
            -H "Authorization: Bearer $KEY" "${URL[$1]}")
        cpu=$((($(server_ticks) - c0) * 100 * 1000000000 / TICKS / ($(date +%s%N) - t0)))
        [[ ${3:-} == warmup ]] && return
        line=$(python3 -c '
import re, sys
name, out, cpu = sys.argv[1], sys.argv[2], sys.argv[3]
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
def pct(p):
    m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
print(name, rps, pct(50), pct(99), int(bad.group(1)) if bad else 0, cpu)' "$1" "$out" "$cpu")
        echo "  $line (try $try)" >&2
        [[ $1 == static || $1 == keygate ]] && break # references: wrk is their limit, not the core
        ((cpu >= MIN_CPU)) && break
    done
    echo "$line" >>"$T/results"
}

echo "warming up (${WARMUP} s each)…" >&2
for name in static keygate nginx_open nginx_auth nginx_cached caddy_open caddy_auth; do run "$name" "$WARMUP" warmup; done

pairs=("nginx_open nginx_auth" "nginx_open nginx_cached" "caddy_open caddy_auth" "static keygate")
: >"$T/results"
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS…" >&2
    for pair in "${pairs[@]}"; do
        read -r a b <<<"$pair"
        if ((round % 2)); then run "$a" "$DURATION"; run "$b" "$DURATION"; else run "$b" "$DURATION"; run "$a" "$DURATION"; fi
        echo "pair $round $a $b" >>"$T/results"
    done
done

python3 - "$T/results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$MIN_CPU" <<'EOF'
import statistics, sys
path, rounds, duration, conns, min_cpu = sys.argv[1], *sys.argv[2:]
runs, pairs, last = {}, [], {}
for line in open(path):
    f = line.split()
    if f[0] == "pair":
        a, b = f[2], f[3]
        pairs.append((a, b, last[b][0] / last[a][0], last[b][1] / last[a][1]))
        continue
    name, rps, p50, p99, bad, cpu = f[0], float(f[1]), float(f[2]), float(f[3]), int(f[4]), int(f[5])
    runs.setdefault(name, []).append((rps, p50, p99, bad, cpu))
    last[name] = (rps, rps / max(cpu, 1) * 100)
med = statistics.median
def row(name):
    r = runs[name]
    bad = sum(x[3] for x in r)
    low = sum(1 for x in r if x[4] < int(min_cpu)) if name not in ("static", "keygate") else 0
    notes = (f"  INVALID: {bad} non-2xx answers" if bad else "") + (f"  ({low} run(s) below {min_cpu} % CPU)" if low else "")
    return (f"{med([x[0] for x in r]):>8.0f} req/s  p50 {med([x[1] for x in r]):5.2f} ms  p99 {med([x[2] for x in r]):6.2f} ms"
            f"  server CPU {med([x[4] for x in r]):3.0f} %  {med([x[0] / max(x[4], 1) * 100 for x in r]):6.0f} req/CPU-s{notes}")
label = {"nginx_open": "nginx, no auth", "nginx_auth": "nginx + keygate (auth_request)", "nginx_cached": "nginx + keygate, 5 s auth cache",
         "caddy_open": "caddy, no auth", "caddy_auth": "caddy + keygate (forward_auth)", "static": "static upstream alone",
         "keygate": "keygate /v1/forward-auth alone"}
print(f"# bench/proxies.sh: {rounds} rounds x {duration} s per run, wrk -t1 -c{conns}, servers on one core; medians")
for name in ["nginx_open", "nginx_auth", "nginx_cached", "caddy_open", "caddy_auth", "static", "keygate"]:
    print(f"{label[name]:<33}{row(name)}")
print()
for a, b, title in [("nginx_open", "nginx_auth", "nginx: with keygate / without"),
                    ("nginx_open", "nginx_cached", "nginx with the auth cache / without keygate"),
                    ("caddy_open", "caddy_auth", "caddy: with keygate / without")]:
    ratios = [r for (x, y, r, _) in pairs if (x, y) == (a, b)]
    costs = [c for (x, y, _, c) in pairs if (x, y) == (a, b)]
    print(f"{title:<45} {med(ratios):.2f} of the req/s (rounds: {', '.join(f'{r:.2f}' for r in ratios)}), "
          f"{med(costs):.2f} of the req per server CPU-second")
EOF
