/* The shared state and helpers of a run, the library the producer's run
 * stages are written on (see run_state.h). */
#include "run_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "fx.h"
#include "log.h"

volatile sig_atomic_t run_interrupted;

void run_i64s(int64_t v, char *buf, size_t len) {
    snprintf(buf, len, "%" PRId64, v);
}

double run_elapsed(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void run_log_event(db_conn *db, int64_t run_id, const char *event, const char *detail_json) {
    char id[32];
    run_i64s(run_id, id, sizeof id);
    const char *p[] = {id, event, detail_json};
    db_error e;
    if (db_exec_params(db, "INSERT INTO run_log (run_id, event, detail) VALUES ($1, $2, $3::jsonb)",
                       3, p, &e) < 0)
        log_warn("run_log %s: %s", event, e.msg);
}

/* The run's commits (snapshot, aggregation, markers it reads back) must
 * survive a server crash (db_durable_commits): a lost aggregation commit after
 * its formula batches went out would finish the run without its base rows.
 * Made on connecting and after every reset (run_reset_db); a failure is only
 * warned about, the run goes on. */
void run_durable_commits(db_conn *db) {
    db_error e;
    if (db_durable_commits(db, &e) != 0)
        log_warn("SET synchronous_commit = on: %s", e.msg);
}

/* db_reset, then durable_commits. Returns 0, or -1 with e. */
int run_reset_db(db_conn *db, int max_wait_ms, db_error *e) {
    if (db_reset(db, max_wait_ms, e) != 0)
        return -1;
    run_durable_commits(db);
    return 0;
}

/* Marks the run failed with its error (outside any transaction). */
void run_mark_failed(run_state *st, const char *error) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, error};
    db_error e;
    /* the failure may have been a lost connection: without one the run would
     * stay `running` with nobody driving it */
    if (!db_ok(st->db))
        run_reset_db(st->db, 30000, NULL);
    db_rollback(st->db, NULL);
    if (db_exec_params(st->db,
                       "UPDATE alloc_run SET status = 'failed', error = $2, finished_at = now() "
                       "WHERE run_id = $1 AND status = 'running'",
                       2, p, &e) < 0)
        log_error("marking run failed: %s", e.msg);
    json_t *j = json_pack("{s:s}", "error", error);
    char *detail = j ? json_dumps(j, JSON_COMPACT) : NULL;
    run_log_event(st->db, st->run_id, "failed", detail ? detail : "{}");
    free(detail);
    json_decref(j);
}

int run_drop_tables(db_conn *db, const char *run_id, db_error *e) {
    const char *p[] = {run_id};
    PGresult *r =
        db_query(db,
                 "SELECT c.relname FROM pg_class c "
                 "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
                 "AND NOT c.relispartition "
                 "AND (c.relname IN ('run_direct_' || $1, 'alloc_partial_run_' || $1, "
                 "                   'report_before_run_' || $1, 'report_after_run_' || $1) "
                 "     OR c.relname LIKE 'report_after\\_run\\_' || $1 || '\\_u%' ) "
                 "ORDER BY c.relname COLLATE \"C\"",
                 1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        char drop[160];
        snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS \"%s\"", PQgetvalue(r, i, 0));
        rc = db_exec(db, drop, e);
    }
    PQclear(r);
    return rc;
}

int run_sweep_orphans(db_conn *db, db_error *e) {
    PGresult *r = db_query(db,
                           "SELECT substr(c.relname, 12) FROM pg_class c "
                           "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
                           "AND c.relname ~ '^run_direct_[0-9]{1,18}$' "
                           "AND NOT EXISTS (SELECT 1 FROM alloc_run a "
                           "    WHERE a.run_id = substr(c.relname, 12)::bigint) "
                           "ORDER BY 1",
                           0, NULL, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int dropped = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *p[] = {PQgetvalue(r, i, 0)};
        /* a snapshot still going holds its run's lock; once it is taken here,
         * a fresh look (this is READ COMMITTED) tells whether the run committed */
        int64_t orphan = 0;
        if (db_query_int64(db,
                           "SELECT CASE WHEN pg_try_advisory_xact_lock(" RUN_LOCK_KEY
                           ") THEN 1 ELSE 0 END",
                           1, p, &orphan, e) < 0 ||
            (orphan == 1 && db_query_int64(db,
                                           "SELECT CASE WHEN EXISTS (SELECT 1 FROM alloc_run "
                                           "WHERE run_id = $1::bigint) THEN 0 ELSE 1 END",
                                           1, p, &orphan, e) < 0)) {
            PQclear(r);
            return -1;
        }
        if (orphan != 1)
            continue;
        char drop[96];
        snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS run_direct_%s", p[0]);
        if (db_exec(db, drop, e) != 0) {
            PQclear(r);
            return -1;
        }
        log_info("dropped run_direct_%s: the copy of a snapshot that never committed", p[0]);
        dropped++;
    }
    PQclear(r);
    return dropped;
}

/* Runs steps with $1 = run id, logging how long each took. Returns 0 or -1 with e. */
int run_steps(db_conn *db, const char *phase, const sql_step *steps, size_t n, const char *run_id,
              db_error *e) {
    const char *p[] = {run_id};
    for (size_t i = 0; i < n; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        PGresult *r =
            db_query(db, steps[i].sql, 1, p,
                     strncmp(steps[i].sql, "WITH", 4) ? PGRES_COMMAND_OK : PGRES_TUPLES_OK, e);
        if (!r)
            return -1;
        PQclear(r);
        log_info("%s: %s in %.1fs", phase, steps[i].label, run_elapsed(&t0));
    }
    return 0;
}

void run_formulas_free(run_formulas *f) {
    fx_ruleset_free(f->rs);
    free(f->bytes);
    free(f->audits);
    memset(f, 0, sizeof *f);
}

int run_load_formulas(run_state *st, run_formulas *f) {
    memset(f, 0, sizeof *f);
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db,
                           "SELECT formulas, audits FROM run_public "
                           "WHERE run_id = $1 AND formulas IS NOT NULL",
                           1, p, PGRES_TUPLES_OK, &e);
    if (!r)
        return cli_fail_db(&e, "read the run's formulas");
    if (PQntuples(r) != 1) {
        PQclear(r);
        cli_error("run %s has no compiled formulas", id);
        return ALLOC_EXIT_RUNTIME;
    }
    /* the bytea arrives in its text form ('\x' hex): libpq turns it back into bytes */
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    f->bytes = malloc(len + 1);
    f->audits = strdup(PQgetvalue(r, 0, 1));
    ALLOC_ASSERT(raw && f->bytes && f->audits);
    memcpy(f->bytes, raw, len);
    f->len = len;
    PQfreemem(raw);
    PQclear(r);
    char err[256];
    f->rs = fx_ruleset_deserialize(f->bytes, f->len, err, sizeof err);
    if (!f->rs) {
        cli_error("the compiled formulas of run %s are damaged: %s", id, err);
        run_formulas_free(f);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}
