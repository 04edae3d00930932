#!/usr/bin/env bash
# alloc-producer import: ledger rows (exact amounts, change_seq, quoted fields with
# commas and line breaks, CRLF and BOM), every kind of bad row (a data_source no
# project has among them) reported with its file line and column and nothing
# changed, closed and unknown periods, driver values replaced per driver, the
# salary / marketing / function templates with their mapping, constraints,
# pre_sql (idempotent re-import) and post_sql, a template given as a file,
# --dry-run, --help and usage errors.
source "$(dirname "$0")/lib.sh"

fx=$repo/tests/integration/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

use_fresh_db t_import
$PRODUCER migrate >/dev/null || { not_ok "migrate" "exit $?"; finish; }
# The demo world: projects HKG-01..05, MFM-01..04, TPE-01..03, 200 rows in 2024-03.
$GEN --demo --period 2024-03 >/dev/null 2>&1 || { not_ok "demo fixture" "alloc-gen failed"; finish; }
sql -c "INSERT INTO period (period_code, ruleset, status, closed_at) VALUES ('2024-02', 'demo', 'closed', now())" >/dev/null

# imp ARGS...: runs import, stdout in $tmp/out, stderr in $tmp/err; sets rc.
imp() {
    $PRODUCER import "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect_rc NAME WANT: checks the last imp's exit status (showing stderr when wrong).
expect_rc() {
    if [ "$rc" = "$2" ]; then ok "$1"; else not_ok "$1" "exit $rc, want $2: $(head -c 400 "$tmp/err")"; fi
}

# expect_err NAME LINE: the last imp's stderr holds LINE exactly.
expect_err() {
    if grep -qxF -- "$2" "$tmp/err"; then ok "$1"; else not_ok "$1" "no line '$2' in: $(head -c 600 "$tmp/err")"; fi
}

# A fingerprint of everything an import may change: ledger rows, driver values,
# the periods' change_seq.
state() {
    sql -c "SELECT md5(
        coalesce((SELECT string_agg(concat_ws('|', entry_id, period_code, company_code, data_source,
                    business_line, budget_item_code, account_code, project_code, category, amount),
                    E'\n' ORDER BY entry_id) FROM ledger_entry), '') ||
        coalesce((SELECT string_agg(concat_ws('|', period_code, driver, project_code, value), E'\n'
                    ORDER BY period_code, driver, project_code) FROM allocation_driver), '') ||
        (SELECT string_agg(period_code || ':' || change_seq, ',' ORDER BY period_code) FROM period))"
}

# expect_unchanged NAME BEFORE
expect_unchanged() { check_eq "$1" "$(state)" "$2"; }

# ---------------------------------------------------------------- usage
imp --help
expect_rc "import --help exits 0" 0
check "import --help describes the kinds and templates" grep -q -- "--template NAME" "$tmp/out"
imp
expect_rc "import without arguments exits 2" 2
imp --period 2024-03 --kind bogus --file "$fx/import_ledger.csv"
expect_rc "unknown --kind exits 2" 2
imp --period 2024-3 --kind ledger --file "$fx/import_ledger.csv"
expect_rc "bad --period exits 2" 2
imp --kind ledger --file "$fx/import_ledger.csv"
expect_rc "missing --period exits 2" 2
imp --period 2024-03 --kind ledger
expect_rc "missing --file exits 2" 2
imp --period 2024-03 --kind ledger --template salary --file "$fx/import_ledger.csv"
expect_rc "--kind with --template exits 2" 2
imp --period 2024-03 --kind ledger --file "$fx/import_ledger.csv" --colour
expect_rc "unknown argument exits 2" 2
imp --period 2024-03 --template ../salary --file "$fx/import_salary.csv"
expect_rc "a template name with a path exits 2" 2
imp --period 2024-03 --template payroll --file "$fx/import_salary.csv"
expect_rc "an unknown template exits 2" 2
check "an unknown template lists the known ones" grep -q "templates: function, marketing, salary" "$tmp/err"
imp --period 2024-03 --kind ruleset --file "$fx/ruleset_small.json"
expect_rc "--kind ruleset with --period exits 2" 2
imp --list-templates
expect_rc "--list-templates exits 0" 0
check "--list-templates lists salary, marketing and function" \
    bash -c "grep -q '^  salary ' '$tmp/out' && grep -q '^  marketing ' '$tmp/out' && grep -q '^  function ' '$tmp/out'"

