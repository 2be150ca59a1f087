#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the test suite.
#
#   eval "$(.ci/postgres.sh start)"     # prints `export KEYGATE_TEST_POSTGRES_URL=…` and `export KEYGATE_PG_DIR=…`
#   .ci/postgres.sh stop "$KEYGATE_PG_DIR"
#   .ci/postgres.sh pause|resume "$KEYGATE_PG_DIR"   # fast shutdown, and start again (fault tests)
#
# The cluster lives in one temp dir (data, log, unix socket), listens on 127.0.0.1 only, on a free
# port, with durability switched off. Only the export lines go to stdout; progress goes to stderr.
# As root, initdb/pg_ctl run as the `postgres` OS user (initdb refuses root); otherwise as ourselves.
set -euo pipefail

MARKER=.keygate-ci-postgres # proves a dir was made by us before `stop` deletes it
started=

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Newest /usr/lib/postgresql/*/bin, else whatever initdb is on PATH.
pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z $d && -n $(command -v initdb) ]]; then d=$(dirname "$(command -v initdb)"); fi
    [[ -x $d/initdb ]] || die "no PostgreSQL binaries found (install the 'postgresql' package)"
    echo "$d"
}

# as USER CMD...: run CMD as USER (directly if that is us).
as() {
    local user=$1; shift
    if [[ $user == "$(id -un)" ]]; then "$@"
    elif command -v runuser >/dev/null; then runuser -u "$user" -- "$@"
    else su "$user" -s /bin/bash -c "$(printf '%q ' "$@")"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null && return
    local p
    for p in $(seq 55432 55631); do
        (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return; }
    done
    return 1
}

start() {
    local bin user dir port attempt
    bin=$(pg_bin)
    if [[ $EUID -eq 0 ]]; then
        user=postgres
        if ! id -u postgres >/dev/null 2>&1; then
            log "creating system user postgres"
            if getent group postgres >/dev/null; then useradd --system -g postgres postgres; else useradd --system postgres; fi
        fi
    else
        user=$(id -un) # a non-root user cannot switch users: run the cluster as ourselves
    fi

    # Under /tmp (not $TMPDIR) so the postgres user can reach it; short path keeps the socket name legal.
    dir=$(mktemp -d /tmp/keygate-pg.XXXXXX)
    touch "$dir/$MARKER"
    trap '[[ -n $started ]] || stop "$dir" >/dev/null 2>&1 || true' EXIT # clean up on failure
    [[ $user == "$(id -un)" ]] || chown "$user" "$dir"
    cd "$dir" # the postgres user must be able to stat its working directory

    as "$user" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    # Try a few ports in case another process grabs ours between picking and binding.
    for attempt in 1 2 3 4 5; do
        port=$(free_port) || die "no free TCP port found"
        echo "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >"$dir/options"
        if as "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -o "$(cat "$dir/options")" \
            start >&2; then
            break
        fi
        [[ $attempt -lt 5 ]] || { tail -n 20 "$dir/postgres.log" >&2 || true; die "pg_ctl start failed"; }
        log "start on port $port failed, retrying"
    done

    for attempt in $(seq 30); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres && break
        [[ $attempt -lt 30 ]] || die "server did not become ready within 30 s"
        sleep 1
    done

    started=1
    log "$("$bin/postgres" -V) ready on 127.0.0.1:$port (dir $dir, user $user)"
    echo "export KEYGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "export KEYGATE_PG_DIR=$dir"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR} pid
    [[ -f $dir/$MARKER ]] || die "$dir was not made by 'postgres.sh start'; not touching it"
    if [[ -f $dir/data/postmaster.pid ]]; then
        cd /
        if ! as "$(stat -c %U "$dir/data")" "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >&2; then
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            [[ -z $pid ]] || kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$dir"
    log "stopped and removed $dir"
}

# pause DIR: fast shutdown (clients are disconnected, the data stays); resume DIR: start it again
# on the same port.
pause() {
    local dir=${1:?usage: postgres.sh pause DIR}
    [[ -f $dir/$MARKER ]] || die "$dir was not made by 'postgres.sh start'; not touching it"
    cd /
    as "$(stat -c %U "$dir/data")" "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >&2
}

resume() {
    local dir=${1:?usage: postgres.sh resume DIR}
    [[ -f $dir/$MARKER ]] || die "$dir was not made by 'postgres.sh start'; not touching it"
    cd "$dir"
    as "$(stat -c %U "$dir/data")" "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
        -o "$(cat "$dir/options")" start >&2
}

case ${1:-} in
    start) start ;;
    stop) stop "${2:-}" ;;
    pause) pause "${2:-}" ;;
    resume) resume "${2:-}" ;;
    *) echo "usage: $0 start | stop DIR | pause DIR | resume DIR" >&2; exit 2 ;;
esac
