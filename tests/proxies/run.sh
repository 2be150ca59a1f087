#!/usr/bin/env bash
# keygate behind real reverse proxies: Debian's nginx (auth_request, deploy/nginx/) and Caddy
# (forward_auth, deploy/caddy/), each in front of a tiny upstream that echoes what it received
# (tests/proxies/echo_upstream.py). The proxies run the snippets of deploy/ unchanged, from the
# test configurations deploy/nginx/test.conf.template and deploy/caddy/Caddyfile.test.template.
#
# For each proxy: refusals reach the client with keygate's status, one WWW-Authenticate and the
# problem document (401, 403 and 429, which nginx's auth_request alone would turn into 500); a
# valid key reaches the upstream with the X-Keygate-* identity and without the key; keygate judges
# the real client address (127.0.0.2 ≠ the proxy's 127.0.0.1) and a client cannot choose it with
# X-Forwarded-For / X-Real-IP; the proxies are pinned to their tenant (`?tenant=` in the shipped
# snippets), so another tenant's valid key is refused; a unit-1 key reaches /rest/v1/1/… and never
# unit 2, however the path is spelled (`%32`, case, `;`, dot segments, double slashes); a disabled
# key is refused on the next request; keygate down → the proxy fails closed. For nginx's optional auth cache (keygate-locations-cached.conf): it serves
# the identity from the cache, never caches refusals, and its revocation delay is measured.
#
# Everything listens on 127.0.0.1 on free ports, from a temporary directory removed at the end;
# every process started here is stopped by its pid. Bounded by `timeout` (KEYGATE_PROXIES_TIMEOUT,
# default 240 s). Builds nothing but `cargo build -p keygate` when target/debug/keygate is missing.
# With CI=true a missing nginx or caddy is a failure, never a skip (as root they are installed with
# apt-get first). Prints `N passed, M failed`; exits non-zero on any failure.
set -euo pipefail

if [[ -z ${KEYGATE_PROXIES_TIMED:-} ]]; then
    export KEYGATE_PROXIES_TIMED=1
    exec timeout --kill-after=10s "${KEYGATE_PROXIES_TIMEOUT:-240}" bash "${BASH_SOURCE[0]}" "$@"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CI=${CI:-}
KG=$ROOT/target/debug/keygate

pass=0
fail=0
skipped=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
summary() { if ((skipped)); then echo "$pass passed, $fail failed, $skipped skipped"; else echo "$pass passed, $fail failed"; fi; }

# --- Tools -------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})) && [[ $EUID -eq 0 ]]; then
    echo "installing: ${need[*]}"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } >&2 || true
fi
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "ERROR: $tool is required" >&2; exit 1; }
done
proxies=()
for p in nginx caddy; do
    if command -v "$p" >/dev/null; then
        proxies+=("$p")
    elif [[ $CI == true ]]; then
        bad "$p is not installed (CI=true: a missing proxy is a failure)"
    else
        echo "SKIP - $p is not installed (apt-get install $p)"
        skipped=$((skipped + 1))
    fi
done
if [[ ! -x $KG ]]; then
    (cd "$ROOT" && cargo build -p keygate)
fi

# --- Temporary directory, processes, cleanup ---------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-proxies.XXXXXX")
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if ((fail)) || ((status)); then
        for log in "$T"/keygate.log "$T"/nginx/error.log "$T"/caddy/caddy.log "$T"/caddy/stdout.log; do
            [[ -s $log ]] && { echo "----- $log (last lines)"; tail -n 20 "$log"; }
        done
    fi
    rm -rf "$T"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Free loopback ports, all bound at once so that they differ.
read -r KG_PORT APP_PORT NGINX_PORT NGINX_CACHED_PORT NGINX_OPEN_PORT NGINX_STATIC_PORT CADDY_PORT CADDY_OPEN_PORT < <(
    python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])'
)

wait_for() { # wait_for URL NAME: until URL answers at all (any status), at most 15 s
    for _ in $(seq 150); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    echo "ERROR: $2 did not come up at $1" >&2
    exit 1
}

# --- keygate: a tenant, a programmatic user in a group, keys -------------------------------------
export KEYGATE_DATA_DIR=$T/data
"$KG" init --tenant acme --admin-email admin@acme.test >/dev/null
"$KG" groups create --tenant acme Readers --grant companies:read:all --grant persons:write:all >/dev/null
BOT_ID=$("$KG" users create --tenant acme --email bot@acme.test --name "Proxy bot" --category programmatic \
    --group Readers | sed -n 's/.*(id \([0-9]*\)).*/\1/p')
