# Sourced by the fault-injection tests (tests/faults/t_*.sh), which prove
# DESIGN.md section 6: a run disturbed by a fault ends with the --checksum of an
# undisturbed run of the same data, or `failed` with a clear error.
#
# Each test gets a private database, vhost and Redis db (integration/lib.sh), a
# small generated period, and a slow-down: a trigger on batch_marker sleeps
# faults_delay(stage) seconds in every batch transaction, so a run lasts long
# enough for a fault to land while batches are in flight. The servers are those
# of the cluster in ALLOC_CLUSTER_DIR / ALLOC_CLUSTER_PORT (tests/run.sh exports
# them); the restart helpers restart them in place. Every background process is
# killed, and every server is up again, when the test exits.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

export ALLOC_CLUSTER_DIR=${ALLOC_CLUSTER_DIR:-$repo/.run/test}
export ALLOC_CLUSTER_PORT=${ALLOC_CLUSTER_PORT:-25}
FAULTS_TEST=$(basename "$0" .sh)
LOGS=$repo/.run/test-logs/faults/$FAULTS_TEST
FX=$BIN/tests/it_faults
PERIOD=2026-10
# small batches: many of them, so a fault lands mid-stage
RUN_ARGS=(--batch-size 100 --bucket-rows 500)
RUN_TIMEOUT=60
CLUSTER=$repo/deploy/local/cluster.sh
RABBITMQCTL=$repo/deploy/local/rabbitmqctl.sh
rm -rf "$LOGS"
mkdir -p "$LOGS"
# The test's own output is its ok / not ok lines; everything else the commands
# say on stderr goes to a file (shown, made printable, when a check failed).
exec 2>>"$LOGS/stderr.log"

BG_PIDS=()       # every background process this test started
CONSUMER_PIDS=() # the consumers now running
LAST_PID=
RUN_PID=
RUN_RC=
RUN_ID=
BASE_SUM=
BASE_RUN=
RABBIT_BLOCKED=

# bg NAME COMMAND...: starts COMMAND in the background, output to $LOGS/NAME.log;
# LAST_PID is its pid.
bg() {
    local name=$1; shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    LAST_PID=$!
    BG_PIDS+=("$LAST_PID")
}

faults_cleanup() {
    local p
    if [ "$T_FAILED" != 0 ]; then
        echo "# stderr of the test ($LOGS/stderr.log), last lines:"
        tail -n 15 "$LOGS/stderr.log" | tr -cd '\11\12\40-\176' | sed 's/^/#   /'
    fi
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$RABBIT_BLOCKED" ] && rabbit_unblock
    # a test that stopped in the middle of a restart must not leave a server down
    "$CLUSTER" start >/dev/null 2>>"$LOGS/cluster.log" || echo "# could not bring the cluster back up"
}
trap faults_cleanup EXIT

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s; fails when it never succeeded.
wait_until() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# wait_in_run SECONDS COMMAND...: wait_until, but gives up as soon as the
# background run (RUN_PID) has exited.
wait_in_run() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        alive "$RUN_PID" || return 1
        sleep 0.1
    done
    return 1
}

# ---- data ---------------------------------------------------------------------------

# faults_setup NAME REDIS_DB: fresh database, vhost and Redis db; schema; a
# generated period; the slow-down trigger (no delay yet).
faults_setup() {
    use_fresh_db "$1"
    use_fresh_vhost "$1"
    use_fresh_redis "$2"
    "$PRODUCER" migrate >"$LOGS/migrate.log" 2>&1 || { not_ok "migrate" "$(tail -3 "$LOGS/migrate.log")"; finish; }
    "$GEN" --scale 0.01 --seed 7 --period $PERIOD >"$LOGS/gen.log" 2>&1 ||
        { not_ok "generate" "$(tail -3 "$LOGS/gen.log")"; finish; }
    sql >/dev/null <"$repo/tests/faults/slow_down.sql" || { not_ok "slow-down trigger"; finish; }
}

# set_delay ALLOCATE_S FORMULA_S: seconds every batch transaction of each stage sleeps.
set_delay() {
    sql -c "UPDATE faults_delay SET seconds = CASE stage WHEN 'allocate' THEN $1 ELSE $2 END" >/dev/null
}

# ---- consumers ----------------------------------------------------------------------

# start_consumer NAME [ARGS...]: one consumer with one worker thread.
start_consumer() {
    local name=$1; shift
    bg "consumer-$name" "$CONSUMER" --threads 1 "$@"
    CONSUMER_PIDS+=("$LAST_PID")
}

# stop_consumers: SIGTERM to every consumer, and wait for them.
stop_consumers() {
    local p
    for p in "${CONSUMER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${CONSUMER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    CONSUMER_PIDS=()
}

# kill_consumer PID: SIGKILL, and forget it.
kill_consumer() {
    local p keep=()
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    for p in "${CONSUMER_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    CONSUMER_PIDS=("${keep[@]}")
}

# alive PID: the process exists and is not a zombie.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ---- runs ---------------------------------------------------------------------------

# last_run_id: the newest run of the period (0 when none).
last_run_id() { sql -c "SELECT coalesce(max(run_id), 0) FROM alloc_run WHERE period_code = '$PERIOD'"; }

# start_run NAME: `run` in the background; RUN_ID is its run once registered.
start_run() {
    local before
    before=$(last_run_id)
    bg "run-$1" "$PRODUCER" run --period $PERIOD "${RUN_ARGS[@]}" --timeout $RUN_TIMEOUT
    RUN_PID=$LAST_PID
    RUN_ID=
    if wait_until 30 run_registered "$before"; then
        RUN_ID=$(last_run_id)
    else
        not_ok "$1: the run registered" "no new alloc_run row in 30s: $(tail -3 "$LOGS/run-$1.log")"
    fi
}
run_registered() { [ "$(last_run_id)" -gt "$1" ]; }

