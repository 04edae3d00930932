#!/usr/bin/env bash
# DESIGN.md 6: the producer killed with SIGKILL mid-run; `resume --run ID`
# finishes the run with the undisturbed checksum. Four points: in the middle of
# publishing its buckets (a memory alarm on the broker blocks the publishing
# connection, so most buckets never arrive); after the run was registered but
# before any bucket was published (the producer is held on a lock of
# batch_marker, which it reads to plan the buckets); while it waits on the
# allocation stage; while it waits on the formula stage.
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_kill_producer 14
baseline

# producer_waits_on_lock: the producer's bucket planning (load_plans) waits for the lock
producer_waits_on_lock() {
    [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND wait_event_type = 'Lock' AND query LIKE '%FROM run_bucket b%'")" -gt 0 ]
}
# resume_ok LABEL: resumes RUN_ID and checks the result
resume_ok() {
    "$PRODUCER" resume --run "$RUN_ID" --timeout $RUN_TIMEOUT >"$LOGS/resume-${1// /-}.log" 2>&1
    check_eq "$1: resume --run $RUN_ID exits 0" "$?" 0
    check_run_result "$1"
}
# kill_producer LABEL: SIGKILL; the run must stay running (resumable)
kill_producer() {
    kill -KILL "$RUN_PID"
    wait "$RUN_PID" 2>/dev/null
    check_eq "$1: the killed producer's run stays running" "$(run_field status)" running
    check_published "$1"
}

# --- 1. killed in the middle of publishing its buckets (no consumer yet)
rabbit_block
RUN_ARGS=(--batch-size 100 --bucket-rows 100) # many small buckets
start_run mid-publish
RUN_ARGS=(--batch-size 100 --bucket-rows 500)
# the broker blocks the producer's connection at its first publish
producer_blocked() { "$RABBITMQCTL" list_connections -p t_faults_kill_producer --no-table-headers state 2>/dev/null | grep -q blocked; }
wait_until 20 producer_blocked
check_eq "mid-publish: the producer's connection is blocked" "$?" 0
sleep 0.5
buckets=$(sql -c "SELECT count(*) FROM run_bucket WHERE run_id = ${RUN_ID:-0}")
kill_producer "mid-publish"
rabbit_unblock
check_eq "mid-publish: the broker is unblocked" "$?" 0
# what reached the queue is split (and allocated) now; resume does the rest
start_consumer a
start_consumer b
sleep 1
arrived=$(split_buckets "$RUN_ID")
echo "# mid-publish: ${arrived} of $buckets buckets reached the consumers before resume"
# The producer was killed before its buckets were confirmed: it never logged
# that they were published. (How many of the unconfirmed messages the broker
# still routes depends on what it had read from the socket: not asserted.)
check "mid-publish: the producer died before its buckets were confirmed" \
    bash -c "! grep -q 'bucket(s) published' '$LOGS/run-mid-publish.log'"
resume_ok "killed mid-publish"

# --- 2. killed before publishing any bucket
PGAPPNAME=faults-locker bg locker psql -X -q -d "$ALLOC_PG_DSN" \
    -c "BEGIN; LOCK TABLE batch_marker IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;"
locker=$LAST_PID
sql_lock_held() { [ "$(sql -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                              WHERE c.relname = 'batch_marker' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]; }
wait_until 10 sql_lock_held
check_eq "before publishing: batch_marker is locked" "$?" 0
start_run before-publish
if wait_until 30 producer_waits_on_lock; then
    check_eq "before publishing: the run is registered in its allocate stage" "$(run_field stage)" allocate
    kill_producer "before publishing"
    sleep 0.5 # a published bucket would be split by now
    check_eq "before publishing: no bucket was published" "$(split_buckets "$RUN_ID")" 0
else
    not_ok "before publishing: the producer waits on the lock" "$(tail -3 "$LOGS/run-before-publish.log")"
    kill -KILL "$RUN_PID" 2>/dev/null
fi
kill -TERM "$locker" 2>/dev/null
sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'faults-locker'" >/dev/null
resume_ok "killed before publishing"

# --- 3. killed while waiting on the allocation stage
set_delay 0.1 0.5
start_run waiting-allocate
if wait_in_run 60 markers_at_least allocate 8; then
    n=$(markers allocate)
    kill_producer "waiting on allocation"
    check "waiting on allocation: killed with batches left ($n of $(run_field expected_batches) marked)" \
        test "$n" -lt "$(run_field expected_batches)"
else
    not_ok "waiting on allocation: batches were marked" "$(markers allocate) markers"
fi
set_delay 0 0
resume_ok "killed waiting on allocation"

# --- 4. killed while waiting on the formula stage
set_delay 0.02 1.0
start_run waiting-formula
if wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1; then
    n=$(markers formula)
    kill_producer "waiting on formulas"
    check "waiting on formulas: killed with formula batches left ($n of $(run_field formula_batches) marked)" \
        test "$n" -lt "$(run_field formula_batches)"
else
    not_ok "waiting on formulas: formula batches were marked" "stage $(run_field stage), $(markers formula) markers"
fi
set_delay 0 0
resume_ok "killed waiting on formulas"

# a resumed run is no different from the others: a second resume has nothing to do
"$PRODUCER" resume --run "$RUN_ID" >/dev/null 2>&1
check_eq "resume of a finished run exits 4" "$?" 4
stop_consumers
finish
