#!/usr/bin/env bash
# alloc-gen: a 1% period has exactly the rows the spec gives (20,000 rows, 4,000
# pending, 30 skewed cities), every row is bound, the ruleset and versions are
# complete, zero-weight drivers make #UNALLOCATED happen; the same seed gives
# the same rows, another seed other rows; a loaded period is refused without
# --replace, a closed one always; bad arguments exit 2; --demo loads.
source "$(dirname "$0")/lib.sh"

admin_dsn=$ALLOC_PG_DSN
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fresh_db NAME: a new migrated database (use_fresh_db rewrites the admin DSN).
fresh_db() {
    ALLOC_PG_DSN=$admin_dsn
    PGOPTIONS="-c client_min_messages=warning" use_fresh_db "$1"
    "$PRODUCER" migrate >/dev/null 2>"$tmp/migrate.err" || not_ok "migrate $1" "$(tail -n 1 "$tmp/migrate.err")"
}

# The md5 of the period's ledger rows in entry_id order; posted_at left out.
ledger_md5() { # PERIOD [with_id]
    local id="entry_id::text,"
    [ "${2:-}" = without_id ] && id=""
    sql -c "SELECT md5(string_agg(concat_ws('|', $id period_code, company_code, data_source,
                coalesce(business_line, '~'), coalesce(budget_item_code, '~'),
                coalesce(account_code, '~'), coalesce(project_code, '~'), category, amount::text),
                E'\n' ORDER BY entry_id)) FROM ledger_entry WHERE period_code = '$1'"
}

# check_range NAME VALUE LOW HIGH
check_range() {
    if [ "$2" -ge "$3" ] 2>/dev/null && [ "$2" -le "$4" ]; then ok "$1"; else not_ok "$1" "got '$2', want $3..$4"; fi
}

# ---- a 1% period --------------------------------------------------------------

fresh_db t_gen
"$GEN" --scale 0.01 --seed 1 >"$tmp/out" 2>"$tmp/err"
check_eq "alloc-gen --scale 0.01 exits 0" "$?" 0
grep -q '^total  *60  *20000  *4000  *16000$' "$tmp/out" &&
    ok "the summary gives the totals per data source" ||
    not_ok "the summary gives the totals per data source" "$(grep '^total' "$tmp/out")"

check_eq "ledger rows = round(2,000,000 x 0.01)" "$(sql -c "SELECT count(*) FROM ledger_entry")" 20000
check_eq "pending rows = round(400,000 x 0.01)" \
    "$(sql -c "SELECT count(*) FROM ledger_entry WHERE project_code IS NULL")" 4000
check_eq "30 data sources" "$(sql -c "SELECT count(DISTINCT data_source) FROM ledger_entry")" 30
check_range "the largest data source holds 20-30% of the rows (per mille)" \
    "$(sql -c "SELECT (max(n) * 1000 / sum(n))::int FROM (SELECT count(*) AS n FROM ledger_entry GROUP BY data_source) s")" 200 300
check_eq "projects = max(60, 3000 x 0.01)" "$(sql -c "SELECT count(*) FROM project")" 60
check_eq "every data source has a project" \
    "$(sql -c "SELECT count(*) FROM (SELECT DISTINCT data_source FROM ledger_entry
               EXCEPT SELECT data_source FROM project) s")" 0
check_eq "one data source has no active project" \
    "$(sql -c "SELECT count(*) FROM (SELECT data_source FROM project GROUP BY 1 HAVING NOT bool_or(active)) s")" 1
check_range "companies per data source: 1-3" \
    "$(sql -c "SELECT max(n) * 10 + min(n) FROM (SELECT count(DISTINCT company_code) AS n FROM project GROUP BY data_source) s")" 11 33

unbound_sql="SELECT count(*) FROM ledger_entry e
    LEFT JOIN binding_rule bb ON bb.ruleset = 'std' AND bb.match_kind = 'budget_item' AND bb.match_code = e.budget_item_code
    LEFT JOIN binding_rule ba ON ba.ruleset = 'std' AND ba.match_kind = 'account' AND ba.match_code = e.account_code
    LEFT JOIN report_item ri ON ri.ruleset = 'std' AND ri.item_code = coalesce(bb.item_code, ba.item_code) AND ri.kind = 'base'
    WHERE ri.item_code IS NULL"
