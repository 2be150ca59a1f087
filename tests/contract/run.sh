#!/usr/bin/env bash
# The API contract, fuzzed: schemathesis (PyPI) against a live debug keygate with a valid key, on
# every operation of the OpenAPI document the server itself serves at /openapi.json.
#
#   bash tests/contract/run.sh
#
# Builds target/debug/keygate when needed, makes a fresh data directory with `keygate demo` (the
# demo tenant and its data, served on a free loopback port), adds a programmatic user in a group
# with read and write grants on every resource and a key for it from 127.0.0.0/8 with every scope
# and a high rate limit, then runs schemathesis with a fixed example budget and seed
# (CONTRACT_MAX_EXAMPLES, default 25; CONTRACT_SEED, default 1) and a time bound
# (CONTRACT_MAX_TIME seconds for the whole run, default 600). Exits non-zero on any server error or any
# answer that does not match the document. With CONTRACT_POSTGRES_URL (a PostgreSQL URL whose user
# may create databases, e.g. CI's KEYGATE_TEST_POSTGRES_URL) it runs on a fresh PostgreSQL database
# instead of the embedded SQLite (rows are rendered by different code there), dropped at the end.
# Schemathesis is installed into a venv under target/
# when missing; a failed install is an error, never a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-25}
SEED=${CONTRACT_SEED:-1}
MAX_TIME=${CONTRACT_MAX_TIME:-600}
SCHEMATHESIS_VERSION=${CONTRACT_SCHEMATHESIS_VERSION:-4.32.5}
WORK=target/contract
VENV=target/contract-venv
BIN=target/debug/keygate

say() { printf '[contract] %s\n' "$*"; }

# --- schemathesis -----------------------------------------------------------------------------
st="$VENV/bin/schemathesis"
if [[ ! -x $st ]] || ! "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    # Never skipped, with or without CI=true: a contract test that did not run has not passed.
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"; }; then
        echo "ERROR: could not install schemathesis from PyPI (python3 with venv and pip are needed)" >&2
        exit 1
    fi
fi
say "$("$st" --version)"

# --- keygate ----------------------------------------------------------------------------------
if [[ ! -x $BIN || -n $(find crates -newer "$BIN" -name '*.rs' -print -quit) ]]; then
    say "building keygate (debug)"
    cargo build -q -p keygate
fi

rm -rf "$WORK"
mkdir -p "$WORK"
DATA="$WORK/data"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
storage=(--data-dir "$DATA")
pg_db=
if [[ -n ${CONTRACT_POSTGRES_URL:-} ]]; then
    pg_db="keygate_contract_$$_$RANDOM"
    psql -q -v ON_ERROR_STOP=1 "$CONTRACT_POSTGRES_URL" -c "CREATE DATABASE $pg_db" >/dev/null
    # The same URL with the new database's name in place of its own.
    pg_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$CONTRACT_POSTGRES_URL" "$pg_db")
    storage=(--database-url "$pg_url")
    say "on PostgreSQL, a fresh database $pg_db"
fi
kg() { KEYGATE_LOG=warn "$BIN" "${storage[@]}" "$@"; }

server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $pg_db ]]; then
        psql -q "$CONTRACT_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "serving the demo tenant on $base (log: $WORK/server.log)"
KEYGATE_LOG=${KEYGATE_LOG:-warn} "$BIN" "${storage[@]}" --listen "127.0.0.1:$port" demo >"$WORK/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "ERROR: keygate did not start" >&2; exit 1; }
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

# A programmatic user that may read and write everything and run the management API
# (Configurator, User configurator), and a key with every scope, the admin ones too.
grants=()
scopes=()
for r in companies persons jobs tasks documents invoices time users; do
    grants+=(--grant "$r:write:all")
    scopes+=(--scope "$r:write")
done
for a in keys:read keys:write users:read users:write settings:read settings:write audit:read; do
    scopes+=(--scope "admin:$a")
done
group_line=$(kg groups create --tenant demo "Contract tests" "${grants[@]}")
user_line=$(kg users create --tenant demo --email contract@demo.example --name "Contract tests" \
    --category programmatic --group "Contract tests" --group Configurator --group "User configurator")
issue() { # issue PURPOSE: a key of the contract user (secret on stdout, "key id: N" on fd 3)
    kg keys issue --tenant demo --user contract@demo.example --purpose "$1" \
        --ip 127.0.0.0/8 "${scopes[@]}" --scope keys:verify --rate-limit 1000000 2>&3
}
KEY=$(issue "contract tests" 3>"$WORK/key.id")
# What fuzzing must not switch off (hooks.py): the run's key, its user and its group.
export CONTRACT_KEY_ID CONTRACT_USER_ID CONTRACT_GROUP_ID
CONTRACT_KEY_ID=$(sed -n 's/^key id: \([0-9]*\).*/\1/p' "$WORK/key.id")
CONTRACT_USER_ID=$(sed -n 's/.*(id \([0-9]*\)).*/\1/p' <<<"$user_line")
CONTRACT_GROUP_ID=$(sed -n 's/.*(id \([0-9]*\)).*/\1/p' <<<"$group_line")
[[ -n $CONTRACT_KEY_ID && -n $CONTRACT_USER_ID && -n $CONTRACT_GROUP_ID ]] ||
    { echo "ERROR: no id in the command line's answers" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$base/rest/v1/1/capability")
[[ $code == 200 ]] || { echo "ERROR: the contract key is refused ($code)" >&2; exit 1; }

# --- schemathesis run -------------------------------------------------------------------------
# positive_data_acceptance is left out: a schema-valid body can still name a record that does not
# exist or a filter that does not parse, and those are rightly refused (404, 400, 422).
checks=${CONTRACT_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth,use_after_free,ensure_resource_availability}
say "schemathesis: every operation, $MAX_EXAMPLES examples each, seed $SEED, checks $checks"
status=0
# No crash cache (.schemathesis/): a run replays only what its seed generates.
printf '[cache]\nenabled = false\n' >"$WORK/schemathesis.toml"
PYTHONPATH=tests/contract SCHEMATHESIS_HOOKS=hooks \
    timeout --kill-after=10 "$MAX_TIME" "$st" --config-file "$WORK/schemathesis.toml" run "$base/openapi.json" \
    --url "$base" \
    -H "Authorization: Bearer $KEY" \
    --checks "$checks" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 30 \
    --generation-database none \
    --generation-with-security-parameters false \
    --suppress-health-check all \
    --report junit,ndjson --report-dir "$WORK/report" \
    || status=$?

if grep -q 'ERROR\|panicked' "$WORK/server.log"; then
    say "the server logged errors:"
    grep 'ERROR\|panicked' "$WORK/server.log" | head -20
    status=1
fi
if ((status == 0)); then
    say "PASS: 0 server errors, 0 answers that do not match the document"
else
    say "FAIL (schemathesis exit $status); reports in $WORK/report"
fi
exit "$status"
