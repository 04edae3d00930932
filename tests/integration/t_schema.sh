#!/usr/bin/env bash
# `alloc-producer migrate` and the database contract of DESIGN.md section 3: the
# tables, columns and view exist; migrate is idempotent and safe to run twice at
# once; the ledger_entry triggers refuse changes to closed periods and count
# changes to open ones; one running run per period; report_current.
source "$(dirname "$0")/lib.sh"

admin_dsn=$ALLOC_PG_DSN
use_fresh_db t_schema
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- migrate ----------------------------------------------------------------

"$PRODUCER" migrate >"$tmp/out1" 2>"$tmp/err1"
check_eq "migrate on an empty database exits 0" "$?" 0
if grep -q '^applied migration 001_init$' "$tmp/out1"; then
    ok "migrate names the migrations it applies"
else
    not_ok "migrate names the migrations it applies" "output: $(tr '\n' '|' <"$tmp/out1")"
fi
last=$(ls "$repo"/schemas/[0-9]*.sql | sort | tail -n 1)
last=$(basename "$last")
last=$((10#${last%%_*}))
check_eq "migrate ends with the schema version" "$(tail -n 1 "$tmp/out1")" \
    "schema up to date (version $last)"
n_files=$(ls "$repo"/schemas/[0-9]*.sql | wc -l)
check_eq "every migration is recorded once" \
    "$(sql -c "SELECT count(*) || '/' || count(DISTINCT version) FROM schema_migration")" \
    "$n_files/$n_files"

# Every table of the contract with every column it names.
contract=(
    "period:period_code ruleset status change_seq closed_at"
    "project:project_code company_code data_source business_line active"
    "ledger_entry:entry_id period_code company_code data_source business_line budget_item_code account_code project_code category amount posted_at"
    "report_item:ruleset item_code name kind formula sort_order updated_at"
    "binding_rule:ruleset match_kind match_code item_code updated_at"
    "allocation_rule:ruleset version item_code driver scope updated_at"
    "allocation_driver:period_code driver project_code value"
    "report_version:version name include_categories"
    "audit_rule:ruleset rule_code expr message severity updated_at"
    "alloc_run:run_id period_code ruleset ruleset_stamp status change_seq rows_pending rows_direct amount_pending amount_direct started_at finished_at error stage detail expected_batches heartbeat_at"
    "report_before:run_id version data_source project_code item_code amount"
    "report_after:run_id version data_source project_code item_code amount"
    "alloc_detail:run_id version entry_id project_code amount"
    "audit_finding:run_id version data_source project_code rule_code severity message"
    "report_published:period_code run_id published_at"
    "run_log:run_id at event detail"
    "schema_migration:version name applied_at"
    "batch_marker:run_id stage batch_id consumer rows done_at"
    "alloc_partial:run_id version data_source project_code item_code cents"
    "export_task:task_id period_code version detail format status path row_count sha256 error created_at started_at finished_at"
)
for entry in "${contract[@]}"; do
    table=${entry%%:*}
    kind=$(sql -c "SELECT table_type FROM information_schema.tables
                   WHERE table_schema = 'public' AND table_name = '$table'")
    if [ "$kind" != "BASE TABLE" ]; then
        not_ok "table $table exists" "information_schema says '$kind'"
        continue
    fi
    missing=$(sql -c "SELECT string_agg(c, ' ') FROM unnest(string_to_array('${entry#*:}', ' ')) c
                      WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns
                                        WHERE table_schema = 'public' AND table_name = '$table'
                                          AND column_name = c)")
    if [ -z "$missing" ]; then ok "table $table has its columns"; else not_ok "table $table has its columns" "missing:$missing"; fi
done
check_eq "report_current is a view" \
    "$(sql -c "SELECT table_type FROM information_schema.tables WHERE table_name = 'report_current'")" "VIEW"
check_eq "report_current has period_code and the report_after columns" \
    "$(sql -c "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns
               WHERE table_name = 'report_current'")" \
    "amount,data_source,item_code,period_code,project_code,run_id,version"

# Types the contract fixes.
coltype() { # table column -> data_type[(precision,scale)] nullable
    sql -c "SELECT data_type
                   || CASE WHEN data_type = 'numeric' THEN '(' || numeric_precision || ',' || numeric_scale || ')' ELSE '' END
                   || ' ' || is_nullable
            FROM information_schema.columns WHERE table_name = '$1' AND column_name = '$2'"
}
check_eq "ledger_entry.amount is numeric(18,2) NOT NULL" "$(coltype ledger_entry amount)" "numeric(18,2) NO"
check_eq "ledger_entry.project_code is nullable text" "$(coltype ledger_entry project_code)" "text YES"
check_eq "report_after.amount is numeric(18,2) NULL" "$(coltype report_after amount)" "numeric(18,2) YES"
check_eq "report_before.amount is numeric(18,2)" "$(coltype report_before amount | cut -d' ' -f1)" "numeric(18,2)"
check_eq "allocation_driver.value is numeric(18,6)" "$(coltype allocation_driver value)" "numeric(18,6) NO"
check_eq "period.change_seq is bigint NOT NULL" "$(coltype period change_seq)" "bigint NO"
check_eq "report_version.include_categories is an array" "$(coltype report_version include_categories)" "ARRAY YES"
check_eq "alloc_run.started_at is timestamptz" "$(coltype alloc_run started_at | cut -d' ' -f1-4)" "timestamp with time zone"
check_eq "run_log.detail is jsonb" "$(coltype run_log detail | cut -d' ' -f1)" "jsonb"

# A second migrate applies nothing.
"$PRODUCER" migrate >"$tmp/out2" 2>"$tmp/err2"
check_eq "a second migrate exits 0" "$?" 0
check_eq "a second migrate applies nothing" "$(cat "$tmp/out2")" "schema up to date (version $last)"
check_eq "a second migrate records nothing" "$(sql -c 'SELECT count(*) FROM schema_migration')" "$n_files"

# Usage and failures.
"$PRODUCER" migrate --bogus >"$tmp/out3" 2>"$tmp/err3"
check_eq "migrate with a bad argument exits 2" "$?" 2
if grep -q '^usage: alloc-producer migrate' "$tmp/err3"; then ok "a bad argument prints the usage line"; else not_ok "a bad argument prints the usage line" "stderr: $(cat "$tmp/err3")"; fi
"$PRODUCER" migrate --help >"$tmp/out4" 2>&1
check_eq "migrate --help exits 0" "$?" 0
if grep -q '^usage: alloc-producer migrate' "$tmp/out4"; then ok "migrate --help prints the usage"; else not_ok "migrate --help prints the usage" "$(head -n 2 "$tmp/out4")"; fi
"$PRODUCER" migrate --pg-dsn "host=127.0.0.1 port=1 dbname=none connect_timeout=2" >"$tmp/out5" 2>"$tmp/err5"
check_eq "migrate without a server exits 1" "$?" 1
check_eq "migrate without a server says why in one line" "$(wc -l <"$tmp/err5" | tr -d ' ')" 1

# Two migrates at once on an empty database: the advisory lock serializes them.
base_dsn=$ALLOC_PG_DSN
ALLOC_PG_DSN=$admin_dsn
use_fresh_db t_schema_concurrent
"$PRODUCER" migrate >"$tmp/c1" 2>&1 &
p1=$!
"$PRODUCER" migrate >"$tmp/c2" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
check_eq "two concurrent migrates both exit 0" "$r1 $r2" "0 0"
check_eq "two concurrent migrates apply each migration once" \
    "$(cat "$tmp/c1" "$tmp/c2" | grep -c '^applied migration')" "$n_files"
ALLOC_PG_DSN=$base_dsn
ALLOC_PG_DSN=$admin_dsn pg_admin -c 'DROP DATABASE t_schema_concurrent WITH (FORCE)' >/dev/null

# ---- ledger triggers ----------------------------------------------------------

sql >/dev/null <<'EOF'
INSERT INTO period (period_code, ruleset) VALUES ('2026-08', 'r1'), ('2026-09', 'r1'), ('2026-10', 'r1');
INSERT INTO ledger_entry (period_code, company_code, data_source, category, amount)
VALUES ('2026-09', 'C1', 'DS1', 'gl', 10.00), ('2026-09', 'C1', 'DS1', 'gl', 20.00);
UPDATE period SET status = 'closed', closed_at = now() WHERE period_code = '2026-09';
UPDATE period SET change_seq = 0;
EOF
ledger_state() { sql -c "SELECT count(*) || ':' || coalesce(sum(amount), 0) || ':' || string_agg(period_code, ',' ORDER BY entry_id) FROM ledger_entry"; }
seqs() { sql -c "SELECT string_agg(period_code || '=' || change_seq, ' ' ORDER BY period_code) FROM period"; }

# refused_change NAME SQL [STDIN]: the statement fails with AL001 naming 2026-09 and
# changes nothing.
refused_change() {
    local name=$1 stmt=$2 input=${3:-} err
    before=$(ledger_state)
    err=$(printf '%s' "$input" |
        psql -X -q -tA -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$ALLOC_PG_DSN" -c "$stmt" 2>&1 >/dev/null)
    if [ $? -eq 0 ]; then
        not_ok "$name is refused" "the statement succeeded"
    elif ! grep -q 'AL001: period 2026-09 is closed' <<<"$err"; then
        not_ok "$name is refused" "unexpected error: $(head -n 1 <<<"$err")"
    else
        ok "$name is refused with an error naming the period"
    fi
    check_eq "$name leaves the ledger unchanged" "$(ledger_state)" "$before"
}
refused_change "an insert into a closed period" \
    "INSERT INTO ledger_entry (period_code, company_code, data_source, category, amount)
     VALUES ('2026-08', 'C1', 'DS1', 'gl', 1), ('2026-09', 'C1', 'DS1', 'gl', 5.00)"
refused_change "an update in a closed period" \
    "UPDATE ledger_entry SET amount = amount + 1 WHERE period_code = '2026-09'"
refused_change "a delete in a closed period" \
    "DELETE FROM ledger_entry WHERE period_code = '2026-09'"
refused_change "a COPY into a closed period" \
    "COPY ledger_entry (period_code, company_code, data_source, category, amount) FROM STDIN" \
    "$(printf '2026-08\tC1\tDS1\tgl\t1.00\n2026-09\tC1\tDS1\tgl\t1.00\n')"
refused_change "a truncate holding closed rows" "TRUNCATE ledger_entry"
check_eq "refused changes bump no change_seq" "$(seqs)" "2026-08=0 2026-09=0 2026-10=0"

# change_seq counts the rows each statement touched, per open period.
sql -c "INSERT INTO ledger_entry (period_code, company_code, data_source, category, amount)
        SELECT '2026-08', 'C1', 'DS1', 'gl', g FROM generate_series(1, 5) g" >/dev/null
check_eq "an insert of 5 rows bumps its period by 5" "$(seqs)" "2026-08=5 2026-09=0 2026-10=0"
printf '2026-08\tC1\tDS1\tgl\t1.00\n2026-08\tC2\tDS\\\\2\tgl\t2.00\n2026-10\tC1\tDS1\tgl\t3.00\n' |
    sql -c "COPY ledger_entry (period_code, company_code, data_source, category, amount) FROM STDIN" >/dev/null
check_eq "a COPY bumps each period by its rows" "$(seqs)" "2026-08=7 2026-09=0 2026-10=1"
sql -c "UPDATE ledger_entry SET amount = amount * 2 WHERE period_code = '2026-08' AND amount <= 2" >/dev/null
check_eq "an update of 4 rows bumps by 4" "$(seqs)" "2026-08=11 2026-09=0 2026-10=1"
sql -c "DELETE FROM ledger_entry WHERE period_code = '2026-08' AND amount = 5" >/dev/null
check_eq "a delete of 1 row bumps by 1" "$(seqs)" "2026-08=12 2026-09=0 2026-10=1"
sql -c "UPDATE ledger_entry SET period_code = '2026-10' WHERE period_code = '2026-08' AND amount = 3" >/dev/null
check_eq "a row moved between periods bumps both" "$(seqs)" "2026-08=13 2026-09=0 2026-10=2"
sql -c "UPDATE ledger_entry SET amount = 0 WHERE false" >/dev/null
check_eq "a statement touching no row bumps nothing" "$(seqs)" "2026-08=13 2026-09=0 2026-10=2"
refused_change "a row moved into a closed period" \
    "UPDATE ledger_entry SET period_code = '2026-09' WHERE period_code = '2026-10'"
check_eq "a refused move bumps nothing" "$(seqs)" "2026-08=13 2026-09=0 2026-10=2"

# ---- runs and published reports ------------------------------------------------

sql -c "INSERT INTO alloc_run (period_code, status) VALUES ('2026-08', 'running')" >/dev/null
err=$(psql -X -q -tA -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$ALLOC_PG_DSN" \
    -c "INSERT INTO alloc_run (period_code, status) VALUES ('2026-08', 'running')" 2>&1 >/dev/null)
if [ $? -ne 0 ] && grep -q '23505' <<<"$err"; then
    ok "a second running run of a period is refused (23505)"
else
    not_ok "a second running run of a period is refused (23505)" "got: $(head -n 1 <<<"$err")"
fi
check "a running run of another period is accepted" \
    sql -c "INSERT INTO alloc_run (period_code, status) VALUES ('2026-10', 'running')"
check "a finished run beside the running one is accepted" \
    sql -c "INSERT INTO alloc_run (period_code, status) VALUES ('2026-08', 'succeeded')"

sql >/dev/null <<'EOF'
UPDATE alloc_run SET status = 'succeeded' WHERE status = 'running';
INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount) VALUES
    (1, 'M', 'DS1', 'P1', 'I1', 1.00), (1, 'M', 'DS1', 'P1', 'I2', NULL),
    (3, 'M', 'DS1', 'P1', 'I1', 3.00),
    (2, 'M', 'DS1', 'P1', 'I1', 2.00);
INSERT INTO report_published (period_code, run_id) VALUES ('2026-08', 1);
EOF
check_eq "report_current shows the published run's rows only" \
    "$(sql -c "SELECT string_agg(period_code || '/' || run_id || '/' || item_code || '/' || coalesce(amount::text, 'NULL'), ' '
               ORDER BY item_code) FROM report_current")" \
    "2026-08/1/I1/1.00 2026-08/1/I2/NULL"
sql -c "UPDATE report_published SET run_id = 3 WHERE period_code = '2026-08'" >/dev/null
check_eq "report_current follows a switch of the published run" \
    "$(sql -c "SELECT string_agg(run_id || '/' || amount, ' ') FROM report_current")" "3/3.00"

# A rule changed without setting updated_at still moves the ruleset stamp.
sql -c "INSERT INTO report_item (ruleset, item_code, name, kind, sort_order, updated_at)
        VALUES ('r1', 'I1', 'Rent', 'base', 1, '2020-01-01')" >/dev/null
sql -c "UPDATE report_item SET name = 'Rent income' WHERE item_code = 'I1'" >/dev/null
check_eq "an updated rule gets a new updated_at" \
    "$(sql -c "SELECT updated_at > '2020-01-01' FROM report_item WHERE item_code = 'I1'")" "t"

finish
