#!/bin/sh
# The entrypoint of deploy/images/rabbitmq: writes /etc/rabbitmq/rabbitmq.conf
# from the environment the official image reads (RABBITMQ_DEFAULT_USER,
# RABBITMQ_DEFAULT_PASS, RABBITMQ_DEFAULT_VHOST), then runs the command.
set -eu

conf=/etc/rabbitmq/rabbitmq.conf
{
    echo "# written by docker-entrypoint.sh at each start"
    echo "listeners.tcp.default = 5672"
    # The default user may log in from other containers (the official image's
    # setting): loopback_users restricts no one.
    echo "loopback_users = none"
    [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
    [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
    [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
    true
} >"$conf"
chmod 600 "$conf"

exec "$@"