check_eq "every ledger row is bound to a base item" "$(sql -c "$unbound_sql")" 0
check_range "some rows are bound by account only (NULL or unknown budget item)" \
    "$(sql -c "SELECT count(*) FROM ledger_entry e WHERE NOT EXISTS (SELECT 1 FROM binding_rule b
               WHERE b.ruleset = 'std' AND b.match_kind = 'budget_item' AND b.match_code = e.budget_item_code)")" 100 5000
check_eq "direct rows name known projects" \
    "$(sql -c "SELECT count(*) FROM ledger_entry e WHERE project_code IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM project p WHERE p.project_code = e.project_code)")" 0
check_range "some direct rows are booked by another data source than their project's" \
    "$(sql -c "SELECT count(*) FROM ledger_entry e JOIN project p USING (project_code) WHERE p.data_source <> e.data_source")" 1 200
check_eq "categories" "$(sql -c "SELECT string_agg(DISTINCT category, ',') FROM ledger_entry")" \
    "function,gl,marketing,mgmt_diff,rent,salary"
check_range "mgmt_diff is about 5% of the rows" \
    "$(sql -c "SELECT count(*) FROM ledger_entry WHERE category = 'mgmt_diff'")" 600 1400
check_eq "amounts include negatives and zeros" \
    "$(sql -c "SELECT bool_or(amount < 0) AND bool_or(amount = 0) FROM ledger_entry")" t

check_eq "report items: 450 base, 50 formula" \
    "$(sql -c "SELECT count(*) FILTER (WHERE kind = 'base') || ' ' || count(*) FILTER (WHERE kind = 'formula')
               FROM report_item WHERE ruleset = 'std'")" "450 50"
check_eq "formula items have formulas, base items none" \
    "$(sql -c "SELECT count(*) FROM report_item WHERE (kind = 'formula') <> (formula IS NOT NULL)")" 0
check_eq "some base item codes hold spaces" \
    "$(sql -c "SELECT count(*) > 2 FROM report_item WHERE kind = 'base' AND item_code LIKE '% %'")" t
check_eq "versions M (all categories) and F (all but mgmt_diff)" \
    "$(sql -c "SELECT string_agg(version || ':' || coalesce((SELECT string_agg(c, ',' ORDER BY c)
               FROM unnest(include_categories) c), 'NULL'), ' ' ORDER BY version) FROM report_version")" \
    "F:function,gl,marketing,rent,salary M:NULL"
check_eq "one '*' rule per version" \
    "$(sql -c "SELECT string_agg(version, ',' ORDER BY version) FROM allocation_rule WHERE ruleset = 'std' AND item_code = '*'")" "F,M"
check_eq "rules use every driver and both scopes" \
    "$(sql -c "SELECT string_agg(DISTINCT driver, ',') || ' ' || string_agg(DISTINCT scope, ',') FROM allocation_rule")" \
    "area,contracts,equal,headcount,revenue city,company"
check_eq "M and F rules differ for some items" \
    "$(sql -c "SELECT count(*) > 0 FROM allocation_rule m JOIN allocation_rule f USING (ruleset, item_code)
               WHERE m.version = 'M' AND f.version = 'F' AND (m.driver, m.scope) <> (f.driver, f.scope)")" t
check_eq "audit rules: 3-6, errors and warnings" \
    "$(sql -c "SELECT count(*) BETWEEN 3 AND 6 AND bool_or(severity = 'error') AND bool_or(severity = 'warning')
               FROM audit_rule WHERE ruleset = 'std'")" t

check_eq "every driver has a value for every project" \
    "$(sql -c "SELECT count(*) FROM allocation_driver WHERE period_code = '2026-10'")" 240
check_eq "some driver values are 0" \
    "$(sql -c "SELECT count(*) > 0 FROM allocation_driver WHERE value = 0")" t
zero_sql="SELECT d.driver, p.data_source FROM project p
    JOIN allocation_driver d ON d.project_code = p.project_code AND d.period_code = '2026-10'
    WHERE p.active GROUP BY 1, 2 HAVING sum(d.value) = 0"
