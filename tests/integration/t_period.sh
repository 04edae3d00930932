#!/usr/bin/env bash
# The monthly workflow from an empty database with the CLI alone (no alloc-gen,
# no SQL): migrate, import a ruleset, `period open`, `import --kind projects`,
# ledger rows and drivers, run, report. Then `period open` refusals (an existing
# period, an unknown ruleset: exit 4; bad arguments: exit 2), `period list`
# (text and JSON), and the projects import: upsert (new, changed, unchanged, a
# column left out keeps its value), every bad row named with its line and
# nothing changed, --dry-run, and a data source or company that may change only
# while every period the project is in is open.
source "$(dirname "$0")/lib.sh"

fx=$repo/tests/integration/fixtures
tmp=$(mktemp -d)
consumer_pid=""
cleanup() {
    [ -n "$consumer_pid" ] && { kill -TERM "$consumer_pid" 2>/dev/null; wait "$consumer_pid" 2>/dev/null; }
    rm -rf "$tmp"
}
trap cleanup EXIT

use_fresh_db t_period
use_fresh_vhost t_period
use_fresh_redis 0
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }

# expect_err NAME LINE: the last producer_do's stderr holds LINE exactly.
expect_err() {
    if grep -qxF -- "$2" "$tmp/err"; then ok "$1"; else not_ok "$1" "no line '$2' in: $(head -c 600 "$tmp/err")"; fi
}
projects() { sql -c "SELECT string_agg(concat_ws('|', project_code, company_code, data_source,
    coalesce(business_line, '~'), active), ';' ORDER BY project_code) FROM project"; }

# ---------------------------------------------------------------- the workflow, CLI only
producer_do period list
expect_exit "period list on an empty database exits 0" 0
check "period list says there are none and how to open one" grep -q "period open P --ruleset R" "$tmp/out"
producer_do period open 2026-10 --ruleset small
expect_exit "period open with an unknown ruleset exits 4" 4 "ruleset small is unknown"
check_eq "a refused period open creates nothing" "$(sql -c "SELECT count(*) FROM period")" 0

producer_do import --kind ruleset --file "$fx/ruleset_small.json"
expect_exit "import of the ruleset exits 0" 0
producer_do period open 2026-10 --ruleset small
expect_exit "period open exits 0" 0
check "period open says what it opened" grep -q "^period 2026-10 opened with ruleset small (8 report items)" "$tmp/out"
check_eq "the period is open, bound to the ruleset, with no changes" \
    "$(sql -c "SELECT concat_ws('|', ruleset, status, change_seq, coalesce(closed_at::text, '~')) FROM period WHERE period_code = '2026-10'")" \
    "small|open|0|~"

cat >"$tmp/projects.csv" <<'EOF'
project_code,company_code,data_source,business_line,active
SHA-01,C1,SHA,office,true
SHA-02,C1,SHA,retail,
SHA-03,C2,SHA,,no
BJS-01,C2,BJS,"office, tower",1
EOF
producer_do import --kind projects --file "$tmp/projects.csv"
expect_exit "import --kind projects exits 0" 0
check "the projects import sums up new, changed and unchanged" \
    grep -q "^imported 4 projects from $tmp/projects.csv: 4 new, 0 changed, 0 unchanged" "$tmp/out"
check_eq "projects are stored with their values (empty active: active; 'no': inactive)" "$(projects)" \
    "BJS-01|C2|BJS|office, tower|t;SHA-01|C1|SHA|office|t;SHA-02|C1|SHA|retail|t;SHA-03|C2|SHA|~|f"

cat >"$tmp/ledger.csv" <<'EOF'
company_code,data_source,budget_item_code,account_code,project_code,category,amount
C1,SHA,,6001,SHA-01,rent,1000.00
C1,SHA,,6001,SHA-02,rent,500.00
C1,SHA,,6601,,salary,300.00
C2,BJS,,6001,BJS-01,rent,800.00
C2,BJS,,6601,,salary,90.01
EOF
cat >"$tmp/drivers.csv" <<'EOF'
driver,project_code,value
headcount,SHA-01,2
headcount,SHA-02,1
headcount,BJS-01,5
EOF
producer_do import --period 2026-10 --kind ledger --file "$tmp/ledger.csv"
expect_exit "ledger import into the opened period exits 0" 0
producer_do import --period 2026-10 --kind drivers --file "$tmp/drivers.csv"
expect_exit "drivers import into the opened period exits 0" 0