"$KG" tenants api on --tenant acme >/dev/null
"$KG" units create --tenant acme --id 2 "Second unit" >/dev/null
issue() { # issue VAR PURPOSE ARGS...: sets VAR to the key and VAR_ID to its id
    local var=$1 purpose=$2
    shift 2
    local key
    key=$("$KG" keys issue --tenant acme --user bot@acme.test --purpose "$purpose" "$@" 2>"$T/issued")
    printf -v "$var" '%s' "$key"
    printf -v "${var}_ID" '%s' "$(sed -n 's/^key id: //p' "$T/issued")"
}
issue KEY "proxied integration" --ip 127.0.0.0/8
issue FAR "far away" --ip 203.0.113.0/24
issue TWO "from 127.0.0.2 only" --ip 127.0.0.2/32
issue UNIT1 "unit 1 only" --ip 127.0.0.0/8 --unit 1 --rate-limit 100000
# A second tenant with a valid key of its own: the proxies serve acme's site and must refuse it.
"$KG" init --tenant globex --admin-email admin@globex.test >/dev/null
"$KG" users create --tenant globex --email bot@globex.test --name "Globex bot" --category programmatic >/dev/null
"$KG" tenants api on --tenant globex >/dev/null
OTHER=$("$KG" keys issue --tenant globex --user bot@globex.test --purpose "another tenant's" --ip 127.0.0.0/8 2>/dev/null)
for p in nginx caddy nginx_cached; do
    issue "RATE_$p" "rate $p" --ip 127.0.0.0/8 --rate-limit 1
    issue "REVOKE_$p" "revoke $p" --ip 127.0.0.0/8
done
"$KG" serve --listen "127.0.0.1:$KG_PORT" --trusted-proxies 127.0.0.1 >"$T/keygate.log" 2>&1 &
pids+=($!)
KG_PID=$!

python3 "$ROOT/tests/proxies/echo_upstream.py" "$APP_PORT" >"$T/upstream.log" 2>&1 &
pids+=($!)

# --- The proxies, from their test configurations -----------------------------------------------
fill() { # fill TEMPLATE OUT: replace the @NAME@ placeholders
    sed -e "s#@DIR@#$(dirname "$2")#g" -e "s#@USER@#$([[ $EUID -eq 0 ]] && echo 'user root;')#" \
        -e "s#@WORKERS@#1#" -e "s#@ACCESS_LOG@#off#" \
        -e "s#@KEYGATE_PORT@#$KG_PORT#g" -e "s#@APP_PORT@#$APP_PORT#g" \
        -e "s#@PORT@#${3}#g" -e "s#@CACHED_PORT@#$NGINX_CACHED_PORT#g" -e "s#@OPEN_PORT@#${4}#g" \
        -e "s#@STATIC_PORT@#$NGINX_STATIC_PORT#g" -e "s#@TENANT@#acme#g" "$1" >"$2"
}
for p in "${proxies[@]}"; do
    case $p in
    nginx)
        mkdir -p "$T/nginx/tmp"
        cp -r "$ROOT/deploy/nginx/snippets" "$T/nginx/"
        fill "$ROOT/deploy/nginx/test.conf.template" "$T/nginx/nginx.conf" "$NGINX_PORT" "$NGINX_OPEN_PORT"
        nginx -e "$T/nginx/error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/nginx/stdout.log" 2>&1 &
        pids+=($!)
        ;;
    caddy)
        mkdir -p "$T/caddy"
        cp "$ROOT/deploy/caddy/keygate.caddy" "$T/caddy/"
        fill "$ROOT/deploy/caddy/Caddyfile.test.template" "$T/caddy/Caddyfile" "$CADDY_PORT" "$CADDY_OPEN_PORT"
        HOME=$T/caddy XDG_DATA_HOME=$T/caddy XDG_CONFIG_HOME=$T/caddy \
            caddy run --config "$T/caddy/Caddyfile" --adapter caddyfile >"$T/caddy/stdout.log" 2>&1 &
        pids+=($!)
        ;;
    esac
done

