/* PostgreSQL I/O over libpq: connections, exact-status helpers, COPY in/out and
 * cursor streams (see db.h). */
#include "db.h"

#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "log.h"

#define DB_COPY_BUF (256 * 1024)

struct db_conn {
    PGconn *pg;
    char sqlstate[6];    /* of the last failure, "" after a success */
    unsigned stream_seq; /* names the cursors of this connection */
    /* COPY IN state */
    int in_copy;
    char *copy_buf;
    size_t copy_len, copy_cap;
    int copy_fields; /* fields already in the current row */
    int copy_oom;    /* a row could not be buffered: fail at the end */
};

struct db_stream {
    db_conn *c;
    char name[32];
    int owns_tx;
    int fetch_rows;
    PGresult *chunk;
    int row, nrows;
    int exhausted; /* the last FETCH returned fewer rows than asked */
};

/* ---- errors -------------------------------------------------------------- */

int db_error_is(const db_error *err, const char *sqlstate) {
    return err && sqlstate && strcmp(err->sqlstate, sqlstate) == 0;
}

int db_error_retryable(const db_error *err) {
    return err && (err->conn_lost || db_error_is(err, DB_SQLSTATE_SERIALIZATION_FAILURE) ||
                   db_error_is(err, DB_SQLSTATE_DEADLOCK));
}

/* Copies s into dst (size n) on one line: each run of blanks (newlines, tabs,
 * spaces) becomes one space; leading and trailing blanks are dropped. */
static void one_line(char *dst, size_t n, const char *s) {
    size_t j = 0;
    for (; s && *s && j + 1 < n; s++) {
        int blank = *s == '\n' || *s == '\r' || *s == '\t' || *s == ' ';
        if (blank && (j == 0 || dst[j - 1] == ' '))
            continue; /* one space for a run of blanks */
        dst[j++] = blank ? ' ' : *s;
    }
    while (j > 0 && dst[j - 1] == ' ')
        j--;
    dst[j] = '\0';
}

