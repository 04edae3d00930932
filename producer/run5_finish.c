/* The last stage of a run (DESIGN.md 5.4-5.6): one transaction writes the
 * roll-ups (#TOTAL of each data source, #ALL / #TOTAL) from the units' totals
 * with their formulas and audit findings, checks conservation, keys the run's
 * report_after table and attaches it as the run's partition, makes the run
 * succeeded and replaces the period's earlier unpublished results; then the
 * notice to the finance team. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "log.h"
#include "report_rows.h"
#include "reserved.h"
#include "run_stages.h"
#include "run_state.h"

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
    " d8 AS (DELETE FROM run_unit_total WHERE run_id IN (SELECT run_id FROM old)), "
    " rep AS (UPDATE alloc_run r SET replaced_by = $1::bigint FROM old "
    "         WHERE r.run_id = old.run_id AND r.status = 'succeeded' AND r.replaced_by IS NULL "
    "         RETURNING r.run_id) "
    "SELECT coalesce(jsonb_agg(run_id ORDER BY run_id), '[]')::text FROM rep";

/* Writes the roll-up vectors of the totals in res (version, data_source,
 * item_code, cents, rows), grouped by (version, data source) in that order, with
 * project #TOTAL; all_rows: res has no data_source column and the vectors are
 * (version, '#ALL', '#TOTAL'). Returns 0, or -1 with e. */
static int write_rollups(db_conn *db, const char *id, const PGresult *res, int all_rows,
                         const run_formulas *f, report_findings *found, db_error *e) {
    const fx_ruleset *rs = f->rs;
    size_t nslots = fx_ruleset_slot_count(rs), naudit = fx_ruleset_audit_count(rs);
    fx_value *values = malloc((nslots + 1) * sizeof *values);
    fx_value *avals = malloc((naudit + 1) * sizeof *avals);
    unsigned char *failed = malloc(naudit + 1);
    fx_scratch *scratch = fx_scratch_new();
    ALLOC_ASSERT(values && avals && failed && scratch);
    int c_ds = all_rows ? -1 : 1, c_item = all_rows ? 1 : 2, c_cents = c_item + 1;
    int n = PQntuples(res), rc = 0;
    for (int i = 0; i < n && rc == 0;) {
        report_vector v = {id, PQgetvalue(res, i, 0),
                           all_rows ? RESERVED_ALL : PQgetvalue(res, i, c_ds), RESERVED_TOTAL};
        for (size_t k = 0; k < nslots; k++)
            values[k] = fx_number(0);
        int j = i;
        for (; j < n && !strcmp(PQgetvalue(res, j, 0), v.version) &&
               (all_rows || !strcmp(PQgetvalue(res, j, c_ds), v.data_source));
             j++) {
            const char *item = PQgetvalue(res, j, c_item);
            char *end;
            long long cents = strtoll(PQgetvalue(res, j, c_cents), &end, 10);
            if (*end != '\0') {
                snprintf(e->msg, sizeof e->msg, "the total of %s/%s item %s is out of range: %s",
                         v.version, v.data_source, item, PQgetvalue(res, j, c_cents));
                rc = -1;
                break;
            }
            long slot = fx_ruleset_slot(rs, item);
            if (slot >= 0 && !fx_ruleset_slot_is_formula(rs, (size_t)slot))
                values[slot] = fx_from_cents(cents);
            if (report_rows_base(db, &v, item, cents, e) != 0) {
                rc = -1;
                break;
            }
        }
        if (rc == 0 && (report_rows_formulas(db, &v, rs, values, avals, scratch, failed, e) < 0 ||
                        report_findings_add(found, &v, failed, naudit) != 0))
            rc = -1;
        i = j;
    }
    free(values);
    free(avals);
    free(failed);
    fx_scratch_free(scratch);
    return rc;
}

/* The roll-ups of the run and the conservation check, inside run_finish's
 * transaction. Returns 0, 1 when conservation fails (why in msg), or -1 with
 * e. */