wait_for "http://127.0.0.1:$KG_PORT/healthz" keygate
wait_for "http://127.0.0.1:$APP_PORT/" upstream
for p in "${proxies[@]}"; do
    case $p in
    nginx) wait_for "http://127.0.0.1:$NGINX_OPEN_PORT/" nginx ;;
    caddy) wait_for "http://127.0.0.1:$CADDY_OPEN_PORT/" caddy ;;
    esac
done

# --- Helpers -----------------------------------------------------------------------------------
H=$T/headers
B=$T/body
fetch() { # fetch URL [CURL ARGS...]: STATUS, and the answer's headers in $H and body in $B
    STATUS=$(curl -s --max-time 5 -D "$H" -o "$B" -w '%{http_code}' "$@") || STATUS=000
}
header() { # header NAME: the values of that answer header, one a line
    tr -d '\r' <"$H" | sed -n "s/^$1: *//Ip"
}
code() { jq -r '.code // empty' "$B" 2>/dev/null || true; }
seen() { jq -r --arg h "$1" '.headers[$h] // "<absent>"' "$B" 2>/dev/null || echo "<not the upstream>"; }
explain() { echo "       got $STATUS, code=$(code), www-authenticate=[$(header www-authenticate | paste -sd'|')], body=$(head -c 300 "$B")"; }

# refused NAME STATUS CODE CHALLENGE URL [CURL ARGS...]: keygate's refusal, as keygate wrote it
refused() {
    local name=$1 status=$2 want=$3 challenge=$4
    shift 4
    fetch "$@"
    local challenges ctype
    challenges=$(header www-authenticate)
    ctype=$(header content-type)
    if [[ $STATUS == "$status" && $(code) == "$want" && $ctype == application/problem+json* &&
        $(jq -r '.status' "$B") == "$status" && $(jq -r '.requestId // empty' "$B") != "" ]] &&
        if [[ -n $challenge ]]; then
            [[ $(grep -c . <<<"$challenges") == 1 && $challenges == *"$challenge"* ]]
        else
            [[ -z $challenges ]]
        fi
    then
        ok "$name → $status $want${challenge:+, one WWW-Authenticate: $challenge}, problem+json"
    else
        bad "$name → expected $status $want${challenge:+ with WWW-Authenticate: $challenge}"
        explain
    fi
}

# reached NAME KEY_ID URL [CURL ARGS...]: the upstream answered, saw the identity and no key
reached() {
    local name=$1 key_id=$2
    shift 2
    fetch "$@"
    if [[ $STATUS == 200 && $(seen x-keygate-key-id) == "$key_id" && $(seen x-keygate-user-id) == "$BOT_ID" &&
        $(seen x-keygate-tenant) == acme && $(seen x-keygate-permissions) == "companies:read:all persons:write:all" &&
        $(seen authorization) == "<absent>" && $(seen x-api-key) == "<absent>" ]] &&
        ! grep -qF "kg_" "$B"; then
        ok "$name → 200 from the upstream, X-Keygate-* = acme/$BOT_ID/$key_id/2 grants, no key"
    else
        bad "$name → expected 200 from the upstream with key id $key_id and no key"
        explain
    fi
}

