/* The export role's SQL (see export_sql.h). */
#include "export_sql.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_write.h"
#include "log.h"

/* ---- the export_task rows -------------------------------------------------------- */

int export_sql_claim(db_conn *ctl, const char *worker, int stale_seconds, export_task *t,
                     db_error *err) {
    char stale[16];
    snprintf(stale, sizeof stale, "%d", stale_seconds);
    const char *params[] = {worker, stale};
    PGresult *res = db_query(
        ctl,
        "UPDATE export_task t SET status = 'running', started_at = now(), heartbeat_at = now(), "
        "  claimed_by = $1, attempts = t.attempts + 1, row_count = NULL, error = NULL "
        "WHERE t.task_id = (SELECT task_id FROM export_task "
        "                   WHERE status = 'queued' OR (status = 'running' AND "
        "                     coalesce(heartbeat_at, started_at, created_at) "
        "                       < now() - make_interval(secs => $2::int)) "
        "                   ORDER BY task_id FOR UPDATE SKIP LOCKED LIMIT 1) "
        "RETURNING t.task_id, t.period_code, coalesce(t.version, ''), t.detail, t.format, "
        "          coalesce(t.run_id, 0), t.attempts",
        2, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        memset(t, 0, sizeof *t);
        t->task_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(t->period, sizeof t->period, "%s", PQgetvalue(res, 0, 1));
        snprintf(t->version, sizeof t->version, "%s", PQgetvalue(res, 0, 2));
        t->detail = PQgetvalue(res, 0, 3)[0] == 't';
        t->xlsx = strcmp(PQgetvalue(res, 0, 4), "xlsx") == 0;
        t->run_id = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        t->attempt = atoi(PQgetvalue(res, 0, 6));
        snprintf(t->id_text, sizeof t->id_text, "%" PRId64, t->task_id);
        snprintf(t->attempt_text, sizeof t->attempt_text, "%d", t->attempt);
        snprintf(t->run_text, sizeof t->run_text, "%" PRId64, t->run_id);
    }
    PQclear(res);
    return found;
}

int export_sql_heartbeat(db_conn *ctl, const export_task *t, int64_t rows, db_error *err) {
    char rows_text[24];
    snprintf(rows_text, sizeof rows_text, "%" PRId64, rows);
    const char *params[] = {t->id_text, t->attempt_text, rows_text};
    int64_t n = db_exec_params(ctl,
                               "UPDATE export_task SET heartbeat_at = now(), row_count = $3 "
                               "WHERE task_id = $1 AND attempts = $2 AND status = 'running'",
                               3, params, err);
    return n < 0 ? -1 : n > 0;
}

void export_sql_record_failed(db_conn *ctl, const export_task *t, const char *why) {
    const char *params[] = {t->id_text, t->attempt_text, why};
    db_error err;
    if (!ctl)
        snprintf(err.msg, sizeof err.msg, "no connection");
    else if (db_exec_params(ctl,
                            "UPDATE export_task SET status = 'failed', error = $3, "
                            "  finished_at = now() "
                            "WHERE task_id = $1 AND attempts = $2 AND status = 'running'",
                            3, params, &err) >= 0)
        return;
    log_warn("export task %" PRId64 ": cannot record the failure (%s); it will be claimed "
             "again once its heartbeat is stale",
             t->task_id, err.msg);
}

void export_sql_record_requeued(db_conn *ctl, const export_task *t, int refund) {
    const char *params[] = {t->id_text, t->attempt_text, refund ? "1" : "0"};
    db_error err;
    if (!ctl)
        snprintf(err.msg, sizeof err.msg, "no connection");
    else if (db_exec_params(ctl,
                            "UPDATE export_task SET status = 'queued', started_at = NULL, "
                            "  heartbeat_at = NULL, claimed_by = NULL, row_count = NULL, "
                            "  attempts = attempts - $3::int "
                            "WHERE task_id = $1 AND attempts = $2 AND status = 'running'",
                            3, params, &err) >= 0)
        return;
    log_warn("export task %" PRId64 ": cannot put it back in the queue (%s); it will be "
             "claimed again once its heartbeat is stale",
             t->task_id, err.msg);
}

