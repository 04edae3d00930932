# Sourced by integration tests: checks, and a private database, vhost and Redis
# db per test on the cluster tests/run.sh started (ALLOC_* already exported).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${ALLOC_BUILD:-$repo/build}
PRODUCER=$BIN/alloc-producer
CONSUMER=$BIN/alloc-consumer
GEN=$BIN/alloc-gen
T_FAILED=0

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1${2:+: $2}"; T_FAILED=1; }

# check NAME COMMAND...: passes when the command succeeds.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}

# check_eq NAME GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

# The admin connection: the cluster's alloc role on its maintenance database.
pg_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "$ALLOC_PG_DSN" "$@"; }

# use_fresh_db NAME: (re)creates database NAME and points ALLOC_PG_DSN at it.
use_fresh_db() {
    local db=$1
    pg_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null
    ALLOC_PG_DSN="${ALLOC_PG_DSN/dbname=alloc/dbname=$db}"
    export ALLOC_PG_DSN
}

# sql QUERY...: runs SQL on the test's database, unaligned tuples only.
sql() { psql -X -q -v ON_ERROR_STOP=1 -tA -d "$ALLOC_PG_DSN" "$@"; }

# use_fresh_vhost NAME: (re)creates AMQP vhost NAME and points ALLOC_AMQP_URL at it.
use_fresh_vhost() {
    local vh=$1 ctl
    ctl=("$repo/deploy/local/rabbitmqctl.sh")
    "${ctl[@]}" delete_vhost "$vh" >/dev/null 2>&1 || true
    "${ctl[@]}" add_vhost "$vh" >/dev/null
    "${ctl[@]}" set_permissions -p "$vh" alloc '.*' '.*' '.*' >/dev/null
    ALLOC_AMQP_URL="${ALLOC_AMQP_URL%/*}/$vh"
    export ALLOC_AMQP_URL
}

# use_fresh_redis N: flushes Redis db N and points ALLOC_REDIS_URL at it.
use_fresh_redis() {
    ALLOC_REDIS_URL="${ALLOC_REDIS_URL%/*}/$1"
    export ALLOC_REDIS_URL
    local hp=${ALLOC_REDIS_URL#redis://}
    hp=${hp%%/*}
    redis-cli -h "${hp%:*}" -p "${hp#*:}" -n "$1" flushdb >/dev/null
}

# start_consumers N [consumer flags...]: N consumers in the background, logs in
# $LOGS (default: the test-logs directory); stop_consumers stops them all
# (SIGTERM: each finishes the batches in hand) and waits.
consumers=()
start_consumers() {
    local n=$1 i
    shift
    local dir=${LOGS:-$repo/.run/test-logs}
    mkdir -p "$dir"
    [ $# -gt 0 ] || set -- --threads 1
    for ((i = 0; i < n; i++)); do
        "$CONSUMER" "$@" >"$dir/consumer-$i-$RANDOM.log" 2>&1 &
        consumers+=($!)
    done
}
stop_consumers() {
    local p
    for p in "${consumers[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${consumers[@]}"; do wait "$p" 2>/dev/null; done
    consumers=()
}

# producer_do ARGS...: runs alloc-producer, stdout in $tmp/out, stderr in
# $tmp/err ($tmp: the test's own directory); sets rc.
producer_do() {
    $PRODUCER "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
# expect_exit NAME WANT [STDERR_RE]: the last producer_do's exit status (and stderr).
expect_exit() {
    if [ "$rc" != "$2" ]; then
        not_ok "$1" "exit $rc, want $2: $(head -c 400 "$tmp/err")"
    elif [ -n "${3:-}" ] && ! grep -qE -- "$3" "$tmp/err"; then
        not_ok "$1" "stderr does not match '$3': $(head -c 400 "$tmp/err")"
    else
        ok "$1"
    fi
}

finish() { exit $T_FAILED; }