# keygate's count of missing_credentials refusals, if /metrics shows it (information only).
missing_credentials_counted() {
    curl -s --max-time 2 "http://127.0.0.1:$KG_PORT/metrics" |
        sed -n 's/^keygate_refused_calls_total{code="missing_credentials"} \([0-9]*\).*/\1/p' | head -n 1 || true
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# refused_within NAME MAX_MS URL KEY: polls until the key is refused; prints how long it took
refused_within() {
    local name=$1 max=$2 url=$3 key=$4 start
    start=$(date +%s%N)
    while :; do
        fetch "$url" -H "Authorization: Bearer $key"
        if [[ $STATUS == 401 && $(code) == key_disabled ]]; then
            ok "$name → refused (key_disabled) $(ms_since "$start") ms after \`keygate keys disable\` returned"
            return
        fi
        if (($(ms_since "$start") > max)); then
            bad "$name → still not refused after $max ms"
            explain
            return
        fi
        sleep 0.05
    done
}

# --- Control: keygate believes what a trusted proxy forwards ------------------------------------
# (so the spoofing checks below prove something: only the proxy's overwriting stops it)
fetch "http://127.0.0.1:$KG_PORT/v1/forward-auth" -H "Authorization: Bearer $FAR" -H "X-Forwarded-For: 203.0.113.9"
if [[ $STATUS == 200 ]]; then
    ok "control: keygate accepts the 203.0.113.0/24 key when its trusted peer forwards 203.0.113.9"
else
    bad "control: keygate should believe X-Forwarded-For from its trusted peer 127.0.0.1"
    explain
fi

fetch "http://127.0.0.1:$KG_PORT/v1/forward-auth" -H "Authorization: Bearer $OTHER"
if [[ $STATUS == 200 && $(header x-keygate-tenant) == globex ]]; then
    ok "control: globex's key is valid (forward-auth without ?tenant= accepts it)"
else
    bad "control: globex's key should be valid where no tenant is named"
    explain
fi

# --- Each proxy --------------------------------------------------------------------------------
check_proxy() { # check_proxy NAME BASE_URL SUFFIX
    local p=$1 base=$2 s=$3
    local rate_var=RATE_$s
    echo "# $p ($base)"
    local before after
    before=$(missing_credentials_counted)
    refused "$p: no key" 401 missing_credentials 'Bearer realm="keygate"' "$base/anything"
    after=$(missing_credentials_counted)
    [[ -n $before && -n $after ]] && echo "       (keygate counted that one refused call $((after - before)) time(s), per /metrics)"
    if [[ $p == nginx* ]]; then
        # deploy/nginx passes nginx's $request_id (32 hex digits) on; keygate's own ids look otherwise.
        local rid
        rid=$(jq -r '.requestId // empty' "$B")
        if [[ $rid =~ ^[0-9a-f]{32}$ && $(header x-request-id) == "$rid" ]]; then
            ok "$p: the refusal names nginx's \$request_id ($rid), so both logs name the request alike"
        else
            bad "$p: the refusal should carry nginx's \$request_id, not keygate's own id"
            explain
        fi
    fi
    refused "$p: garbage Bearer key" 401 malformed_key 'error="invalid_token", error_description="malformed_key"' \
        "$base/anything" -H "Authorization: Bearer kg_garbage"
    refused "$p: garbage X-API-Key" 401 malformed_key 'error_description="malformed_key"' \
        "$base/anything" -H "X-API-Key: not-a-key"
    reached "$p: valid Bearer key" "$KEY_ID" "$base/v1/things?a=1&b=2" -H "Authorization: Bearer $KEY" \
        -H "X-Keygate-User-Id: 999" -H "X-Keygate-Tenant: evil" -H "X-Keygate-Permissions: everything"
    if [[ $STATUS == 200 && $(jq -r .path "$B") == "/v1/things?a=1&b=2" ]]; then
        ok "$p: path and query reach the upstream unchanged; client-sent X-Keygate-* replaced"
    else
        bad "$p: path/query"
        explain
    fi
    reached "$p: valid X-API-Key" "$KEY_ID" "$base/x" -H "X-API-Key: $KEY"
    reached "$p: POST with a body" "$KEY_ID" "$base/upload" -H "Authorization: Bearer $KEY" --data-binary 'twelve bytes'
    if [[ $STATUS == 200 && $(jq -r .method "$B") == POST && $(jq -r .bodyLength "$B") == 12 ]]; then
        ok "$p: the upstream got the POST and its 12-byte body (keygate got neither)"
    else
        bad "$p: POST body"
        explain
    fi

    # The site is acme's: a valid key of another tenant is unknown here (the shipped snippets pass
    # ?tenant=; without it this key passed).
    refused "$p: globex's valid key on acme's site" 401 unknown_key 'error_description="unknown_key"' \
        "$base/x" -H "Authorization: Bearer $OTHER"

    # The unit: keygate reads it from the URI the proxy forwards, and refuses any spelling of a
    # /rest/v1/ path whose unit it cannot read (the upstream might read unit 2 there).
    reached "$p: unit-1 key on /rest/v1/1/views/jobs" "$UNIT1_ID" "$base/rest/v1/1/views/jobs" \
        -H "Authorization: Bearer $UNIT1"
    refused "$p: unit-1 key on /rest/v1/2/views/jobs" 403 unit_not_allowed 'error_description="unit_not_allowed"' \
        "$base/rest/v1/2/views/jobs" -H "Authorization: Bearer $UNIT1"
    local spelling
    for spelling in /rest/v1/%32/views/jobs '/rest/v1/2;x=1/views/jobs' /REST/v1/2/views/jobs \
        /rest/v1/1/../2/views/jobs //rest/v1/2/views/jobs /rest/v1/./2/views/jobs /rest/v1/1/%2e%2e/2/views/jobs \
        /rest/v1%2f2/views/jobs; do
        refused "$p: unit-1 key on $spelling" 400 unreadable_unit "" --path-as-is "$base$spelling" \
            -H "Authorization: Bearer $UNIT1"
    done

    # The client address keygate judges.
    reached "$p: key for 127.0.0.2/32 from client 127.0.0.2 (the proxy itself is 127.0.0.1)" "$TWO_ID" \
        "$base/x" --interface 127.0.0.2 -H "Authorization: Bearer $TWO"
    if [[ $STATUS == 200 && $(seen x-forwarded-for) == 127.0.0.2 && $(seen x-real-ip) == 127.0.0.2 ]]; then
        ok "$p: the upstream too sees X-Forwarded-For and X-Real-IP = 127.0.0.2"
    else
        bad "$p: forwarded client address for the upstream"
        explain
    fi
    refused "$p: key for 127.0.0.2/32 from client 127.0.0.1" 403 ip_not_allowed 'error_description="ip_not_allowed"' \
        "$base/x" -H "Authorization: Bearer $TWO"
    refused "$p: key for 127.0.0.2/32 from 127.0.0.1 claiming 127.0.0.2 (X-Forwarded-For, X-Real-IP)" \
        403 ip_not_allowed 'error_description="ip_not_allowed"' "$base/x" -H "Authorization: Bearer $TWO" \
        -H "X-Forwarded-For: 127.0.0.2" -H "X-Real-IP: 127.0.0.2"
    refused "$p: key for 203.0.113.0/24" 403 ip_not_allowed 'error_description="ip_not_allowed"' \
        "$base/x" -H "Authorization: Bearer $FAR"
    refused "$p: key for 203.0.113.0/24 claiming X-Forwarded-For: 203.0.113.9" 403 ip_not_allowed \
        'error_description="ip_not_allowed"' "$base/x" -H "Authorization: Bearer $FAR" -H "X-Forwarded-For: 203.0.113.9"
    refused "$p: key for 203.0.113.0/24 claiming X-Real-IP: 203.0.113.9" 403 ip_not_allowed \
        'error_description="ip_not_allowed"' "$base/x" -H "Authorization: Bearer $FAR" -H "X-Real-IP: 203.0.113.9"
    reached "$p: key for 127.0.0.0/8 claiming X-Forwarded-For: 198.51.100.1 (overwritten, not appended)" "$KEY_ID" \
        "$base/x" -H "Authorization: Bearer $KEY" -H "X-Forwarded-For: 198.51.100.1"

    # Rate limit: 1 call a minute, the second is 429 with Retry-After and the problem document.
    fetch "$base/x" -H "Authorization: Bearer ${!rate_var}"
    local first=$STATUS
    refused "$p: rate-limited key, second call within the minute" 429 rate_limited "" "$base/x" \
        -H "Authorization: Bearer ${!rate_var}"
    if [[ $first == 200 && -n $(header retry-after) && -n $(header ratelimit) ]]; then
        ok "$p: the 429 carries Retry-After: $(header retry-after) and RateLimit"
    else
        bad "$p: first call $first (expected 200); 429 headers retry-after=[$(header retry-after)] ratelimit=[$(header ratelimit)]"
    fi
}

for p in "${proxies[@]}"; do
    case $p in
    nginx) check_proxy nginx "http://127.0.0.1:$NGINX_PORT" nginx ;;
    caddy) check_proxy caddy "http://127.0.0.1:$CADDY_PORT" caddy ;;
    esac
