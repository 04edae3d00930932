#!/usr/bin/env bash
# Reading a run's audit findings from the CLI: `findings` as a table, CSV and
# JSON, --severity and --run, the run chosen as `report` chooses it, its
# refusals (exit 4) and usage errors (exit 2); the findings section under the
# table report and in the HTML page (a count per rule, its first lines); and
# publish's refusal pointing at the findings command. On the demo period run
# by a consumer, with one audit rule that fails everywhere (error findings).
source "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
trap 'stop_consumers; rm -rf "$tmp"' EXIT

use_fresh_db t_findings
use_fresh_vhost t_findings
use_fresh_redis 2
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }
$GEN --demo --period 2024-03 >"$tmp/gen.log" 2>&1 || { not_ok "demo data" "$(tail -3 "$tmp/gen.log")"; finish; }
# an audit rule whose value is 0 everywhere: an error finding on every vector
sql -c "INSERT INTO audit_rule (ruleset, rule_code, expr, message, severity)
        VALUES ('demo', 'ALWAYS_BAD', '0', 'checked by t_findings', 'error')" >/dev/null

start_consumers 1
producer_do run --period 2024-03 --timeout 60
expect_exit "the demo run exits 0" 0
stop_consumers
n_err=$(sql -c "SELECT count(*) FROM audit_finding WHERE run_id = 1 AND severity = 'error'")
n_warn=$(sql -c "SELECT count(*) FROM audit_finding WHERE run_id = 1 AND severity = 'warning'")
check "the run has error findings ($n_err) and warnings ($n_warn)" test "$n_err" -gt 3 -a "$n_warn" -gt 0

# ---------------------------------------------------------------- findings: table
producer_do findings --period 2024-03
expect_exit "findings exits 0" 0
check_eq "the table's first line names the run, why it was chosen, and the counts" "$(head -n1 "$tmp/out")" \
    "findings of period 2024-03, run 1 (latest succeeded, not published): $n_err error, $n_warn warning"
check "the table counts each rule" grep -qE "^  error +ALWAYS_BAD +$n_err$" "$tmp/out"
check "the table counts the unallocated warnings" grep -qE "^  warning +unallocated +[0-9]+$" "$tmp/out"
check_eq "the table lists every finding, one line each" \
    "$(grep -cE '^(error|warning) ' "$tmp/out")" "$((n_err + n_warn))"
check "errors come before warnings" \
    bash -c "grep -nE '^(error|warning) ' '$tmp/out' | awk -F: '/warning/ {w=1} /error/ && w {bad=1} END {exit bad}'"
check "a finding line shows severity, rule, version, data source, project and message" \
    grep -qE '^error +ALWAYS_BAD +[FM] +[A-Z#]+ +[A-Z0-9#-]+ +checked by t_findings$' "$tmp/out"

# ---------------------------------------------------------------- csv, json, --severity, --run
producer_do findings --period 2024-03 --format csv
expect_exit "findings --format csv exits 0" 0
check_eq "csv header" "$(head -n1 "$tmp/out")" "version,data_source,project_code,rule_code,severity,message"
check_eq "csv has a row per finding" "$(($(wc -l <"$tmp/out") - 1))" "$((n_err + n_warn))"
check_eq "csv rows are the stored findings" \
    "$(tail -n +2 "$tmp/out" | sort | md5sum)" \
    "$(sql -c "SELECT version || ',' || data_source || ',' || project_code || ',' || rule_code || ',' || severity || ',' || message FROM audit_finding WHERE run_id = 1" | sort | md5sum)"
producer_do findings --period 2024-03 --format json --severity warning
expect_exit "findings --format json --severity warning exits 0" 0
check_eq "json: an array of the warnings with the six keys" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d), sorted(d[0]), {x["severity"] for x in d})' "$tmp/out")" \
    "$n_warn ['data_source', 'message', 'project_code', 'rule_code', 'severity', 'version'] {'warning'}"
producer_do findings --period 2024-03 --run 1 --severity error
expect_exit "findings --run 1 --severity error exits 0" 0
check "--run says the run was chosen with --run" grep -q "^findings of period 2024-03, run 1 (chosen with --run)" "$tmp/out"
check_eq "--severity error lists only errors" "$(grep -cE '^(error|warning) ' "$tmp/out")" "$n_err"

# ---------------------------------------------------------------- refusals and usage
producer_do period open 2024-04 --ruleset demo
producer_do findings --period 2024-04
expect_exit "findings of a period with no succeeded run exits 4" 4 "findings: period 2024-04 has no succeeded run"
producer_do findings --period 2030-01
expect_exit "findings of an unknown period exits 4" 4 "period 2030-01 does not exist"
producer_do findings --period 2024-03 --run 99
expect_exit "findings of an unknown run exits 4" 4 "run 99 does not exist"
producer_do findings --period 2024-03 --severity fatal
expect_exit "a bad --severity exits 2" 2 "bad severity 'fatal'"
producer_do findings --period 2024-03 --format xml
expect_exit "a bad --format exits 2" 2 "bad format 'xml'"
producer_do findings --severity error
expect_exit "findings without --period exits 2" 2 "--period is required"
producer_do findings --help
expect_exit "findings --help exits 0" 0
check "findings --help lists the exit codes" grep -q "^Exit status: 0 listed" "$tmp/out"

# ---------------------------------------------------------------- report: findings sections
producer_do report --period 2024-03
expect_exit "report (table) exits 0" 0
check "the table report ends with the findings counts" \
    grep -qx "findings: $n_err error, $n_warn warning (all of them: alloc-producer findings --period 2024-03 --run 1)" "$tmp/out"
check "the findings section counts each rule" grep -qx "  error   ALWAYS_BAD: $n_err findings" "$tmp/out"
check_eq "the section shows a rule's first 3 lines" \
    "$(sed -n '/^  error   ALWAYS_BAD/,/more$/p' "$tmp/out" | grep -c 'checked by t_findings$')" 3
check "then says how many more" grep -qx "          ... and $((n_err - 3)) more" "$tmp/out"
producer_do report --period 2024-03 --format html --out "$tmp/report.html"
expect_exit "report --format html exits 0" 0
check "the page has a findings section with the counts" \
    grep -q "<h2>Findings: $n_err error, $n_warn warning</h2>" "$tmp/report.html"
check "the page's findings list the rule, its count and first lines" \
    bash -c "grep -q '<th scope=\"row\">ALWAYS_BAD</th><td class=\"num\">$n_err</td>' '$tmp/report.html' &&
             grep -q 'checked by t_findings<br/>' '$tmp/report.html'"
check "the page is still well-formed XML" python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$tmp/report.html"

# ---------------------------------------------------------------- publish points at findings
producer_do publish --period 2024-03
expect_exit "publish with error findings exits 4" 4
check "the refusal says how to read them" \
    grep -q "review them (alloc-producer findings --period 2024-03 --run 1) or publish with --force" "$tmp/err"

finish