export_outcome export_sql_record_done(db_conn *ctl, const export_task *t, const char *tmp,
                                      const char *final, const char *dir, int64_t rows,
                                      const char *sha, char *why, size_t whylen) {
    db_error err;
    char rows_text[24];
    snprintf(rows_text, sizeof rows_text, "%" PRId64, rows);
    const char *lock_params[] = {t->id_text, t->attempt_text};
    const char *done_params[] = {t->id_text, final, rows_text, sha};
    int64_t held = 0;
    if (db_begin(ctl, NULL, &err) < 0)
        goto db_failed;
    int found = db_query_int64(ctl,
                               "SELECT 1 FROM export_task WHERE task_id = $1 AND attempts = $2 "
                               "AND status = 'running' FOR UPDATE",
                               2, lock_params, &held, &err);
    if (found < 0)
        goto db_failed;
    if (!found) {
        db_rollback(ctl, NULL);
        return EXPORT_OUTCOME_LOST;
    }
    if (rename(tmp, final) != 0) {
        snprintf(why, whylen, "moving %.200s to %.200s: %s", tmp, final, strerror(errno));
        db_rollback(ctl, NULL);
        return EXPORT_OUTCOME_FAILED;
    }
    export_write_sync_dir(dir);
    if (db_exec_params(ctl,
                       "UPDATE export_task SET status = 'done', path = $2, row_count = $3, "
                       "  sha256 = $4, error = NULL, finished_at = now(), heartbeat_at = now() "
                       "WHERE task_id = $1",
                       4, done_params, &err) < 0 ||
        db_commit(ctl, &err) < 0)
        goto db_failed;
    return EXPORT_OUTCOME_DONE;

db_failed:
    db_rollback(ctl, NULL);
    log_warn("export task %" PRId64 ": recording the outcome: %s; the task will be claimed "
             "again once its heartbeat is stale",
             t->task_id, err.msg);
    return EXPORT_OUTCOME_RETRY;
}

/* ---- the run and its rows ---------------------------------------------------------- */

int export_sql_check_run(db_conn *data, const export_task *t, const export_shape *s, char *why,
                         size_t whylen, db_error *err) {
    if (t->run_id <= 0) {
        snprintf(why, whylen, "the task names no run");
        return 0;
    }
    const char *params[] = {t->run_text};
    PGresult *res = db_query(data,
                             "SELECT r.status, r.detail, r.period_code, r.replaced_by "
                             "FROM alloc_run r WHERE r.run_id = $1",
                             1, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int ok = 0;
    if (PQntuples(res) != 1) {
        snprintf(why, whylen, "run %s does not exist", t->run_text);
    } else if (strcmp(PQgetvalue(res, 0, 0), "succeeded") != 0) {
        snprintf(why, whylen, "run %s is %s, not succeeded", t->run_text, PQgetvalue(res, 0, 0));
    } else if (strcmp(PQgetvalue(res, 0, 2), t->period) != 0) {
        snprintf(why, whylen, "run %s belongs to period %s, not %s", t->run_text,
                 PQgetvalue(res, 0, 2), t->period);
    } else if (t->detail && PQgetvalue(res, 0, 1)[0] != 't') {
        snprintf(why, whylen, "run %s was made without --detail: it has no %s", t->run_text,
                 s->table);
    } else if (!PQgetisnull(res, 0, 3)) {
        snprintf(why, whylen,
                 "the results of run %s were replaced by run %s (the success of a later run "
                 "deletes the unpublished results of earlier runs); file the export again",
                 t->run_text, PQgetvalue(res, 0, 3));
    } else {
        ok = 1;
    }
    PQclear(res);
    return ok;
}

/* Appends the key columns to sql, each COLLATE "C" when needed. */
static void append_keys(char *sql, size_t n, const export_shape *s, int byte_order) {
    for (int k = 0; k < s->nkeys; k++) {
        size_t len = strlen(sql);
        snprintf(sql + len, n - len, "%s%s%s", k ? ", " : "", s->cols[k],
                 s->key_is_text[k] && !byte_order ? " COLLATE \"C\"" : "");
    }
}

void export_sql_segment(char *sql, size_t n, const export_shape *s, int by_version, int after,
                        int byte_order) {
    snprintf(sql, n, "SELECT ");
    for (int c = 0; c < s->ncols; c++) {
        size_t len = strlen(sql);
        snprintf(sql + len, n - len, "%s%s", c ? ", " : "", s->cols[c]);
    }
    size_t len = strlen(sql);
    snprintf(sql + len, n - len, " FROM %s WHERE run_id = $1%s", s->table,
             by_version ? " AND version = $3" : "");
    if (after) {
        len = strlen(sql);
        snprintf(sql + len, n - len, " AND (");
        append_keys(sql, n, s, byte_order);
        len = strlen(sql);
        snprintf(sql + len, n - len, ") > (");
        for (int k = 0; k < s->nkeys; k++) {
            len = strlen(sql);
            snprintf(sql + len, n - len, "%s$%d", k ? ", " : "", (by_version ? 4 : 3) + k);
        }
        len = strlen(sql);
        snprintf(sql + len, n - len, ")");
    }
    len = strlen(sql);
    snprintf(sql + len, n - len, " ORDER BY ");
    append_keys(sql, n, s, byte_order);
    len = strlen(sql);
    snprintf(sql + len, n - len, " LIMIT $2");
}

PGresult *export_sql_fetch_segment(db_conn *data, const char *sql, const export_task *t,
                                   const char *limit_text, const export_shape *s,
                                   const PGresult *last, int last_row, db_error *err) {
    const char *params[3 + 4];
    int n = 0;
    params[n++] = t->run_text;
    params[n++] = limit_text;
    if (t->version[0])
        params[n++] = t->version;
    if (last)
        for (int k = 0; k < s->nkeys; k++)
            params[n++] = PQgetvalue(last, last_row, k);
    return db_query(data, sql, n, params, PGRES_TUPLES_OK, err);
}