done

# --- nginx's optional auth cache (keygate-locations-cached.conf) -------------------------------
if [[ " ${proxies[*]} " == *" nginx "* ]]; then
    base=http://127.0.0.1:$NGINX_CACHED_PORT
    echo "# nginx with the auth cache ($base)"
    reached "nginx cached: valid key, first call (fills the cache)" "$KEY_ID" "$base/cached" -H "Authorization: Bearer $KEY"
    reached "nginx cached: valid key, second call (from the cache: identity still set)" "$KEY_ID" \
        "$base/cached" -H "Authorization: Bearer $KEY"
    refused "nginx cached: no key" 401 missing_credentials 'Bearer realm="keygate"' "$base/cached"
    refused "nginx cached: globex's valid key on acme's site" 401 unknown_key 'error_description="unknown_key"' \
        "$base/cached" -H "Authorization: Bearer $OTHER"
    refused "nginx cached: key for 127.0.0.2/32 from 127.0.0.1 (client address is in the cache key)" 403 \
        ip_not_allowed 'error_description="ip_not_allowed"' "$base/x" -H "Authorization: Bearer $TWO"
    reached "nginx cached: … and from 127.0.0.2" "$TWO_ID" "$base/x" --interface 127.0.0.2 -H "Authorization: Bearer $TWO"
    refused "nginx cached: … and from 127.0.0.1 again, after 127.0.0.2 filled an entry" 403 ip_not_allowed \
        'error_description="ip_not_allowed"' "$base/x" -H "Authorization: Bearer $TWO"
    fetch "$base/x" -H "Authorization: Bearer $RATE_nginx_cached"
    fetch "$base/x" -H "Authorization: Bearer $RATE_nginx_cached"
    if [[ $STATUS == 200 ]]; then
        ok "nginx cached: a cache hit is not rate-limited (as documented: hits never reach keygate)"
    else
        bad "nginx cached: expected the second call of a 1/min key to be a cache hit (200), got $STATUS"
    fi
