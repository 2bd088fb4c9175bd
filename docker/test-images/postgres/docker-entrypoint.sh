#!/bin/sh
# Entrypoint of berth-test/postgres: the parts of the official postgres
# image's docker-entrypoint.sh that stacks rely on.
#
# `postgres [args]` (the default command): on the first start create the
# cluster in $PGDATA from POSTGRES_USER (default postgres), POSTGRES_PASSWORD
# (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default
# the user) and POSTGRES_INITDB_ARGS, run /docker-entrypoint-initdb.d/*.sh,
# *.sql and *.sql.gz, then exec postgres as the postgres user, listening on
# all addresses, password (scram-sha-256) auth for every host connection.
# A $PGDATA that already holds a cluster is used as it is.
# Any other command (psql ..., sh -c ...) is exec'd as given.
set -eu

# `docker run berth-test/postgres -c fsync=off`: options for postgres.
case "${1:-}" in
    -*) set -- postgres "$@" ;;
esac

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    chmod 2775 /var/run/postgresql
    # The rest runs as postgres; exec keeps postgres as PID 1 for signals.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

log() { echo "berth-test/postgres: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    password="${POSTGRES_PASSWORD:-}"
    if [ -z "$password" ] && [ "$auth" != trust ]; then
        log "error: the database is not initialised and POSTGRES_PASSWORD is not set."
        log "  Set POSTGRES_PASSWORD (a superuser password for $user), or"
        log "  POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password."
        exit 1
    fi

    log "initialising a cluster in $PGDATA (user $user, database $db, host auth $auth)"
    pwfile=""
    if [ -n "$password" ]; then
        pwfile="$(mktemp)"
        printf '%s\n' "$password" >"$pwfile"
    fi
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
    initdb --username="$user" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" ${pwfile:+--pwfile="$pwfile"} \
        ${POSTGRES_INITDB_ARGS:-} >&2
    [ -z "$pwfile" ] || rm -f "$pwfile"
    {
        echo
        echo "# berth-test/postgres: every address may connect, with $auth"
        echo "host all all all $auth"
    } >>"$PGDATA/pg_hba.conf"
    {
        echo
        echo "# berth-test/postgres"
        echo "listen_addresses = '*'"
        echo "jit = off"
    } >>"$PGDATA/postgresql.conf"

    # A server for creating the database and the init scripts, on a private
    # socket only: a healthcheck (pg_isready) must not see it as ready.
    PGHOST="$(mktemp -d)"
    export PGHOST
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories='$PGHOST'" -w start >&2
    psql_init() {
        dbname="$1"
        shift
        psql -X -q -v ON_ERROR_STOP=1 --username "$user" --no-password --dbname "$dbname" "$@"
    }
    if [ "$db" != postgres ]; then
        printf 'CREATE DATABASE :"db";\n' | psql_init postgres -v db="$db"
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sh) log "running $f"; POSTGRES_USER="$user" POSTGRES_DB="$db" sh "$f" ;;
            *.sql) log "running $f"; psql_init "$db" <"$f" ;;
            *.sql.gz) log "running $f"; gzip -dc "$f" | psql_init "$db" ;;
            *) log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
    rmdir "$PGHOST"
    unset PGHOST
    log "initialised; starting postgres"
fi

exec "$@"
