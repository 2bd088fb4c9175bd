#!/bin/sh
# Entrypoint of berth-test/redis, as the official redis image's:
# `redis-server [args]` (the default command; also just `--option ...` or
# `something.conf`) runs as the redis user, after giving it what in /data
# it does not own. Any other command (redis-cli ..., sh -c ...) is exec'd as given.
set -eu

case "${1:-}" in
    -* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis '{}' +
        # exec keeps redis-server as PID 1 for signals.
        exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
    fi
    # The official image compiles protected mode off (the container's
    # network is the boundary); Debian's build has it on, so without a
    # config file of the caller's own it comes from defaults.conf.
    case "${2:-}" in
        "" | -*)
            shift
            set -- redis-server /etc/redis/berth-test-defaults.conf "$@"
            ;;
    esac
fi

# Files redis writes (dump.rdb) are for the redis user only, as in the
# official image.
if [ "$(umask)" = 0022 ]; then
    umask 0077
fi

exec "$@"
