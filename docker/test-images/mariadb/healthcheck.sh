#!/bin/sh
# healthcheck.sh of berth-test/mariadb: the two checks of the official
# image's healthcheck.sh that berth's templates use. Every given check must
# pass; exit 0 when they do, 1 otherwise.
#   --connect              the server accepts TCP connections (an "access
#                          denied" answer counts: something is listening)
#   --innodb_initialized   InnoDB is up (asked over the socket as root,
#                          which the socket trusts for OS root)
set -u
status=0
[ "$#" -gt 0 ] || set -- --connect
for check in "$@"; do
    case "$check" in
        --connect)
            # mariadb-admin ping exits 0 whenever the server answers.
            mariadb-admin --no-defaults --protocol=tcp --host=127.0.0.1 --connect-timeout=2 ping \
                >/dev/null 2>&1 || status=1
            ;;
        --innodb_initialized)
            out="$(mariadb --protocol=socket -uroot --batch --skip-column-names -e \
                "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')" 2>/dev/null)"
            [ "$out" = 1 ] || status=1
            ;;
        *)
            echo "healthcheck.sh: unsupported check $check (have --connect, --innodb_initialized)" >&2
            exit 2
            ;;
    esac
done
exit "$status"