static int assemble_rollups(run_state *st, const char *id, char *msg, size_t msglen, db_error *e) {
    const char *p[] = {id};
    PGresult *r =
        db_query(st->db,
                 "SELECT t.version, t.amount, coalesce(u.amount, 0) FROM run_version_total t "
                 "LEFT JOIN (SELECT version, sum(cents) / 100.0 AS amount FROM run_unit_total "
                 "           WHERE run_id = $1 GROUP BY version) u ON u.version = t.version "
                 "WHERE t.run_id = $1 AND t.amount <> coalesce(u.amount, 0) "
                 "ORDER BY t.version COLLATE \"C\"",
                 1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    if (PQntuples(r) > 0) {
        snprintf(msg, msglen,
                 "conservation failed for version %s: ledger total %s, report total %s",
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        PQclear(r);
        return 1;
    }
    PQclear(r);

    run_formulas f;
    if (run_load_formulas(st, &f) != ALLOC_EXIT_OK) {
        snprintf(e->msg, sizeof e->msg, "the run's compiled formulas cannot be read");
        return -1;
    }
    json_error_t jerr;
    json_t *audits = json_loads(f.audits, 0, &jerr);
    report_findings *found = report_findings_new();
    ALLOC_ASSERT(audits && found);
    PGresult *by_source = NULL, *all = NULL;
    char table[64], copy[256];
    snprintf(table, sizeof table, "report_after_run_%s", id);
    snprintf(copy, sizeof copy, REPORT_ROWS_COPY_SQL, table);
    int rc = -1;
    if (!(by_source = db_query(st->db,
                               "SELECT version, data_source, item_code, sum(cents)::text "
                               "FROM run_unit_total WHERE run_id = $1 "
                               "GROUP BY 1, 2, 3 ORDER BY 1, 2",
                               1, p, PGRES_TUPLES_OK, e)) ||
        !(all = db_query(st->db,
                         "SELECT version, item_code, sum(cents)::text FROM run_unit_total "
                         "WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1",
                         1, p, PGRES_TUPLES_OK, e)))
        goto done;
    if (db_copy_in_begin(st->db, copy, e) != 0)
        goto done;
    if (write_rollups(st->db, id, by_source, 0, &f, found, e) != 0 ||
        write_rollups(st->db, id, all, 1, &f, found, e) != 0) {
        db_copy_in_abort(st->db, "roll-ups failed");
        goto done;
    }
    if (db_copy_in_end(st->db, e) < 0 ||
        report_findings_copy(st->db, id, found, f.rs, audits, e) < 0)
        goto done;
    rc = 0;
done:
    PQclear(by_source);
    PQclear(all);
    report_findings_free(found);
    json_decref(audits);
    run_formulas_free(&f);
    return rc;
}

/* Attaches each unit's table of report_after rows (keyed by the unit; its
 * CHECK spares a scan) to the run's report_after_run_N, and adds the partition
 * of the #ALL roll-ups: the roll-ups then go to their partitions like any row.
 * Returns 0 or -1 with e. */
static int attach_units(run_state *st, const char *id, db_error *e) {
    const char *p[] = {id};
    PGresult *u = db_query(st->db,
                           "SELECT unit_id, data_source, project_lo, project_hi FROM run_unit "
                           "WHERE run_id = $1 ORDER BY unit_id",
                           1, p, PGRES_TUPLES_OK, e);
    if (!u)
        return -1;
    PGconn *pg = db_pg(st->db);
    int rc = 0;
    for (int i = 0; i < PQntuples(u) && rc == 0; i++) {
        char *lit[3] = {NULL, NULL, NULL};
        for (int c = 0; c < 3; c++)
            if (!PQgetisnull(u, i, c + 1))
                lit[c] =
                    PQescapeLiteral(pg, PQgetvalue(u, i, c + 1), (size_t)PQgetlength(u, i, c + 1));
        size_t len = 256;
        for (int c = 0; c < 3; c++)
            len += lit[c] ? strlen(lit[c]) : 0;
        char *sql = malloc(len);
        ALLOC_ASSERT(sql != NULL);
        int quoted = 1;
        for (int c = 0; c < 3; c++)
            quoted = quoted && (lit[c] || PQgetisnull(u, i, c + 1));
        if (!quoted || !lit[0]) {
            snprintf(e->msg, sizeof e->msg, "unit %s: %s", PQgetvalue(u, i, 0), PQerrorMessage(pg));
            rc = -1;
        } else {
            snprintf(sql, len,
                     "ALTER TABLE report_after_run_%s ATTACH PARTITION report_after_run_%s_u%s "
                     "FOR VALUES FROM (%s, %s) TO (%s, %s)",
                     id, id, PQgetvalue(u, i, 0), lit[0], lit[1] ? lit[1] : "MINVALUE", lit[0],
                     lit[2] ? lit[2] : "MAXVALUE");
            rc = db_exec(st->db, sql, e);
        }
        free(sql);
        for (int c = 0; c < 3; c++)
            PQfreemem(lit[c]);
    }
    PQclear(u);
    if (rc != 0)
        return -1;
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE report_after_run_%s_all PARTITION OF report_after_run_%s "
             "(CHECK (run_id = %s)) FOR VALUES FROM ('" RESERVED_ALL
             "', MINVALUE) TO ('" RESERVED_ALL "', MAXVALUE)",
             id, id, id);
    return db_exec(st->db, sql, e);
}

/* Keys the run's report_after_run_N (the union of its partitions' keys) and
 * attaches it to report_after, and report_before_run_N to report_before.
 * Returns 0 or -1 with e. */
static int attach_report(run_state *st, const char *id, db_error *e) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "ALTER TABLE report_after_run_%s ADD PRIMARY KEY (run_id, version, data_source, "
             "project_code, item_code); "
             "ALTER TABLE report_after ATTACH PARTITION report_after_run_%s FOR VALUES IN (%s); "
             "ALTER TABLE report_before ATTACH PARTITION report_before_run_%s FOR VALUES IN (%s)",
             id, id, id, id, id);
    return db_exec(st->db, sql, e);
}

