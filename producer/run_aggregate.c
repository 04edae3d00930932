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
#include "run.h"
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

/* What the success of a run replaces ($1 = the run, $2 = its period): the
 * results of every other run of the period that is not the published one.
 * Runs as one statement, inside run_finish's transaction. */
static const char *const REPLACE_EARLIER_SQL =
    "WITH old AS (SELECT o.run_id FROM alloc_run o WHERE o.period_code = $2 "
    "             AND o.run_id <> $1::bigint "
    "             AND NOT EXISTS (SELECT 1 FROM report_published p WHERE p.run_id = o.run_id)), "
    " d1 AS (DELETE FROM report_after WHERE run_id IN (SELECT run_id FROM old)), "
    " d2 AS (DELETE FROM report_before WHERE run_id IN (SELECT run_id FROM old)), "
    " d3 AS (DELETE FROM alloc_detail WHERE run_id IN (SELECT run_id FROM old)), "
    " d4 AS (DELETE FROM audit_finding WHERE run_id IN (SELECT run_id FROM old)), "
    " d5 AS (DELETE FROM alloc_partial WHERE run_id IN (SELECT run_id FROM old)), "
    " d6 AS (DELETE FROM run_pending WHERE run_id IN (SELECT run_id FROM old)), "
    " d7 AS (DELETE FROM alloc_unallocated WHERE run_id IN (SELECT run_id FROM old)), "
    " rep AS (UPDATE alloc_run r SET replaced_by = $1::bigint FROM old "
    "         WHERE r.run_id = old.run_id AND r.status = 'succeeded' AND r.replaced_by IS NULL "
    "         RETURNING r.run_id) "
    "SELECT coalesce(jsonb_agg(run_id ORDER BY run_id), '[]')::text FROM rep";

/* The run's last transaction (DESIGN.md 5.6): the run becomes `succeeded`,
 * and in the same transaction the results of the period's earlier unpublished
 * runs are deleted, never before: until this commit the previous latest
 * succeeded run stays whole, readable and publishable. The period row is
 * locked first, which orders this against publish and close-period. */
int run_finish(run_state *st) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    const char *pp[] = {id, st->period};
    db_error e;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (db_begin(st->db, NULL, &e) != 0)
        return run_fail_db("finish run", &e);
    const char *per[] = {st->period};
    PGresult *r = db_query(st->db, "SELECT status FROM period WHERE period_code = $1 FOR UPDATE", 1,
                           per, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return run_fail_db("finish run: lock the period", &e);
    }
    PQclear(r);
    int64_t n = db_exec_params(st->db,
                               "UPDATE alloc_run SET status = 'succeeded', stage = 'done', "
                               "finished_at = now() WHERE run_id = $1 AND status = 'running'",
                               1, p, &e);
    if (n <= 0) {
        db_rollback(st->db, NULL);
        if (n < 0)
            return run_fail_db("finish run", &e);
        cli_error("run %s is no longer running", id);
        return ALLOC_EXIT_RUNTIME;
    }
    r = db_query(st->db, REPLACE_EARLIER_SQL, 2, pp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return run_fail_db("finish run: replace earlier results", &e);
    }
    char replaced[256];
    snprintf(replaced, sizeof replaced, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *lp[] = {id, replaced};
    if (db_exec_params(
            st->db,
            "INSERT INTO run_log (run_id, event, detail) "
            "SELECT run_id, 'succeeded', jsonb_build_object('period', period_code, "
            "  'rows_pending', rows_pending, 'rows_direct', rows_direct, "
            "  'allocate_batches', expected_batches, 'formula_batches', formula_batches, "
            "  'seconds', round(extract(epoch FROM finished_at - started_at)::numeric, 3), "
            "  'report_rows', (SELECT count(*) FROM report_after a WHERE a.run_id = r.run_id), "
            "  'findings', (SELECT count(*) FROM audit_finding f WHERE f.run_id = r.run_id), "
            "  'replaced_runs', $2::jsonb) "
            "FROM alloc_run r WHERE run_id = $1",
            2, lp, &e) < 0 ||
        db_commit(st->db, &e) != 0) {
        db_rollback(st->db, NULL);
        return run_fail_db("finish run", &e);
    }
    if (strcmp(replaced, "[]") != 0)
        log_info("run %s succeeded; it replaces the results of run(s) %s", id, replaced);
    log_info("finish: succeeded in %.1fs", run_elapsed(&t0));
    return ALLOC_EXIT_OK;
}

/* The notice to the finance team: an event on alloc.events, kept in the durable
 * queue alloc.notices (bound to every run event) for whoever reads the notices. */
void run_announce(run_state *st) {
    char body[1024], err[256];
    int n = snprintf(body, sizeof body,
                     "{\"event\":\"run.succeeded\",\"run_id\":%" PRId64 ",\"period\":\"%s\","
                     "\"ruleset\":\"%s\"}",
                     st->run_id, st->period, st->ruleset);
    mq_queue_opts qo = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = mq_declare_queue(st->mq, "alloc.notices", &qo, err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_bind(st->mq, "alloc.notices", MQ_EXCHANGE_EVENTS, "run.#", err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_publish(st->mq, MQ_EXCHANGE_EVENTS, "run.succeeded", body, (size_t)n, NULL, 0,
                            err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_flush(st->mq, 10000, err, sizeof err);
        if (rc == MQ_OK)
            return;
        /* the aggregation may have outlasted the heartbeat: reconnect once */
        if (rc != MQ_ERR_CONN || mq_reconnect(st->mq, 3, err, sizeof err) != MQ_OK)
            break;
    }
    log_warn("event for run %" PRId64 " not published: %s", st->run_id, err);
}