# ---------------------------------------------------------------- a good ledger file
rows_before=$(sql -c "SELECT count(*) FROM ledger_entry WHERE period_code = '2024-03'")
seq_before=$(sql -c "SELECT change_seq FROM period WHERE period_code = '2024-03'")
max_id=$(sql -c "SELECT max(entry_id) FROM ledger_entry")
imp --period 2024-03 --kind ledger --file "$fx/import_ledger.csv"
expect_rc "ledger import exits 0" 0
check "ledger import reports the rows imported" grep -q "^imported 6 ledger rows for period 2024-03" "$tmp/out"
check_eq "ledger import adds exactly the file's rows" \
    "$(sql -c "SELECT count(*) FROM ledger_entry WHERE period_code = '2024-03'")" "$((rows_before + 6))"
check_eq "imported amounts sum to the cent" \
    "$(sql -c "SELECT sum(amount) FROM ledger_entry WHERE entry_id > $max_id")" "4989.42"
check_eq "imported rows keep the file's order, values and NULLs" \
    "$(sql -c "SELECT string_agg(concat_ws('|', period_code, company_code, data_source,
                coalesce(business_line, '~'), coalesce(budget_item_code, '~'),
                coalesce(account_code, '~'), coalesce(project_code, '~'), category, amount),
                ';' ORDER BY entry_id) FROM ledger_entry WHERE entry_id > $max_id")" \
    "2024-03|D100|HKG|residential|BI01011|6001.01|HKG-01|rent|1000.10;2024-03|D100|HKG|retail, ground
floor|BI01011|6001.01|HKG-02|rent|2500.25;2024-03|D100|HKG|~|BI04011|6601.01|~|salary|300.00;2024-03|D100|MFM|office|BI02011|6051.01|MFM-01|gl|-45.50;2024-03|D200|TPE|~|~|6052.01|TPE-01|gl|0.01;2024-03|D200|TPE|~|BI05011|~|~|marketing|1234.56"
check_eq "ledger import bumps change_seq by the rows added" \
    "$(sql -c "SELECT change_seq FROM period WHERE period_code = '2024-03'")" "$((seq_before + 6))"

# The same file with CRLF line ends and a byte order mark.
{ printf '\xEF\xBB\xBF'; sed 's/$/\r/' "$fx/import_ledger.csv"; } >"$tmp/ledger_crlf_bom.csv"
max_id=$(sql -c "SELECT max(entry_id) FROM ledger_entry")
imp --period 2024-03 --kind ledger --file "$tmp/ledger_crlf_bom.csv"
expect_rc "ledger import with CRLF and a BOM exits 0" 0
check_eq "CRLF and BOM: the same rows (a CRLF inside quotes is kept)" \
    "$(sql -c "SELECT count(*), sum(amount), count(*) FILTER (WHERE business_line = E'retail, ground\r\nfloor')
               FROM ledger_entry WHERE entry_id > $max_id")" "6|4989.42|1"

# --dry-run validates and changes nothing.
before=$(state)
imp --period 2024-03 --kind ledger --file "$fx/import_ledger.csv" --dry-run
expect_rc "--dry-run exits 0" 0
check "--dry-run says nothing changed" grep -q "^dry run: 6 ledger rows .*nothing changed" "$tmp/out"
expect_unchanged "--dry-run changes nothing" "$before"

# Standard input.
max_id=$(sql -c "SELECT max(entry_id) FROM ledger_entry")
$PRODUCER import --period 2024-03 --kind ledger --file - <"$fx/import_ledger.csv" >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_rc "--file - reads standard input" 0
check_eq "standard input: 6 rows" "$(sql -c "SELECT count(*) FROM ledger_entry WHERE entry_id > $max_id")" 6

# ---------------------------------------------------------------- bad ledger files
f=$fx/import_ledger_bad.csv
before=$(state)
imp --period 2024-03 --kind ledger --file "$f"
expect_rc "bad ledger rows exit 3" 3
expect_unchanged "bad ledger rows: nothing changed" "$before"
expect_err "bad amount: more than 2 decimals" "$f:4: column amount: \"12.345\" has more than 2 decimals"
expect_err "bad amount: not a number" "$f:5: column amount: \"abc\" is not a number"
expect_err "bad period_code format" "$f:6: column period_code: \"2024-13\" is not a period (YYYY-MM)"
expect_err "period_code of another period" \
    "$f:7: column period_code: \"2024-04\" is not the period being imported (2024-03)"
