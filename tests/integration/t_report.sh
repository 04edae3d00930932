#!/usr/bin/env bash
# The review commands on a fixture written by SQL: report (run choice, checksum
# format, csv, json, table), status (staleness, JSON), publish (error findings,
# --force, the switch) and close-period (running run, ledger guard), plus
# --help and usage errors of each.
source "$(dirname "$0")/lib.sh"

use_fresh_db t_report
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- fixture
# Runs: 1 and 2 succeeded and 4 failed in 2024-03; 3 succeeded in 2024-04;
# 5 succeeded in 2024-05 (30 data sources, 50,000 rows; the period's ruleset
# has since become R0, which has no items); 2024-06 has only a failed run.
sql >/dev/null <<'SQL'
INSERT INTO period (period_code, ruleset) VALUES
    ('2024-03', 'R1'), ('2024-04', 'R1'), ('2024-05', 'R0'), ('2024-06', 'R1');
INSERT INTO report_version (version, name, include_categories) VALUES
    ('M', 'Management view', NULL), ('F', 'Finance view', '{gl}');
INSERT INTO report_item (ruleset, item_code, name, kind, formula, sort_order) VALUES
    ('R1', 'rev', 'Revenue', 'base', NULL, 10),
    ('R1', 'cost of sales', 'Cost of sales', 'base', NULL, 20),
    ('R1', 'gp', 'Gross profit', 'formula', '[rev] + [cost of sales]', 30),
    ('R1', 'margin', 'Margin %', 'formula', 'gp / rev', 40),
    ('R1', 'misc, other', 'Misc "other"', 'base', NULL, 50);
INSERT INTO alloc_run (run_id, period_code, ruleset, status, change_seq, rows_pending, rows_direct,
                       amount_pending, amount_direct, finished_at, stage, expected_batches, error) VALUES
    (1, '2024-03', 'R1', 'succeeded', 0, 10, 20, 1234.50, 98765432.10, now(), 'done', 4, NULL),
    (2, '2024-03', 'R1', 'succeeded', 0, 1, 1, 1.00, 0.00, now(), 'done', 2, NULL),
    (3, '2024-04', 'R1', 'succeeded', 0, 0, 1, 0, 5.00, now(), 'done', 1, NULL),
    (4, '2024-03', 'R1', 'failed', 0, NULL, NULL, NULL, NULL, now(), 'allocate', 7, 'consumer lost'),
    (5, '2024-05', 'R1', 'succeeded', 0, 0, 50000, 0, 0, now(), 'done', 1, NULL),
    (6, '2024-06', 'R1', 'failed', 0, NULL, NULL, NULL, NULL, now(), 'split', NULL, 'bad');
INSERT INTO batch_marker (run_id, stage, batch_id) VALUES
    (4, 'allocate', 'b1/0'), (4, 'allocate', 'b1/1'), (4, 'allocate', 'b2/0'), (4, 'split', 'b1');
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount) VALUES
    (1, 'M', 'B', 'P1', 'rev', 1234567.89),
    (1, 'M', 'B', 'P1', 'cost of sales', -1000000.00),
    (1, 'M', 'B', 'P1', 'gp', 234567.89),
    (1, 'M', 'B', 'P1', 'margin', NULL),
    (1, 'M', 'B', 'P1', 'misc, other', 7.50),
    (1, 'M', 'B', '#TOTAL', 'rev', 1234567.89),
    (1, 'M', 'B', '#TOTAL', 'cost of sales', -1000000.00),
    (1, 'M', 'B', '#TOTAL', 'gp', 234567.89),
    (1, 'M', 'B', '#TOTAL', 'margin', NULL),
    (1, 'M', 'B', '#TOTAL', 'misc, other', 7.50),
    (1, 'M', 'a', 'P 2', 'rev', -0.00),
    (1, 'M', 'a', 'P 2', 'cost of sales', -0.50),
    (1, 'M', 'a', '#UNALLOCATED', 'cost of sales', -12.34),
    (1, 'M', 'a', '#TOTAL', 'rev', 0),
    (1, 'M', 'a', '#TOTAL', 'cost of sales', -12.84),
    (1, 'M', 'a', '#TOTAL', 'gp', -12.84),
    (1, 'M', '#ALL', '#TOTAL', 'rev', 1234567.89),
    (1, 'M', '#ALL', '#TOTAL', 'cost of sales', -1000012.84),
    (1, 'M', '#ALL', '#TOTAL', 'gp', 234555.05),
    (1, 'M', '#ALL', '#TOTAL', 'misc, other', 7.50),
    (1, 'F', 'B', 'P1', 'rev', 1000),
    (1, 'F', 'B', '#TOTAL', 'rev', 1000),
    (1, 'F', '#ALL', '#TOTAL', 'rev', 1000),
    (2, 'M', 'B', '#TOTAL', 'rev', 1.00),
    (3, 'M', 'C', '#TOTAL', 'rev', 5.00);
