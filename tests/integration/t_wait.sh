#!/usr/bin/env bash
# Waiting is not silent: a run with no consumer says every few seconds how many
# consumers the stage's queues have ("0 consumers on alloc.batches: start
# alloc-consumer") with the stage's own batch counts, then times out (exit 5,
# resumable); with split and allocate consumers only, the resumed run waits in
# the formula stage and says alloc.formulas has none, and `status` shows that
# stage's count (its units), not the allocation stage's; a formula consumer
# then finishes it.
source "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
trap 'stop_consumers; rm -rf "$tmp"' EXIT

use_fresh_db t_wait
use_fresh_vhost t_wait
use_fresh_redis 1
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }
$GEN --demo --period 2024-03 >"$tmp/gen.log" 2>&1 || { not_ok "demo data" "$(tail -3 "$tmp/gen.log")"; finish; }

# ---------------------------------------------------------------- no consumer at all
$PRODUCER run --period 2024-03 --timeout 12 >"$tmp/run.out" 2>"$tmp/run.err"
check_eq "a run with no consumer times out with exit 5" "$?" 5
expected=$(sql -c "SELECT expected_batches FROM alloc_run WHERE run_id = 1")
lines=$(grep -c "run 1 allocate: batches 0/$expected, .*0 consumers on alloc.batches: start alloc-consumer" "$tmp/run.out")
check "the wait says every 5 s that alloc.batches has no consumer ($lines lines in 12 s)" test "$lines" -ge 3
check "it names the splitters' queue too" grep -q "0 consumers on alloc.buckets: start alloc-consumer" "$tmp/run.out"
check "the first such line comes at once" grep -qE "^[0-9T:Z-]+ run 1 allocate: batches 0/$expected(, 0 rows/s)?, elapsed [0-2]s; 0 consumers" "$tmp/run.out"
check "the timeout says the run stays resumable" grep -q "alloc-producer resume --run 1" "$tmp/run.err"
$PRODUCER status --run 1 >"$tmp/status.out" 2>&1
check "status of a run waiting to allocate counts the allocation batches" \
    grep -qE "^  batches   0 / $expected \(stage allocate; 0 markers in all stages\)$" "$tmp/status.out"

# ---------------------------------------------------------------- no formula consumer
start_consumers 1 --role split --threads 1
start_consumers 1 --role allocate --threads 1
$PRODUCER resume --run 1 --timeout 10 >"$tmp/resume.out" 2>"$tmp/resume.err"
check_eq "resume with no formula consumer times out with exit 5" "$?" 5
units=$(sql -c "SELECT formula_batches FROM alloc_run WHERE run_id = 1")
check "the allocation stage finished" grep -q "run 1 allocate: batches $expected/$expected" "$tmp/resume.out"
check "the formula stage says alloc.formulas has no consumer" \
    grep -q "run 1 formula: batches 0/$units, .*0 consumers on alloc.formulas: start alloc-consumer" "$tmp/resume.out"
check "the formula stage's first line comes as soon as it starts waiting" \
    bash -c "grep 'run 1 formula' '$tmp/resume.out' | head -n1 | grep -q 'consumers on alloc.formulas'"
$PRODUCER status --run 1 >"$tmp/status.out" 2>&1
check "status of a run in the formula stage counts that stage's units, not the allocation batches" \
    grep -qE "^  batches   0 / $units \(stage formula; $expected markers in all stages\)$" "$tmp/status.out"
$PRODUCER status --run 1 --json >"$tmp/status.json" 2>/dev/null
check_eq "status --json: expected_batches of the formula stage" \
    "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["stage"], r["batches_done"], r["expected_batches"])' "$tmp/status.json")" \
    "formula 0 $units"

# ---------------------------------------------------------------- then it finishes
start_consumers 1 --role formula --threads 1
$PRODUCER resume --run 1 --timeout 60 >"$tmp/resume2.out" 2>"$tmp/resume2.err"
check_eq "resume with a formula consumer exits 0" "$?" 0
check "the run succeeded" grep -q "^run 1 of period 2024-03 succeeded" "$tmp/resume2.out"
check "a finished stage's line names no consumers" \
    bash -c "! grep -q 'formula: batches $units/$units.*consumers' '$tmp/resume2.out'"
stop_consumers

finish
