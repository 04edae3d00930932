#!/usr/bin/env bash
# Formulas and audit rules end to end (DESIGN.md 5.5, issue 4): every formula row
# and audit finding of a generated period run by 2 consumers equals an independent
# evaluation (fx_eval.py, itself checked against tests/fx/cases); a rule edited
# between two runs is picked up through a new Redis key without touching Redis; a
# broken formula makes `run` exit 3 naming item, line and column and changes
# nothing; `import --kind ruleset` replaces the rules (a following run uses them)
# or, for a bad file, exits 3 naming the element and changes nothing; `publish`
# refuses a run with error findings (exit 4 with the count) unless --force.
source "$(dirname "$0")/lib.sh"
use_fresh_db t_formulas
use_fresh_vhost t_formulas
use_fresh_redis 11
PERIOD=2026-10
FX_EVAL=$repo/tests/integration/fx_eval.py
FIXTURES=$repo/tests/integration/fixtures
LOGS=$repo/.run/test-logs/t_formulas
tmp=$(mktemp -d)
mkdir -p "$LOGS"

cleanup() {
    stop_consumers
    rm -rf "$tmp"
}
trap cleanup EXIT

# rcli ARGS...: redis-cli on the test's Redis db.
rcli() {
    local hp=${ALLOC_REDIS_URL#redis://}
    hp=${hp%%/*}
    redis-cli -h "${hp%:*}" -p "${hp#*:}" -n "${ALLOC_REDIS_URL##*/}" "$@"
}
# Every row of the rules tables, update times included: "nothing changed" compares it.
rules_state() {
    sql -c "SELECT md5(string_agg(t, E'\n' ORDER BY t COLLATE \"C\")) FROM (
      SELECT concat_ws('|', 'i', ruleset, item_code, name, kind, formula, sort_order, updated_at) t FROM report_item
      UNION ALL SELECT concat_ws('|', 'b', ruleset, match_kind, match_code, item_code, updated_at) FROM binding_rule
      UNION ALL SELECT concat_ws('|', 'a', ruleset, version, item_code, driver, scope, updated_at) FROM allocation_rule
      UNION ALL SELECT concat_ws('|', 'r', ruleset, rule_code, expr, message, severity, updated_at) FROM audit_rule
      UNION ALL SELECT concat_ws('|', 'v', version, name, include_categories::text) FROM report_version) s"
}
# Row counts of the run tables (as t_pipeline.sh).
run_tables() {
    sql -c "SELECT (SELECT count(*) FROM alloc_run) || ' ' || (SELECT count(*) FROM report_after) || ' ' ||
                   (SELECT count(*) FROM report_before) || ' ' || (SELECT count(*) FROM run_pending) || ' ' ||
                   (SELECT count(*) FROM audit_finding) || ' ' || (SELECT count(*) FROM run_log) || ' ' ||
                   (SELECT count(*) FROM batch_marker) || ' ' || (SELECT count(*) FROM report_published)"
}
# run_period NAME: runs the period; sets rc and run (the latest succeeded run).
run_period() {
    "$PRODUCER" run --period $PERIOD --timeout 120 >"$LOGS/$1.out" 2>"$LOGS/$1.err"
    rc=$?
    run=$(sql -c "SELECT coalesce(max(run_id), 0) FROM alloc_run WHERE status = 'succeeded'")
}
# fx_check NAME RUN: the independent evaluation agrees with every formula row and finding.
fx_check() {
    local out
    out=$(python3 "$FX_EVAL" --run "$2" 2>&1)
    local frc=$?
    echo "# $1: $(tail -n 1 <<<"$out")"
    if [ $frc -eq 0 ]; then ok "$1"; else not_ok "$1" "$(head -n 5 <<<"$out" | tr '\n' ';')"; fi
}
# export_ruleset NAME FILE: the ruleset as an import file (report versions included).
export_ruleset() {
    sql -v rs="$1" >"$2" <<'EOF'
SELECT jsonb_pretty(jsonb_build_object(
 'ruleset', :'rs',
 'items', (SELECT jsonb_agg(jsonb_build_object('code', item_code, 'name', name, 'kind', kind,
           'formula', formula, 'sort_order', sort_order) ORDER BY sort_order, item_code COLLATE "C")
           FROM report_item WHERE ruleset = :'rs'),
 'bindings', (SELECT coalesce(jsonb_agg(jsonb_build_object('match_kind', match_kind, 'match_code', match_code,
              'item_code', item_code) ORDER BY match_kind, match_code COLLATE "C"), '[]')
              FROM binding_rule WHERE ruleset = :'rs'),
 'allocation_rules', (SELECT coalesce(jsonb_agg(jsonb_build_object('version', version, 'item_code', item_code,
                      'driver', driver, 'scope', scope) ORDER BY version, item_code COLLATE "C"), '[]')
                      FROM allocation_rule WHERE ruleset = :'rs'),
 'audit_rules', (SELECT coalesce(jsonb_agg(jsonb_build_object('rule_code', rule_code, 'expr', expr,
                 'message', message, 'severity', severity) ORDER BY rule_code COLLATE "C"), '[]')
                 FROM audit_rule WHERE ruleset = :'rs'),
 'versions', (SELECT jsonb_agg(jsonb_build_object('version', version, 'name', name,
              'include_categories', include_categories) ORDER BY version) FROM report_version)))
EOF
}