-- run 5: 30 data sources with their #TOTAL rows, and 50,000 project rows
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount)
SELECT 5, 'M', 'City ' || lpad(d::text, 2, '0'), '#TOTAL', i, d * 1000000.01
FROM generate_series(1, 30) d, unnest(ARRAY['rev', 'cost of sales', 'gp']) i;
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount)
SELECT 5, 'M', 'City ' || lpad((p % 30 + 1)::text, 2, '0'), 'P' || p, 'rev',
       CASE WHEN p % 7 = 0 THEN NULL ELSE (p - 25000) / 100.0 END
FROM generate_series(1, 50000) p;
INSERT INTO audit_finding (run_id, version, data_source, project_code, rule_code, severity, message) VALUES
    (2, 'M', 'B', '#TOTAL', 'gp_positive', 'error', 'gross profit is negative'),
    (2, 'M', '#ALL', '#TOTAL', 'gp_positive', 'error', 'gross profit is negative'),
    (2, 'M', 'B', '#TOTAL', 'margin_known', 'warning', 'margin has no value');
SQL
[ $? -eq 0 ] || { not_ok "fixture" "the fixture SQL failed"; finish; }

# shell_checksum RUN: the checksum computed without the producer.
shell_checksum() {
    sql -c "SELECT version || '|' || data_source || '|' || project_code || '|' || item_code || '|'
                   || coalesce(amount::text, 'NULL')
              FROM report_after WHERE run_id = $1
             ORDER BY version COLLATE \"C\", data_source COLLATE \"C\", project_code COLLATE \"C\",
                      item_code COLLATE \"C\"" | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- report: checksum
# The checksum lines of run 1, written by hand: byte order puts F before M,
# '#ALL' before 'B' before 'a', '#TOTAL' before '#UNALLOCATED' before 'P 2' before 'P1'.
cat >"$tmp/run1.lines" <<'EOF'
F|#ALL|#TOTAL|rev|1000.00
F|B|#TOTAL|rev|1000.00
F|B|P1|rev|1000.00
M|#ALL|#TOTAL|cost of sales|-1000012.84
M|#ALL|#TOTAL|gp|234555.05
M|#ALL|#TOTAL|misc, other|7.50
M|#ALL|#TOTAL|rev|1234567.89
M|B|#TOTAL|cost of sales|-1000000.00
M|B|#TOTAL|gp|234567.89
M|B|#TOTAL|margin|NULL
M|B|#TOTAL|misc, other|7.50
M|B|#TOTAL|rev|1234567.89
M|B|P1|cost of sales|-1000000.00
M|B|P1|gp|234567.89
M|B|P1|margin|NULL
M|B|P1|misc, other|7.50
M|B|P1|rev|1234567.89
M|a|#TOTAL|cost of sales|-12.84
M|a|#TOTAL|gp|-12.84
M|a|#TOTAL|rev|0.00
M|a|#UNALLOCATED|cost of sales|-12.34
M|a|P 2|cost of sales|-0.50
M|a|P 2|rev|0.00
EOF
hand=$(sha256sum <"$tmp/run1.lines" | cut -d' ' -f1)
got=$($PRODUCER report --period 2024-03 --run 1 --checksum)
check_eq "checksum of run 1 equals the hand-written lines' SHA-256" "$got" "$hand"
check_eq "checksum of run 1 equals the SQL-computed SHA-256" "$got" "$(shell_checksum 1)"
check_eq "checksum ignores --version and --format" \
    "$($PRODUCER report --period 2024-03 --run 1 --version F --format csv --checksum)" "$hand"
got=$($PRODUCER report --period 2024-03 --checksum)
check_eq "report without a published run reads the latest succeeded run (2, not failed 4)" \
    "$got" "$(shell_checksum 2)"
got=$($PRODUCER report --period 2024-05 --checksum)
check_eq "checksum of a 50,000-row run (several fetches) equals the SQL-computed one" \
    "$got" "$(shell_checksum 5)"
$PRODUCER report --period 2024-03 --run 1 --checksum >"$tmp/sum"
check_eq "checksum output is 64 lowercase hex digits and a newline" \
    "$(wc -c <"$tmp/sum") $(grep -cxE '[0-9a-f]{64}' "$tmp/sum")" "65 1"

# ---------------------------------------------------------------- report: csv, json, table
cat >"$tmp/run1_m.csv" <<'EOF'
version,data_source,project_code,item_code,amount
M,#ALL,#TOTAL,cost of sales,-1000012.84
M,#ALL,#TOTAL,gp,234555.05
M,#ALL,#TOTAL,"misc, other",7.50
M,#ALL,#TOTAL,rev,1234567.89
M,B,#TOTAL,cost of sales,-1000000.00
M,B,#TOTAL,gp,234567.89
M,B,#TOTAL,margin,
M,B,#TOTAL,"misc, other",7.50
M,B,#TOTAL,rev,1234567.89
M,B,P1,cost of sales,-1000000.00
M,B,P1,gp,234567.89
M,B,P1,margin,
M,B,P1,"misc, other",7.50
M,B,P1,rev,1234567.89
M,a,#TOTAL,cost of sales,-12.84
M,a,#TOTAL,gp,-12.84
M,a,#TOTAL,rev,0.00
M,a,#UNALLOCATED,cost of sales,-12.34
M,a,P 2,cost of sales,-0.50
M,a,P 2,rev,0.00
EOF
$PRODUCER report --period 2024-03 --run 1 --version M --format csv >"$tmp/got.csv"
check "csv of version M is exact (quoting, NULL as empty, byte order)" cmp -s "$tmp/got.csv" "$tmp/run1_m.csv"
check_eq "csv of every version has a header and 23 rows" \
    "$($PRODUCER report --period 2024-03 --run 1 --format csv | wc -l)" 24

$PRODUCER report --period 2024-03 --run 1 --format json >"$tmp/got.json"
check "json parses" python3 -m json.tool "$tmp/got.json" >/dev/null
check_eq "json holds 23 rows, 2 NULL amounts and the exact amounts" \
    "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(len(r), sum(1 for x in r if x["amount"] is None), [str(x["amount"]) for x in r if x["project_code"]=="P 2"])' "$tmp/got.json")" \
    "23 2 ['-0.5', '0.0']"
check_eq "json of version F holds 3 rows" \
    "$($PRODUCER report --period 2024-03 --run 1 --version F --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 3
check_eq "json of an empty selection is []" \
    "$($PRODUCER report --period 2024-04 --version F --format json | tr -d '\n')" "[]"

$PRODUCER report --period 2024-03 --run 1 >"$tmp/table.txt"
m_block=$(sed -n '/^version M/,$p' "$tmp/table.txt")
order=$(echo "$m_block" | grep -oE '^(Revenue|Cost of sales|Gross profit|Margin %|Misc "other")' | tr '\n' ';')
check_eq "table lists item names in sort_order" "$order" 'Revenue;Cost of sales;Gross profit;Margin %;Misc "other";'
check "table shows thousands separators" grep -qE '^Revenue .* 1,234,567\.89 ' "$tmp/table.txt"
check "table shows a negative total with separators" grep -qE '^Cost of sales .*-1,000,012\.84$' "$tmp/table.txt"
check_eq "table columns: data sources in byte order, #ALL last" \
    "$(echo "$m_block" | grep -m1 '^item' | tr -s ' ')" "item B a #ALL"
check "table shows a NULL amount as n/a" grep -qE '^Margin % +n/a' "$tmp/table.txt"
check "table has a block per version (F first)" \
    bash -c "grep -n '^version ' '$tmp/table.txt' | tr '\n' ' ' | grep -qE '^[0-9]+:version F .* [0-9]+:version M '"
$PRODUCER report --period 2024-05 >"$tmp/wide.txt"
check_eq "table of 30 data sources keeps every line within 132 columns" \
    "$(awk '{ if (length($0) > w) w = length($0) } END { print (w <= 132) }' "$tmp/wide.txt")" 1
check "table of 30 data sources is wrapped into blocks of data-source columns" \
    grep -q '^data sources 1-' "$tmp/wide.txt"
check "the wrapped table shows every data source and #ALL" \
    bash -c "grep -q 'City 30' '$tmp/wide.txt' && grep -q 'City 01' '$tmp/wide.txt'"
check "default format is table" grep -q '^report of period 2024-05, run 5' "$tmp/wide.txt"
check "table rows are the items of the run's ruleset, not the period's" grep -q '^Gross profit ' "$tmp/wide.txt"

# ---------------------------------------------------------------- report: refusals
expect_rc() { # NAME WANT_RC WANT_STDERR_RE COMMAND...
    local name=$1 want=$2 re=$3; shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -ne "$want" ]; then
        not_ok "$name" "exit $rc, want $want; stderr: $(head -c 300 "$tmp/err")"
    elif [ -n "$re" ] && ! grep -qE -- "$re" "$tmp/err"; then
        not_ok "$name" "stderr does not match '$re': $(head -c 300 "$tmp/err")"
    else
        ok "$name"
    fi
}
expect_rc "report --run of another period exits 4" 4 'run 3 belongs to period 2024-04' \
    $PRODUCER report --period 2024-03 --run 3