check_range "a (driver, city) has weight 0 on every active project" "$(sql -c "SELECT count(*) FROM ($zero_sql) z")" 1 10
# Pending rows whose M rule is city-scoped on such a (driver, city): they go to #UNALLOCATED.
unalloc=$(sql -c "WITH b AS (
        SELECT e.data_source, coalesce(bb.item_code, ba.item_code) AS item FROM ledger_entry e
        LEFT JOIN binding_rule bb ON bb.ruleset = 'std' AND bb.match_kind = 'budget_item' AND bb.match_code = e.budget_item_code
        LEFT JOIN binding_rule ba ON ba.ruleset = 'std' AND ba.match_kind = 'account' AND ba.match_code = e.account_code
        WHERE e.project_code IS NULL),
    r AS (SELECT b.data_source, coalesce(ri.driver, rd.driver) AS driver, coalesce(ri.scope, rd.scope) AS scope FROM b
        LEFT JOIN allocation_rule ri ON ri.ruleset = 'std' AND ri.version = 'M' AND ri.item_code = b.item
        LEFT JOIN allocation_rule rd ON rd.ruleset = 'std' AND rd.version = 'M' AND rd.item_code = '*')
    SELECT count(*) FROM r JOIN ($zero_sql) z USING (driver, data_source) WHERE r.scope = 'city'")
check_range "a few pending rows meet an all-zero (driver, city) in M" "$unalloc" 1 200

# Revenue lines are the base items sorted before the REVENUE formula. One new
# data source books none on its projects, so COST_WITHOUT_REVENUE fails there.
check_eq "one data source has projects without any revenue rows (audit warnings)" \
    "$(sql -c "WITH rev AS (SELECT item_code FROM report_item WHERE ruleset = 'std' AND kind = 'base'
                 AND sort_order < (SELECT sort_order FROM report_item WHERE ruleset = 'std' AND item_code = 'REVENUE')),
               b AS (SELECT e.project_code, coalesce(bb.item_code, ba.item_code) AS item FROM ledger_entry e
                 LEFT JOIN binding_rule bb ON bb.ruleset = 'std' AND bb.match_kind = 'budget_item' AND bb.match_code = e.budget_item_code
                 LEFT JOIN binding_rule ba ON ba.ruleset = 'std' AND ba.match_kind = 'account' AND ba.match_code = e.account_code
                 WHERE e.project_code IS NOT NULL AND e.period_code = '2026-10')
               SELECT count(*) FROM (SELECT q.data_source FROM b JOIN project q USING (project_code)
                 LEFT JOIN rev ON rev.item_code = b.item GROUP BY 1 HAVING NOT bool_or(rev.item_code IS NOT NULL)) s")" 1

md5_a=$(ledger_md5 2026-10)
md5_a_rows=$(ledger_md5 2026-10 without_id)

# ---- reloading ------------------------------------------------------------------

"$GEN" --scale 0.01 --seed 1 >/dev/null 2>"$tmp/err"
check_eq "loading a loaded period again exits 4" "$?" 4
grep -q 'period 2026-10 already has 20000 ledger rows' "$tmp/err" &&
    ok "the refusal names the period and its rows" || not_ok "the refusal names the period and its rows" "$(cat "$tmp/err")"
check_eq "the refused load changed nothing" "$(sql -c "SELECT count(*) FROM ledger_entry")" 20000
"$GEN" --scale 0.01 --seed 1 --replace >/dev/null 2>"$tmp/err"
check_eq "--replace exits 0" "$?" 0
check_eq "--replace leaves the same rows once" \
    "$(sql -c "SELECT count(*) FROM ledger_entry")|$(ledger_md5 2026-10 without_id)" "20000|$md5_a_rows"

"$GEN" --scale 0.01 --seed 5 --period 2026-11 >"$tmp/out" 2>"$tmp/err"
check_eq "a second period shares the ruleset and projects" \
    "$?|$(sql -c "SELECT count(*) FROM report_item")|$(sql -c "SELECT count(*) FROM project")|$(sql -c "SELECT count(*) FROM ledger_entry WHERE period_code = '2026-11'")" \
    "0|500|60|20000"