# the independent evaluator first agrees with the value cases of common/fx's own suite
cases=$(python3 "$FX_EVAL" --cases "$repo"/tests/fx/cases/*.txt 2>&1)
if [ $? -eq 0 ]; then ok "fx_eval.py agrees with tests/fx/cases ($(tail -n 1 <<<"$cases"))"
else not_ok "fx_eval.py agrees with tests/fx/cases" "$(head -n 3 <<<"$cases" | tr '\n' ';')"; fi

"$PRODUCER" migrate >/dev/null || { not_ok "migrate"; finish; }
"$GEN" --scale 0.01 --seed 3 --period $PERIOD >"$LOGS/gen.log" 2>&1 || { not_ok "generate" "$(tail -3 "$LOGS/gen.log")"; finish; }
RULESET=$(sql -c "SELECT ruleset FROM period WHERE period_code = '$PERIOD'")
start_consumers 2 --threads 2

# --- (a) every formula row and finding equals an independent evaluation
run_period run1
check_eq "run 1 with 2 consumers exits 0" "$rc" 0
[ "$rc" -ne 0 ] && tail -5 "$LOGS/run1.err"
run1=$run
fx_check "run 1: every formula row and audit finding equals the independent evaluation" "$run1"
check_eq "run 1 has NULL formula values (x / 0) to compare" \
    "$(sql -c "SELECT count(*) > 0 FROM report_after a JOIN report_item i ON i.ruleset = '$RULESET'
               AND i.item_code = a.item_code AND i.kind = 'formula' WHERE a.run_id = $run1 AND a.amount IS NULL")" t
check_eq "run 1 has audit findings to compare" \
    "$(sql -c "SELECT count(*) > 0 FROM audit_finding WHERE run_id = $run1 AND rule_code <> 'unallocated'")" t
stamp1=$(sql -c "SELECT ruleset_stamp FROM alloc_run WHERE run_id = $run1")
key1=$(sql -c "SELECT fx_key FROM run_public WHERE run_id = $run1")
check "run 1's formula key holds ruleset and stamp ($key1)" test -n "$stamp1" -a "${key1#alloc:fx:$RULESET:$stamp1}" != "$key1"
check_eq "run 1's compiled formulas are in Redis under that key" "$(rcli EXISTS "$key1")" 1

# --- (b) a rule edited between two runs is picked up, with no hand on Redis
sql -c "UPDATE report_item SET formula = 'REVENUE * 2 + 0.01', updated_at = now()
        WHERE ruleset = '$RULESET' AND item_code = 'BONUS_POOL'" >/dev/null
run_period run2
check_eq "run 2 after editing BONUS_POOL exits 0" "$rc" 0
run2=$run
stamp2=$(sql -c "SELECT ruleset_stamp FROM alloc_run WHERE run_id = $run2")
check "the edit changed the ruleset stamp ($stamp1 -> $stamp2)" test -n "$stamp2" -a "$stamp2" != "$stamp1"
key2=$(sql -c "SELECT fx_key FROM run_public WHERE run_id = $run2")
check "run 2's formula key holds the new stamp ($key2)" test "${key2#alloc:fx:$RULESET:$stamp2}" != "$key2"
check_eq "run 2's compiled formulas are in Redis under it" "$(rcli EXISTS "$key2")" 1
check_eq "BONUS_POOL of run 2 follows the new formula in every vector" "$(sql -c "
  SELECT count(*) FROM report_after b JOIN report_after r ON r.run_id = b.run_id AND r.version = b.version
         AND r.data_source = b.data_source AND r.project_code = b.project_code AND r.item_code = 'REVENUE'
  WHERE b.run_id = $run2 AND b.item_code = 'BONUS_POOL'
    AND (b.amount IS DISTINCT FROM r.amount * 2 + 0.01)")" 0
check_eq "BONUS_POOL rows exist in run 2" "$(sql -c "SELECT count(*) > 0 FROM report_after WHERE run_id = $run2 AND item_code = 'BONUS_POOL'")" t
fx_check "run 2: every formula row and audit finding equals the independent evaluation" "$run2"

# --- (c) a broken formula: run exits 3 naming the item, line and column; nothing changes
sql -c "UPDATE report_item SET formula = E'REVENUE *\n  (2 + 1', updated_at = now()
        WHERE ruleset = '$RULESET' AND item_code = 'BONUS_POOL'" >/dev/null
before=$(run_tables)
keys_before=$(rcli DBSIZE)
"$PRODUCER" run --period $PERIOD --timeout 60 >/dev/null 2>"$LOGS/run-broken.err"
check_eq "a broken formula makes run exit 3" "$?" 3
check "the error names BONUS_POOL with line:column ($(grep -m1 BONUS_POOL "$LOGS/run-broken.err"))" \
    grep -qE "BONUS_POOL 2:9: expected '\)'" "$LOGS/run-broken.err"
check_eq "the refused run changed no table" "$(run_tables)" "$before"
check_eq "the refused run put nothing in Redis" "$(rcli DBSIZE)" "$keys_before"
sql -c "UPDATE report_item SET formula = 'ROUND(MAX(0, OPERATING_PROFIT) * 0.05, 0)', updated_at = now()
        WHERE ruleset = '$RULESET' AND item_code = 'BONUS_POOL'" >/dev/null

# --- (d) import --kind ruleset
# bad files: exit 3, the element named, nothing changed
state=$(rules_state)
import_bad() { # NAME FILE PATTERN
    local out
    out=$("$PRODUCER" import --kind ruleset --file "$2" 2>&1 >/dev/null)
    local irc=$?
    check_eq "import of a ruleset with $1 exits 3" "$irc" 3
    if grep -qE "$3" <<<"$out"; then ok "the $1 is named ($(grep -m1 -E "$3" <<<"$out" | sed 's/^alloc-producer: //'))"
    else not_ok "the $1 is named" "want /$3/, got: $(head -n 3 <<<"$out" | tr '\n' ';')"; fi
    check_eq "the refused import of a ruleset with $1 changed nothing" "$(rules_state)" "$state"
}
import_bad "syntax error" "$FIXTURES/ruleset_bad_syntax.json" \
    "ruleset_bad_syntax.json: items\[7\] \(MARGIN\): MARGIN 3:4: expected '\)' after argument list"
import_bad "unknown reference" "$FIXTURES/ruleset_bad_reference.json" \
    "ruleset_bad_reference.json: items\[6\] \(PROFIT\): PROFIT 1:11: unknown item COSTS"
import_bad "cycle" "$FIXTURES/ruleset_bad_cycle.json" \
    "ruleset_bad_cycle.json: items\[2\] \(REVENUE\): REVENUE 1:[0-9]+: cycle REVENUE -> MARGIN -> REVENUE"
import_bad "bad binding" "$FIXTURES/ruleset_bad_binding.json" \
    "ruleset_bad_binding.json: bindings\[2\]: item COST is not a base item"
import_bad "malformed JSON" "$FIXTURES/ruleset_bad_json.json" "ruleset_bad_json.json: 5:[0-9]+: "
# a file that is not there is a usage error (exit 2), not a bad file
out=$("$PRODUCER" import --kind ruleset --file "$tmp/no-such-file.json" 2>&1 >/dev/null)
check_eq "import of a missing ruleset file exits 2" "$?" 2
check "the missing file is named with the alloc-producer prefix" \
    grep -q "^alloc-producer: import: cannot open .*no-such-file.json: No such file or directory" <<<"$out"
check_eq "the import of a missing file changed nothing" "$(rules_state)" "$state"

# many problems at once: every one listed
export_ruleset "$RULESET" "$tmp/std.json"
python3 - "$tmp/std.json" "$tmp/many.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
codes = {it['code']: i for i, it in enumerate(d['items'])}
d['items'][codes['GROSS_MARGIN']]['formula'] = 'ROUND(GROSS_PROFIT / REVENUE * 100, 2'
d['items'][3]['kind'] = 'fomula'
d['bindings'][0]['item_code'] = 'NO_SUCH_ITEM'
d['allocation_rules'][0]['version'] = 'NO_SUCH_VERSION'
d['audit_rules'][0]['severity'] = 'fatal'
json.dump(d, open(sys.argv[2], 'w'), indent=1)
EOF
out=$("$PRODUCER" import --kind ruleset --file "$tmp/many.json" 2>&1 >/dev/null)
check_eq "a file with five problems exits 3" "$?" 3
check_eq "all five are listed" "$(grep -cE 'many.json: (items\[[0-9]+\] \(GROSS_MARGIN\): GROSS_MARGIN 1:38|items\[3\] .*"kind"|bindings\[0\]: item NO_SUCH_ITEM does not exist|allocation_rules\[0\]: version NO_SUCH_VERSION does not exist|audit_rules\[0\] .*"severity")' <<<"$out")" 5
check_eq "... and nothing changed" "$(rules_state)" "$state"

# a good file: the exported ruleset with one formula changed, an audit rule of
# severity error that fails somewhere, and 100 random formulas and 20 random audit
# rules (the whole grammar through import, cache, consumers and storage)
python3 "$FX_EVAL" --add-random "$tmp/std.json" "$tmp/random.json" 3 100
python3 - "$tmp/random.json" "$tmp/good.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for it in d['items']:
    if it['code'] == 'NET_MARGIN':
        it['formula'] = 'IF(REVENUE > 0, ROUND(NET_PROFIT / REVENUE, 3), -1)'
d['audit_rules'].append({'rule_code': 'REVENUE_COVERS_COST', 'expr': 'REVENUE >= COST',
                         'message': 'cost of operations above revenue', 'severity': 'error'})
json.dump(d, open(sys.argv[2], 'w'), indent=1)
EOF
"$PRODUCER" import --kind ruleset --file "$tmp/good.json" >"$LOGS/import-good.out" 2>"$LOGS/import-good.err"
check_eq "import of a good ruleset file exits 0" "$?" 0
check "it prints a summary ($(head -c 120 "$LOGS/import-good.out")...)" grep -q "600 items (450 base, 150 formula)" "$LOGS/import-good.out"
check_eq "the new formula is stored" \
    "$(sql -c "SELECT formula FROM report_item WHERE ruleset = '$RULESET' AND item_code = 'NET_MARGIN'")" \
    "IF(REVENUE > 0, ROUND(NET_PROFIT / REVENUE, 3), -1)"
check_eq "every rules row got the import's update time" "$(sql -c "
  SELECT count(DISTINCT u) FROM (SELECT updated_at u FROM report_item WHERE ruleset = '$RULESET'
    UNION ALL SELECT updated_at FROM binding_rule WHERE ruleset = '$RULESET'
    UNION ALL SELECT updated_at FROM allocation_rule WHERE ruleset = '$RULESET'
    UNION ALL SELECT updated_at FROM audit_rule WHERE ruleset = '$RULESET') s")" 1
run_period run3
check_eq "run 3 after the import exits 0" "$rc" 0
run3=$run
stamp3=$(sql -c "SELECT ruleset_stamp FROM alloc_run WHERE run_id = $run3")
check "the import changed the ruleset stamp" test -n "$stamp3" -a "$stamp3" != "$stamp2"
check_eq "run 3 evaluated the imported NET_MARGIN (-1 where REVENUE <= 0)" "$(sql -c "
  SELECT count(*) FROM report_after m JOIN report_after r ON r.run_id = m.run_id AND r.version = m.version
         AND r.data_source = m.data_source AND r.project_code = m.project_code AND r.item_code = 'REVENUE'
  WHERE m.run_id = $run3 AND m.item_code = 'NET_MARGIN' AND r.amount <= 0 AND m.amount IS DISTINCT FROM -1")" 0
fx_check "run 3: every formula row and audit finding equals the independent evaluation" "$run3"

# a second ruleset from a hand-written file: created alongside, std untouched
std_before=$(sql -c "SELECT count(*) FROM report_item WHERE ruleset = '$RULESET'")
"$PRODUCER" import --kind ruleset --file "$FIXTURES/ruleset_small.json" >/dev/null 2>"$LOGS/import-small.err"
check_eq "import of fixtures/ruleset_small.json exits 0" "$?" 0
check_eq "ruleset small has its 8 items, 4 bindings, 3 allocation and 2 audit rules" "$(sql -c "
  SELECT (SELECT count(*) FROM report_item WHERE ruleset = 'small') || ' ' ||
         (SELECT count(*) FROM binding_rule WHERE ruleset = 'small') || ' ' ||
         (SELECT count(*) FROM allocation_rule WHERE ruleset = 'small') || ' ' ||
         (SELECT count(*) FROM audit_rule WHERE ruleset = 'small')")" "8 4 3 2"
check_eq "ruleset std is untouched" "$(sql -c "SELECT count(*) FROM report_item WHERE ruleset = '$RULESET'")" "$std_before"

# --- (e) publish refuses while the run has error findings, unless --force
nerr=$(sql -c "SELECT count(*) FROM audit_finding WHERE run_id = $run3 AND severity = 'error'")
check "run 3 has error findings (REVENUE_COVERS_COST: $nerr)" test "${nerr:-0}" -gt 0
out=$("$PRODUCER" publish --period $PERIOD 2>&1 >/dev/null)
check_eq "publish with error findings exits 4" "$?" 4
check "the refusal gives the count ($out)" grep -q "has $nerr error finding" <<<"$out"
check_eq "nothing was published" "$(sql -c "SELECT count(*) FROM report_published")" 0
"$PRODUCER" publish --period $PERIOD --force >"$LOGS/publish.out" 2>&1
check_eq "publish --force exits 0" "$?" 0
check_eq "run 3 is the published report" "$(sql -c "SELECT run_id FROM report_published WHERE period_code = '$PERIOD'")" "$run3"

stop_consumers
finish