start_consumers 1
producer_do run --period 2026-10 --timeout 60
expect_exit "run of the period built with the CLI alone exits 0" 0
stop_consumers
producer_do report --period 2026-10 --version M --format csv
check_eq "the run allocated the pending salary by headcount (SHA-01 gets 2/3 of 300.00)" \
    "$(grep '^M,SHA,SHA-01,STAFF,' "$tmp/out")" "M,SHA,SHA-01,STAFF,200.00"
check_eq "every pending cent is allocated (#ALL STAFF = 390.01)" \
    "$(grep '^M,#ALL,#TOTAL,STAFF,' "$tmp/out")" "M,#ALL,#TOTAL,STAFF,390.01"

# ---------------------------------------------------------------- period open: refusals and usage
producer_do period open 2026-10 --ruleset small
expect_exit "period open of an existing period exits 4" 4
expect_err "the refusal names the period, its status and ruleset" \
    "alloc-producer: period: period 2026-10 exists already (open, ruleset small)"
producer_do period open 2026-13 --ruleset small
expect_exit "period open with a bad period exits 2" 2 "bad period '2026-13'"
producer_do period open 2026-11
expect_exit "period open without --ruleset exits 2" 2 "--ruleset is required"
producer_do period open --ruleset small
expect_exit "period open without P exits 2" 2 "the period P is required"
producer_do period close 2026-10
expect_exit "an unknown period subcommand exits 2" 2 "unknown subcommand 'close'"
producer_do period
expect_exit "period without a subcommand exits 2" 2
producer_do period list --bogus
expect_exit "period list with an unknown argument exits 2" 2 "unknown argument '--bogus'"
producer_do period --help
expect_exit "period --help exits 0" 0
check "period --help lists the exit codes" grep -q "^Exit status: 0 done, 2 bad arguments, 4 refused" "$tmp/out"

# ---------------------------------------------------------------- period list
producer_do period open 2026-11 --ruleset small
sql -c "UPDATE period SET status = 'closed', closed_at = now() WHERE period_code = '2026-11'" >/dev/null
producer_do period list
expect_exit "period list exits 0" 0
check_eq "period list shows the periods newest first" "$(awk 'NR > 1 {print $1}' "$tmp/out" | tr '\n' ' ')" "2026-11 2026-10 "
check "period list shows status, ruleset, changes and the latest run" \
    grep -qE '^2026-10 +open +small +5 +- +1 \(succeeded\) +-$' "$tmp/out"
check "period list shows a closed period" grep -qE '^2026-11 +closed +small ' "$tmp/out"
producer_do period list --json
check_eq "period list --json has the keys and values" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=[x for x in d if x["period_code"]=="2026-10"][0]; print(sorted(r), r["ruleset"], r["status"], r["change_seq"], r["latest_run"], r["latest_run_status"], r["published_run"], r["closed_at"])' "$tmp/out")" \
    "['change_seq', 'closed_at', 'latest_run', 'latest_run_status', 'period_code', 'published_run', 'ruleset', 'status'] small open 5 1 succeeded None None"

# ---------------------------------------------------------------- projects: upsert
before=$(projects)
cat >"$tmp/upsert.csv" <<'EOF'
project_code,company_code,data_source
SHA-01,C1,SHA
SHA-02,C9,SHA
NEW-01,C3,CAN
EOF
producer_do import --kind projects --file "$tmp/upsert.csv" --dry-run
expect_exit "projects --dry-run exits 0" 0
check "projects --dry-run says nothing changed" grep -q "^dry run: 3 projects .*1 new, 1 changed, 1 unchanged; nothing changed" "$tmp/out"
check_eq "projects --dry-run changes nothing" "$(projects)" "$before"
producer_do import --kind projects --file "$tmp/upsert.csv"
expect_exit "projects upsert exits 0" 0
check "the upsert counts new, changed and unchanged" grep -q "3 projects from .*: 1 new, 1 changed, 1 unchanged" "$tmp/out"
check_eq "columns left out (business_line, active) keep their values; a new project is active" "$(projects)" \
    "BJS-01|C2|BJS|office, tower|t;NEW-01|C3|CAN|~|t;SHA-01|C1|SHA|office|t;SHA-02|C9|SHA|retail|t;SHA-03|C2|SHA|~|f"