# wait_run: waits for the background run; RUN_RC is its exit code.
wait_run() {
    wait "$RUN_PID"
    RUN_RC=$?
}

# markers STAGE: batch markers of RUN_ID's stage.
markers() { sql -c "SELECT count(*) FROM batch_marker WHERE run_id = ${RUN_ID:-0} AND stage = '$1'"; }
markers_at_least() { [ "$(markers "$1")" -ge "$2" ]; }
run_field() { sql -c "SELECT $1 FROM alloc_run WHERE run_id = ${RUN_ID:-0}"; }
stage_is() { [ "$(run_field stage)" = "$1" ]; }

# checksum RUN: `report --checksum` of that run.
checksum() { "$PRODUCER" report --period $PERIOD --run "$1" --checksum 2>>"$LOGS/report.log"; }

# baseline: an undisturbed run of the period with two consumers; its checksum
# is BASE_SUM, the value every disturbed run must reproduce. It is published,
# so readers have a report to see while later runs are disturbed.
baseline() {
    set_delay 0 0
    start_consumer base-1
    start_consumer base-2
    start_run baseline
    wait_run
    stop_consumers
    check_eq "the undisturbed run exits 0" "$RUN_RC" 0
    BASE_SUM=$(checksum "${RUN_ID:-0}")
    if [[ "$BASE_SUM" =~ ^[0-9a-f]{64}$ ]]; then
        ok "the undisturbed run has a checksum ($BASE_SUM)"
    else
        not_ok "the undisturbed run has a checksum" "got '$BASE_SUM'"
        finish
    fi
    BASE_RUN=$RUN_ID
    "$PRODUCER" publish --period $PERIOD --run "$BASE_RUN" --force >"$LOGS/publish.log" 2>&1
    check_eq "the undisturbed run is published" "$?" 0
}

# check_published LABEL: readers of the period still get the published
# undisturbed run, never a half-written one.
check_published() {
    check_eq "$1: the published run is unchanged" \
        "$(sql -c "SELECT run_id FROM report_published WHERE period_code = '$PERIOD'")" "$BASE_RUN"
    check_eq "$1: readers see the published report" \
        "$("$PRODUCER" report --period $PERIOD --checksum 2>>"$LOGS/report.log")" "$BASE_SUM"
}

# check_run_result LABEL: RUN_ID succeeded, exactly one marker per expected batch
# of each stage, and its checksum equals the undisturbed run's.
check_run_result() {
    local label=$1
    check_eq "$label: the run is succeeded" "$(run_field status)" succeeded
    check_eq "$label: one allocate marker per expected batch" "$(markers allocate)" "$(run_field expected_batches)"
    check_eq "$label: one formula marker per expected batch" "$(markers formula)" "$(run_field formula_batches)"
    check_eq "$label: checksum equals the undisturbed run's" "$(checksum "${RUN_ID:-0}")" "$BASE_SUM"
}

# ---- server restarts ----------------------------------------------------------------

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pg_restart fast|immediate: restarts PostgreSQL (immediate: a crash and recovery).
pg_restart() {
    as_postgres /usr/lib/postgresql/15/bin/pg_ctl -D "$ALLOC_CLUSTER_DIR/pg/data" \
        -l "$ALLOC_CLUSTER_DIR/pg/postgresql.log" -m "$1" -w -t 60 restart >>"$LOGS/cluster.log" 2>&1 9>&-
}

redis_port() { local hp=${ALLOC_REDIS_URL#redis://}; hp=${hp%%/*}; echo "${hp#*:}"; }
redis_up() { [ "$(redis-cli -p "$(redis_port)" ping 2>/dev/null)" = PONG ]; }
redis_down() { ! redis_up; }

# redis_restart: stops Redis without saving (it keeps nothing: every key is lost)
# and starts it again.
redis_restart() {
    redis-cli -p "$(redis_port)" shutdown nosave >/dev/null 2>&1
    wait_until 10 redis_down || return 1
    "$CLUSTER" start >/dev/null 2>>"$LOGS/cluster.log"
}

amqp_port() { local hp=${ALLOC_AMQP_URL#amqp://*@}; hp=${hp%%/*}; echo "${hp#*:}"; }
rabbit_up() { (exec 3<>"/dev/tcp/127.0.0.1/$(amqp_port)") 2>/dev/null; }
rabbit_down() { ! rabbit_up; }

# rabbit_restart: stops the RabbitMQ node (every connection drops; the quorum
# queues keep their messages on disk) and starts it again.
rabbit_restart() {
    "$RABBITMQCTL" stop >>"$LOGS/cluster.log" 2>&1
    wait_until 30 rabbit_down || return 1
    "$CLUSTER" start >/dev/null 2>>"$LOGS/cluster.log"
}

# rabbit_block / rabbit_unblock: raises / clears a memory alarm on the broker
# (a high-water mark of 0): every connection that publishes is blocked, the
# messages it sent stay unread in its socket. 0.4 is the mark of
# deploy/local/cluster.sh. The whole broker is affected: tests run one at a time.
rabbit_block() {
    RABBIT_BLOCKED=1
    "$RABBITMQCTL" set_vm_memory_high_watermark 0 >>"$LOGS/cluster.log" 2>&1
}
rabbit_unblock() {
    "$RABBITMQCTL" set_vm_memory_high_watermark 0.4 >>"$LOGS/cluster.log" 2>&1 && RABBIT_BLOCKED=
}

# split_buckets RUN: bucket messages of RUN the consumers have split so far.
split_buckets() { cat "$LOGS"/consumer-*.log | grep -c "\[consumer run=$1\] bucket .* split into"; }
