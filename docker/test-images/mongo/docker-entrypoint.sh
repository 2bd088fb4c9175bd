#!/bin/sh
# berth-test/mongo (a stand-in, see the Dockerfile): `--option ...` is for
# mongod, as in the official image; any command is exec'd as given.
case "${1:-}" in
    -*) set -- mongod "$@" ;;
esac
exec "$@"