expect_err "unknown project" "$f:8: column project_code: \"NOPE-99\" is not a known project"
expect_err "empty required value" "$f:9: column company_code: is empty: a value is required"
expect_err "a row with a missing field" \
    "$f:10: has 8 fields, the header has 9 (a missing or extra separator, or an unquoted separator inside a value?)"
expect_err "an amount too large for numeric(18,2)" \
    "$f:11: column amount: \"99999999999999999.00\" is too large for numeric(18,2)"
check "the quoted field with a comma, quotes and a line break is read (no error on lines 2-3, 12)" \
    bash -c "! grep -qE ':(2|3|12): ' '$tmp/err'"
expect_err "the summary counts the errors" "alloc-producer: import: $f: 8 errors; nothing imported"

f=$fx/import_ledger_unknown_column.csv
imp --period 2024-03 --kind ledger --file "$f"
expect_rc "an unknown column exits 3" 3
check "an unknown column is named with line 1" grep -q "^$f:1: column colour: unknown column" "$tmp/err"
f=$fx/import_ledger_missing_column.csv
imp --period 2024-03 --kind ledger --file "$f"
expect_rc "a missing column exits 3" 3
expect_err "a missing column is named with line 1" "$f:1: column amount: missing from the header (required)"

printf 'company_code,data_source,budget_item_code,account_code,project_code,category,amount\nD100,HKG,BI01011,6001.01,HKG-01,rent,1.00\nD100,"HKG,BI01011,6001.01,HKG-01,rent,1.00\nD100,HKG,BI01011,6001.01,HKG-01,rent,1.00\n' >"$tmp/unterminated.csv"
imp --period 2024-03 --kind ledger --file "$tmp/unterminated.csv"
expect_rc "an unterminated quote exits 3" 3
expect_err "an unterminated quote names the line it opened on" \
    "$tmp/unterminated.csv:3: field 2: unterminated quoted field (the quote opened on line 3 is never closed)"

head -c 3000 "$repo/common/csv.c" | tr 'a-e' '\000-\004' >"$tmp/garbage.csv"
printf 'amount\n\xff\xfe"x"y,\n' >>"$tmp/garbage.csv"
imp --period 2024-03 --kind ledger --file "$tmp/garbage.csv"
expect_rc "a binary file exits 3 (no crash)" 3
: >"$tmp/empty.csv"
imp --period 2024-03 --kind ledger --file "$tmp/empty.csv"
expect_rc "an empty file exits 3" 3
imp --period 2024-03 --kind ledger --file "$tmp/does-not-exist.csv"
expect_rc "a missing file is a usage error: exit 2" 2
expect_err "the missing file is named with the alloc-producer prefix" \
    "alloc-producer: import: cannot open $tmp/does-not-exist.csv: No such file or directory"

# Trailing separators (a spreadsheet's empty last column) are fine while empty.
printf 'driver,project_code,value,\nheadcount,HKG-01,1,\nheadcount,HKG-02,2,x\n' >"$tmp/trailing.csv"
imp --period 2024-03 --kind drivers --file "$tmp/trailing.csv"
expect_rc "a value under an unnamed header column exits 3" 3
expect_err "a value under an unnamed header column names the field" \
    "$tmp/trailing.csv:3: field 4 has a value, but the header gives its column no name"
head -n 2 "$tmp/trailing.csv" >"$tmp/trailing_ok.csv"
imp --period 2024-03 --kind drivers --file "$tmp/trailing_ok.csv" --dry-run
expect_rc "an empty unnamed last column is accepted" 0

# Many bad rows: the first 100 shown in line order, the rest counted.
{ echo "company_code,data_source,budget_item_code,account_code,project_code,category,amount"
  for i in $(seq 1 150); do echo "D100,HKG,BI01011,6001.01,HKG-01,rent,1.$i$i$i"; done; } >"$tmp/many.csv"
imp --period 2024-03 --kind ledger --file "$tmp/many.csv"
expect_rc "150 bad rows exit 3" 3
check_eq "150 bad rows: 100 shown, then a count" \
    "$(grep -c "^$tmp/many.csv:[0-9]*: column amount" "$tmp/err"):$(head -n 1 "$tmp/err" | cut -d: -f2):$(grep -c '... and 50 more errors' "$tmp/err")" \
    "100:2:1"

