#!/usr/bin/env bash
# DESIGN.md 6: Redis restarted during a run. Redis runs without persistence, so
# a restart loses the completion counters, the run's public data and the
# compiled formulas. Redis is restarted once in the allocation stage and once in
# the formula stage; after each restart the consumers are replaced by fresh
# processes (in the formula stage by SIGKILL, so the batches in hand come back),
# which hold nothing in memory and must get the public data back from
# run_public and the formulas back from the producer. The run must end with the
# undisturbed checksum.
source "$(dirname "$0")/lib_faults.sh"
REDIS_DB=15
faults_setup t_faults_redis 15
baseline

rcli() { redis-cli -p "$(redis_port)" -n $REDIS_DB "$@"; }
# replace_consumers term|kill NAME...: the running consumers stopped (SIGTERM:
# they finish the batches in hand; SIGKILL: those go back to the queue), fresh
# ones started
replace_consumers() {
    local p n
    if [ "$1" = kill ]; then
        for p in "${CONSUMER_PIDS[@]}"; do kill_consumer "$p"; done
    else
        stop_consumers
    fi
    shift
    for n in "$@"; do start_consumer "$n"; done
}

set_delay 0.1 1.0
start_consumer a
start_consumer b
start_run restarted
public_key=$(sql -c "SELECT cache_key FROM run_public WHERE run_id = ${RUN_ID:-0}")
fx_key=$(sql -c "SELECT fx_key FROM run_public WHERE run_id = ${RUN_ID:-0}")

# --- restart in the allocation stage
if wait_in_run 60 markers_at_least allocate 8; then
    check_eq "the public data is in Redis before the restart" "$(rcli exists "$public_key")" 1
    n=$(markers allocate)
    redis_restart
    rc=$?
    check_eq "Redis restarted in the allocation stage ($n of $(run_field expected_batches) batches marked)" "$rc" 0
    check "the restart came with allocation batches left" test "$n" -lt "$(run_field expected_batches)"
    check_eq "the restart lost the public data" "$(rcli exists "$public_key")" 0
    replace_consumers term c d
else
    not_ok "allocation batches were marked" "$(markers allocate) markers"
fi

# --- restart in the formula stage
if wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1; then
    n=$(markers formula)
    redis_restart
    rc=$?
    check_eq "Redis restarted in the formula stage ($n of $(run_field formula_batches) batches marked)" "$rc" 0
    check "the restart came with formula batches left" test "$n" -lt "$(run_field formula_batches)"
    replace_consumers kill e f
else
    not_ok "the run reached its formula stage" "stage $(run_field stage), $(markers formula) formula markers"
fi
set_delay 0 0

wait_run
check_eq "the run exits 0 after two Redis restarts" "$RUN_RC" 0
check_run_result "Redis restarts"
check "a fresh consumer restored the public data from run_public" \
    grep -q "restored from run_public" "$LOGS/consumer-c.log" "$LOGS/consumer-d.log"
check "a fresh consumer loaded the formulas the producer cached again" \
    grep -q "compiled formulas .* loaded" "$LOGS/consumer-e.log" "$LOGS/consumer-f.log"
"$FX" dead >"$LOGS/dead.txt" 2>&1
check_eq "nothing was dead-lettered" "$(wc -l <"$LOGS/dead.txt")" 0
stop_consumers
finish
