#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: a temp folder, 127.0.0.1 only, trust auth.
#
#   eval "$(tests/pg_server.sh start)"    # starts it; exports TEST_DATABASE_URL and PG_SERVER_DIR
#   .venv/bin/pytest                       # every test gets its own fresh database on it
#   tests/pg_server.sh stop "$PG_SERVER_DIR"
#
# Or `source tests/pg_server.sh` and call pg_server_start / pg_server_stop (as .ci/run does).
# The server binaries are found under /usr/lib/postgresql/<version>/bin (or via PG_BIN).
# PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

pg_server_bin() {
    # Print the folder holding initdb and pg_ctl (newest version), or fail.
    local dir
    if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/pg_ctl" ]]; then
        echo "$PG_BIN"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    dir="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")"
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
        return 0
    fi
    return 1
}

_pg_server_as_owner() {
    # Run a command as the server's owner: `postgres` when we are root, else ourselves.
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_pg_server_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_server_start() {
    # Start a server; sets and exports PG_SERVER_DIR and TEST_DATABASE_URL.
    local bin dir port
    bin="$(pg_server_bin)" || {
        echo "pg_server: no PostgreSQL binaries (looked in /usr/lib/postgresql/*/bin)" >&2
        return 1
    }
    dir="$(mktemp -d "${TMPDIR:-/tmp}/pg-test.XXXXXX")"
    chmod 700 "$dir"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres: "$dir"
    fi
    if ! _pg_server_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        return 1
    fi
    for port in $(seq "${PG_PORT:-55432}" "$((${PG_PORT:-55432} + 50))"); do
        _pg_server_port_free "$port" || continue
        # fsync off: a throwaway server needs no durability, and tests get much faster
        if _pg_server_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null; then
            export PG_SERVER_DIR="$dir"
            export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
            return 0
        fi
    done
    echo "pg_server: could not start PostgreSQL; its log:" >&2
    cat "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    return 1
}

pg_server_stop() {
    # Stop the server in $1 (default: $PG_SERVER_DIR) and delete its folder.
    local dir="${1:-${PG_SERVER_DIR:-}}" bin
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if [[ -f "$dir/data/postmaster.pid" ]] && bin="$(pg_server_bin)"; then
        _pg_server_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 \
            || true
    fi
    rm -rf "$dir"
}

# Run as a script (not sourced): start | stop DIR
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        start)
            pg_server_start
            echo "export PG_SERVER_DIR='$PG_SERVER_DIR'"
            echo "export TEST_DATABASE_URL='$TEST_DATABASE_URL'"
            echo "# stop it with: tests/pg_server.sh stop '$PG_SERVER_DIR'" ;;
        stop)
            pg_server_stop "${2:-}" ;;
        *)
            echo "usage: $0 start | stop DIR   (e.g. eval \"\$($0 start)\")" >&2
            exit 2 ;;
    esac
fi