# ---------------------------------------------------------------- projects: bad rows
before=$(projects)
cat >"$tmp/bad.csv" <<'EOF'
project_code,company_code,data_source,active
#POOL,C1,SHA,
SHA-09,,SHA,
SHA-10,C1,#ALL,
SHA-11,C1,SHA,maybe
SHA-11,C1,SHA,yes
EOF
producer_do import --kind projects --file "$tmp/bad.csv"
expect_exit "projects with bad rows exit 3" 3
expect_err "a reserved project code is named with its line" \
    "$tmp/bad.csv:2: column project_code: \"#POOL\" starts with # (such codes are reserved)"
expect_err "an empty company is named with its line" "$tmp/bad.csv:3: column company_code: is empty: a value is required"
expect_err "a reserved data source is named with its line" \
    "$tmp/bad.csv:4: column data_source: \"#ALL\" starts with # (such codes are reserved)"
expect_err "a value of active that is not a boolean is named" \
    "$tmp/bad.csv:5: column active: \"maybe\" is not true or false (or yes, no, 1, 0)"
expect_err "a repeated project code is named" "$tmp/bad.csv:6: column project_code: \"SHA-11\" repeats line 5 (the same project_code)"
expect_err "the summary says nothing was imported" "alloc-producer: import: $tmp/bad.csv: 5 errors; nothing imported"
check_eq "a refused projects file changes nothing" "$(projects)" "$before"
printf 'project_code,data_source\nX-1,SHA\n' >"$tmp/missing_col.csv"
producer_do import --kind projects --file "$tmp/missing_col.csv"
expect_exit "a projects file without company_code exits 3" 3 "column company_code: missing from the header"

# ---------------------------------------------------------------- projects: closed periods
# SHA-01 has ledger rows in 2026-10; NEW-01 only driver values in 2026-11 (closed).
sql -c "INSERT INTO allocation_driver VALUES ('2026-11', 'headcount', 'NEW-01', 1)" >/dev/null
producer_do close-period --period 2026-10 --force
expect_exit "close-period 2026-10 exits 0" 0
before=$(projects)
cat >"$tmp/move.csv" <<'EOF'
project_code,company_code,data_source
SHA-01,C1,BJS
NEW-01,C7,CAN
SHA-03,C2,CAN
EOF
producer_do import --kind projects --file "$tmp/move.csv"
expect_exit "moving projects of closed periods exits 3" 3
expect_err "a data source change of a project with ledger rows in a closed period is refused" \
    "$tmp/move.csv:2: column data_source: \"BJS\" changes the data source of project SHA-01 (now SHA), which has ledger rows or driver values in closed period 2026-10: a project's data source and company change only while its periods are open"
expect_err "a company change of a project with driver values in a closed period is refused" \
    "$tmp/move.csv:3: column company_code: \"C7\" changes the company of project NEW-01 (now C3), which has ledger rows or driver values in closed period 2026-11: a project's data source and company change only while its periods are open"
check "a project with no rows in a closed period is not refused" bash -c "! grep -q 'move.csv:4' '$tmp/err'"
check_eq "the refused move changes nothing" "$(projects)" "$before"
printf 'project_code,company_code,data_source,business_line,active\nSHA-01,C1,SHA,kiosk,false\nSHA-03,C2,CAN,,\n' >"$tmp/other.csv"
producer_do import --kind projects --file "$tmp/other.csv"
expect_exit "other changes of a project of a closed period, and a move of one without, exit 0" 0
check_eq "business line and active may change; SHA-03 moved" \
    "$(sql -c "SELECT string_agg(concat_ws('|', project_code, data_source, coalesce(business_line, '~'), active), ';' ORDER BY project_code) FROM project WHERE project_code IN ('SHA-01', 'SHA-03')")" \
    "SHA-01|SHA|kiosk|f;SHA-03|CAN|~|f"

# ---------------------------------------------------------------- projects: usage
producer_do import --kind projects --period 2026-10 --file "$tmp/projects.csv"
expect_exit "import --kind projects with --period exits 2" 2 "--period does not apply to --kind projects"
producer_do import --kind projects --file "$tmp/no-such.csv"
expect_exit "import --kind projects of a missing file exits 2" 2
expect_err "the missing file is named with the alloc-producer prefix" \
    "alloc-producer: import: cannot open $tmp/no-such.csv: No such file or directory"

finish