expect_rc "report --run of an unknown run exits 4" 4 'run 999 does not exist' \
    $PRODUCER report --period 2024-03 --run 999 --checksum
expect_rc "report --run of a failed run exits 4" 4 'run 4 is failed' \
    $PRODUCER report --period 2024-03 --run 4
expect_rc "report of an unknown period exits 4" 4 'period 2030-01 does not exist' \
    $PRODUCER report --period 2030-01
expect_rc "report of a period with no succeeded run exits 4" 4 'period 2024-06 has no succeeded run' \
    $PRODUCER report --period 2024-06 --checksum
expect_rc "report of an unknown version exits 4" 4 'version X does not exist' \
    $PRODUCER report --period 2024-03 --version X

# ---------------------------------------------------------------- status
sql -c "INSERT INTO ledger_entry (period_code, company_code, data_source, category, amount)
        VALUES ('2024-03', 'C1', 'B', 'gl', 1.00)" >/dev/null
out=$($PRODUCER status --run 2)
check_eq "status reports staleness after a ledger change" \
    "$(echo "$out" | grep -c 'report is stale: 1 changes after the snapshot')" 1
check "status shows findings by severity" grep -q 'findings  2 error, 1 warning' <<<"$out"
out=$($PRODUCER status --run 4)
check "status shows the batch markers of the stage / expected" grep -q 'batches   3 / 7 (stage allocate' <<<"$out"
check "status shows the error of a failed run" grep -q 'error     consumer lost' <<<"$out"
check "status shows control totals with separators" \
    grep -q 'direct    20 rows, amount 98,765,432.10' <<<"$($PRODUCER status --run 1)"