fi

# --- Revocation: `keygate keys disable` from another process ------------------------------------
echo "# revocation"
disable() { "$KG" keys disable --tenant acme "$1" >/dev/null; }
for p in "${proxies[@]}"; do
    case $p in
    nginx) base=http://127.0.0.1:$NGINX_PORT key=$REVOKE_nginx id=$REVOKE_nginx_ID ;;
    caddy) base=http://127.0.0.1:$CADDY_PORT key=$REVOKE_caddy id=$REVOKE_caddy_ID ;;
    esac
    reached "$p: key to be disabled, before" "$id" "$base/x" -H "Authorization: Bearer $key"
    disable "$id"
    # keygate: the next request on the node that made the change, within 1 s on the others.
    refused_within "$p: disabled key" 1000 "$base/x" "$key"
done
if [[ " ${proxies[*]} " == *" nginx "* ]]; then
    base=http://127.0.0.1:$NGINX_CACHED_PORT
    reached "nginx cached: key to be disabled, before (fills the cache)" "$REVOKE_nginx_cached_ID" "$base/x" \
        -H "Authorization: Bearer $REVOKE_nginx_cached"
    disable "$REVOKE_nginx_cached_ID"
    fetch "$base/x" -H "Authorization: Bearer $REVOKE_nginx_cached"
    echo "       right after disabling, the cached path answers $STATUS (200 = served from the cache)"
    # The stated delay: proxy_cache_valid 5 s, on nginx's whole-second clock, plus keygate's ≤ 1 s.
    refused_within "nginx cached: disabled key (stated delay ≤ 7 s)" 7000 "$base/x" "$REVOKE_nginx_cached"
fi

# --- keygate down: the proxies fail closed ------------------------------------------------------
echo "# keygate stopped"
kill "$KG_PID"
for _ in $(seq 100); do kill -0 "$KG_PID" 2>/dev/null || break; sleep 0.1; done
for p in "${proxies[@]}"; do
    case $p in
    nginx) base=http://127.0.0.1:$NGINX_PORT ;;
    caddy) base=http://127.0.0.1:$CADDY_PORT ;;
    esac
    for credential in "Authorization: Bearer $KEY" "X-API-Key: $KEY"; do
        fetch "$base/x" -H "$credential"
        if [[ $STATUS == 5* ]] && ! grep -q '"headers"' "$B"; then
            ok "$p: keygate unreachable → $STATUS for ${credential%%:*}, the upstream is not reached"
        else
            bad "$p: keygate unreachable should fail closed with a 5xx"
            explain
        fi
    done
done
# The proxies log errors (above: keygate unreachable) with request details: never the key.
for log in "$T"/nginx/error.log "$T"/caddy/caddy.log; do
    [[ -f $log ]] || continue
    if grep -q "${KEY#kg_}" "$log"; then
        bad "${log#"$T"/} holds the key in plaintext"
    elif ! grep -qi "connection refused" "$log"; then
        bad "${log#"$T"/} should have logged the refused connections to keygate"
    else
        ok "${log#"$T"/} logged the failed calls to keygate without the key"
    fi
done

summary
((fail == 0))
