/* The last stage of a run (DESIGN.md 5.6): the transaction that makes it
 * succeeded and replaces the period's earlier unpublished results, then the
 * notice to the finance team. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cli.h"
#include "log.h"
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