check_eq "status of a period lists its runs newest first" \
    "$($PRODUCER status --period 2024-03 | grep -oE '^run [0-9]+' | tr '\n' ' ')" "run 4 run 2 run 1 "
check_eq "status without a filter lists every period's runs" \
    "$($PRODUCER status | grep -c '^run ')" 6
$PRODUCER status --json >"$tmp/status.json"
check "status --json parses" python3 -m json.tool "$tmp/status.json" >/dev/null
check_eq "status --json has the fields" \
    "$($PRODUCER status --period 2024-03 --json | python3 -c 'import json,sys
r={x["run_id"]: x for x in json.load(sys.stdin)}
print(len(r), r[2]["changes_after_snapshot"], r[2]["stale"], r[2]["findings"], r[4]["batches_done"],
      r[4]["expected_batches"], r[4]["error"], r[1]["amount_direct"], r[1]["rows_pending"], r[1]["published"])')" \
    "3 1 True {'error': 2, 'warning': 1} 3 7 consumer lost 98765432.10 10 False"
expect_rc "status of an unknown period exits 4" 4 'period 2030-01 does not exist' $PRODUCER status --period 2030-01
expect_rc "status of an unknown run exits 4" 4 'run 999 does not exist' $PRODUCER status --run 999 --json

# ---------------------------------------------------------------- publish
expect_rc "publish refuses the latest run while it has error findings" 4 'run 2 of period 2024-03 has 2 error findings' \
    $PRODUCER publish --period 2024-03
