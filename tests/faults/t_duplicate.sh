#!/usr/bin/env bash
# DESIGN.md 6: a message delivered twice. The run's stages are started one role
# at a time so their messages wait in the queues; it_faults takes some bucket,
# batch and formula messages and publishes each one twice. Every duplicate must
# be dropped by the batch markers (never written or counted twice): the run ends
# with the undisturbed checksum and exactly one marker per batch.
source "$(dirname "$0")/lib_faults.sh"
faults_setup t_faults_duplicate 12
baseline

# no consumer yet: the buckets wait in alloc.buckets
start_run duplicated
"$FX" dup alloc.buckets 3 30 >"$LOGS/dup-buckets.txt" 2>&1
check_eq "3 bucket messages delivered twice" "$?" 0

# split only: the batches wait in alloc.batches
start_consumer split --role split
"$FX" dup alloc.batches 10 30 >"$LOGS/dup-batches.txt" 2>&1
check_eq "10 batch messages delivered twice" "$?" 0

# allocate: the formula batches wait in alloc.formulas
start_consumer alloc-1 --role allocate
start_consumer alloc-2 --role allocate
wait_in_run 60 stage_is formula
"$FX" dup alloc.formulas 2 30 >"$LOGS/dup-formulas.txt" 2>&1
check_eq "2 formula messages delivered twice" "$?" 0
start_consumer formula-1 --role formula
start_consumer formula-2 --role formula

wait_run
check_eq "the run exits 0" "$RUN_RC" 0
check_run_result "duplicates"

# each duplicated batch was seen again and dropped by its marker
logs=("$LOGS"/consumer-*.log)
dropped=0
while read -r id; do
    [ -n "$id" ] || continue
    grep -qF "batch $id was done before" "${logs[@]}" && dropped=$((dropped + 1))
done <"$LOGS/dup-batches.txt"
check_eq "all 10 duplicated batches were recognised as done before" "$dropped" 10
dropped=0
while read -r id; do
    [ -n "$id" ] || continue
    grep -qF "formula batch $id was done before" "${logs[@]}" && dropped=$((dropped + 1))
done <"$LOGS/dup-formulas.txt"
check_eq "both duplicated formula batches were recognised as done before" "$dropped" 2
# the batches of a bucket split twice come twice: each is dropped once more
n=0
while read -r id; do
    [ -n "$id" ] || continue
    n=$((n + $(grep -c "bucket $id: .* split into" "$LOGS"/consumer-split.log)))
done <"$LOGS/dup-buckets.txt"
check_eq "the 3 duplicated buckets were each split twice" "$n" 6
stop_consumers
finish
