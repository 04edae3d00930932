#!/usr/bin/env bash
# The allocation pipeline end to end on real servers: a generated period run by
# consumers and checked row by row to the cent against the plain-SQL baseline
# (../shared/bench/sql_baseline.sql); conservation; identical checksums with 1 and
# 3 consumers; a large city spread over every consumer; validation and state
# refusals that change nothing; an empty period; abort.
source "$(dirname "$0")/lib.sh"
use_fresh_db t_pipeline
use_fresh_vhost t_pipeline
use_fresh_redis 5
PERIOD=2026-10
BASELINE=${ALLOC_BASELINE_SQL:-$repo/../shared/bench/sql_baseline.sql}
LOGS=$repo/.run/test-logs/t_pipeline
rm -rf "$LOGS"; mkdir -p "$LOGS"

trap stop_consumers EXIT

"$PRODUCER" migrate >/dev/null || { not_ok "migrate"; finish; }
"$GEN" --scale 0.01 --seed 7 --period $PERIOD >"$LOGS/gen.log" 2>&1 || { not_ok "generate" "$(tail -3 "$LOGS/gen.log")"; finish; }

# --- the independent computation
if psql -X -q -v ON_ERROR_STOP=1 -v period=$PERIOD -d "$ALLOC_PG_DSN" -f "$BASELINE" >"$LOGS/baseline.log" 2>&1; then
    ok "baseline SQL ran"
else
    not_ok "baseline SQL ran" "$(tail -3 "$LOGS/baseline.log")"
fi