check_eq "a refused publish changes nothing" "$(sql -c 'SELECT count(*) FROM report_published')" 0
check "publish --run 1 (no findings) succeeds" $PRODUCER publish --period 2024-03 --run 1
check_eq "report_published holds run 1" \
    "$(sql -c "SELECT run_id FROM report_published WHERE period_code = '2024-03'")" 1
check_eq "report reads the published run over a later succeeded one" \
    "$($PRODUCER report --period 2024-03 --checksum)" "$hand"
check_eq "report_current shows the published run's rows" "$(sql -c 'SELECT count(*) FROM report_current')" 23
check "publish --force publishes a run with error findings" $PRODUCER publish --period 2024-03 --force
check_eq "report_published switched to run 2" \
    "$(sql -c "SELECT run_id FROM report_published WHERE period_code = '2024-03'")" 2
check_eq "each publish wrote a run_log row" \
    "$(sql -c "SELECT string_agg(run_id || ':' || (detail->>'forced') || ':' || coalesce(detail->>'previous_run', '-'), ' ' ORDER BY at)
               FROM run_log WHERE event = 'published'")" "1:false:- 2:true:1"
check_eq "status marks the published run" \
    "$($PRODUCER status --run 2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["published"])')" True
expect_rc "publish --run of another period exits 4" 4 'run 3 belongs to period 2024-04' \
    $PRODUCER publish --period 2024-03 --run 3
expect_rc "publish --run of a failed run exits 4" 4 'run 4 is failed, not succeeded' \
    $PRODUCER publish --period 2024-03 --run 4
expect_rc "publish --run of an unknown run exits 4" 4 'run 999 does not exist' \
    $PRODUCER publish --period 2024-03 --run 999
expect_rc "publish in a period without a succeeded run exits 4" 4 'period 2024-06 has no succeeded run' \
    $PRODUCER publish --period 2024-06
expect_rc "publish in an unknown period exits 4" 4 'period 2030-01 does not exist' \
    $PRODUCER publish --period 2030-01

# ---------------------------------------------------------------- lifecycle (DESIGN.md 5.6)
# Run 8 of 2024-04 succeeded after run 3, whose results it replaced; run 8 keeps
# its own item names (run_item) whatever the ruleset says later.
sql >/dev/null <<'SQL'
INSERT INTO alloc_run (run_id, period_code, ruleset, status, change_seq, finished_at, stage)
VALUES (8, '2024-04', 'R1', 'succeeded', 0, now(), 'done');
UPDATE alloc_run SET replaced_by = 8 WHERE run_id = 3;
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount) VALUES
    (8, 'M', 'C', '#TOTAL', 'rev', 6.00), (8, 'M', 'C', '#TOTAL', 'gp', 6.00);
