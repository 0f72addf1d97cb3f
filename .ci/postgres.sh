#!/usr/bin/env bash
# Start a throw-away PostgreSQL for the mq-outbox Postgres tests.
#
# Idempotent: installs Debian's PostgreSQL if missing, creates a cluster in
# $MQ_PG_DIR (default /tmp/mq-outbox-pg) owned by the `postgres` user, starts
# it on 127.0.0.1:$MQ_PG_PORT (default 55432) unless it already runs, creates
# user and database `mq_outbox`, and prints one line for the caller to eval:
#
#     eval "$(.ci/postgres.sh)"
#     cargo test -p mq-outbox
#
# Everything else goes to stderr. Runs as root (CI) or as any user that can
# use sudo/runuser to become `postgres`.
set -euo pipefail

PG_DIR="${MQ_PG_DIR:-/tmp/mq-outbox-pg}"
PG_PORT="${MQ_PG_PORT:-55432}"
DB_NAME="${MQ_PG_DB:-mq_outbox}"
DB_USER="${MQ_PG_USER:-mq_outbox}"
DB_PASS="${MQ_PG_PASSWORD:-mq_outbox}"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
    done | sort -V | tail -n 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
    log "PostgreSQL not found; installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
    BINDIR="$(find_bindir)"
fi
log "using $BINDIR"

as_pg() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres -- "$@"
    fi
}

if ! id postgres >/dev/null 2>&1; then
    log "no postgres user; creating it"
    useradd --system --home-dir "$PG_DIR" --shell /bin/bash postgres
fi

mkdir -p "$PG_DIR"
chown postgres "$PG_DIR"
chmod 700 "$PG_DIR"

if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initdb in $PG_DIR/data"
    as_pg "$BINDIR/initdb" -D "$PG_DIR/data" -U postgres -A trust --encoding=UTF8 >&2
fi

# Ask the server itself: after a hard kill (a session's processes are killed
# before CI runs) postmaster.pid survives, and `pg_ctl status` may trust it
# when its PID has been reused by another process.
if as_pg "$BINDIR/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q >/dev/null 2>&1; then
    log "already running"
else
    as_pg "$BINDIR/pg_ctl" -D "$PG_DIR/data" stop -m immediate >/dev/null 2>&1 || true
    rm -f "$PG_DIR/data/postmaster.pid"
    log "starting on 127.0.0.1:$PG_PORT"
    as_pg "$BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >&2
fi

psql_pg() {
    as_pg "$BINDIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

if [ "$(psql_pg -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    log "creating user $DB_USER"
    psql_pg -d postgres -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS'" >&2
fi
if [ "$(psql_pg -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    log "creating database $DB_NAME"
    psql_pg -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi

echo "export MQ_TEST_DATABASE_URL=postgres://$DB_USER:$DB_PASS@127.0.0.1:$PG_PORT/$DB_NAME"
