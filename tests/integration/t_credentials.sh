#!/usr/bin/env bash
# Credentials never show (DESIGN.md 4, lifecycle): every program, failing to
# reach a server given a password (an unreachable port, a wrong password on the
# real servers, a malformed URI that libpq echoes), prints and logs no password,
# and a URL or DSN it prints is masked ("***"). Nor does the database keep one
# in the cause it records for a failed run.
source "$(dirname "$0")/lib.sh"
use_fresh_db t_credentials
use_fresh_vhost t_credentials
use_fresh_redis 4
PERIOD=2026-10
PW=s3cr3tPW
LOGS=$repo/.run/test-logs/t_credentials
rm -rf "$LOGS"; mkdir -p "$LOGS"

redis_hp=${ALLOC_REDIS_URL#redis://}
redis_hp=${redis_hp%%/*}
amqp_hp=${ALLOC_AMQP_URL#*@}
amqp_hp=${amqp_hp%%/*}

BAD_REDIS="redis://:$PW@127.0.0.1:1/2"
BAD_AMQP="amqp://alloc:$PW@127.0.0.1:1/alloc"
BAD_DSN="host=127.0.0.1 port=1 dbname=alloc user=alloc password=$PW"
# the real servers: Redis has no password (AUTH is refused), the broker refuses
# the login, PostgreSQL does not know the role
WRONG_REDIS="redis://:$PW@$redis_hp/4"
WRONG_AMQP="amqp://alloc:$PW@$amqp_hp/t_credentials"
WRONG_DSN="${ALLOC_PG_DSN/user=alloc/user=t_credentials_nobody} password='$PW'"
# malformed URIs: libpq's message quotes the URI, or the token it could not decode
ECHO_URI="postgresql://alloc:$PW@[127.0.0.1/alloc"
ECHO_TOKEN="postgresql://alloc:$PW%zz@127.0.0.1:1/alloc"

# log_of NAME: the log file of a case.
log_of() { echo "$LOGS/$(echo "$1" | tr -c 'A-Za-z0-9\n' '_').log"; }

# expect_clean NAME FILE [MASKED]: FILE shows no password; with MASKED, it
# shows that masked form of the URL or DSN.
expect_clean() {
    local name=$1 file=$2 masked=${3:-}
    local leak
    leak=$(grep -m1 -F "$PW" "$file")
    if [ -z "$leak" ]; then ok "$name: no password"; else not_ok "$name: no password" "$leak"; fi
    if [ -n "$masked" ]; then
        if grep -qF -- "$masked" "$file"; then
            ok "$name: shows $masked"
        else
            not_ok "$name: shows $masked" "output: $(tail -c 400 "$file" | tr '\n' ' ')"
        fi
    fi
}

# fails NAME [MASKED] -- COMMAND...: runs the command (all output in a log),
# which must fail, and checks the log.
fails() {
    local name=$1 masked=$2
    shift 3
    local log
    log=$(log_of "$name")
    "$@" >"$log" 2>&1 </dev/null
    local rc=$?
    if [ $rc -ne 0 ]; then
        ok "$name: fails (exit $rc)"
    else
        not_ok "$name: fails" "exit 0: $(tail -c 300 "$log" | tr '\n' ' ')"
    fi
    expect_clean "$name" "$log" "$masked"
}

# consumer_for NAME [MASKED] -- FLAGS...: a consumer at debug level for a few
# seconds (it retries what fails), then SIGTERM; its log is checked.
consumer_for() {
    local name=$1 masked=$2
    shift 3
    local log
    log=$(log_of "$name")
    ALLOC_LOG_LEVEL=debug "$CONSUMER" --threads 1 "$@" >"$log" 2>&1 </dev/null &
    local pid=$!
    sleep 4
    kill -TERM "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        not_ok "$name: stops on SIGTERM" "still running after 10 s"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    expect_clean "$name" "$log" "$masked"
}

# A run that fails after registering is over: none stays running to refuse the next.
abort_running() {
    local id
    for id in $(sql -c "SELECT run_id FROM alloc_run WHERE status = 'running'"); do
        "$PRODUCER" abort --run "$id" >/dev/null 2>&1
    done
}

"$PRODUCER" migrate >"$LOGS/migrate.log" 2>&1 || { not_ok "migrate" "$(tail -3 "$LOGS/migrate.log")"; finish; }
"$GEN" --demo --period $PERIOD >"$LOGS/gen.log" 2>&1 || { not_ok "generate" "$(tail -3 "$LOGS/gen.log")"; finish; }

# --- alloc-producer run: registers the run, then meets the failing server
fails "run, Redis unreachable" 'redis://:***@127.0.0.1:1/2' -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --redis-url "$BAD_REDIS"
abort_running
fails "run, Redis refuses the password" "redis://:***@$redis_hp/4" -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --redis-url "$WRONG_REDIS"
abort_running
fails "run, RabbitMQ unreachable" 'amqp://alloc:***@127.0.0.1:1/alloc' -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --amqp-url "$BAD_AMQP"
abort_running
fails "run, RabbitMQ refuses the login" "amqp://alloc:***@$amqp_hp/t_credentials" -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --amqp-url "$WRONG_AMQP"
abort_running
fails "run, PostgreSQL unreachable" "" -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --pg-dsn "$BAD_DSN"
fails "run, malformed URI" "" -- \
    "$PRODUCER" run --period $PERIOD --timeout 30 --pg-dsn "$ECHO_URI"

# what a failed run records (alloc_run.error, run_log, ...) shows no password either
dump=$LOGS/database.sql
if pg_dump --data-only -d "$ALLOC_PG_DSN" >"$dump" 2>"$LOGS/pg_dump.err"; then
    check_eq "the failed runs were recorded" \
        "$(sql -c "SELECT count(*) >= 4 FROM alloc_run WHERE status <> 'running'")" t
    expect_clean "database after the failed runs" "$dump"
else
    not_ok "dump the database" "$(head -3 "$LOGS/pg_dump.err")"
fi
status_json=$LOGS/status.json
"$PRODUCER" status --period $PERIOD --json >"$status_json" 2>&1
expect_clean "status of the failed runs" "$status_json"

# --- the review commands, migrate and the generator with a DSN that fails
fails "status, PostgreSQL unreachable" "" -- "$PRODUCER" status --pg-dsn "$BAD_DSN"
fails "status, unknown role" "" -- "$PRODUCER" status --pg-dsn "$WRONG_DSN"
fails "status, malformed URI in the environment" "" -- env ALLOC_PG_DSN="$ECHO_URI" "$PRODUCER" status
fails "migrate, PostgreSQL unreachable" "" -- "$PRODUCER" migrate --pg-dsn "$BAD_DSN"
fails "migrate, bad escape in the URI" "" -- "$PRODUCER" migrate --pg-dsn "$ECHO_TOKEN"
fails "report, PostgreSQL unreachable" "" -- "$PRODUCER" report --period $PERIOD --pg-dsn "$BAD_DSN"
fails "report, malformed URI" "" -- "$PRODUCER" report --period $PERIOD --pg-dsn "$ECHO_URI"
fails "alloc-gen, PostgreSQL unreachable" "" -- "$GEN" --demo --period 2026-11 --pg-dsn "$BAD_DSN"
fails "alloc-gen, unknown role" "" -- "$GEN" --demo --period 2026-11 --pg-dsn "$WRONG_DSN"
fails "alloc-gen, malformed URI" "" -- "$GEN" --demo --period 2026-11 --pg-dsn "$ECHO_URI"
fails "alloc-gen, bad escape in the URI" "" -- "$GEN" --demo --period 2026-11 --pg-dsn "$ECHO_TOKEN"
# a DSN whose flag was forgotten is echoed as an unknown argument: masked
fails "alloc-gen, stray DSN argument" "password=***" -- "$GEN" "$BAD_DSN"
fails "alloc-consumer, stray DSN argument" "password=***" -- "$CONSUMER" "$BAD_DSN"

# --- alloc-consumer: logs its servers (masked) and retries what fails
consumer_for "consumer, RabbitMQ unreachable" 'amqp://alloc:***@127.0.0.1:1/alloc' -- \
    --amqp-url "$BAD_AMQP"
check "consumer, RabbitMQ unreachable: says so" \
    grep -q 'broker not available' "$(log_of "consumer, RabbitMQ unreachable")"
consumer_for "consumer, RabbitMQ refuses the login" "amqp://alloc:***@$amqp_hp/t_credentials" -- \
    --amqp-url "$WRONG_AMQP"
check "consumer, RabbitMQ refuses the login: says so" \
    grep -q 'ACCESS_REFUSED' "$(log_of "consumer, RabbitMQ refuses the login")"
consumer_for "consumer, PostgreSQL and Redis unreachable" 'password=***' -- \
    --pg-dsn "$BAD_DSN" --redis-url "$BAD_REDIS"
expect_clean "consumer, PostgreSQL and Redis unreachable" \
    "$(log_of "consumer, PostgreSQL and Redis unreachable")" 'redis://:***@127.0.0.1:1/2'
check "consumer, PostgreSQL unreachable: the export worker says so" \
    grep -q 'connect to PostgreSQL' "$(log_of "consumer, PostgreSQL and Redis unreachable")"
consumer_for "consumer, malformed URI" 'postgresql://alloc:***@[127.0.0.1/alloc' -- \
    --pg-dsn "$ECHO_URI"
check "consumer, malformed URI: libpq's message is logged" \
    grep -q 'in URI' "$(log_of "consumer, malformed URI")"
# the cluster's own password (alloc) is masked in the servers line too
consumer_for "consumer, cluster servers" 'amqp://alloc:***@' --
if grep -qF "amqp://alloc:alloc@" "$(log_of "consumer, cluster servers")"; then
    not_ok "consumer, cluster servers: the AMQP password is masked"
else
    ok "consumer, cluster servers: the AMQP password is masked"
fi

finish