static int sqlstate_means_conn_lost(const char *st) {
    return !strncmp(st, "08", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") ||
           !strcmp(st, "57P03");
}

/* Records a failure on c and in err: SQLSTATE and message from res when there
 * is one, else the connection's message; what names the failed action. */
static void fail(db_conn *c, db_error *err, const PGresult *res, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(db_conn *c, db_error *err, const PGresult *res, const char *fmt, ...) {
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", st ? st : "");
    if (!err)
        return;
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", c->sqlstate);
    err->conn_lost = PQstatus(c->pg) != CONNECTION_OK || sqlstate_means_conn_lost(c->sqlstate);

    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    char why[DB_ERRMSG_MAX];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (primary && detail) {
        char both[DB_ERRMSG_MAX];
        snprintf(both, sizeof both, "%s (%s)", primary, detail);
        one_line(why, sizeof why, both);
    } else if (primary) {
        one_line(why, sizeof why, primary);
    } else if (res && PQresultStatus(res) != PGRES_FATAL_ERROR &&
               PQresultStatus(res) != PGRES_NONFATAL_ERROR) {
        snprintf(why, sizeof why, "unexpected result status %s", PQresStatus(PQresultStatus(res)));
    } else {
        one_line(why, sizeof why, PQerrorMessage(c->pg));
        if (!why[0])
            snprintf(why, sizeof why, "unknown error");
    }
    snprintf(err->msg, sizeof err->msg, "%.159s: %.340s", what, why);
}

/* Records a failure found on the client side (misuse, out of memory): no
 * SQLSTATE, and the connection's message does not apply. */
static void fail_client(db_conn *c, db_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_client(db_conn *c, db_error *err, const char *fmt, ...) {
    c->sqlstate[0] = '\0';
    if (!err)
        return;
    err->sqlstate[0] = '\0';
    err->conn_lost = PQstatus(c->pg) != CONNECTION_OK;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

static void succeed(db_conn *c) {
    c->sqlstate[0] = '\0';
}

/* A short form of a statement for error messages: its first line that is not
 * blank or a comment, clipped; a script of several statements is named as such,
 * since its first line need not be the one that failed. */
static const char *stmt_head(const char *sql, char *buf, size_t n) {
    const char *semi = strchr(sql, ';');
    if (semi && semi[strspn(semi + 1, " \t\r\n") + 1] != '\0') {
        snprintf(buf, n, "SQL script");
        return buf;
    }
    for (;;) {
        while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r')
            sql++;
        if (sql[0] != '-' || sql[1] != '-')
            break;
        const char *eol = strchr(sql, '\n');
        if (!eol)
            break;
        sql = eol + 1;
    }
    size_t j = 0;
    for (; *sql && *sql != '\n' && j + 1 < n; sql++)
        buf[j++] = *sql;
    if (j + 1 >= n && j > 3)
        memcpy(buf + j - 3, "...", 3);
    buf[j] = '\0';
    return buf;
}

/* ---- connections ------------------------------------------------------- */

static void notice_to_log(void *arg, const char *message) {
    (void)arg;
    char line[DB_ERRMSG_MAX];
    one_line(line, sizeof line, message);
    log_debug("postgresql: %s", line);
}

db_conn *db_connect(const char *dsn, char *err, size_t errlen) {
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {dsn, "alloc", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char why[DB_ERRMSG_MAX];
        one_line(why, sizeof why, pg ? PQerrorMessage(pg) : "out of memory");
        /* libpq echoes a connection URI it cannot parse, password included */
        config_scrub_secret(dsn, why, sizeof why);
        if (err && errlen)
            snprintf(err, errlen, "connect to PostgreSQL: %s", why);
        PQfinish(pg);
        return NULL;
    }
    db_conn *c = calloc(1, sizeof *c);
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "connect to PostgreSQL: out of memory");
        PQfinish(pg);
        return NULL;
    }
    c->pg = pg;
    PQsetNoticeProcessor(pg, notice_to_log, NULL);
    return c;
}

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void copy_state_clear(db_conn *c) {
    c->in_copy = 0;
    c->copy_len = 0;
    c->copy_fields = 0;
    c->copy_oom = 0;
}

void db_close(db_conn *c) {
    if (!c)
        return;
    PQfinish(c->pg);
    free(c->copy_buf);
    free(c);
}

PGconn *db_pg(db_conn *c) {
    return c->pg;
}

int db_ok(const db_conn *c) {
    return c && PQstatus(c->pg) == CONNECTION_OK;
}

int db_reset(db_conn *c, int max_wait_ms, db_error *err) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    backoff b = BACKOFF_INIT;
    copy_state_clear(c);
    for (;;) {
        PQreset(c->pg);
        if (PQstatus(c->pg) == CONNECTION_OK) {
            succeed(c);
            return 0;
        }
        long left = max_wait_ms - elapsed_ms(&start);
        if (left <= 0) {
            fail(c, err, NULL, "reconnect to PostgreSQL (gave up after %d ms)", max_wait_ms);
            return -1;
        }
        int ms = backoff_next_ms(&b);
        if (ms > left)
            ms = (int)left;
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- statements ---------------------------------------------------------- */

/* Checks res against expected; on mismatch records the failure, clears res and
 * returns NULL. */
static PGresult *expect(db_conn *c, PGresult *res, ExecStatusType expected, const char *sql,
                        db_error *err) {
    if (res && PQresultStatus(res) == expected) {
        succeed(c);
        return res;
    }
    char head[96];
    fail(c, err, res, "%s", stmt_head(sql, head, sizeof head));
    PQclear(res);
    return NULL;
}

int db_exec(db_conn *c, const char *sql, db_error *err) {
    PGresult *res = expect(c, PQexec(c->pg, sql), PGRES_COMMAND_OK, sql, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int64_t db_exec_params(db_conn *c, const char *sql, int nparams, const char *const *params,
                       db_error *err) {
    PGresult *res = expect(c, PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0),
                           PGRES_COMMAND_OK, sql, err);
    if (!res)
        return -1;
    int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

PGresult *db_query(db_conn *c, const char *sql, int nparams, const char *const *params,
                   ExecStatusType expected, db_error *err) {
    return expect(c, PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0), expected, sql,
                  err);
}

int db_query_int64(db_conn *c, const char *sql, int nparams, const char *const *params,
                   int64_t *out, db_error *err) {
    PGresult *res = db_query(c, sql, nparams, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int found = 0;
    if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        found = 1;
    }
    PQclear(res);
    return found;
}

int db_begin(db_conn *c, const char *isolation, db_error *err) {
    char sql[96] = "BEGIN";
    if (isolation) {
        size_t n = strlen(isolation);
        if (n == 0 || n > 64 || strspn(isolation, "ABCDEFGHIJKLMNOPQRSTUVWXYZ ") != n) {
            fail_client(c, err, "BEGIN: bad isolation level '%.64s'", isolation);
            return -1;
        }
        snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL %s", isolation);
    }
    return db_exec(c, sql, err);
}

int db_commit(db_conn *c, db_error *err) {
    /* COMMIT of a failed transaction answers COMMAND_OK with tag ROLLBACK: catch that. */
    PGresult *res = expect(c, PQexec(c->pg, "COMMIT"), PGRES_COMMAND_OK, "COMMIT", err);
    if (!res)
        return -1;
    int rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    if (rolled_back) {
        fail_client(c, err, "COMMIT: the transaction had failed and was rolled back");
        return -1;
    }
    return 0;
}

int db_rollback(db_conn *c, db_error *err) {
    if (c->in_copy)
        db_copy_in_abort(c, "rolled back");
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_IDLE) {
        succeed(c);
        return 0;
    }
    return db_exec(c, "ROLLBACK", err);
}

int db_durable_commits(db_conn *c, db_error *err) {
    return db_exec(c, "SET synchronous_commit = on", err);
}

/* ---- COPY IN ------------------------------------------------------------- */

int db_copy_in_begin(db_conn *c, const char *copy_sql, db_error *err) {
    if (c->in_copy) {
        fail_client(c, err, "%s: another COPY is still open on this connection", copy_sql);
        return -1;
    }
    if (!c->copy_buf) {
        c->copy_buf = malloc(DB_COPY_BUF);
        if (!c->copy_buf) {
            fail_client(c, err, "COPY: out of memory");
            return -1;
        }
        c->copy_cap = DB_COPY_BUF;
    }
    PGresult *res = expect(c, PQexec(c->pg, copy_sql), PGRES_COPY_IN, copy_sql, err);
    if (!res)
        return -1;
    PQclear(res);
    copy_state_clear(c);
    c->in_copy = 1;
    return 0;
}

static int copy_send(db_conn *c, const char *buf, size_t len, db_error *err) {
    while (len > 0) {
        int part = len > (size_t)1 << 30 ? 1 << 30 : (int)len;
        if (PQputCopyData(c->pg, buf, part) != 1) {
            fail(c, err, NULL, "COPY: sending data");
            return -1;
        }
        buf += part;
        len -= (size_t)part;
    }
    return 0;
}

static int copy_flush(db_conn *c, db_error *err) {
    if (c->copy_len == 0)
        return 0;
    int rc = copy_send(c, c->copy_buf, c->copy_len, err);
    c->copy_len = 0;
    return rc;
}

/* Makes room for n more bytes; the buffer grows past DB_COPY_BUF only for a
 * single row larger than it. Returns 0, or -1 (remembered) when out of memory. */
static int copy_reserve(db_conn *c, size_t n) {
    if (c->copy_oom)
        return -1;
    if (c->copy_len + n <= c->copy_cap)
        return 0;
    size_t cap = c->copy_cap ? c->copy_cap : DB_COPY_BUF;
    while (cap < c->copy_len + n)
        cap *= 2;
    char *p = realloc(c->copy_buf, cap);
    if (!p) {
        c->copy_oom = 1;
        return -1;
    }
    c->copy_buf = p;
    c->copy_cap = cap;
    return 0;
}

size_t db_copy_escape(char *dst, const char *src, size_t len) {
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        switch (ch) {
        case '\\':
            dst[j++] = '\\';
            dst[j++] = '\\';
            break;
        case '\t':
            dst[j++] = '\\';
            dst[j++] = 't';
            break;
        case '\n':
            dst[j++] = '\\';
            dst[j++] = 'n';
            break;
        case '\r':
            dst[j++] = '\\';
            dst[j++] = 'r';
            break;
        default:
            dst[j++] = ch;
        }
    }
    return j;
}

int db_format_cents(int64_t cents, char *buf, size_t buflen) {
    /* via unsigned so that INT64_MIN has a magnitude */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    return snprintf(buf, buflen, "%s%llu.%02llu", cents < 0 ? "-" : "",
                    (unsigned long long)(mag / 100), (unsigned long long)(mag % 100));
}

/* Starts a field: the separator when it is not the row's first. */
static int field_start(db_conn *c, size_t need) {
    if (!c->in_copy)
        return -1; /* reported by db_copy_row_end */
    if (copy_reserve(c, need + 1) < 0)
        return -1;
    if (c->copy_fields++ > 0)
        c->copy_buf[c->copy_len++] = '\t';
    return 0;
}

void db_copy_field_textn(db_conn *c, const char *text, size_t len) {
    if (!text) {
        db_copy_field_null(c);
        return;
    }
    if (field_start(c, 2 * len) < 0)
        return;
    c->copy_len += db_copy_escape(c->copy_buf + c->copy_len, text, len);
}

void db_copy_field_text(db_conn *c, const char *text) {
    db_copy_field_textn(c, text, text ? strlen(text) : 0);
}

void db_copy_field_null(db_conn *c) {
    if (field_start(c, 2) < 0)
        return;
    memcpy(c->copy_buf + c->copy_len, "\\N", 2);
    c->copy_len += 2;
}

void db_copy_field_int64(db_conn *c, int64_t v) {
    if (field_start(c, 24) < 0)
        return;
    c->copy_len += (size_t)snprintf(c->copy_buf + c->copy_len, 24, "%lld", (long long)v);
}

void db_copy_field_cents(db_conn *c, int64_t cents) {
    if (field_start(c, 24) < 0)
        return;
    c->copy_len += (size_t)db_format_cents(cents, c->copy_buf + c->copy_len, 24);
}

int db_copy_row_end(db_conn *c, db_error *err) {
    if (!c->in_copy) {
        fail_client(c, err, "COPY: no COPY is open");
        return -1;
    }
    if (copy_reserve(c, 1) < 0) {
        fail_client(c, err, "COPY: out of memory buffering a row");
        return -1;
    }
    c->copy_buf[c->copy_len++] = '\n';
    c->copy_fields = 0;
    if (c->copy_len >= DB_COPY_BUF)
        return copy_flush(c, err);
    return 0;
}

/* Reads the results that follow the end of a COPY; the first must be expected.
 * Returns that result (caller clears) or NULL with the failure recorded. */
static PGresult *copy_results(db_conn *c, ExecStatusType expected, const char *what,
                              db_error *err) {
    PGresult *first = PQgetResult(c->pg);
    PGresult *more;
    while ((more = PQgetResult(c->pg)) != NULL)
        PQclear(more);
    return expect(c, first, expected, what, err);
}

int64_t db_copy_in_end(db_conn *c, db_error *err) {
    if (!c->in_copy) {
        fail_client(c, err, "COPY: no COPY is open");
        return -1;
    }
    if (c->copy_oom) {
        db_copy_in_abort(c, "client out of memory");
        fail_client(c, err, "COPY: out of memory buffering rows");
        return -1;
    }
    if (c->copy_fields > 0) {
        db_copy_in_abort(c, "unterminated row");
        fail_client(c, err, "COPY: the last row was not ended with db_copy_row_end");
        return -1;
    }
    if (copy_flush(c, err) < 0) {
        db_copy_in_abort(c, "send failed");
        return -1;
    }
    c->in_copy = 0;
    if (PQputCopyEnd(c->pg, NULL) != 1) {
        fail(c, err, NULL, "COPY: ending the data");
        PGresult *r;
        while ((r = PQgetResult(c->pg)) != NULL)
            PQclear(r);
        return -1;
    }
    PGresult *res = copy_results(c, PGRES_COMMAND_OK, "COPY", err);
    if (!res)
        return -1;
    int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

void db_copy_in_abort(db_conn *c, const char *reason) {
    if (!c->in_copy)
        return;
    copy_state_clear(c);
    if (PQputCopyEnd(c->pg, reason ? reason : "aborted by the client") == 1) {
        PGresult *r;
        while ((r = PQgetResult(c->pg)) != NULL)
            PQclear(r);
    }
}

/* ---- streams ------------------------------------------------------------- */

db_stream *db_stream_open(db_conn *c, const char *sql, int nparams, const char *const *params,
                          db_error *err) {
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS) {
        fail_client(c, err,
                    "open stream: the connection is not ready (failed transaction, "
                    "COPY or lost connection)");
        return NULL;
    }
    db_stream *s = calloc(1, sizeof *s);
    if (!s) {
        fail_client(c, err, "open stream: out of memory");
        return NULL;
    }
    s->c = c;
    s->fetch_rows = DB_STREAM_FETCH_ROWS;
    snprintf(s->name, sizeof s->name, "alloc_stream_%u", ++c->stream_seq);
    if (ts == PQTRANS_IDLE) {
        if (db_begin(c, NULL, err) < 0) {
            free(s);
            return NULL;
        }
        s->owns_tx = 1;
    }

    size_t n = strlen(sql) + 64;
    char *declare = malloc(n);
    if (!declare) {
        fail_client(c, err, "open stream: out of memory");
        db_stream_close(s);
        return NULL;
    }
    snprintf(declare, n, "DECLARE %s NO SCROLL CURSOR FOR %s", s->name, sql);
    int64_t rc = db_exec_params(c, declare, nparams, params, err);
    free(declare);
    if (rc < 0) {
        db_stream_close(s);
        return NULL;
    }
    return s;
}

void db_stream_set_fetch_rows(db_stream *s, int rows) {
    s->fetch_rows = rows < 1 ? 1 : rows;
}

int db_stream_next(db_stream *s, db_error *err) {
    if (s->chunk && s->row + 1 < s->nrows) {
        s->row++;
        return 1;
    }
    PQclear(s->chunk);
    s->chunk = NULL;
    s->nrows = 0;
    if (s->exhausted)
        return 0;

    char fetch[96];
    snprintf(fetch, sizeof fetch, "FETCH FORWARD %d FROM %s", s->fetch_rows, s->name);
    s->chunk = db_query(s->c, fetch, 0, NULL, PGRES_TUPLES_OK, err);
    if (!s->chunk)
        return -1;
    s->nrows = PQntuples(s->chunk);
    s->row = 0;
    if (s->nrows < s->fetch_rows)
        s->exhausted = 1;
    return s->nrows > 0 ? 1 : 0;
}

const char *db_stream_get(const db_stream *s, int col) {
    if (!s->chunk || s->row >= s->nrows || PQgetisnull(s->chunk, s->row, col))
        return NULL;
    return PQgetvalue(s->chunk, s->row, col);
}

int db_stream_getlen(const db_stream *s, int col) {
    if (!s->chunk || s->row >= s->nrows)
        return 0;
    return PQgetlength(s->chunk, s->row, col);
}

void db_stream_close(db_stream *s) {
    if (!s)
        return;
    PQclear(s->chunk);
    db_conn *c = s->c;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INTRANS) {
        char close_sql[64];
        snprintf(close_sql, sizeof close_sql, "CLOSE %s", s->name);
        db_error ignored;
        /* a cursor that was never declared makes CLOSE fail; the commit below then rolls back,
           which is what a stream that failed to open wants anyway */
        if (s->owns_tx) {
            if (db_exec(c, close_sql, &ignored) < 0 || db_commit(c, &ignored) < 0)
                db_rollback(c, &ignored);
        } else {
            db_exec(c, close_sql, &ignored);
        }
    } else if (ts == PQTRANS_INERROR && s->owns_tx) {
        db_error ignored;
        db_rollback(c, &ignored);
    }
    free(s);
}

int db_keys_in_byte_order(db_conn *c, const char *const *tables, size_t ntables) {
    char sql[2048];
    int n = snprintf(sql, sizeof sql,
                     "SELECT bool_and(CASE WHEN a.attcollation = 100 "
                     "  THEN coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c' "
                     "       AND d.datcollate IN ('C', 'POSIX') "
                     "  ELSE coalesce(co.collname IN ('C', 'POSIX'), false) END)::int "
                     "FROM pg_attribute a "
                     "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                     "JOIN pg_database d ON d.datname = current_database() "
                     "WHERE a.attname IN ('version', 'data_source', 'project_code', 'item_code') "
                     "  AND a.attrelid IN (");
    for (size_t i = 0; i < ntables && n > 0 && (size_t)n < sizeof sql; i++)
        n +=
            snprintf(sql + n, sizeof sql - (size_t)n, "%s'%s'::regclass", i ? ", " : "", tables[i]);
    if (n <= 0 || (size_t)n + 2 >= sizeof sql)
        return 0;
    strcat(sql, ")");
    int64_t ok = 0;
    return db_query_int64(c, sql, 0, NULL, &ok, NULL) == 1 && ok == 1;
}
