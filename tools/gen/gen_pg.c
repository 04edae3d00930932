/* libpq helpers of alloc-gen (see gen_pg.h). */
#include "gen_pg.h"

#include "config.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gen_pg {
    PGconn *conn;
    char what[128]; /* the operation in progress, for messages */
    char err[1024];
    int copy_failed;
};

/* Records "what: message" with libpq's text trimmed to one line. */
static void set_error(gen_pg *pg, const char *what, const char *msg) {
    snprintf(pg->err, sizeof pg->err, "%s: %s", what, msg && *msg ? msg : "unknown error");
    for (char *p = pg->err; *p; p++)
        if (*p == '\n') {
            /* Keep DETAIL lines readable on one line, drop the trailing newline. */
            if (p[1])
                *p = ' ';
            else
                *p = '\0';
        }
}

gen_pg *gen_pg_connect(const char *dsn, char *err, size_t errlen) {
    PGconn *conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "connect to PostgreSQL: %s", PQerrorMessage(conn));
        /* One line: libpq's hint lines joined, the trailing newline dropped. */
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n')
            err[--n] = '\0';
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\t')
                *p = ' ';
        /* libpq echoes a connection URI it cannot parse, password included */
        config_scrub_secret(dsn, err, errlen);
        PQfinish(conn);
        return NULL;
    }
    gen_pg *pg = calloc(1, sizeof *pg);
    if (!pg) {
        snprintf(err, errlen, "connect to PostgreSQL: out of memory");
        PQfinish(conn);
        return NULL;
    }
    pg->conn = conn;
    /* Quiet NOTICEs (e.g. from IF NOT EXISTS) stay off stdout and stderr. */
    PGresult *res = PQexec(conn, "SET client_min_messages = warning");
    PQclear(res);
    return pg;
}

void gen_pg_free(gen_pg *pg) {
    if (!pg)
        return;
    PQfinish(pg->conn);
    free(pg);
}

const char *gen_pg_error(const gen_pg *pg) {
    return pg->err;
}

int gen_pg_command(gen_pg *pg, const char *what, const char *sql, int nparams,
                   const char *const *params, int64_t *affected) {
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        set_error(pg, what, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (affected) {
        const char *n = PQcmdTuples(res);
        *affected = *n ? strtoll(n, NULL, 10) : 0;
    }
    PQclear(res);
    return 0;
}

int gen_pg_value(gen_pg *pg, const char *what, const char *sql, int nparams,
                 const char *const *params, char *out, size_t outlen, int *found) {
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(pg, what, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    *found = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0);
    if (outlen)
        out[0] = '\0';
    if (*found && outlen)
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int gen_pg_copy_begin(gen_pg *pg, const char *what, const char *copy_sql) {
    snprintf(pg->what, sizeof pg->what, "%s", what);
    pg->copy_failed = 0;
    PGresult *res = PQexec(pg->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        set_error(pg, what, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int gen_pg_copy_put(gen_pg *pg, const char *data, size_t len) {
    if (pg->copy_failed)
        return -1;
    /* A blocking connection: 1 = queued, -1 = failed (0 only happens non-blocking). */
    if (len && PQputCopyData(pg->conn, data, (int)len) != 1) {
        set_error(pg, pg->what, PQerrorMessage(pg->conn));
        pg->copy_failed = 1;
        return -1;
    }
    return 0;
}

int gen_pg_copy_end(gen_pg *pg, int64_t *rows) {
    int failed = pg->copy_failed;
    if (PQputCopyEnd(pg->conn, failed ? "alloc-gen: copy aborted" : NULL) != 1 && !failed) {
        set_error(pg, pg->what, PQerrorMessage(pg->conn));
        failed = 1;
    }
    /* Drain every result of the COPY; the last one tells how it went. */
    PGresult *res;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            if (!failed)
                set_error(pg, pg->what, PQresultErrorMessage(res));
            failed = 1;
        } else if (rows) {
            const char *n = PQcmdTuples(res);
            *rows = *n ? strtoll(n, NULL, 10) : 0;
        }
        PQclear(res);
    }
    return failed ? -1 : 0;
}
