/* Shared parts of the review commands (see review.h). */
#include "review.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

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
    return c;
}

int review_fail(const char *cmd, const char *what, const db_error *err) {
    fprintf(stderr, "alloc-producer: %s: %s: %s\n", cmd, what, err ? err->msg : "unknown error");
    return ALLOC_EXIT_RUNTIME;
}

int review_refuse(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alloc-producer: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
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

int review_run(db_conn *c, int64_t run_id, char *period, size_t period_len, char *status,
               size_t status_len, db_error *err) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *res = db_query(c, "SELECT period_code, status FROM alloc_run WHERE run_id = $1", 1,
                             params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        copy_value(res, 0, period, period_len);
        copy_value(res, 1, status, status_len);
    }
    PQclear(res);
    return found;
}

int review_latest_succeeded(db_conn *c, const char *period, int64_t *run_id, db_error *err) {
    const char *params[] = {period};
    return db_query_int64(c,
                          "SELECT max(run_id) FROM alloc_run "
                          "WHERE period_code = $1 AND status = 'succeeded'",
                          1, params, run_id, err);
}

int review_published(db_conn *c, const char *period, int64_t *run_id, db_error *err) {
    const char *params[] = {period};
    return db_query_int64(c, "SELECT run_id FROM report_published WHERE period_code = $1", 1,
                          params, run_id, err);
}
