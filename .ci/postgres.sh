# shellcheck shell=bash
# Starts a throwaway PostgreSQL cluster for chaoslab's tests and exports where it is.
#
#   source .ci/postgres.sh     # starts it, exports the variables below
#   ...cargo test...
#   chaoslab_pg_stop           # stops it and removes its directory (also run on EXIT if no EXIT trap was set)
#
# Exports:
#   CHAOSLAB_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:<port>/chaoslab_test (trust auth, loopback only)
#   CHAOSLAB_PG_BINDIR          the PostgreSQL binaries used (the tests start their own clusters from it too)
#   CHAOSLAB_PG_DIR             the cluster's directory (data/, server.log, the Unix socket)
#
# Installs Debian's `postgresql` with apt-get when no initdb is found (root only). Runs the server as the
# `postgres` user when we are root, because PostgreSQL refuses to run as root. Never uses port 5432: the
# port is a free one picked on 127.0.0.1. Sourcing it changes no shell options of the caller.

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo ".ci/postgres.sh: source this file (source .ci/postgres.sh), don't run it" >&2
    exit 2
fi

# Prints the newest /usr/lib/postgresql/<major>/bin holding initdb, or nothing.
_chaoslab_pg_find_bindir() {
    local dir best="" best_major=0 major
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" ]] || continue
        major=${dir#/usr/lib/postgresql/}
        major=${major%%/*}
        [[ "$major" =~ ^[0-9]+$ ]] || continue
        if ((major > best_major)); then
            best_major=$major
            best=$dir
        fi
    done
    echo "$best"
}

# Prints a TCP port that is free on 127.0.0.1 right now.
_chaoslab_pg_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        # A refused connection means nothing listens there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    return 1
}

# Runs a PostgreSQL program from the chosen bindir, as `postgres` when we are root.
_chaoslab_pg_run() {
    local tool=$1
    shift
    if [[ "$(id -u)" == 0 ]]; then
        (cd "$CHAOSLAB_PG_DIR" && runuser -u postgres -- "$CHAOSLAB_PG_BINDIR/$tool" "$@")
    else
        (cd "$CHAOSLAB_PG_DIR" && "$CHAOSLAB_PG_BINDIR/$tool" "$@")
    fi
}

chaoslab_pg_start() {
    local bindir port
    bindir=${CHAOSLAB_PG_BINDIR:-$(_chaoslab_pg_find_bindir)}
    if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
        if [[ "$(id -u)" != 0 ]]; then
            echo "ci-postgres.sh: no PostgreSQL binaries and not root: install postgresql first" >&2
            return 1
        fi
        echo "ci-postgres.sh: installing postgresql with apt-get" >&2
        apt-get update -qq >&2 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || return 1
        bindir=$(_chaoslab_pg_find_bindir)
        if [[ -z "$bindir" ]]; then
            echo "ci-postgres.sh: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2
            return 1
        fi
    fi
    port=$(_chaoslab_pg_free_port) || {
        echo "ci-postgres.sh: found no free port on 127.0.0.1" >&2
        return 1
    }

    export CHAOSLAB_PG_BINDIR=$bindir
    CHAOSLAB_PG_DIR=$(mktemp -d /tmp/chaoslab-pg.XXXXXX) || return 1
    export CHAOSLAB_PG_DIR
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$CHAOSLAB_PG_DIR" || return 1
    fi

    _chaoslab_pg_run initdb -D "$CHAOSLAB_PG_DIR/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null || {
        echo "ci-postgres.sh: initdb failed" >&2
        return 1
    }
    _chaoslab_pg_run pg_ctl -D "$CHAOSLAB_PG_DIR/data" -l "$CHAOSLAB_PG_DIR/server.log" -w -t 60 \
        -o "-p $port -k $CHAOSLAB_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || {
        echo "ci-postgres.sh: the server did not start; its log:" >&2
        cat "$CHAOSLAB_PG_DIR/server.log" >&2
        return 1
    }
    "$CHAOSLAB_PG_BINDIR/createdb" -h 127.0.0.1 -p "$port" -U postgres chaoslab_test || {
        echo "ci-postgres.sh: createdb chaoslab_test failed" >&2
        return 1
    }
    export CHAOSLAB_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/chaoslab_test"
    echo "ci-postgres.sh: PostgreSQL $("$CHAOSLAB_PG_BINDIR/postgres" -V | awk '{print $3}') at $CHAOSLAB_TEST_DATABASE_URL" >&2
}

chaoslab_pg_stop() {
    [[ -n "${CHAOSLAB_PG_DIR:-}" && -d "$CHAOSLAB_PG_DIR" ]] || return 0
    _chaoslab_pg_run pg_ctl -D "$CHAOSLAB_PG_DIR/data" -m fast -w stop >/dev/null 2>&1
    rm -rf "$CHAOSLAB_PG_DIR"
    unset CHAOSLAB_PG_DIR CHAOSLAB_TEST_DATABASE_URL
}

if chaoslab_pg_start; then
    if [[ -z "$(trap -p EXIT)" ]]; then
        trap chaoslab_pg_stop EXIT
    fi
else
    chaoslab_pg_stop
    return 1
fi