# --- a run with 3 consumers and small batches, so the big city is spread
start_consumers 3
sleep 1
out=$("$PRODUCER" run --period $PERIOD --batch-size 100 --bucket-rows 500 --timeout 300 2>"$LOGS/run1.err")
rc=$?
check_eq "run with 3 consumers exits 0" "$rc" 0
[ $rc -ne 0 ] && tail -5 "$LOGS/run1.err"
run1=$(sql -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
check_eq "run is succeeded" "$(sql -c "SELECT status FROM alloc_run WHERE run_id = ${run1:-0}")" succeeded

# every base and roll-up row equals the baseline, both ways, to the cent
diff_rows=$(sql -c "
  WITH ours AS (SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = ${run1:-0}
                AND item_code IN (SELECT item_code FROM report_item WHERE kind = 'base')),
       theirs AS (SELECT version, data_source, project_code, item_code, amount FROM baseline_report_after)
  SELECT (SELECT count(*) FROM (SELECT * FROM ours EXCEPT SELECT * FROM theirs) a)
       + (SELECT count(*) FROM (SELECT * FROM theirs EXCEPT SELECT * FROM ours) b)")
check_eq "report_after equals the SQL baseline row by row" "$diff_rows" 0
nrows=$(sql -c "SELECT count(*) FROM baseline_report_after")
check "baseline has rows to compare ($nrows)" test "${nrows:-0}" -gt 1000

# conservation: per version, base rows equal the included ledger total
cons=$(sql -c "
  SELECT count(*) FROM report_version v
  WHERE (SELECT coalesce(sum(amount), 0) FROM report_after WHERE run_id = ${run1:-0} AND version = v.version
         AND project_code <> '#TOTAL' AND item_code IN (SELECT item_code FROM report_item WHERE kind = 'base'))
     <> (SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE period_code = '$PERIOD'
         AND (v.include_categories IS NULL OR category = ANY (v.include_categories)))")
check_eq "conservation holds per version" "$cons" 0
# the formula stage: every vector (base rows' projects and the roll-ups) has every formula item
check_eq "every vector has every formula row" "$(sql -c "
  SELECT (SELECT count(*) FROM report_after a JOIN report_item i ON i.item_code = a.item_code AND i.kind = 'formula'
          WHERE a.run_id = ${run1:-0})
       = (SELECT count(*) FROM (SELECT DISTINCT version, data_source, project_code FROM report_after WHERE run_id = ${run1:-0}) v)
         * (SELECT count(*) FROM report_item WHERE kind = 'formula' AND ruleset = (SELECT ruleset FROM alloc_run WHERE run_id = ${run1:-0}))")" t
check_eq "formula batches are all marked" "$(sql -c "SELECT count(*) = (SELECT formula_batches FROM alloc_run WHERE run_id = ${run1:-0}) FROM batch_marker WHERE run_id = ${run1:-0} AND stage = 'formula'")" t
check_eq "unallocated warnings recorded" "$(sql -c "SELECT count(*) > 0 FROM audit_finding WHERE run_id = ${run1:-0} AND rule_code = 'unallocated' AND severity = 'warning'")" t

# report_before: #POOL holds the pending rows, direct rows their projects
pool_diff=$(sql -c "
  SELECT count(*) FROM report_version v
  WHERE (SELECT coalesce(sum(amount), 0) FROM report_before WHERE run_id = ${run1:-0} AND version = v.version AND project_code = '#POOL')
     <> (SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE period_code = '$PERIOD' AND project_code IS NULL
         AND (v.include_categories IS NULL OR category = ANY (v.include_categories)))")
check_eq "report_before #POOL equals the pending total" "$pool_diff" 0

# the largest city's batches went to every consumer
big=$(sql -c "SELECT data_source FROM ledger_entry WHERE period_code = '$PERIOD' AND project_code IS NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
spread=$(sql -c "SELECT consumer || ' ' || count(*) FROM batch_marker WHERE run_id = ${run1:-0} AND batch_id LIKE '$big#%' GROUP BY consumer ORDER BY consumer")
echo "# batches of the largest city $big per consumer:"; echo "$spread" | sed 's/^/#   /'
echo "# batches per consumer (all cities):"; sql -c "SELECT consumer || ' ' || count(*) FROM batch_marker WHERE run_id = ${run1:-0} GROUP BY consumer ORDER BY consumer" | sed 's/^/#   /'
check_eq "the largest city is spread over all 3 consumers" "$(echo "$spread" | grep -c .)" 3
sum1=$("$PRODUCER" report --period $PERIOD --run "${run1:-0}" --checksum 2>/dev/null)
stop_consumers

# --- the same period with 1 consumer and other batch sizes: the same checksum
# (and two copies of direct rows whose snapshot never committed: one orphan,
# one whose run still holds its lock, as a snapshot about to commit does)
sql -c "CREATE TABLE run_direct_987654 (x int); CREATE TABLE run_direct_987655 (x int)" >/dev/null
psql -X -q -d "$ALLOC_PG_DSN" -c "BEGIN" \
    -c "SELECT pg_advisory_xact_lock(hashtext('alloc.run'), 987655)" -c "SELECT pg_sleep(600)" \
    >/dev/null 2>&1 &
holder=$!
start_consumers 1
"$PRODUCER" run --period $PERIOD --timeout 300 >/dev/null 2>"$LOGS/run2.err"
check_eq "run with 1 consumer exits 0" "$?" 0
check_eq "the orphan copy of a snapshot that never committed is swept" \
    "$(sql -c "SELECT count(*) FROM pg_class WHERE relname = 'run_direct_987654'")" 0
check_eq "a copy whose run holds its lock is kept" \
    "$(sql -c "SELECT count(*) FROM pg_class WHERE relname = 'run_direct_987655'")" 1
sql -c "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 987655" >/dev/null
wait "$holder" 2>/dev/null
sql -c "DROP TABLE run_direct_987655" >/dev/null
run2=$(sql -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
sum2=$("$PRODUCER" report --period $PERIOD --run "${run2:-0}" --checksum 2>/dev/null)
check "checksum is a sha256 ($sum1)" test "${#sum1}" -eq 64
check_eq "1 and 3 consumers give identical checksums" "$sum2" "$sum1"
check_eq "a new run removed the earlier unpublished run's rows" "$(sql -c "SELECT count(*) FROM report_after WHERE run_id = ${run1:-0}")" 0

# --- refusals that change nothing
snapshot_tables() {
    sql -c "SELECT (SELECT count(*) FROM alloc_run) || ' ' || (SELECT count(*) FROM report_after) || ' ' ||
                   (SELECT count(*) FROM report_before) || ' ' || (SELECT count(*) FROM run_pending) || ' ' ||
                   (SELECT count(*) FROM audit_finding) || ' ' || (SELECT count(*) FROM run_log) || ' ' ||
                   (SELECT count(*) FROM batch_marker) || ' ' ||
                   (SELECT count(*) FROM pg_class WHERE relname LIKE 'run\_direct\_%')"
}
before=$(snapshot_tables)
sql -c "INSERT INTO ledger_entry (period_code, company_code, data_source, budget_item_code, account_code, project_code, category, amount)
        VALUES ('$PERIOD', 'C01', 'X', 'NO-SUCH-BI', 'NO-SUCH-ACC', NULL, 'gl', 10.00),
               ('$PERIOD', 'C01', 'X', 'NO-SUCH-BI', 'NO-SUCH-ACC', NULL, 'gl', 11.00),
               ('$PERIOD', 'C01', 'X', NULL, NULL, 'NO-SUCH-PROJECT', 'gl', 1.00)" >/dev/null
err=$("$PRODUCER" run --period $PERIOD --timeout 60 2>&1 >/dev/null)
check_eq "unbound rows: run exits 3" "$?" 3
check "the unbound pair is listed with its row count" grep -q "budget_item_code=NO-SUCH-BI account_code=NO-SUCH-ACC (2 rows)" <<<"$err"
check "the unknown project is named" grep -q "NO-SUCH-PROJECT" <<<"$err"
check_eq "a refused run changes no table" "$(snapshot_tables)" "$before"
sql -c "DELETE FROM ledger_entry WHERE budget_item_code = 'NO-SUCH-BI' OR project_code = 'NO-SUCH-PROJECT'" >/dev/null

sql -c "INSERT INTO alloc_run (period_code, ruleset, status) VALUES ('$PERIOD', 'x', 'running')" >/dev/null
before=$(snapshot_tables)
"$PRODUCER" run --period $PERIOD --timeout 60 >/dev/null 2>"$LOGS/run-busy.err"
check_eq "a second running run is refused with 4" "$?" 4
check_eq "the refusal changes no table" "$(snapshot_tables)" "$before"
busy=$(sql -c "SELECT max(run_id) FROM alloc_run WHERE status = 'running'")
"$PRODUCER" abort --run "$busy" >/dev/null 2>&1
check_eq "abort --run marks the run aborted" "$(sql -c "SELECT status FROM alloc_run WHERE run_id = $busy")" aborted
"$PRODUCER" abort --run "$busy" >/dev/null 2>&1
check_eq "abort of a run that is not running exits 4" "$?" 4
"$PRODUCER" run --period 2030-01 >/dev/null 2>&1
check_eq "an unknown period exits 4" "$?" 4
"$PRODUCER" run --period 2026-13 >/dev/null 2>&1
check_eq "a bad period exits 2" "$?" 2

# --- a period with no pending rows completes
sql -c "INSERT INTO period (period_code, ruleset) SELECT '2026-11', ruleset FROM period WHERE period_code = '$PERIOD';
        INSERT INTO ledger_entry (period_code, company_code, data_source, budget_item_code, account_code, project_code, category, amount)
        SELECT '2026-11', company_code, data_source, budget_item_code, account_code, project_code, category, amount
        FROM ledger_entry WHERE period_code = '$PERIOD' AND project_code IS NOT NULL LIMIT 50" >/dev/null
"$PRODUCER" run --period 2026-11 --timeout 60 >/dev/null 2>"$LOGS/run-empty.err"
check_eq "a period without pending rows completes" "$?" 0
check_eq "its run is succeeded with report rows" "$(sql -c "SELECT count(*) > 0 FROM report_after r JOIN alloc_run a USING (run_id) WHERE a.period_code = '2026-11' AND a.status = 'succeeded'")" t
stop_consumers
finish