INSERT INTO run_item (run_id, item_code, name, kind, formula, sort_order) VALUES
    (8, 'gp', 'Profit as kept by run 8', 'formula', 'rev', 1),
    (8, 'rev', 'Income as kept by run 8', 'base', NULL, 2);
SQL
expect_rc "report --run of a replaced run exits 4 naming the replacing run" 4 \
    'the results of run 3 were replaced by run 8' $PRODUCER report --period 2024-04 --run 3 --checksum
expect_rc "publish --run of a replaced run exits 4" 4 'the results of run 3 were replaced by run 8' \
    $PRODUCER publish --period 2024-04 --run 3
expect_rc "status --run of a replaced run exits 4 naming why" 4 'run 3 were replaced by run 8' \
    $PRODUCER status --run 3
check "status --run of a replaced run still shows it" grep -q 'results   replaced by run 8' "$tmp/out"
expect_rc "status --run of a failed run exits 4 with its cause" 4 'run 4 is failed, not succeeded: consumer lost' \
    $PRODUCER status --run 4
check "status --run of a failed run still shows it" grep -q '^run 4 ' "$tmp/out"
expect_rc "status --run of a readable run exits 0" 0 '' $PRODUCER status --run 8
expect_rc "export --run of a replaced run exits 4" 4 'the results of run 3 were replaced by run 8' \
    $PRODUCER export --period 2024-04 --run 3 --format csv.gz
$PRODUCER report --period 2024-04 --version M >"$tmp/kept.txt"
check_eq "the table names the rows as the run kept them, in its order" \
    "$(grep -oE '^(Profit|Income) as kept by run 8' "$tmp/kept.txt" | tr '\n' ';')" \
    "Profit as kept by run 8;Income as kept by run 8;"
sql -c "UPDATE report_item SET name = 'Renamed later', sort_order = 99 WHERE ruleset = 'R1' AND item_code = 'gp'" >/dev/null
$PRODUCER report --period 2024-04 --version M >"$tmp/kept2.txt"
check "a later ruleset edit changes nothing in the run's table" cmp -s "$tmp/kept.txt" "$tmp/kept2.txt"
expect_rc "close-period without a published run exits 4" 4 'period 2024-04 has no published run' \
    $PRODUCER close-period --period 2024-04
check_eq "the refused close-period leaves 2024-04 open" \
    "$(sql -c "SELECT status FROM period WHERE period_code = '2024-04'")" open
check "close-period --force closes a period without a published run" \
    $PRODUCER close-period --period 2024-04 --force
check_eq "2024-04 is closed" "$(sql -c "SELECT status FROM period WHERE period_code = '2024-04'")" closed

# ---------------------------------------------------------------- close-period
sql -c "INSERT INTO alloc_run (run_id, period_code, ruleset, status, change_seq) VALUES (7, '2024-03', 'R1', 'running', 1)" >/dev/null
expect_rc "close-period refuses while a run is running" 4 'period 2024-03 has run 7 running' \
    $PRODUCER close-period --period 2024-03
check_eq "a refused close-period leaves the period open" \
    "$(sql -c "SELECT status FROM period WHERE period_code = '2024-03'")" open
sql -c "UPDATE alloc_run SET status = 'aborted', finished_at = now() WHERE run_id = 7" >/dev/null
check "close-period closes the period" $PRODUCER close-period --period 2024-03
check_eq "the period is closed with closed_at set" \
    "$(sql -c "SELECT status, closed_at IS NOT NULL FROM period WHERE period_code = '2024-03'")" "closed|t"
if sql -c "INSERT INTO ledger_entry (period_code, company_code, data_source, category, amount)
           VALUES ('2024-03', 'C1', 'B', 'gl', 2.00)" >/dev/null 2>"$tmp/err"; then
    not_ok "a ledger insert into the closed period fails" "the insert succeeded"
