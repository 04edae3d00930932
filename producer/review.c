/* Shared parts of the review commands (see review.h). */
#include "review.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"

int review_arg(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
        return -1;
    *value = argv[++*i];
    return 1;
}

db_conn *review_connect(const alloc_config *cfg, const char *cmd) {
    char err[DB_ERRMSG_MAX];
    db_conn *c = db_connect(cfg->pg_dsn, err, sizeof err);
    if (!c)
        fprintf(stderr, "alloc-producer: %s: %s\n", cmd, err);
    if (c && cli_check_schema(c, cmd) != ALLOC_EXIT_OK) {
        db_close(c);
        return NULL;
    }
    return c;
}

int review_fail(const char *cmd, const char *what, const db_error *err) {
    if (cli_is_no_schema(err))
        cli_error("%s: %s: %s (%s)", cmd, what, CLI_NO_SCHEMA, err->msg);
    else
        cli_error("%s: %s: %s", cmd, what, err ? err->msg : "unknown error");
    return ALLOC_EXIT_RUNTIME;
}

int review_refuse(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_error("%s: %s", cmd, msg);
    return ALLOC_EXIT_REFUSED;
}

/* Copies column col of row 0 of res into buf (when buf is not NULL). */
static void copy_value(const PGresult *res, int col, char *buf, size_t len) {
    if (buf && len)
        snprintf(buf, len, "%s", PQgetvalue(res, 0, col));
}

int review_period(db_conn *c, const char *period, int lock, char *status, size_t status_len,
                  char *ruleset, size_t ruleset_len, db_error *err) {
    const char *params[] = {period};
    PGresult *res =
        db_query(c,
                 lock ? "SELECT status, ruleset FROM period WHERE period_code = $1 FOR UPDATE"
                      : "SELECT status, ruleset FROM period WHERE period_code = $1",
                 1, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        copy_value(res, 0, status, status_len);
        copy_value(res, 1, ruleset, ruleset_len);
    }
    PQclear(res);
    return found;
}

int review_run(db_conn *c, int64_t run_id, review_run_info *info, db_error *err) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *res = db_query(c,
                             "SELECT period_code, status, coalesce(replaced_by, 0), "
                             "coalesce(error, '') FROM alloc_run WHERE run_id = $1",
                             1, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        copy_value(res, 0, info->period, sizeof info->period);
        copy_value(res, 1, info->status, sizeof info->status);
        info->replaced_by = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        copy_value(res, 3, info->error, sizeof info->error);
    }
    PQclear(res);
    return found;
}

int review_run_readable(int64_t run_id, const review_run_info *info, char *why, size_t why_len) {
    if (!strcmp(info->status, "running")) {
        snprintf(why, why_len,
                 "run %" PRId64 " is running, not succeeded: its report is not complete yet",
                 run_id);
        return 0;
    }
    if (strcmp(info->status, "succeeded") != 0) {
        snprintf(why, why_len, "run %" PRId64 " is %s, not succeeded%s%s: it has no report", run_id,
                 info->status, info->error[0] ? ": " : "", info->error);
        return 0;
    }
    if (info->replaced_by) {
        snprintf(why, why_len,
                 "the results of run %" PRId64 " were replaced by run %" PRId64
                 " (the success of a later run of period %s deletes the results of earlier "
                 "unpublished runs)",
                 run_id, info->replaced_by, info->period);
        return 0;
    }
    return 1;
}

int review_choose_run(db_conn *c, const char *cmd, const char *period, int64_t run_arg,
                      int64_t *run_id, const char **how) {
    db_error err;
    review_run_info info;
    char why[1024];
    if (run_arg) {
        int found = review_run(c, run_arg, &info, &err);
        if (found < 0)
            return review_fail(cmd, "reading the run", &err);
        if (!found)
            return review_refuse(cmd, "run %" PRId64 " does not exist", run_arg);
        if (strcmp(info.period, period) != 0)
            return review_refuse(cmd, "run %" PRId64 " belongs to period %s, not %s", run_arg,
                                 info.period, period);
        if (!review_run_readable(run_arg, &info, why, sizeof why))
            return review_refuse(cmd, "%s", why);
        *run_id = run_arg;
        *how = "chosen with --run";
        return ALLOC_EXIT_OK;
    }
    int found = review_published(c, period, run_id, &err);
    if (found < 0)
        return review_fail(cmd, "reading report_published", &err);
    if (found) {
        /* publish admits only readable runs, and a published run is never
         * replaced: this holds unless the tables were edited by hand */
        found = review_run(c, *run_id, &info, &err);
        if (found < 0)
            return review_fail(cmd, "reading the published run", &err);
        if (!found || !review_run_readable(*run_id, &info, why, sizeof why))
            return review_refuse(cmd,
                                 "the published run %" PRId64 " of period %s is unreadable: %s",
                                 *run_id, period, found ? why : "it does not exist");
        *how = "published";
        return ALLOC_EXIT_OK;
    }
    found = review_latest_succeeded(c, period, run_id, &err);
    if (found < 0)
        return review_fail(cmd, "looking for the latest succeeded run", &err);
    if (!found)
        return review_refuse(cmd, "period %s has no succeeded run", period);
    *how = "latest succeeded, not published";
    return ALLOC_EXIT_OK;
}

int review_latest_succeeded(db_conn *c, const char *period, int64_t *run_id, db_error *err) {
    const char *params[] = {period};
    return db_query_int64(c,
                          "SELECT max(run_id) FROM alloc_run "
                          "WHERE period_code = $1 AND status = 'succeeded' "
                          "AND replaced_by IS NULL",
                          1, params, run_id, err);
}

int review_published(db_conn *c, const char *period, int64_t *run_id, db_error *err) {
    const char *params[] = {period};
    return db_query_int64(c, "SELECT run_id FROM report_published WHERE period_code = $1", 1,
                          params, run_id, err);
}
