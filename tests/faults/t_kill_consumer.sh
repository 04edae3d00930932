#!/usr/bin/env bash
# DESIGN.md 6: a consumer killed with SIGKILL mid-run. Two consumers work on a
# slowed-down run; one is killed while allocation batches are in flight (its
# open batch transaction dies with it, its unacked deliveries go back to the
# queue) and a replacement starts; later the other is killed in the formula
# stage. The run must finish with the undisturbed run's checksum, every batch
# marked exactly once.
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_kill_consumer 8
baseline

set_delay 0.1 1.0
start_consumer a
a=$LAST_PID
start_consumer b
b=$LAST_PID
start_run killed
expected=$(run_field expected_batches)

# --- SIGKILL in the allocation stage, batches in flight
if wait_in_run 60 markers_at_least allocate 8; then
    done_at_kill=$(markers allocate)
    kill_consumer "$a"
    check "consumer a killed mid-allocation ($done_at_kill of $expected batches marked)" \
        test "$done_at_kill" -lt "$expected"
    check "consumer a had written batches before it died" \
        test "$(sql -c "SELECT count(*) FROM batch_marker WHERE run_id = $RUN_ID AND consumer LIKE '%:$a'")" -gt 0
    start_consumer c
else
    not_ok "allocation batches were marked" "$(markers allocate) markers after 60s"
fi

# --- SIGKILL in the formula stage
if wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1; then
    n=$(markers formula)
    kill_consumer "$b"
    check "consumer b killed mid-formula ($n of $(run_field formula_batches) batches marked)" \
        test "$n" -lt "$(run_field formula_batches)"
    start_consumer d
else
    not_ok "the run reached its formula stage" "stage $(run_field stage), $(markers formula) formula markers"
fi
set_delay 0 0

wait_run
check_eq "the run exits 0 after two consumers were killed" "$RUN_RC" 0
check_run_result "killed consumers"
live=0
for p in "${CONSUMER_PIDS[@]}"; do alive "$p" && live=$((live + 1)); done
check_eq "the replacement consumers are still running" "$live" 2
stop_consumers
finish
