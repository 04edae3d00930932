#!/bin/sh
# The entrypoint of deploy/images/redis: options alone are redis-server's; a
# redis-server started without a configuration file gets --protected-mode no
# first (the official image builds Redis with it off), so the options given
# after it still win.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    case "${1:-}" in
    *.conf) set -- redis-server "$@" ;; # a configuration file must come first
    *) set -- redis-server --protected-mode no "$@" ;;
    esac
fi

exec "$@"
