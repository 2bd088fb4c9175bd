#!/bin/sh
# Entrypoint of berth-test/mariadb: the parts of the official mariadb image's
# docker-entrypoint.sh that berth and its templates rely on.
#
# `mariadbd [args]` (the default command; `mysqld` too): on the first start
# (no $datadir/mysql yet) create the system tables, then
#   - root: MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) for root@'%' and
#     root@localhost; one of it, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or
#     MARIADB_RANDOM_ROOT_PASSWORD (printed once) is required;
#   - MARIADB_DATABASE / MYSQL_DATABASE: created;
#   - MARIADB_USER + MARIADB_PASSWORD (or MYSQL_*): created for '%', with
#     every privilege on that database;
#   - /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz run in order;
# then exec mariadbd as the mysql user on 0.0.0.0:3306. A data dir that
# already holds a server is used as it is.
# Unlike the official image, root@localhost also accepts the unix socket
# (OS user root inside the container: `docker exec ... mariadb`), as the
# postgres test image trusts its socket; from the network a password is
# always needed.
# Any other command (mariadb ..., mariadb-dump ..., sh -c ...) is exec'd as given.
#
# Values only ever reach SQL as escaped string literals or quoted
# identifiers in the client's stdin; nothing is spliced into a command line.
set -eu

case "${1:-}" in
    -*) set -- mariadbd "$@" ;;
esac
case "${1:-}" in
    mariadbd | mysqld) ;;
    *) exec "$@" ;;
esac

datadir=/var/lib/mysql

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$datadir" /run/mysqld
    chown mysql:mysql "$datadir" /run/mysqld
    # The rest runs as mysql; exec keeps mariadbd as PID 1 for signals.
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi

log() { echo "berth-test/mariadb: $*" >&2; }

# A string literal's contents: backslash and single quote escaped (the
# session's sql_mode below keeps backslash escapes on). Newlines stay
# newlines inside the literal.
sql_string() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
# A quoted identifier's contents: backticks doubled.
sql_ident() { printf '%s' "$1" | sed -e 's/`/``/g'; }

if [ ! -d "$datadir/mysql" ]; then
    root_password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
    allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    random_root="${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
    database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
    user="${MARIADB_USER:-${MYSQL_USER:-}}"
    password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"

    if [ -z "$root_password" ] && [ -z "$allow_empty" ] && [ -z "$random_root" ]; then
        log "error: the database is uninitialized and no root password option is set."
        log "  Set one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD."
        exit 1
    fi
    if [ -z "$root_password" ] && [ -n "$random_root" ]; then
        root_password="$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)"
        echo "GENERATED ROOT PASSWORD: $root_password"
    fi
    if [ -n "$user" ] && [ -z "$password" ]; then
        log "error: MARIADB_USER is set without MARIADB_PASSWORD."
        exit 1
    fi
    if [ "$user" = root ]; then
        log "error: MARIADB_USER=root: use MARIADB_ROOT_PASSWORD for root."
        exit 1
    fi

    log "initialising the data dir $datadir"
    # Its stdout is advice for a hand-made server (set a root password, ...),
    # done below; errors go to stderr.
    mariadb-install-db --datadir="$datadir" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --skip-log-bin --default-time-zone=SYSTEM >/dev/null

    # A server for the setup, on a private socket only: a healthcheck must
    # not see it as ready.
    sockdir="$(mktemp -d)"
    socket="$sockdir/init.sock"
    "$@" --skip-networking --socket="$socket" --skip-log-bin \
        --loose-innodb-buffer-pool-load-at-startup=0 --loose-innodb-buffer-pool-dump-at-shutdown=0 &
    init_pid=$!
    # root's password, once set below: this process is OS user mysql, so the
    # socket does not let it in as root (only OS root).
    sql_password=""
    sql() { MYSQL_PWD="$sql_password" mariadb --protocol=socket --socket="$socket" -uroot --batch "$@"; }
    sql_in_database() {
        if [ -n "$database" ]; then sql --database="$database"; else sql; fi
    }
    tries=0
    until sql -e 'SELECT 1' >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ] || ! kill -0 "$init_pid" 2>/dev/null; then
            log "error: the setup server did not start"
            exit 1
        fi
        sleep 0.1
    done

    root_lit="$(sql_string "$root_password")"
    # printf, not echo: dash's echo would turn the escaped backslashes back.
    {
        # The grants below are not replicated, and the literals assume
        # backslash escapes whatever the server's default sql_mode.
        printf '%s\n' "SET @@SESSION.SQL_LOG_BIN = 0;"
        printf '%s\n' "SET @@SESSION.SQL_MODE = REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');"
        printf '%s\n' "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
        printf '%s\n' "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
        printf '%s\n' "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$root_lit');"
        printf '%s\n' "CREATE USER root@'%' IDENTIFIED BY '$root_lit';"
        printf '%s\n' "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
        printf '%s\n' "GRANT PROXY ON ''@'%' TO root@'%' WITH GRANT OPTION;"
        if [ -n "$database" ]; then
            printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`$(sql_ident "$database")\`;"
        fi
        if [ -n "$user" ]; then
            user_lit="$(sql_string "$user")"
            printf '%s\n' "CREATE USER '$user_lit'@'%' IDENTIFIED BY '$(sql_string "$password")';"
            if [ -n "$database" ]; then
                printf '%s\n' "GRANT ALL ON \`$(sql_ident "$database")\`.* TO '$user_lit'@'%';"
            fi
        fi
        printf '%s\n' "FLUSH PRIVILEGES;"
    } | sql
    unset root_lit user_lit
    sql_password="$root_password"

    for f in /docker-entrypoint-initdb.d/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sh) log "running $f"; MARIADB_DATABASE="$database" sh "$f" ;;
            *.sql) log "running $f"; sql_in_database <"$f" ;;
            *.sql.gz) log "running $f"; gzip -dc "$f" | sql_in_database ;;
            *) log "ignoring $f" ;;
        esac
    done

    kill "$init_pid"
    wait "$init_pid" || { log "error: the setup server did not stop cleanly"; exit 1; }
    rm -rf "$sockdir"
    log "initialised; starting mariadbd"
fi

exec "$@"