# ---------------------------------------------------------------- unknown data sources
# A data_source no project has would show up as <source>/#UNALLOCATED in every
# run: refused (DESIGN.md section 4), every such line named, --dry-run alike.
f=$fx/import_ledger_unknown_source.csv
rows_before=$(sql -c "SELECT count(*) FROM ledger_entry")
before=$(state)
for dry in "" --dry-run; do
    imp --period 2024-03 --kind ledger --file "$f" $dry
    expect_rc "unknown data sources${dry:+ ($dry)} exit 3" 3
    expect_err "unknown data source ZZZ on line 3${dry:+ ($dry)}" \
        "$f:3: column data_source: \"ZZZ\" is not a known data source (no project has it)"
    expect_err "unknown data source ZZZ on line 5${dry:+ ($dry)}" \
        "$f:5: column data_source: \"ZZZ\" is not a known data source (no project has it)"
    expect_err "data sources are matched exactly: Tpe is not TPE${dry:+ ($dry)}" \
        "$f:6: column data_source: \"Tpe\" is not a known data source (no project has it)"
    expect_err "unknown data sources: the summary counts them${dry:+ ($dry)}" \
        "alloc-producer: import: $f: 3 errors; nothing imported"
    check "unknown data sources: the good lines are not reported${dry:+ ($dry)}" \
        bash -c "! grep -qE ':(2|4): ' '$tmp/err'"
done
check_eq "unknown data sources: ledger_entry row count unchanged" \
    "$(sql -c "SELECT count(*) FROM ledger_entry")" "$rows_before"
expect_unchanged "unknown data sources: nothing changed" "$before"

# ---------------------------------------------------------------- period state
before=$(state)
imp --period 2024-02 --kind ledger --file "$fx/import_ledger.csv"
expect_rc "a closed period exits 4" 4
check "a closed period is named" grep -q "period 2024-02 is closed" "$tmp/err"
imp --period 2030-01 --kind ledger --file "$fx/import_ledger.csv"
expect_rc "an unknown period exits 4" 4
imp --period 2024-02 --template salary --file "$fx/import_salary.csv"
expect_rc "a template import into a closed period exits 4" 4
imp --period 2024-02 --kind drivers --file "$fx/import_drivers.csv"
expect_rc "a drivers import into a closed period exits 4" 4
expect_unchanged "refused periods: nothing changed" "$before"

# ---------------------------------------------------------------- drivers
imp --period 2024-03 --kind drivers --file "$fx/import_drivers.csv"
expect_rc "drivers import exits 0" 0
check "drivers import says which drivers it replaced" \
    grep -q "^imported 5 driver values .*drivers desks, headcount replaced (12 earlier values deleted)" "$tmp/out"
check_eq "drivers in the file get exactly the file's values" \
    "$(sql -c "SELECT string_agg(driver || ':' || project_code || '=' || value, ' ' ORDER BY driver, project_code)
               FROM allocation_driver WHERE period_code = '2024-03' AND driver IN ('headcount', 'desks')")" \
    "desks:HKG-01=40.123456 desks:TPE-03=3.000000 headcount:HKG-01=12.000000 headcount:HKG-02=7.500000 headcount:MFM-01=0.000000"
check_eq "drivers not in the file keep their values" \
    "$(sql -c "SELECT count(*) FROM allocation_driver WHERE period_code = '2024-03' AND driver IN ('area', 'revenue', 'contracts')")" 36

f=$fx/import_drivers_bad.csv
before=$(state)
imp --period 2024-03 --kind drivers --file "$f"
expect_rc "bad driver values exit 3" 3
expect_unchanged "bad driver values: nothing changed" "$before"
expect_err "a negative driver value" "$f:2: column value: \"-1\" is less than the minimum 0"
expect_err "a driver value with 7 decimals" "$f:3: column value: \"1.1234567\" has more than 6 decimals"
expect_err "a driver value of an unknown project" "$f:4: column project_code: \"NOPE-1\" is not a known project"
expect_err "values for the equal driver" \
    "$f:5: column driver: \"equal\" is the built-in driver of equal weights: it takes no values"
expect_err "a repeated driver and project" \
    "$f:7: column project_code: \"HKG-03\" repeats line 6 (the same driver, project_code)"

# ---------------------------------------------------------------- templates
others() { # the rows of categories other than $1, fingerprinted
    sql -c "SELECT count(*) || ':' || md5(string_agg(entry_id::text || amount, ',' ORDER BY entry_id))
            FROM ledger_entry WHERE category <> '$1'"
}
rows_of() { # CATEGORY: count|sum|pending|data sources, in entry order
    sql -c "SELECT count(*) || '|' || sum(amount) || '|' || count(*) FILTER (WHERE project_code IS NULL)
                   || '|' || string_agg(DISTINCT data_source, ',')
            FROM ledger_entry WHERE period_code = '2024-03' AND category = '$1'"
}

