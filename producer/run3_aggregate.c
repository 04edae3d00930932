/* Aggregation of a run into report_after with roll-ups and the conservation
 * check (DESIGN.md 5.4), its final transaction and its event. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "log.h"
#include "run_stages.h"
#include "run_state.h"
#include <jansson.h>

/* ---- aggregation (DESIGN.md 5.4) ------------------------------------------------ */

/* Aggregation, $1 = run id, into the temp table agg made by run_aggregate(). */
static const sql_step AGGREGATE_STEPS[] = {
    {"base rows",
     /* direct sums (report_before without #POOL) plus the allocated partials, in cents */
     "INSERT INTO agg (version, data_source, project_code, item_code, cents) "
     "SELECT version, data_source, project_code, item_code, sum(cents) FROM ("
     "  SELECT version, data_source, project_code, item_code, (amount * 100)::bigint AS cents "
     "  FROM report_before WHERE run_id = $1 AND project_code <> '#POOL' "
     "  UNION ALL "
     "  SELECT version, data_source, project_code, item_code, cents FROM alloc_partial "
     "  WHERE run_id = $1) s "
     "GROUP BY version, data_source, project_code, item_code"},
    {"unallocated findings",
     /* one 'unallocated' warning per (version, data source, item) */
     "INSERT INTO audit_finding (run_id, version, data_source, project_code, rule_code, severity, "
     "    message) "
     "SELECT $1::bigint, version, data_source, '#UNALLOCATED', 'unallocated', 'warning', "
     "  'item ' || item_code || ': ' || sum(rows) || ' pending row(s) could not be allocated "
     "(no active target or zero total weight)' "
     "FROM alloc_unallocated WHERE run_id = $1 GROUP BY version, data_source, item_code"},
};

/* The run's base rows, #TOTAL of each data source and #ALL / #TOTAL go into a
 * table of their own (%s), which becomes the run's partition of report_after. */
static const char *const REPORT_ROWS_SQL =
    "INSERT INTO %s (run_id, version, data_source, project_code, item_code, amount) "
    "SELECT $1::bigint, version, data_source, project_code, item_code, cents / 100.0 FROM agg "
    "UNION ALL "
    "SELECT $1::bigint, version, data_source, '#TOTAL', item_code, sum(cents) / 100.0 FROM agg "
    "GROUP BY version, data_source, item_code "
    "UNION ALL "
    "SELECT $1::bigint, version, '#ALL', '#TOTAL', item_code, sum(cents) / 100.0 FROM agg "
    "GROUP BY version, item_code";

/* Writes the report rows into a new table, builds its primary key in one sorted
 * pass (much cheaper than maintaining it row by row) and attaches the table as
 * the run's partition of report_after. Returns 0 or -1 with e. */
static int write_report_rows(run_state *st, const char *id, db_error *e) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char table[64], sql[1024];
    const char *p[] = {id};
    snprintf(table, sizeof table, "report_after_run_%s", id);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (LIKE report_after INCLUDING DEFAULTS)", table);
    if (db_exec(st->db, sql, e) != 0)
        return -1;
    snprintf(sql, sizeof sql, REPORT_ROWS_SQL, table);
    if (db_exec_params(st->db, sql, 1, p, e) < 0)
        return -1;
    log_info("aggregate: report rows in %.1fs", run_elapsed(&t0));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(sql, sizeof sql,
             "ALTER TABLE %s ADD PRIMARY KEY (run_id, version, data_source, project_code, "
             "item_code), ADD CHECK (run_id = %s)",
             table, id);
    if (db_exec(st->db, sql, e) != 0)
        return -1;
    snprintf(sql, sizeof sql, "ALTER TABLE report_after ATTACH PARTITION %s FOR VALUES IN (%s)",
             table, id);
    if (db_exec(st->db, sql, e) != 0)
        return -1;
    log_info("aggregate: report key and partition in %.1fs", run_elapsed(&t0));
    return 0;
}

/* Conservation: per version, base rows over real projects plus #UNALLOCATED
 * equal the included ledger total. Returns 0 when it holds, 1 when not (with
 * the difference in msg), -1 on error. */