grep -q 'ruleset std: present' "$tmp/err" && ok "a present ruleset is kept" || not_ok "a present ruleset is kept" "$(cat "$tmp/err")"
sql -c "UPDATE period SET status = 'closed' WHERE period_code = '2026-11'" >/dev/null
"$GEN" --scale 0.01 --period 2026-11 --replace >/dev/null 2>"$tmp/err"
check_eq "a closed period is refused even with --replace (exit 4)" "$?" 4

# ---- determinism -------------------------------------------------------------

fresh_db t_gen_b
"$GEN" --scale 0.01 --seed 1 >/dev/null 2>"$tmp/err"
check_eq "the same seed in a fresh database gives the same rows (md5)" "$(ledger_md5 2026-10)" "$md5_a"
check_eq "... and the same drivers" \
    "$(sql -c "SELECT md5(string_agg(driver || project_code || value, ',' ORDER BY driver, project_code)) FROM allocation_driver")" \
    "$(psql -X -tA -d "${admin_dsn/dbname=alloc/dbname=t_gen}" -c "SELECT md5(string_agg(driver || project_code || value, ',' ORDER BY driver, project_code)) FROM allocation_driver WHERE period_code = '2026-10'")"

fresh_db t_gen_b
"$GEN" --scale 0.01 --seed 2 >/dev/null 2>"$tmp/err"
md5_c=$(ledger_md5 2026-10)
if [ -n "$md5_c" ] && [ "$md5_c" != "$md5_a" ]; then
    ok "another seed gives other rows"
else
    not_ok "another seed gives other rows" "md5 $md5_c"
fi

# ---- arguments -------------------------------------------------------------------

for args in "--scale 0" "--scale -1" "--scale abc" "--scale" "--seed -3" "--seed x" \
    "--period 2026-13" "--period 202610" "--ruleset" "--bogus"; do
    # shellcheck disable=SC2086
    "$GEN" $args >/dev/null 2>"$tmp/err"
    rc=$?
    if [ "$rc" = 2 ] && grep -q '^usage: alloc-gen' "$tmp/err"; then
        ok "alloc-gen $args: usage error, exit 2"
    else
        not_ok "alloc-gen $args: usage error, exit 2" "exit $rc: $(head -n 2 "$tmp/err" | tr '\n' '|')"
    fi
done
"$GEN" --help >"$tmp/out" 2>&1
check_eq "--help exits 0 and shows the usage" "$?|$(head -n 1 "$tmp/out" | cut -c1-16)" "0|usage: alloc-gen"

# ---- demo ------------------------------------------------------------------------

fresh_db t_gen_b
"$GEN" --demo >"$tmp/out" 2>"$tmp/err"
check_eq "--demo exits 0" "$?" 0
check_eq "--demo: period 2026-10 on ruleset demo, 3 cities, 12 projects, 200 rows, 40 pending" \
    "$(sql -c "SELECT (SELECT ruleset FROM period WHERE period_code = '2026-10') || ' '
               || count(DISTINCT data_source) || ' ' || (SELECT count(*) FROM project) || ' '
               || count(*) || ' ' || count(*) FILTER (WHERE project_code IS NULL) FROM ledger_entry")" \
    "demo 3 12 200 40"
check_eq "--demo: 10 report items, 4 of them formulas" \
    "$(sql -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE kind = 'formula') FROM report_item WHERE ruleset = 'demo'")" "10 4"
check_eq "--demo: every row bound" "$(sql -c "${unbound_sql//\'std\'/\'demo\'}")" 0

"$GEN" --scale 0.001 --ruleset demo --period 2026-12 >/dev/null 2>"$tmp/err"
check_eq "a kept ruleset that leaves rows unbound: exit 3, nothing loaded" \
    "$?|$(sql -c "SELECT count(*) FROM period WHERE period_code = '2026-12'")" "3|0"

ALLOC_PG_DSN=$admin_dsn
pg_admin -c 'DROP DATABASE IF EXISTS t_gen_b WITH (FORCE)' >/dev/null 2>&1
finish
