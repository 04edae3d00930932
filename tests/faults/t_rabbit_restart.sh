#!/usr/bin/env bash
# DESIGN.md 6: RabbitMQ restarted during a run: the node is stopped (every
# connection drops; deliveries not yet acked go back to their quorum queues,
# which keep their messages on disk) and started again, once in the allocation
# stage and once in the formula stage. The producer and the consumers reconnect
# by themselves; batches finished while the broker was away are redelivered and
# dropped by their markers. The run must end with the undisturbed checksum.
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_rabbit 9
baseline

set_delay 0.1 1.0
start_consumer a
start_consumer b
start_run restarted

# --- restart in the allocation stage
if wait_in_run 60 markers_at_least allocate 8; then
    n=$(markers allocate)
    rabbit_restart
    rc=$?
    check_eq "RabbitMQ restarted in the allocation stage ($n of $(run_field expected_batches) batches marked at the stop)" "$rc" 0
    check "the stop came with allocation batches left" test "$n" -lt "$(run_field expected_batches)"
else
    not_ok "allocation batches were marked" "$(markers allocate) markers"
fi

# --- restart in the formula stage
if wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1; then
    n=$(markers formula)
    rabbit_restart
    rc=$?
    check_eq "RabbitMQ restarted in the formula stage ($n of $(run_field formula_batches) batches marked at the stop)" "$rc" 0
    check "the stop came with formula batches left" test "$n" -lt "$(run_field formula_batches)"
else
    not_ok "the run reached its formula stage" "stage $(run_field stage), $(markers formula) formula markers"
fi
set_delay 0 0

wait_run
check_eq "the run exits 0 after two RabbitMQ restarts" "$RUN_RC" 0
[ "$RUN_RC" = 0 ] || sed 's/^/#   /' "$LOGS/run-restarted.log" | tail -5
check_run_result "RabbitMQ restarts"
check "the consumers reconnected to the broker" \
    grep -q "broker connection lost" "$LOGS/consumer-a.log" "$LOGS/consumer-b.log"
live=0
for p in "${CONSUMER_PIDS[@]}"; do alive "$p" && live=$((live + 1)); done
check_eq "both consumers are still running" "$live" 2
"$FX" dead >"$LOGS/dead.txt" 2>&1
check_eq "nothing was dead-lettered" "$(wc -l <"$LOGS/dead.txt")" 0
stop_consumers
finish
