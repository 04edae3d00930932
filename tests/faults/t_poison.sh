#!/usr/bin/env bash
# DESIGN.md 6: malformed and foreign messages in the work queues during a run.
# Each one must be dead-lettered to alloc.dead with its reason in the
# x-alloc-error header (and its queue in x-alloc-queue), no consumer may crash,
# and the run must end with the undisturbed checksum.
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_poison 13
baseline
"$FX" dead >/dev/null # alloc.dead starts empty

set_delay 0.05 0.5
start_consumer a
start_consumer b
start_run poisoned
wait_in_run 60 markers_at_least allocate 5 || not_ok "allocation batches were marked" "$(markers allocate) markers"

# queue|routing key|body|what the reason must say
poison=(
    "alloc.batches|batch|this is not JSON {|malformed batch message"
    "alloc.batches|batch|{\"hello\":\"world\"}|malformed batch message"
    "alloc.batches|batch|{\"v\":1,\"type\":\"stage_done\",\"run_id\":$RUN_ID,\"stage\":\"allocate\",\"batch_count\":1}|expected a batch message"
    "alloc.buckets|bucket|\"just a string\"|malformed bucket message"
    "alloc.buckets|bucket|{\"v\":1,\"type\":\"bucket\",\"run_id\":$RUN_ID}|malformed bucket message"
    "alloc.formulas|formula|[1,2,3]|malformed formula message"
)
for p in "${poison[@]}"; do
    IFS='|' read -r queue key body reason <<<"$p"
    "$FX" put "$key" "$body" >>"$LOGS/put.log" 2>&1 || not_ok "put a poison message on $queue" "$(tail -1 "$LOGS/put.log")"
done
check_eq "the run was still going when the poison came" "$(run_field status)" running

wait_in_run 60 stage_is formula && wait_in_run 30 markers_at_least formula 1
"$FX" put formula '{"v":1,"type":"formula"}' >>"$LOGS/put.log" 2>&1
poison+=("alloc.formulas|formula|{\"v\":1,\"type\":\"formula\"}|malformed formula message")
set_delay 0 0

wait_run
check_eq "the run exits 0" "$RUN_RC" 0
check_run_result "poison messages"
live=0
for p in "${CONSUMER_PIDS[@]}"; do alive "$p" && live=$((live + 1)); done
check_eq "both consumers survived the poison" "$live" 2

"$FX" dead >"$LOGS/dead.txt" 2>>"$LOGS/put.log"
check_eq "every poison message is in alloc.dead, nothing else" "$(wc -l <"$LOGS/dead.txt")" "${#poison[@]}"
for p in "${poison[@]}"; do
    IFS='|' read -r queue key body reason <<<"$p"
    # dead.txt: queue TAB origin TAB error TAB body
    line=$(awk -F'\t' -v q="$queue" -v b="$body" '$1 == q && $4 == b' "$LOGS/dead.txt" | head -1)
    if [ -z "$line" ]; then
        not_ok "dead-lettered from $queue: $body" "not found in alloc.dead"
        continue
    fi
    error=$(cut -f3 <<<"$line")
    origin=$(cut -f2 <<<"$line")
    if [[ "$error" == *"$reason"* && "$origin" == "$key" ]]; then
        ok "dead-lettered from $queue with its reason: $error"
    else
        not_ok "dead-lettered from $queue: $body" "x-alloc-error '$error', origin '$origin'; want '$reason…', '$key'"
    fi
done
stop_consumers
finish
