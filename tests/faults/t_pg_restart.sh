#!/usr/bin/env bash
# DESIGN.md 6: PostgreSQL restarted during a run. A fast restart in the
# allocation stage (every session is terminated, open batch transactions roll
# back) and an immediate one - a crash and recovery - in the formula stage. The
# producer and the consumers reconnect; the run must end with the undisturbed
# checksum (a run that could not go on would have to end `failed` with its
# error; this one has no reason to).
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_pg 10
baseline

set_delay 0.1 1.0
start_consumer a
start_consumer b
start_run restarted

# batch transactions in flight: sessions of this database sleeping in the trigger
in_flight() { sql -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"; }
some_in_flight() { [ "$(in_flight)" -gt 0 ]; }

# --- fast restart in the allocation stage
if wait_in_run 60 markers_at_least allocate 8 && wait_until 5 some_in_flight; then
    n=$(in_flight)
    m=$(markers allocate)
    pg_restart fast
    rc=$?
    check_eq "PostgreSQL restarted (fast) in the allocation stage ($m of $(run_field expected_batches) batches marked)" "$rc" 0
    check "batch transactions were open at the restart ($n)" test "$n" -gt 0
    check "the restart came with allocation batches left" test "$m" -lt "$(run_field expected_batches)"
else
    not_ok "allocation batches were marked" "$(markers allocate) markers"
fi

# --- immediate restart (crash recovery) in the formula stage
if wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1; then
    m=$(markers formula)
    pg_restart immediate
    rc=$?
    check_eq "PostgreSQL restarted (immediate) in the formula stage ($m of $(run_field formula_batches) batches marked)" "$rc" 0
    check "the restart came with formula batches left" test "$m" -lt "$(run_field formula_batches)"
else
    not_ok "the run reached its formula stage" "stage $(run_field stage), $(markers formula) formula markers"
fi
wait_until 30 sql -c "SELECT 1" >/dev/null 2>&1
set_delay 0 0

wait_run
check_eq "the run exits 0 after two PostgreSQL restarts" "$RUN_RC" 0
[ "$RUN_RC" = 0 ] || sed 's/^/#   /' "$LOGS/run-restarted.log" | tail -5
check_run_result "PostgreSQL restarts"
live=0
for p in "${CONSUMER_PIDS[@]}"; do alive "$p" && live=$((live + 1)); done
check_eq "both consumers are still running" "$live" 2
stop_consumers
finish
