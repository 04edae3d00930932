#!/bin/sh
# The entrypoint of deploy/images/postgres: on an empty PGDATA it creates the
# cluster as the official image does (superuser POSTGRES_USER with password
# POSTGRES_PASSWORD, database POSTGRES_DB, password logins from any address,
# trusted local socket), then runs the command: `postgres [options]`, or
# options alone, or any other program.
set -eu

# Options alone (`-c name=value ...`) are options of postgres.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres entrypoint: POSTGRES_PASSWORD is not set; the database is not created" >&2
        exit 1
    fi
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # Single-user mode: no server listens before the database exists, so a
        # client that sees the server up also finds its database.
        printf 'CREATE DATABASE "%s"\n' "$(printf '%s' "$db" | sed 's/"/""/g')" |
            postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres entrypoint: created the cluster in $PGDATA (user $user, database $db)" >&2
fi

exec "$@"
