#!/usr/bin/env bash
# The OpenAPI document is usable by others: a Python client generated from docs/openapi.json with
# openapi-python-client (PyPI, pinned) drives the management API of a live debug keygate.
#
#   bash tests/client/run.sh
#
# The generator runs with --fail-on-warning: an operation or schema it cannot turn into code is a
# failure of the document, not of the client. Then a fresh data directory (`keygate init`), a
# programmatic administrator in Configurator and User configurator (plus a group that reads
# documents, which the grant ceiling asks for) with an unscoped key made by the command line, and
# tests/client/e2e.py, which uses the generated package only. The generator is installed into a
# venv under target/ when missing; a failed install is an error, never a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

GENERATOR_VERSION=${CLIENT_GENERATOR_VERSION:-0.29.1}
DOC=${CLIENT_OPENAPI:-docs/openapi.json} # another document to try, e.g. one being written
WORK=target/client
VENV=target/client-venv
BIN=target/debug/keygate

say() { printf '[client] %s\n' "$*"; }

# --- the generator ----------------------------------------------------------------------------
gen="$VENV/bin/openapi-python-client"
if [[ ! -x $gen ]] || ! "$VENV/bin/pip" show openapi-python-client 2>/dev/null | grep -qx "Version: $GENERATOR_VERSION"; then
    say "installing openapi-python-client $GENERATOR_VERSION into $VENV"
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "openapi-python-client==$GENERATOR_VERSION"; }; then
        echo "ERROR: could not install openapi-python-client from PyPI (python3 with venv and pip are needed)" >&2
        exit 1
    fi
fi

rm -rf "$WORK"
mkdir -p "$WORK/gen"
printf 'post_hooks: []\n' >"$WORK/generator.yaml" # no ruff: the code is run, not read
say "generating a client from $DOC"
if ! "$gen" generate --path "$DOC" --meta none --output-path "$WORK/gen/keygate_client" \
    --config "$WORK/generator.yaml" --fail-on-warning >"$WORK/generate.log" 2>&1; then
    cat "$WORK/generate.log" >&2
    echo "ERROR: openapi-python-client could not generate a client from $DOC" >&2
    exit 1
fi

# --- keygate ----------------------------------------------------------------------------------
if [[ ! -x $BIN || -n $(find crates -newer "$BIN" -name '*.rs' -print -quit) ]]; then
    say "building keygate (debug)"
    cargo build -q -p keygate
fi
DATA="$WORK/data"
kg() { KEYGATE_LOG=warn "$BIN" --data-dir "$DATA" "$@"; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

kg init --tenant acme --admin-email admin@acme.example >/dev/null
kg tenants api on --tenant acme >/dev/null
kg groups create --tenant acme "Client readers" --grant documents:read:all >/dev/null
kg users create --tenant acme --email client@acme.example --name "Client check" --category programmatic \
    --group Configurator --group "User configurator" --group "Client readers" >/dev/null
KEY=$(kg keys issue --tenant acme --user client@acme.example --purpose "client check" --ip 127.0.0.0/8 2>/dev/null)

server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "serving on $base (log: $WORK/server.log)"
KEYGATE_LOG=${KEYGATE_LOG:-warn} "$BIN" --data-dir "$DATA" --listen "127.0.0.1:$port" serve >"$WORK/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "ERROR: keygate did not start" >&2; exit 1; }
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

# --- the generated client, and nothing else -----------------------------------------------------
status=0
PYTHONPATH="$WORK/gen" "$VENV/bin/python" tests/client/e2e.py "$base" "$KEY" || status=$?

# --- the README's management walkthrough, run as written against the same server ----------------
# (its `keygate` commands on this data directory, its URL moved to this server's port); every `#>`
# line it promises must be printed.
python3 - "$base" >"$WORK/walkthrough.sh" <<'PY' || status=1
import sys
readme = open("README.md").read()
start = readme.index("<!-- manage-walkthrough:start -->")
end = readme.index("<!-- manage-walkthrough:end -->")
lines = [l for l in readme[start:end].splitlines()[1:] if not l.startswith("```")]
print("\n".join(lines).replace("http://127.0.0.1:8080", sys.argv[1]))
PY
say "the README's management walkthrough"
if PATH="$PWD/target/debug:$PATH" KEYGATE_DATA_DIR="$DATA" KEYGATE_LOG=warn \
    bash -c "set -euo pipefail; $(cat "$WORK/walkthrough.sh")" >"$WORK/walkthrough.out" 2>&1; then
    python3 - "$WORK/walkthrough.sh" "$WORK/walkthrough.out" <<'PY' || status=1
import sys
script, printed = open(sys.argv[1]).read(), open(sys.argv[2]).read()
missing = [part for line in script.splitlines() if line.startswith("#>")
           for part in (p.strip() for p in line[2:].split("…")) if part and part not in printed]
if missing:
    sys.exit(f"[client] the README promises {missing!r}, which was not printed:\n{printed}")
print("[client] README walkthrough: every promised line printed")
PY
else
    cat "$WORK/walkthrough.out" >&2
    say "the README's management walkthrough failed"
    status=1
fi

if grep -q 'ERROR\|panicked' "$WORK/server.log"; then
    say "the server logged errors:"
    grep 'ERROR\|panicked' "$WORK/server.log" | head -20
    status=1
fi
((status == 0)) || say "FAIL"
exit "$status"