o=$(others salary)
imp --period 2024-03 --template salary --file "$fx/import_salary.csv"
expect_rc "salary template import exits 0" 0
check "salary: pre_sql reports what it deleted" grep -q "^template salary: pre_sql\[0\]: DELETE [0-9]" "$tmp/out"
check_eq "salary: the file's rows with category salary, old salary rows replaced" \
    "$(rows_of salary)" "5|122821.84|1|HKG,MFM,TPE"
check_eq "salary: the mapping renames the columns" \
    "$(sql -c "SELECT string_agg(concat_ws('|', company_code, data_source, coalesce(project_code, '~'),
                    budget_item_code, account_code, amount), ';' ORDER BY entry_id)
               FROM ledger_entry WHERE period_code = '2024-03' AND category = 'salary'")" \
    "D100|HKG|HKG-01|BI04011|6601.01|52000.00;D100|HKG|HKG-01|BI04011|6601.01|8000.50;D100|HKG|~|BI04011|6601.01|31000.00;D100|MFM|MFM-01|BI04011|6601.01|4321.09;D200|TPE|TPE-02|BI04011|6601.01|27500.25"
check_eq "salary: other categories untouched" "$(others salary)" "$o"
seq1=$(sql -c "SELECT change_seq FROM period WHERE period_code = '2024-03'")
imp --period 2024-03 --template salary --file "$fx/import_salary.csv"
expect_rc "salary re-import exits 0" 0
check "salary re-import: pre_sql deletes the first import's 5 rows" \
    grep -q "^template salary: pre_sql\[0\]: DELETE 5$" "$tmp/out"
check_eq "salary re-import is idempotent" "$(rows_of salary)" "5|122821.84|1|HKG,MFM,TPE"
check_eq "salary re-import bumps change_seq (5 deleted + 5 inserted)" \
    "$(sql -c "SELECT change_seq FROM period WHERE period_code = '2024-03'")" "$((seq1 + 10))"

f=$fx/import_salary_bad.csv
before=$(state)
imp --period 2024-03 --template salary --file "$f"
expect_rc "salary constraint violations exit 3" 3
expect_unchanged "salary constraint violations: nothing changed (pre_sql rolled back)" "$before"
expect_err "allowed values: the line and the column header are named" \
    "$f:3: column Pay component: \"commission\" is not one of: base, bonus, overtime, social_insurance, housing_fund"
expect_err "numeric range" "$f:4: column Amount: \"-31000.00\" is less than the minimum 0"
expect_err "pattern" "$f:5: column Budget item: \"4011\" does not match the pattern ^BI[0-9]{5}\$"
sed '4s/^D100,HKG,/D100,ZZZ,/' "$fx/import_salary.csv" >"$tmp/salary_unknown_city.csv"
rows_before=$(sql -c "SELECT count(*) FROM ledger_entry")
imp --period 2024-03 --template salary --file "$tmp/salary_unknown_city.csv"
expect_rc "salary: a city that is no project's data source exits 3" 3
expect_err "salary: the unknown city is named with its line and the file's header" \
    "$tmp/salary_unknown_city.csv:4: column City: \"ZZZ\" is not a known data source (no project has it)"
check_eq "salary: unknown city: ledger_entry row count unchanged (pre_sql rolled back)" \
    "$(sql -c "SELECT count(*) FROM ledger_entry")" "$rows_before"
expect_unchanged "salary: unknown city: nothing changed" "$before"
imp --period 2024-03 --template salary --file "$tmp/salary_unknown_city.csv" --dry-run
expect_rc "salary: an unknown city with --dry-run exits 3 too" 3
f=$fx/import_salary_wrong_city.csv
imp --period 2024-03 --template salary --file "$f"
expect_rc "a post_sql check that returns rows exits 3" 3
expect_err "post_sql names the line" "$f:3: template salary: post_sql[0]: cost center HKG-02 belongs to city HKG, not MFM"
expect_unchanged "post_sql refusal: nothing changed" "$before"

