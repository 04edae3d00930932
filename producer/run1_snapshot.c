/* The snapshot transaction of a run: validation (DESIGN.md 5.2), registration
 * and the copies a run keeps of its snapshot (5.1, 5.4). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "formulas.h"
#include "log.h"
#include "pubdata.h"
#include "reserved.h"
#include "run_stages.h"
#include "run_state.h"

/* FNV-1a of the public data: part of its cache key, so changed drivers or
 * projects under the same ruleset stamp never read a stale entry. */
static uint64_t fnv1a(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* ---- validation (DESIGN.md 5.2) -------------------------------------------- */

/* Prints one line per row of a validation query; returns the rows found, -1 on error. */
static int report_rows(db_conn *db, const char *sql, int np, const char *const *p,
                       const char *fmt_kind, db_error *e) {
    PGresult *r = db_query(db, sql, np, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        if (!strcmp(fmt_kind, "unbound"))
            cli_error("unbound ledger rows: budget_item_code=%s account_code=%s "
                      "(%s rows)",
                      PQgetisnull(r, i, 0) ? "NULL" : PQgetvalue(r, i, 0),
                      PQgetisnull(r, i, 1) ? "NULL" : PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        else if (!strcmp(fmt_kind, "project"))
            cli_error("unknown project %s on direct rows (%s rows)", PQgetvalue(r, i, 0),
                      PQgetvalue(r, i, 1));
        else if (!strcmp(fmt_kind, "item"))
            cli_error("bound item %s %s (%s rows)", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                      PQgetvalue(r, i, 2));
        else
            cli_error("item %s has no allocation rule in version %s and the "
                      "version has no '*' rule (%s pending rows)",
                      PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return n;
}

/* The item binding of ledger row e: $2 ruleset. */
#define BINDING_JOINS                                                                              \
    "LEFT JOIN binding_rule bb ON bb.ruleset = $2 AND bb.match_kind = 'budget_item' "              \
    "     AND bb.match_code = e.budget_item_code "                                                 \
    "LEFT JOIN binding_rule ba ON ba.ruleset = $2 AND ba.match_kind = 'account' "                  \
    "     AND ba.match_code = e.account_code "

/* What the snapshot reads of the period ($1 period, $2 ruleset), in two temp
 * tables (the direct rows themselves go to run_direct_N by a second
 * connection, direct_copy below):
 * - snap: the pending rows, one by one, with their item (NULL: unbound);
 * - snap_sum: row counts and amounts of every row, pending and direct, by
 *   what validation and the totals ask: pending or not, data source (pending
 *   rows only), category, item, the codes of an unbound row, the code of an
 *   unknown project. A few thousand groups for millions of direct rows. */
static const char SNAP_SQL[] =
    "CREATE TEMP TABLE snap (entry_id bigint, company_code text, data_source text, "
    "    category text, amount numeric(18,2), budget_item_code text, account_code text, "
    "    item_code text) ON COMMIT DROP; "
    "CREATE TEMP TABLE snap_sum (pending boolean, data_source text, category text, "
    "    item_code text, budget_item_code text, account_code text, unknown_project text, "
    "    n bigint, amount numeric) ON COMMIT DROP";
static const char SNAP_PENDING_SQL[] =
    "INSERT INTO snap SELECT e.entry_id, e.company_code, e.data_source, e.category, e.amount, "
    "    e.budget_item_code, e.account_code, coalesce(bb.item_code, ba.item_code) "
    "FROM ledger_entry e " BINDING_JOINS "WHERE e.period_code = $1 AND e.project_code IS NULL";
static const char SNAP_SUM_SQL[] =
    "INSERT INTO snap_sum "
    "SELECT true, data_source, category, item_code, "
    "       CASE WHEN item_code IS NULL THEN budget_item_code END, "
    "       CASE WHEN item_code IS NULL THEN account_code END, NULL, count(*), sum(amount) "
    "FROM snap GROUP BY 2, 3, 4, 5, 6 "
    "UNION ALL "
    "SELECT false, NULL, b.category, b.item_code, "
    "       CASE WHEN b.item_code IS NULL THEN b.budget_item_code END, "
    "       CASE WHEN b.item_code IS NULL THEN b.account_code END, "
    "       CASE WHEN b.known THEN NULL ELSE b.project_code END, count(*), sum(b.amount) "
    "FROM (SELECT e.category, e.amount, e.budget_item_code, e.account_code, e.project_code, "
    "             coalesce(bb.item_code, ba.item_code) AS item_code, "
    "             p.project_code IS NOT NULL AS known "
    "      FROM ledger_entry e " BINDING_JOINS
    "      LEFT JOIN project p ON p.project_code = e.project_code "
    "      WHERE e.period_code = $1 AND e.project_code IS NOT NULL) b "
    "GROUP BY 3, 4, 5, 6, 7";

static int validate(db_conn *db, const char *period, const char *ruleset, db_error *e) {
    const char *p[] = {period, ruleset};
    const char *rs[] = {ruleset};
    int total = 0, n;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the period's rows, read once: every later step reads these */
    if (db_exec(db, SNAP_SQL, e) != 0 || db_exec_params(db, SNAP_PENDING_SQL, 2, p, e) < 0 ||
        db_exec(db, "ANALYZE snap", e) != 0 ||
        /* a few thousand groups, but the planner cannot tell from the
         * expressions and would sort millions of rows on strings instead */
        db_exec(db, "SET LOCAL enable_sort = off", e) != 0 ||
        db_exec_params(db, SNAP_SUM_SQL, 2, p, e) < 0 ||
        db_exec(db, "SET LOCAL enable_sort = on; ANALYZE snap_sum", e) != 0)
        return -1;
    log_info("snapshot: pending rows and sums of the direct ones in %.1fs", run_elapsed(&t0));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    n = report_rows(db,
                    "SELECT budget_item_code, account_code, sum(n) FROM snap_sum "
                    "WHERE item_code IS NULL GROUP BY 1, 2 "
                    "ORDER BY budget_item_code COLLATE \"C\" NULLS FIRST, account_code COLLATE "
                    "\"C\" NULLS FIRST",
                    0, NULL, "unbound", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(db,
                    "SELECT unknown_project, sum(n) FROM snap_sum "
                    "WHERE unknown_project IS NOT NULL GROUP BY 1 "
                    "ORDER BY unknown_project COLLATE \"C\"",
                    0, NULL, "project", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(db,
                    "SELECT b.item_code, CASE WHEN ri.item_code IS NULL "
                    "  THEN 'does not exist in ruleset ' || $1 ELSE 'is not a base item' END, b.n "
                    "FROM (SELECT item_code, sum(n) AS n FROM snap_sum WHERE item_code IS NOT NULL "
                    "      GROUP BY item_code) b "
                    "LEFT JOIN report_item ri ON ri.ruleset = $1 AND ri.item_code = b.item_code "
                    "WHERE ri.item_code IS NULL OR ri.kind <> 'base' "
                    "ORDER BY b.item_code COLLATE \"C\"",
                    1, rs, "item", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(db,
                    "SELECT b.item_code, v.version, sum(b.n) FROM "
                    "  (SELECT item_code, category, sum(n) AS n FROM snap_sum "
                    "   WHERE pending AND item_code IS NOT NULL "
                    "   GROUP BY item_code, category) b "
                    "JOIN report_version v ON v.include_categories IS NULL "
                    "     OR b.category = ANY (v.include_categories) "
                    "WHERE NOT EXISTS (SELECT 1 FROM allocation_rule r WHERE r.ruleset = $1 "
                    "    AND r.version = v.version AND r.item_code IN (b.item_code, '*')) "
                    "GROUP BY 1, 2 ORDER BY b.item_code COLLATE \"C\", v.version COLLATE \"C\"",
                    1, rs, "rule", e);
    if (n < 0)
        return -1;
    total += n;
    log_info("snapshot: validation in %.1fs", run_elapsed(&t0));
    return total;
}

/* ---- the snapshot transaction ------------------------------------------------ */

/* Copies of the snapshot the run keeps; $1 is the run id. They read `snap`
 * and `snap_sum`, materialized once by validate(). */
static const sql_step SNAPSHOT_STEPS[] = {
    {"pending rows",
     /* pending rows with their items: buckets are cut from here, now and by resume */
     "INSERT INTO run_pending (run_id, entry_id, data_source, company_code, item_code, category, "
     "    cents) "
     "SELECT $1::bigint, entry_id, data_source, company_code, item_code, category, "
     "       (amount * 100)::bigint "
     /* in key order: the key's index grows at its right edge */
     "FROM snap ORDER BY entry_id"},
    {"version totals",
     /* per version: what conservation must find again at the end */
     "INSERT INTO run_version_total (run_id, version, rows, amount) "
     "SELECT $1::bigint, v.version, coalesce(sum(b.n), 0), coalesce(sum(b.amount), 0) "
     "FROM report_version v LEFT JOIN "
     /* by category first: a handful of groups to match against the versions */
     "     (SELECT category, sum(n) AS n, sum(amount) AS amount FROM snap_sum GROUP BY category) b "
     "     ON v.include_categories IS NULL OR b.category = ANY (v.include_categories) "
     "GROUP BY v.version"},
    {"control totals",
     /* control totals and the period's change counter as the snapshot saw it */
     "UPDATE alloc_run r SET "
     "  rows_pending = t.rp, amount_pending = t.ap, rows_direct = t.rd, amount_direct = t.ad, "
     "  change_seq = (SELECT change_seq FROM period WHERE period_code = r.period_code) "
     "FROM (SELECT coalesce(sum(n) FILTER (WHERE pending), 0) AS rp, "
     "             coalesce(sum(amount) FILTER (WHERE pending), 0) AS ap, "
     "             coalesce(sum(n) FILTER (WHERE NOT pending), 0) AS rd, "
     "             coalesce(sum(amount) FILTER (WHERE NOT pending), 0) AS ad "
     "      FROM snap_sum) t "
     "WHERE r.run_id = $1"},
    {"report items",
     /* the items as the run sees them: its report keeps these names and this
      * order whatever later edits of the ruleset do (DESIGN.md 5.6) */
     "INSERT INTO run_item (run_id, item_code, name, kind, formula, sort_order) "
     "SELECT $1::bigint, i.item_code, i.name, i.kind, i.formula, i.sort_order "
     "FROM report_item i JOIN alloc_run r ON r.run_id = $1 AND i.ruleset = r.ruleset"},
};

/* The run's own tables of the snapshot ($1 is the run id, %s its number):
 * - run_direct_%s: the direct rows, at their project's data source, with
 *   their item, category and cents, stored in unit order (data source,
 *   project) under a block-range index: each unit of the formula stage reads
 *   its few contiguous pages and sums them into report_before and
 *   report_after (DESIGN.md 5.4). Copied by a second connection in the
 *   snapshot's own view, while this one validates (direct_copy below);
 * - report_before_run_%s: the pending rows, unallocated, at #POOL of their
 *   data source; the units add their projects' rows, and the run's last
 *   transaction attaches the table as its partition of report_before;
 * - alloc_partial_run_%s: empty; the consumers fill it with allocated shares,
 *   one row per (data source, project, item) of a batch with a column of
 *   cents per version (cents_K for the run's K-th version in byte order, as
 *   in its public data; NULL where no share of that version arrived): most
 *   shares land in every version, so this halves the rows written and read.
 *   Partitioned by data source and indexed by the plan stage: a unit reads
 *   its range of projects in its data source's partition.
 * The CHECK lets the attach skip a scan. */
static const char POOL_ROWS_SQL[] =
    "INSERT INTO report_before_run_%s (run_id, version, data_source, project_code, item_code, "
    "    amount) "
    "SELECT $1::bigint, v.version, b.data_source, '" RESERVED_POOL "', b.item_code, sum(b.amount) "
    "FROM snap_sum b "
    "JOIN report_version v ON v.include_categories IS NULL OR b.category = ANY "
    "(v.include_categories) "
    "WHERE b.pending GROUP BY 2, 3, 4, 5";

/* The partitions of alloc_partial_run_N ($1 the run id), as one statement. */
static const char PARTIAL_PARTITIONS_SQL[] =
    "SELECT coalesce(string_agg(format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%L)', "
    "           'alloc_partial_run_' || $1 || '_p' || k, 'alloc_partial_run_' || $1, "
    "           data_source), '; ') || '; ', '') "
    "       || format('CREATE TABLE %I PARTITION OF %I DEFAULT', "
    "                 'alloc_partial_run_' || $1 || '_default', 'alloc_partial_run_' || $1) "
    "FROM (SELECT data_source, row_number() OVER (ORDER BY data_source) AS k "
    "      FROM (SELECT data_source FROM project UNION SELECT data_source FROM snap) d) s";

static int snapshot_run_tables(db_conn *db, const char *id, db_error *e) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char sql[1024];
    const char *p[] = {id};
    int64_t nversions = 0;
    if (db_query_int64(db, "SELECT count(*) FROM report_version", 0, NULL, &nversions, e) < 0)
        return -1;
    int len = snprintf(sql, sizeof sql,
                       "CREATE TABLE report_before_run_%s (LIKE report_before INCLUDING DEFAULTS, "
                       "CHECK (run_id = %s)); "
                       "CREATE TABLE alloc_partial_run_%s (data_source text NOT NULL, "
                       "project_code text NOT NULL, item_code text NOT NULL",
                       id, id, id);
    /* more versions than the public data admits fail the run's first batch,
     * which names the limit */
    for (int64_t v = 0; v < nversions && v < PUBDATA_MAX_VERSIONS; v++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ", cents_%" PRId64 " bigint", v);
    snprintf(sql + len, sizeof sql - (size_t)len, ") PARTITION BY LIST (data_source)");
    if (db_exec(db, sql, e) != 0)
        return -1;
    /* a partition per data source a share can land in (a project's, or a
     * pending row's for #UNALLOCATED), and a default one for safety */
    PGresult *r = db_query(db, PARTIAL_PARTITIONS_SQL, 1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int rc = db_exec(db, PQgetvalue(r, 0, 0), e);
    PQclear(r);
    if (rc != 0)
        return -1;
    snprintf(sql, sizeof sql, POOL_ROWS_SQL, id);
    if (db_exec_params(db, sql, 1, p, e) < 0)
        return -1;
    log_info("snapshot: #POOL rows in %.1fs", run_elapsed(&t0));
    return 0;
}

/* ---- the direct rows, copied beside the validation ---------------------------
 * A second connection imports the snapshot of the run's transaction
 * (pg_export_snapshot: the very same view of the ledger, DESIGN.md 5.1) and
 * copies the direct rows into run_direct_N on the other core while the run's
 * own transaction validates and writes the rest. It commits just before the
 * run's transaction, only when that one is about to: until then nothing of the
 * copy is visible, and a copy whose run never committed (a crash between the
 * two commits) is an orphan table that finish sweeps (run_sweep_orphans). The
 * run's transaction holds the advisory lock of its run id until it commits,
 * so the sweep never takes a table whose run is about to appear. */

/* $1 period, $2 ruleset; %s the run's number. The sort key is the project's
 * rank in unit order (data source, project code), a number: the sort compares
 * integers, not pairs of strings. (Summing per project, item and category on
 * the way writes 40% of the rows but sorts on strings again: slower from
 * scale 2 on.) Rows that fail validation (unbound, unknown project) are left
 * out: the run is refused then anyway. */
static const char DIRECT_ROWS_SQL[] =
    "INSERT INTO run_direct_%s "
    "SELECT p.data_source, e.project_code, coalesce(bb.item_code, ba.item_code), e.category, "
    "       (e.amount * 100)::bigint "
    "FROM ledger_entry e "
    "JOIN (SELECT data_source, project_code, "
    "             row_number() OVER (ORDER BY data_source, project_code) AS k FROM project) p "
    "     ON p.project_code = e.project_code " BINDING_JOINS
    "WHERE e.period_code = $1 AND e.project_code IS NOT NULL "
    "  AND coalesce(bb.item_code, ba.item_code) IS NOT NULL "
    "ORDER BY p.k";

typedef struct direct_copy {
    const alloc_config *cfg;
    char id[32], period[16], ruleset[256], snapshot[64];
    db_conn *db;
    pthread_t thread;
    int started;
    int rc; /* 0 when the rows are in, uncommitted */
    db_error e;
    double secs;
} direct_copy;

static void *direct_copy_main(void *arg) {
    direct_copy *d = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char err[DB_ERRMSG_MAX];
    d->db = db_connect(d->cfg->pg_dsn, err, sizeof err);
    if (!d->db) {
        snprintf(d->e.msg, sizeof d->e.msg, "%s", err);
        return NULL;
    }
    char sql[1024];
    const char *p[] = {d->period, d->ruleset};
    if (db_durable_commits(d->db, &d->e) != 0 || db_begin(d->db, "REPEATABLE READ", &d->e) != 0)
        return NULL;
    snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT '%s'", d->snapshot);
    if (db_exec(d->db, sql, &d->e) != 0 ||
        db_exec(d->db, "SET LOCAL work_mem = '512MB'", &d->e) != 0)
        return NULL;
    snprintf(sql, sizeof sql,
             "CREATE TABLE run_direct_%s (data_source text NOT NULL, project_code text NOT NULL, "
             "    item_code text NOT NULL, category text, cents bigint NOT NULL)",
             d->id);
    if (db_exec(d->db, sql, &d->e) != 0)
        return NULL;
    snprintf(sql, sizeof sql, DIRECT_ROWS_SQL, d->id);
    if (db_exec_params(d->db, sql, 2, p, &d->e) < 0)
        return NULL;
    snprintf(sql, sizeof sql,
             "ANALYZE run_direct_%s; "
             "CREATE INDEX ON run_direct_%s USING brin (data_source, project_code) "
             "WITH (pages_per_range = 16)",
             d->id, d->id);
    if (db_exec(d->db, sql, &d->e) != 0)
        return NULL;
    d->secs = run_elapsed(&t0);
    d->rc = 0;
    return NULL;
}

/* Starts the copy in the snapshot of the open transaction on db. Returns 0, or
 * -1 with e. */
static int direct_copy_start(direct_copy *d, run_state *st, const char *id, const char *period,
                             db_error *e) {
    d->cfg = st->cfg;
    d->rc = -1;
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->period, sizeof d->period, "%s", period);
    snprintf(d->ruleset, sizeof d->ruleset, "%s", st->ruleset);
    PGresult *r = db_query(st->db, "SELECT pg_export_snapshot()", 0, NULL, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    snprintf(d->snapshot, sizeof d->snapshot, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* an exported snapshot's name is hex digits and dashes: safe to quote */
    if (d->snapshot[strspn(d->snapshot, "0123456789ABCDEFabcdef-")] != '\0') {
        snprintf(e->msg, sizeof e->msg, "unexpected snapshot name %s", d->snapshot);
        return -1;
    }
    if (pthread_create(&d->thread, NULL, direct_copy_main, d) != 0) {
        snprintf(e->msg, sizeof e->msg, "cannot start the direct rows' copy");
        return -1;
    }
    d->started = 1;
    return 0;
}

static void direct_copy_join(direct_copy *d) {
    if (d->started) {
        pthread_join(d->thread, NULL);
        d->started = 0;
    }
}

/* Waits for the copy. Returns 0 when its rows are in (uncommitted), or -1 with e. */
static int direct_copy_wait(direct_copy *d, db_error *e) {
    direct_copy_join(d);
    if (d->rc != 0) {
        *e = d->e;
        return -1;
    }
    log_info("snapshot: direct rows in unit order in %.1fs (beside the validation)", d->secs);
    return 0;
}

/* Ends the copy: commits it when commit is set (the run's transaction commits
 * next), else rolls it back; closes its connection. Returns 0, or -1 with e. */
static int direct_copy_end(direct_copy *d, int commit, db_error *e) {
    direct_copy_join(d);
    int rc = 0;
    if (commit && d->rc != 0) {
        *e = d->e;
        rc = -1;
    } else if (commit) {
        rc = db_commit(d->db, e);
    } else if (d->db) {
        db_rollback(d->db, NULL);
    }
    db_close(d->db);
    d->db = NULL;
    return rc;
}

/* Buckets: each data source's pending rows in (item, entry) order, cut every
 * $4 rows; each bucket is split into batches of $5 rows. */
static const char *BUCKETS_SQL =
    "INSERT INTO run_bucket (run_id, bucket_id, data_source, first_row, row_count, batch_count) "
    "SELECT $1, s.data_source || '#' || k, s.data_source, k * $2::bigint, "
    "       least($2::bigint, s.n - k * $2::bigint), "
    "       ((least($2::bigint, s.n - k * $2::bigint) + $3::bigint - 1) / $3::bigint)::int "
    "FROM (SELECT data_source, count(*) AS n FROM run_pending WHERE run_id = $1 GROUP BY 1) s, "
    "     generate_series(0, (s.n - 1) / $2::bigint) k";

static const char *PUBLIC_SQL =
    "SELECT json_build_object("
    " 'versions', (SELECT coalesce(json_agg(json_build_array(version, include_categories) "
    "              ORDER BY version COLLATE \"C\"), '[]') FROM report_version),"
    " 'rules', (SELECT coalesce(json_agg(json_build_array(version, item_code, driver, scope) "
    "           ORDER BY version COLLATE \"C\", item_code COLLATE \"C\"), '[]') "
    "           FROM allocation_rule WHERE ruleset = $2),"
    " 'projects', (SELECT coalesce(json_agg(json_build_array(project_code, company_code, "
    "              data_source) ORDER BY project_code COLLATE \"C\"), '[]') FROM project "
    "              WHERE active),"
    " 'drivers', (SELECT coalesce(json_agg(json_build_array(d.driver, d.project_code, "
    "             d.value::text) ORDER BY d.driver COLLATE \"C\", d.project_code COLLATE \"C\"), "
    "             '[]') FROM allocation_driver d JOIN project p ON p.project_code = d.project_code "
    "             AND p.active WHERE d.period_code = $1)"
    ")::text";

/* The ruleset stamp: the latest updated_at over its rows (a rule's update time
 * is its version), with the row count so that a deleted rule changes it too. */
static const char *STAMP_SQL =
    "SELECT coalesce(to_char(max(u) AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS.US'), 'empty') "
    "       || '-' || sum(n) FROM ("
    " SELECT max(updated_at) AS u, count(*) AS n FROM report_item WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM binding_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM allocation_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM audit_rule WHERE ruleset = $1) s";

/* Runs the snapshot transaction. Returns an exit code; on success st holds the
 * registered run. */
int run_snapshot(run_state *st, const run_opts *o) {
    db_error e;
    const char *pp[] = {o->period};
    if (db_begin(st->db, "REPEATABLE READ", &e) != 0 ||
        db_exec(st->db, "SET LOCAL work_mem = '512MB'", &e) != 0)
        return cli_fail_db(&e, "begin snapshot");

    /* The period row, locked against a concurrent close-period until commit. */
    PGresult *r =
        db_query(st->db, "SELECT ruleset, status FROM period WHERE period_code = $1 FOR SHARE", 1,
                 pp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "read period");
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        db_rollback(st->db, NULL);
        cli_error("unknown period %s", o->period);
        return ALLOC_EXIT_REFUSED;
    }
    snprintf(st->ruleset, sizeof st->ruleset, "%s", PQgetvalue(r, 0, 0));
    int closed = strcmp(PQgetvalue(r, 0, 1), "open") != 0;
    PQclear(r);
    if (closed) {
        db_rollback(st->db, NULL);
        cli_error("period %s is closed", o->period);
        return ALLOC_EXIT_REFUSED;
    }

    /* Register the run: the partial unique index admits one running run per period. */
    const char *rp[] = {o->period, st->ruleset, o->detail ? "true" : "false"};
    r = db_query(
        st->db,
        "INSERT INTO alloc_run (period_code, ruleset, status, stage, detail, heartbeat_at) "
        "VALUES ($1, $2, 'running', 'snapshot', $3::boolean, now()) RETURNING run_id",
        3, rp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        if (db_error_is(&e, DB_SQLSTATE_UNIQUE_VIOLATION)) {
            int64_t running = 0;
            if (db_query_int64(st->db,
                               "SELECT min(run_id) FROM alloc_run WHERE period_code = $1 "
                               "AND status = 'running'",
                               1, pp, &running, &e) == 1)
                cli_error("period %s already has run %" PRId64 " running: wait for it, "
                          "or resume --run %" PRId64 " / abort --run %" PRId64,
                          o->period, running, running, running);
            else
                cli_error("period %s already has a running run", o->period);
            return ALLOC_EXIT_REFUSED;
        }
        return cli_fail_db(&e, "register run");
    }
    st->run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    log_set_run(st->run_id);

    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *ip[] = {id};
    direct_copy dc;
    memset(&dc, 0, sizeof dc);
    PGresult *lock = db_query(st->db, RUN_LOCK_SQL, 1, ip, PGRES_TUPLES_OK, &e);
    PQclear(lock);
    if (!lock || direct_copy_start(&dc, st, id, o->period, &e) != 0) {
        direct_copy_end(&dc, 0, NULL);
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "snapshot");
    }

#define SNAP_FAIL(what)                                                                            \
    do {                                                                                           \
        formulas_free(&fx);                                                                        \
        direct_copy_end(&dc, 0, NULL);                                                             \
        db_rollback(st->db, NULL);                                                                 \
        return cli_fail_db(&e, "%s", what);                                                        \
    } while (0)
    int bad = validate(st->db, o->period, st->ruleset, &e);
    formulas fx;
    memset(&fx, 0, sizeof fx);
    if (bad >= 0) {
        int fx_errors = formulas_compile(st->db, st->ruleset, &fx);
        if (fx_errors < 0) {
            direct_copy_end(&dc, 0, NULL);
            db_rollback(st->db, NULL);
            return ALLOC_EXIT_RUNTIME;
        }
        bad += fx_errors;
    }
    if (bad != 0) {
        formulas_free(&fx);
        direct_copy_end(&dc, 0, NULL);
        db_rollback(st->db, NULL);
        if (bad < 0)
            return cli_fail_db(&e, "validate");
        cli_error("period %s refused: %d validation error(s), nothing sent", o->period, bad);
        return ALLOC_EXIT_VALIDATION;
    }

    if (run_steps(st->db, "snapshot", SNAPSHOT_STEPS,
                  sizeof SNAPSHOT_STEPS / sizeof SNAPSHOT_STEPS[0], id, &e) != 0 ||
        snapshot_run_tables(st->db, id, &e) != 0)
        SNAP_FAIL("snapshot");

    char bucket_rows[32], batch_size[32];
    snprintf(bucket_rows, sizeof bucket_rows, "%ld", o->bucket_rows);
    snprintf(batch_size, sizeof batch_size, "%ld", o->batch_size);
    const char *bp[] = {id, bucket_rows, batch_size};
    if (db_exec_params(st->db, BUCKETS_SQL, 3, bp, &e) < 0)
        SNAP_FAIL("buckets");

    const char *rs[] = {st->ruleset};
    r = db_query(st->db, STAMP_SQL, 1, rs, PGRES_TUPLES_OK, &e);
    if (!r)
        SNAP_FAIL("ruleset stamp");
    snprintf(st->stamp, sizeof st->stamp, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    const char *pub[] = {o->period, st->ruleset};
    r = db_query(st->db, PUBLIC_SQL, 2, pub, PGRES_TUPLES_OK, &e);
    if (!r)
        SNAP_FAIL("public data");
    const char *body = PQgetvalue(r, 0, 0);
    snprintf(st->public_key, sizeof st->public_key, "alloc:public:%s:%s:%s:%016" PRIx64, o->period,
             st->ruleset, st->stamp, fnv1a(body, strlen(body)));
    /* the digest guards against two rule sets with one stamp (an edit committed
     * late with an older updated_at): the key is always that of these bytes */
    snprintf(st->fx_key, sizeof st->fx_key, "alloc:fx:%s:%s:%016" PRIx64, st->ruleset, st->stamp,
             fnv1a((const char *)fx.bytes, fx.len) ^ fnv1a(fx.audits, strlen(fx.audits)));
    char *fx_hex = malloc(fx.len * 2 + 3);
    ALLOC_ASSERT(fx_hex != NULL);
    strcpy(fx_hex, "\\x");
    for (size_t i = 0; i < fx.len; i++)
        snprintf(fx_hex + 2 + 2 * i, 3, "%02x", fx.bytes[i]);
    const char *pk[] = {id, st->public_key, body, st->fx_key, fx_hex, fx.audits};
    int64_t ok =
        db_exec_params(st->db,
                       "INSERT INTO run_public (run_id, cache_key, body, fx_key, formulas, "
                       "audits) VALUES ($1, $2, $3, $4, $5::bytea, $6)",
                       6, pk, &e);
    free(fx_hex);
    PQclear(r);
    if (ok < 0)
        SNAP_FAIL("store public data");
    formulas_free(&fx);

    const char *up[] = {id, st->stamp, batch_size};
    if (db_exec_params(st->db,
                       "UPDATE alloc_run SET ruleset_stamp = $2, stage = 'allocate', "
                       "batch_size = $3::int, "
                       "expected_batches = (SELECT coalesce(sum(batch_count), 0) FROM run_bucket "
                       "WHERE run_id = $1) WHERE run_id = $1",
                       3, up, &e) < 0)
        SNAP_FAIL("start run");
    if (direct_copy_wait(&dc, &e) != 0)
        SNAP_FAIL("snapshot: direct rows");
#undef SNAP_FAIL
    /* the copy first: a crash between the two commits leaves an orphan
     * table, never a run without its direct rows */
    if (direct_copy_end(&dc, 1, &e) != 0) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "commit snapshot: direct rows");
    }
    if (db_commit(st->db, &e) != 0)
        return cli_fail_db(&e, "commit snapshot");
    return ALLOC_EXIT_OK;
}