static int check_conservation(run_state *st, const char *id, char *msg, size_t len, db_error *e) {
    const char *p[] = {id};
    PGresult *r = db_query(
        st->db,
        "SELECT t.version, t.amount, coalesce(b.amount, 0) FROM run_version_total t "
        "LEFT JOIN (SELECT version, sum(amount) AS amount FROM report_after WHERE run_id = $1 "
        "  AND data_source <> '#ALL' AND project_code <> '#TOTAL' GROUP BY version) b "
        "  ON b.version = t.version "
        "WHERE t.run_id = $1 AND t.amount <> coalesce(b.amount, 0) ORDER BY t.version COLLATE "
        "\"C\"",
        1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int bad = PQntuples(r) > 0;
    if (bad)
        snprintf(msg, len, "conservation failed for version %s: ledger total %s, report total %s",
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return bad;
}

/* Builds the base rows and roll-ups of report_after and checks conservation in
 * one transaction, which also moves the run to its formula stage (formula
 * batches: none when the ruleset has neither formulas nor audit rules). */
int run_aggregate(run_state *st, int has_rules) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    if (db_exec_params(st->db, "UPDATE alloc_run SET stage = 'aggregate' WHERE run_id = $1", 1, p,
                       &e) < 0)
        return run_fail_db("aggregate", &e);
    if (db_begin(st->db, NULL, &e) != 0 || db_exec(st->db, "SET LOCAL work_mem = '512MB'", &e) != 0)
        return run_fail_db("aggregate", &e);
    PGresult *r = db_query(st->db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR UPDATE", 1,
                           p, PGRES_TUPLES_OK, &e);
    if (!r)
        return run_fail_db("aggregate", &e);
    int running = PQntuples(r) && !strcmp(PQgetvalue(r, 0, 0), "running");
    PQclear(r);
    if (!running) {
        db_rollback(st->db, NULL);
        cli_error("run %s is no longer running", id);
        return ALLOC_EXIT_RUNTIME;
    }
    if (db_exec(st->db,
                "CREATE TEMP TABLE agg (version text, data_source text, project_code text, "
                "item_code text, cents bigint) ON COMMIT DROP",
                &e) != 0 ||
        run_steps(st->db, "aggregate", AGGREGATE_STEPS,
                  sizeof AGGREGATE_STEPS / sizeof AGGREGATE_STEPS[0], id, &e) != 0 ||
        write_report_rows(st, id, &e) != 0) {
        db_rollback(st->db, NULL);
        return run_fail_db("aggregate", &e);
    }
    char msg[512];
    int bad = check_conservation(st, id, msg, sizeof msg, &e);
    if (bad != 0) {
        db_rollback(st->db, NULL);
        if (bad < 0)
            return run_fail_db("conservation check", &e);
        cli_error("run %s failed: %s", id, msg);
        run_mark_failed(st, cli_first_error());
        return ALLOC_EXIT_RUNTIME;
    }
    /* the formula stage evaluates every vector: (version, data source, project) of
     * the base rows, each data source's #TOTAL and #ALL / #TOTAL */
    static const sql_step DROP_WORK[] = {
        {"partials dropped", "DELETE FROM alloc_partial WHERE run_id = $1"},
        {"unallocated counts dropped", "DELETE FROM alloc_unallocated WHERE run_id = $1"},
        {"pending rows dropped", "DELETE FROM run_pending WHERE run_id = $1"},
    };
    char vpm[32];
    snprintf(vpm, sizeof vpm, "%d", has_rules ? FORMULA_VECTORS_PER_BATCH : 0);
    const char *fp[] = {id, vpm};
    PGresult *fr = NULL;
    if (run_steps(st->db, "aggregate", DROP_WORK, sizeof DROP_WORK / sizeof DROP_WORK[0], id, &e) !=
            0 ||
        !(fr = db_query(st->db,
                        "UPDATE alloc_run SET stage = 'formula', formula_batches = "
                        "  CASE WHEN $2::int = 0 THEN 0 ELSE ("
                        "    (SELECT count(*) FROM (SELECT DISTINCT version, data_source, "
                        "                           project_code FROM agg) a)"
                        "    + (SELECT count(*) FROM (SELECT DISTINCT version, data_source "
                        "                             FROM agg) b)"
                        "    + (SELECT count(DISTINCT version) FROM agg) + $2::int - 1) / $2::int "
                        "  END WHERE run_id = $1 RETURNING formula_batches",
                        2, fp, PGRES_TUPLES_OK, &e))) {
        db_rollback(st->db, NULL);
        return run_fail_db("finish allocation", &e);
    }
    int64_t fb = strtoll(PQgetvalue(fr, 0, 0), NULL, 10);
    PQclear(fr);
    if (db_commit(st->db, &e) != 0)
        return run_fail_db("commit aggregation", &e);
    st->formula_expected = fb;
    snprintf(st->stage, sizeof st->stage, "formula");
    return ALLOC_EXIT_OK;
}