o=$(others marketing)
imp --period 2024-03 --template marketing --file "$fx/import_marketing.csv"
expect_rc "marketing template import (BOM, extra column) exits 0" 0
check_eq "marketing: spend as amount, category marketing, no business line" \
    "$(rows_of marketing)|$(sql -c "SELECT count(*) FROM ledger_entry WHERE category = 'marketing' AND business_line IS NOT NULL")" \
    "5|48301.00|1|HKG,MFM,TPE|0"
check_eq "marketing: other categories untouched" "$(others marketing)" "$o"
sed 's/^Metro posters,outdoor,D200,TPE,TPE-01/Spring launch,online,D200,TPE,HKG-02/' "$fx/import_marketing.csv" >"$tmp/marketing_dup.csv"
imp --period 2024-03 --template marketing --file "$tmp/marketing_dup.csv"
expect_rc "marketing: a repeated campaign and project exits 3" 3
expect_err "marketing: the unique key names both lines" \
    "$tmp/marketing_dup.csv:6: column Project: \"HKG-02\" repeats line 3 (the same Campaign, Project)"

imp --period 2024-03 --template function --file "$fx/import_function.csv"
expect_rc "function template import exits 0" 0
check_eq "function: all pending, city upper-cased by the SQL mapping" \
    "$(rows_of function)" "4|35045.67|4|HKG,MFM,TPE"
sed '2s/,hkg,/,zzz,/' "$fx/import_function.csv" >"$tmp/function_unknown_city.csv"
before=$(state)
imp --period 2024-03 --template function --file "$tmp/function_unknown_city.csv"
expect_rc "function: a city that is no project's data source exits 3" 3
expect_err "function: the mapped data source is checked and shown as mapped" \
    "$tmp/function_unknown_city.csv:2: column data_source (template mapping): \"ZZZ\" is not a known data source (no project has it)"
expect_unchanged "function: unknown city: nothing changed" "$before"

# ---------------------------------------------------------------- --template-file
cat >"$tmp/staff.json" <<'EOF'
{"name": "staff", "description": "store staff counts as the headcount driver",
 "target": "allocation_driver", "delimiter": ";",
 "columns": [{"name": "store", "header": "Store", "required": true, "non_empty": true},
             {"name": "staff", "header": "Staff", "type": "integer", "required": true, "min": 0}],
 "mapping": {"driver": {"const": "headcount"}, "project_code": "store",
             "value": {"sql": "coalesce(staff, 0)"}},
 "unique": [["store"]]}
EOF
printf 'Store;Staff\nHKG-01;3\nHKG-02;\n' >"$tmp/staff.csv"
imp --period 2024-03 --template-file "$tmp/staff.json" --file "$tmp/staff.csv"
expect_rc "--template-file into allocation_driver exits 0" 0
check_eq "--template-file: constants and SQL expressions mapped" \
    "$(sql -c "SELECT string_agg(project_code || '=' || value, ' ' ORDER BY project_code)
               FROM allocation_driver WHERE period_code = '2024-03' AND driver = 'headcount'")" \
    "HKG-01=3.000000 HKG-02=0.000000"
printf '{"name": "x", "columns": [{"name": "a", "requred": true}], "mapping": {"amount": "a", "colour": "a"},\n "pre_sql": "DELETE FROM ledger_entry WHERE period_code = :period AND category = :cat"}\n' >"$tmp/bad.json"
imp --period 2024-03 --template-file "$tmp/bad.json" --file "$fx/import_ledger.csv"
expect_rc "an invalid template exits 3" 3
expect_err "an invalid template: unknown key" "$tmp/bad.json: columns[0]: unknown key \"requred\""
expect_err "an invalid template: unknown target column" "$tmp/bad.json: mapping: colour is not an importable column of ledger_entry"
expect_err "an invalid template: type mismatch" \
    "$tmp/bad.json: mapping: amount: column a is of type text; ledger_entry.amount needs amount, integer, or number with at most 2 decimals"
expect_err "an invalid template: unmapped NOT NULL column" "$tmp/bad.json: mapping: category is required (ledger_entry.category is NOT NULL)"
expect_err "an invalid template: unknown SQL parameter" "$tmp/bad.json: pre_sql[0]: unknown parameter :cat (only :period is known)"
printf '{"name": "x",' >"$tmp/broken.json"
imp --period 2024-03 --template-file "$tmp/broken.json" --file "$fx/import_ledger.csv"
expect_rc "a template that is not JSON exits 3" 3
check "a template that is not JSON: line and column" grep -q "^$tmp/broken.json: line 1, column" "$tmp/err"

finish
