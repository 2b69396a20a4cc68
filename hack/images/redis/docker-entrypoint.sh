#!/bin/sh
# The official redis image's argument contract: `-…` or `*.conf` first means redis-server.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
exec "$@"