/* The run's last transaction (DESIGN.md 5.4-5.6): the roll-ups, the
 * conservation check (a failure marks the run failed), the key and partition
 * of its report rows; the run becomes `succeeded`, and in the same transaction
 * the results of the period's earlier unpublished runs are deleted, never
 * before: until this commit the previous latest succeeded run stays whole,
 * readable and publishable, and readers never see this one half-written. The
 * period row is locked first, which orders this against publish and
 * close-period. */
int run_finish(run_state *st) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    const char *pp[] = {id, st->period};
    db_error e;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (db_begin(st->db, NULL, &e) != 0)
        return cli_fail_db(&e, "finish run");
    const char *per[] = {st->period};
    PGresult *r = db_query(st->db, "SELECT status FROM period WHERE period_code = $1 FOR UPDATE", 1,
                           per, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: lock the period");
    }
    PQclear(r);
    r = db_query(st->db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR UPDATE", 1, p,
                 PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run");
    }
    int running = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "running");
    PQclear(r);
    if (!running) {
        db_rollback(st->db, NULL);
        cli_error("run %s is no longer running", id);
        return ALLOC_EXIT_RUNTIME;
    }
    if (attach_units(st, id, &e) != 0) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: attach the units' report rows");
    }
    log_info("finish: units attached in %.1fs", run_elapsed(&t0));
    char msg[512];
    int bad = assemble_rollups(st, id, msg, sizeof msg, &e);
    if (bad != 0) {
        db_rollback(st->db, NULL);
        if (bad < 0)
            return cli_fail_db(&e, "finish run: roll-ups");
        cli_error("run %s failed: %s", id, msg);
        run_mark_failed(st, cli_first_error());
        return ALLOC_EXIT_RUNTIME;
    }
    log_info("finish: roll-ups in %.1fs", run_elapsed(&t0));
    if (attach_report(st, id, &e) != 0) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: key and attach the report rows");
    }
    log_info("finish: report key and partition in %.1fs", run_elapsed(&t0));
    /* what is left of the run's own tables: its partials and direct rows */
    if (run_drop_tables(st->db, id, &e) != 0 ||
        db_exec_params(st->db, "DELETE FROM run_unit_total WHERE run_id = $1", 1, p, &e) < 0) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run");
    }
    int64_t n = db_exec_params(st->db,
                               "UPDATE alloc_run SET status = 'succeeded', stage = 'done', "
                               "finished_at = now() WHERE run_id = $1 AND status = 'running'",
                               1, p, &e);
    if (n <= 0) {
        db_rollback(st->db, NULL);
        if (n < 0)
            return cli_fail_db(&e, "finish run");
        cli_error("run %s is no longer running", id);
        return ALLOC_EXIT_RUNTIME;
    }
    r = db_query(st->db, REPLACE_EARLIER_SQL, 2, pp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: replace earlier results");
    }
    char replaced[256];
    snprintf(replaced, sizeof replaced, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* the tables of earlier runs of the period that failed or were aborted
     * (never attached); nothing reads them */
    r = db_query(st->db,
                 "SELECT o.run_id FROM alloc_run o WHERE o.period_code = $2 "
                 "AND o.run_id <> $1::bigint AND o.status IN ('failed', 'aborted') "
                 "ORDER BY o.run_id",
                 2, pp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: earlier runs' tables");
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (run_drop_tables(st->db, PQgetvalue(r, i, 0), &e) != 0) {
            PQclear(r);
            db_rollback(st->db, NULL);
            return cli_fail_db(&e, "finish run: drop an earlier run's tables");
        }
    }
    PQclear(r);
    if (run_sweep_orphans(st->db, &e) < 0) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "finish run: orphan tables");
    }
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
        return cli_fail_db(&e, "finish run");
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