else
    check "a ledger insert into the closed period fails naming the period" grep -q '2024-03' "$tmp/err"
fi
expect_rc "close-period of a closed period exits 4" 4 'period 2024-03 is already closed' \
    $PRODUCER close-period --period 2024-03
expect_rc "close-period of an unknown period exits 4" 4 'period 2030-01 does not exist' \
    $PRODUCER close-period --period 2030-01
expect_rc "publish in a closed period exits 4" 4 'period 2024-03 is closed' \
    $PRODUCER publish --period 2024-03 --run 1
check_eq "the closed period's report is still readable" \
    "$($PRODUCER report --period 2024-03 --checksum)" "$(shell_checksum 2)"

# ---------------------------------------------------------------- byte order under another collation
# With the key columns in a collation that is not byte order, report must still
# sort in byte order (COLLATE "C") instead of trusting the primary key's order.
if [ "$(sql -c "SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'")" = 1 ]; then
    sql -c 'DROP VIEW report_current' \
        -c 'ALTER TABLE report_after ALTER COLUMN data_source TYPE text COLLATE "und-x-icu",
                                     ALTER COLUMN project_code TYPE text COLLATE "und-x-icu"' >/dev/null
    check_eq "checksum is in byte order when the columns' collation is not" \
        "$($PRODUCER report --period 2024-03 --run 1 --checksum)" "$hand"
    $PRODUCER report --period 2024-03 --run 1 --version M --format csv >"$tmp/got.csv"
    check "csv is in byte order when the columns' collation is not" cmp -s "$tmp/got.csv" "$tmp/run1_m.csv"
else
    ok "byte order under an ICU collation: skipped, the server has no und-x-icu"
fi

# ---------------------------------------------------------------- --help and usage errors
for cmd in report status publish close-period; do
    out=$($PRODUCER $cmd --help 2>/dev/null)
    rc=$?
    if [ $rc -eq 0 ] && grep -q "^usage: alloc-producer $cmd" <<<"$out"; then
        ok "$cmd --help prints usage and exits 0"
    else
        not_ok "$cmd --help prints usage and exits 0" "exit $rc"
    fi
    expect_rc "$cmd with an unknown flag exits 2" 2 "unknown argument '--bogus'" $PRODUCER $cmd --bogus
    check_eq "$cmd usage error is two lines (problem, usage)" \
        "$(wc -l <"$tmp/err") $(tail -n1 "$tmp/err" | grep -c "^usage: alloc-producer $cmd")" "2 1"
done
expect_rc "report with a bad period exits 2" 2 "bad period '2024-13'" $PRODUCER report --period 2024-13
expect_rc "report with a non-numeric run exits 2" 2 "bad run id 'x1'" $PRODUCER report --period 2024-03 --run x1
expect_rc "report with a bad format exits 2" 2 "bad format 'xml'" $PRODUCER report --period 2024-03 --format xml
expect_rc "report with a missing value exits 2" 2 "--period needs a value" $PRODUCER report --period
expect_rc "report without --period exits 2" 2 "--period is required" $PRODUCER report --checksum
expect_rc "status with both --period and --run exits 2" 2 "not both" $PRODUCER status --period 2024-03 --run 1
expect_rc "status with a bad period exits 2" 2 "bad period '24-3'" $PRODUCER status --period 24-3
expect_rc "status with a non-numeric run exits 2" 2 "bad run id 'abc'" $PRODUCER status --run abc
expect_rc "publish with a non-numeric run exits 2" 2 "bad run id '1.5'" $PRODUCER publish --period 2024-03 --run 1.5
expect_rc "publish without --period exits 2" 2 "--period is required" $PRODUCER publish --force
expect_rc "close-period with a bad period exits 2" 2 "bad period '2024-3'" $PRODUCER close-period --period=2024-3
expect_rc "close-period with a missing value exits 2" 2 "--period needs a value" $PRODUCER close-period --period

finish
