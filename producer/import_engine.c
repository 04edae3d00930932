/* The generic CSV importer (see import_engine.h). The file is checked in two
 * passes of SQL over TEMP tables, so that a million-row file costs two scans and
 * every bad value is reported with its line:
 *   import_stage (line_no, source columns as text)  the file as read, fields trimmed,
 *                                          "" as NULL;
 *                                          checked against the source column types
 *                                          and constraints and the unique keys;
 *   import_rows  (line_no, target columns) the rows after the template's mapping;
 *                                          checked against the target table (NOT NULL,
 *                                          known projects, data sources that some
 *                                          project has, the period, decimals).
 * Both tables are dropped at commit; post_sql may read them. */
#include "import_engine.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "cli.h"
#include "csv.h"
#include "report_fmt.h"
#include "reserved.h"
#include "review.h"
#include "strbuf.h"

/* Errors kept for printing: the first IMPORT_MAX_ERRORS_SHOWN of each pass, so
 * the first IMPORT_MAX_ERRORS_SHOWN by line over all passes are among them. */
#define IMPORT_ERRORS_KEPT (4 * IMPORT_MAX_ERRORS_SHOWN)
/* A shown value is cut after this many bytes. */
#define IMPORT_VALUE_SHOWN 60

/* ---- collected errors ------------------------------------------------------ */

typedef struct import_error {
    int64_t line; /* 0: the error names no line */
    size_t seq;
    char *text;
} import_error;

typedef struct error_list {
    import_error *items;
    size_t n, cap;
    int64_t total;
} error_list;

static void errors_add(error_list *e, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errors_add(error_list *e, int64_t line, const char *fmt, ...) {
    e->total++;
    if (e->n >= IMPORT_ERRORS_KEPT)
        return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        import_error *p = realloc(e->items, cap * sizeof *p);
        if (!p)
            return; /* still counted */
        e->items = p;
        e->cap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = strlen(buf) + 1;
    char *text = malloc(len);
    if (!text)
        return;
    memcpy(text, buf, len);
    e->items[e->n].line = line;
    e->items[e->n].seq = e->n;
    e->items[e->n].text = text;
    e->n++;
}

static int error_cmp(const void *a, const void *b) {
    const import_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Prints the errors in line order ("F.csv:17: ..."), the first
 * IMPORT_MAX_ERRORS_SHOWN of them, and a count of the rest. */
static void errors_print(error_list *e, const char *label) {
    qsort(e->items, e->n, sizeof *e->items, error_cmp);
    size_t shown = e->n < IMPORT_MAX_ERRORS_SHOWN ? e->n : IMPORT_MAX_ERRORS_SHOWN;
    for (size_t i = 0; i < shown; i++) {
        if (e->items[i].line > 0)
            fprintf(stderr, "%s:%" PRId64 ": %s\n", label, e->items[i].line, e->items[i].text);
        else
            fprintf(stderr, "%s: %s\n", label, e->items[i].text);
    }
    if (e->total > (int64_t)shown)
        fprintf(stderr, "%s: ... and %" PRId64 " more error%s\n", label, e->total - (int64_t)shown,
                e->total - (int64_t)shown == 1 ? "" : "s");
}

static void errors_free(error_list *e) {
    for (size_t i = 0; i < e->n; i++)
        free(e->items[i].text);
    free(e->items);
}

/* Writes v quoted for an error line: "\"...\"" with quotes, backslashes and
 * control characters escaped and long values cut (at a UTF-8 boundary) with "...". */
static void show_value(char *out, size_t outlen, const char *v) {
    size_t o = 0;
    out[o++] = '"';
    size_t i = 0;
    for (; v[i] && o + 8 < outlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (i >= IMPORT_VALUE_SHOWN && (c & 0xC0) != 0x80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02X", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- SQL text builder --------------------------------------------------------- */

/* Appends s as an SQL string literal. */
static void sb_lit(strbuf *b, PGconn *pg, const char *s) {
    char *q = PQescapeLiteral(pg, s, strlen(s));
    if (!q) {
        b->oom = 1;
        return;
    }
    strbuf_addstr(b, q);
    PQfreemem(q);
}

/* ---- the job -------------------------------------------------------------------- */

/* A header field with no name: its values must be empty. */
#define IMPORT_FIELD_UNNAMED (-2)

typedef struct import_job {
    db_conn *c;
    const import_template *t;
    const import_request *req;
    error_list errors;
    int *present;    /* per source column: in the file's header */
    char **label;    /* per source column: its header as the file spells it */
    long *field_col; /* per header field: the source column, -1 (ignored) or UNNAMED */
    size_t n_fields;
    int64_t header_line;
    int64_t rows, skipped;
    strbuf notes; /* what pre_sql and post_sql did, printed after the commit */
} import_job;

/* A failed statement of the template's own SQL (pre_sql, post_sql, a mapping
 * expression, a pattern): the template refused the data, or is wrong. */
static int template_step_failed(import_job *j, const char *what, const db_error *err) {
    if (err->conn_lost)
        return cli_fail_db(err, "import: %s", what);
    if (db_error_is(err, DB_SQLSTATE_PERIOD_CLOSED))
        return cli_refuse("import: %s", err->msg);
    fprintf(stderr, "%s: template %s: %s: %s\n", j->req->label, j->t->name, what, err->msg);
    return ALLOC_EXIT_VALIDATION;
}

static const char *target_label(const import_job *j, size_t ti, char *buf, size_t len) {
    size_t n;
    const import_target_column *tc = import_target_columns(j->t->target, &n);
    const import_mapping *m = &j->t->mapping[ti];
    if (m->kind == IMPORT_MAP_COLUMN)
        return j->label[m->column];
    if (m->kind == IMPORT_MAP_NONE)
        return tc[ti].name;
    snprintf(buf, len, "%s (template mapping)", tc[ti].name);
    return buf;
}

/* Locks the period row (close-period waits for this import, and this import
 * for a close in progress) and checks it is open. */
static int lock_period(import_job *j) {
    db_error err;
    if (!j->req->period) {
        /* projects: one import at a time (readers, runs among them, are not blocked) */
        if (db_exec(j->c, "LOCK TABLE project IN SHARE ROW EXCLUSIVE MODE", &err) < 0)
            return cli_fail_db(&err, "import: locking the project table");
        return ALLOC_EXIT_OK;
    }
    char status[32];
    int found = review_period(j->c, j->req->period, 1, status, sizeof status, NULL, 0, &err);
    if (found < 0)
        return cli_fail_db(&err, "import: locking the period");
    if (!found)
        return cli_refuse("import: period %s does not exist", j->req->period);
    if (strcmp(status, "open") != 0)
        return cli_refuse("import: period %s is %s: its %s cannot change", j->req->period, status,
                          import_target_table(j->t->target));
    return ALLOC_EXIT_OK;
}

/* Runs pre_sql or post_sql. A statement may change rows (its command tag is
 * printed) or return rows: each returned row is an error (its "message" column,
 * or the first column not named line_no; the line from a line_no column). */
static int run_steps(import_job *j, const import_sql *steps, size_t n, const char *kind) {
    PGconn *pg = db_pg(j->c);
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s[%zu]", kind, i);
        const char *params[] = {j->req->period};
        PGresult *res = PQexecParams(pg, steps[i].sql, steps[i].uses_period ? 1 : 0, NULL,
                                     steps[i].uses_period ? params : NULL, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK) {
            strbuf_addf(&j->notes, "template %s: %s: %s\n", j->t->name, what, PQcmdStatus(res));
            PQclear(res);
            continue;
        }
        if (st == PGRES_TUPLES_OK) {
            int line_col = PQfnumber(res, "line_no");
            int msg_col = PQfnumber(res, "message");
            if (msg_col < 0)
                msg_col = line_col == 0 ? 1 : 0;
            int rows = PQntuples(res);
            for (int r = 0; r < rows && msg_col < PQnfields(res); r++) {
                int64_t line = line_col >= 0 && !PQgetisnull(res, r, line_col)
                                   ? strtoll(PQgetvalue(res, r, line_col), NULL, 10)
                                   : 0;
                errors_add(&j->errors, line, "template %s: %s: %s", j->t->name, what,
                           PQgetisnull(res, r, msg_col) ? "check failed"
                                                        : PQgetvalue(res, r, msg_col));
            }
            PQclear(res);
            continue;
        }
        db_error err = {{0}, 0, {0}};
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(err.sqlstate, sizeof err.sqlstate, "%s", state ? state : "");
        err.conn_lost = PQstatus(pg) != CONNECTION_OK;
        snprintf(err.msg, sizeof err.msg, "%s", PQresultErrorMessage(res));
        err.msg[strcspn(err.msg, "\n")] = '\0';
        PQclear(res);
        return template_step_failed(j, what, &err);
    }
    return ALLOC_EXIT_OK;
}

/* ---- reading the file into import_stage ---------------------------------------- */

static int is_blank(int c) {
    return c == ' ' || c == '\t';
}

/* The field without surrounding blanks: *len bytes from the returned pointer. */
static const char *trimmed(const char *s, size_t *len) {
    size_t n = *len;
    while (n > 0 && is_blank((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_blank((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* Matches the header fields to the template's columns. Returns 0, or the number
 * of problems (each an error naming the header line). */
static int read_header(import_job *j, csv_reader *r) {
    const import_template *t = j->t;
    int rc = csv_next(r);
    if (rc < 0) {
        errors_add(&j->errors, csv_error_line(r), "%s", csv_error(r));
        return 1;
    }
    if (rc == 0) {
        errors_add(&j->errors, 0, "empty file: a header line naming the columns is required");
        return 1;
    }
    j->header_line = csv_line(r);
    j->n_fields = csv_nfields(r);
    j->field_col = calloc(j->n_fields, sizeof *j->field_col);
    if (!j->field_col) {
        errors_add(&j->errors, 0, "out of memory");
        return 1;
    }
    int problems = 0;
    for (size_t f = 0; f < j->n_fields; f++) {
        size_t len = csv_field_len(r, f);
        const char *h = trimmed(csv_field(r, f), &len);
        j->field_col[f] = -1;
        if (len == 0) {
            /* A spreadsheet's trailing separators: fine while no row has a value there. */
            if (!t->ignore_extra_columns)
                j->field_col[f] = IMPORT_FIELD_UNNAMED;
            continue;
        }
        long col = -1;
        for (size_t i = 0; i < t->n_columns && col < 0; i++)
            if (strlen(t->columns[i].header) == len && !strncasecmp(t->columns[i].header, h, len))
                col = (long)i;
        for (size_t i = 0; i < t->n_columns && col < 0; i++)
            if (strlen(t->columns[i].name) == len && !strncasecmp(t->columns[i].name, h, len))
                col = (long)i;
        char shown[IMPORT_VALUE_SHOWN + 16];
        snprintf(shown, sizeof shown, "%.*s",
                 (int)(len < IMPORT_VALUE_SHOWN ? len : IMPORT_VALUE_SHOWN), h);
        if (col < 0) {
            if (!t->ignore_extra_columns) {
                char expected[512];
                size_t o = 0;
                for (size_t i = 0; i < t->n_columns && o < sizeof expected; i++)
                    o += (size_t)snprintf(expected + o, sizeof expected - o, "%s%s", i ? ", " : "",
                                          t->columns[i].header);
                errors_add(&j->errors, j->header_line,
                           "column %s: unknown column (template %s has: %s)", shown, t->name,
                           expected);
                problems++;
            }
            continue;
        }
        if (j->present[col]) {
            errors_add(&j->errors, j->header_line, "column %s: appears twice in the header", shown);
            problems++;
            continue;
        }
        j->present[col] = 1;
        j->field_col[f] = col;
        free(j->label[col]);
        j->label[col] = malloc(len + 1);
        if (j->label[col])
            snprintf(j->label[col], len + 1, "%.*s", (int)len, h);
    }
    for (size_t i = 0; i < t->n_columns; i++)
        if (t->columns[i].required && !j->present[i]) {
            errors_add(&j->errors, j->header_line, "column %s: missing from the header (required)",
                       t->columns[i].header);
            problems++;
        }
    return problems;
}

/* Creates import_stage and COPYs the rows into it. Rows whose field count
 * differs from the header's are errors (and not loaded); rows with only empty
 * fields are skipped. A malformed CSV ends the reading with an error. Returns
 * ALLOC_EXIT_OK (errors in j->errors) or ALLOC_EXIT_RUNTIME. */
static int load_rows(import_job *j, csv_reader *r) {
    const import_template *t = j->t;
    db_error err;
    strbuf q = {0};
    strbuf_addf(&q, "CREATE TEMP TABLE import_stage (line_no bigint NOT NULL");
    for (size_t i = 0; i < t->n_columns; i++)
        strbuf_addf(&q, ", \"%s\" text", t->columns[i].name);
    strbuf_addf(&q, ") ON COMMIT DROP");
    if (q.oom) {
        strbuf_free(&q);
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    if (db_exec(j->c, q.data, &err) < 0) {
        strbuf_free(&q);
        return cli_fail_db(&err, "import: creating the staging table");
    }
    q.len = 0;
    strbuf_addf(&q, "COPY import_stage (line_no");
    for (size_t f = 0; f < j->n_fields; f++)
        if (j->field_col[f] >= 0)
            strbuf_addf(&q, ", \"%s\"", t->columns[j->field_col[f]].name);
    strbuf_addf(&q, ") FROM STDIN");
    int rc = q.oom ? -1 : db_copy_in_begin(j->c, q.data, &err);
    strbuf_free(&q);
    if (rc < 0)
        return cli_fail_db(&err, "import: starting the COPY into the staging table");

    for (;;) {
        int got = csv_next(r);
        if (got < 0) {
            errors_add(&j->errors, csv_error_line(r), "%s", csv_error(r));
            break;
        }
        if (got == 0)
            break;
        size_t nf = csv_nfields(r);
        int all_empty = 1;
        for (size_t f = 0; f < nf && all_empty; f++) {
            size_t len = csv_field_len(r, f);
            trimmed(csv_field(r, f), &len);
            if (len)
                all_empty = 0;
        }
        if (all_empty) {
            j->skipped++;
            continue;
        }
        if (nf != j->n_fields) {
            errors_add(&j->errors, csv_line(r),
                       "has %zu field%s, the header has %zu (a missing or extra separator, or an "
                       "unquoted separator inside a value?)",
                       nf, nf == 1 ? "" : "s", j->n_fields);
            continue;
        }
        size_t unnamed = 0;
        for (size_t f = 0; f < nf && !unnamed; f++) {
            size_t len = csv_field_len(r, f);
            trimmed(csv_field(r, f), &len);
            if (j->field_col[f] == IMPORT_FIELD_UNNAMED && len)
                unnamed = f + 1;
        }
        if (unnamed) {
            errors_add(&j->errors, csv_line(r),
                       "field %zu has a value, but the header gives its column no name", unnamed);
            continue;
        }
        db_copy_field_int64(j->c, csv_line(r));
        for (size_t f = 0; f < nf; f++) {
            if (j->field_col[f] < 0)
                continue;
            size_t len = csv_field_len(r, f);
            const char *v = trimmed(csv_field(r, f), &len);
            if (len == 0)
                db_copy_field_null(j->c);
            else
                db_copy_field_textn(j->c, v, len);
        }
        if (db_copy_row_end(j->c, &err) < 0) {
            db_copy_in_abort(j->c, "send failed");
            return cli_fail_db(&err, "import: loading the staging table");
        }
        j->rows++;
    }
    if (db_copy_in_end(j->c, &err) < 0)
        return cli_fail_db(&err, "import: loading the staging table");
    return ALLOC_EXIT_OK;
}

/* ---- validation ---------------------------------------------------------------- */

/* Runs a check query returning (line_no, label, value, problem, total) and adds
 * its rows to the errors. Returns 0, or -1 with err. */
static int collect_errors(import_job *j, const char *sql, int with_period, db_error *err) {
    const char *params[] = {j->req->period};
    PGresult *res =
        db_query(j->c, sql, with_period ? 1 : 0, with_period ? params : NULL, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        int64_t line = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        const char *label = PQgetvalue(res, r, 1);
        const char *problem = PQgetvalue(res, r, 3);
        if (PQgetisnull(res, r, 2)) {
            errors_add(&j->errors, line, "column %s: %s", label, problem);
        } else {
            char shown[4 * IMPORT_VALUE_SHOWN + 16];
            show_value(shown, sizeof shown, PQgetvalue(res, r, 2));
            errors_add(&j->errors, line, "column %s: %s %s", label, shown, problem);
        }
    }
    if (rows > 0) {
        int64_t total = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        if (total > rows) /* the ones past the LIMIT: counted, not shown */
            j->errors.total += total - rows;
    }
    PQclear(res);
    return 0;
}

/* Appends the WHEN branches that check a numeric value v (text in the staging
 * table, numeric in import_rows) for its scale and numeric(18,scale) range. */
static void sb_numeric_checks(strbuf *q, const char *v, int scale, const char *cast) {
    if (scale == 0)
        strbuf_addf(q, " WHEN %s%s <> round(%s%s) THEN 'is not a whole number'", v, cast, v, cast);
    else
        strbuf_addf(q, " WHEN %s%s <> round(%s%s, %d) THEN 'has more than %d decimal%s'", v, cast,
                    v, cast, scale, scale, scale == 1 ? "" : "s");
    strbuf_addf(q, " WHEN abs(%s%s) >= 1e%d THEN 'is too large for numeric(18,%d)'", v, cast,
                18 - scale, scale);
}

/* The CASE expression checking a source column (in the row alias a), or
 * nothing when the column has nothing to check. Returns 1 when written. */
static int sb_column_case(strbuf *q, PGconn *pg, const import_column *col) {
    int has = col->non_empty || col->type != IMPORT_TYPE_TEXT || col->allowed || col->pattern ||
              col->max_length;
    if (!has)
        return 0;
    char v[80];
    snprintf(v, sizeof v, "a.\"%s\"", col->name);
    strbuf_addf(q, "CASE WHEN %s IS NULL THEN %s", v,
                col->non_empty ? "'is empty: a value is required'" : "NULL::text");
    switch (col->type) {
    case IMPORT_TYPE_AMOUNT:
    case IMPORT_TYPE_NUMBER:
        strbuf_addf(q,
                    " WHEN length(%s) > 40 OR %s !~ '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)$'"
                    " THEN 'is not a number'",
                    v, v);
        sb_numeric_checks(q, v, col->scale, "::numeric");
        break;
    case IMPORT_TYPE_INTEGER:
        strbuf_addf(
            q,
            " WHEN length(%s) > 40 OR %s !~ '^[+-]?[0-9]+$' THEN 'is not an integer'"
            " WHEN abs(%s::numeric) > 9223372036854775807 THEN 'is too large for an integer'",
            v, v, v);
        break;
    case IMPORT_TYPE_PERIOD:
        strbuf_addf(q, " WHEN %s !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN 'is not a period (YYYY-MM)'",
                    v);
        break;
    case IMPORT_TYPE_TEXT:
        break;
    }
    if (col->max_length)
        strbuf_addf(q, " WHEN length(%s) > %ld THEN 'is longer than %ld characters'", v,
                    col->max_length, col->max_length);
    if (col->allowed) {
        strbuf_addf(q, " WHEN %s <> ALL (ARRAY[", v);
        strbuf list = {0};
        for (size_t k = 0; k < col->n_allowed; k++) {
            strbuf_addf(q, "%s", k ? ", " : "");
            sb_lit(q, pg, col->allowed[k]);
            strbuf_addf(&list, "%s%s", k ? ", " : "", col->allowed[k]);
        }
        strbuf_addf(q, "]::text[]) THEN ");
        strbuf_addf(&list, "%s", "");
        char *msg = NULL;
        if (!list.oom && list.data) {
            size_t n = strlen(list.data) + 32;
            msg = malloc(n);
            if (msg)
                snprintf(msg, n, "is not one of: %s", list.data);
        }
        sb_lit(q, pg, msg ? msg : "is not an allowed value");
        free(msg);
        strbuf_free(&list);
    }
    if (col->pattern) {
        strbuf_addf(q, " WHEN %s !~ ", v);
        sb_lit(q, pg, col->pattern);
        strbuf_addf(q, " THEN ");
        size_t n = strlen(col->pattern) + 32;
        char *msg = malloc(n);
        if (msg)
            snprintf(msg, n, "does not match the pattern %s", col->pattern);
        sb_lit(q, pg, msg ? msg : "does not match the pattern");
        free(msg);
    }
    if (col->min)
        strbuf_addf(q, " WHEN %s::numeric < %s THEN 'is less than the minimum %s'", v, col->min,
                    col->min);
    if (col->max)
        strbuf_addf(q, " WHEN %s::numeric > %s THEN 'is more than the maximum %s'", v, col->max,
                    col->max);
    strbuf_addf(q, " END");
    return 1;
}

/* One per-column check of a row: where it is reported (pos orders the errors
 * of a line, label names the column), the value shown, and the CASE expression
 * giving the problem or NULL. Expressions use the row alias a. */
typedef struct row_check {
    size_t pos;
    const char *label;
    char value[96];
    strbuf expr;
} row_check;

/* Appends "SELECT line_no, pos, label, value, problem" over the rows of
 * rows_sql that fail a check, one row per failed check. The rows are first
 * filtered on coalesce(checks) so that a good row costs one evaluation of its
 * checks and no lateral rows. */
static void sb_check_rows(strbuf *q, PGconn *pg, const char *rows_sql, const row_check *checks,
                          size_t n) {
    if (n == 0) {
        strbuf_addf(q, "SELECT NULL::bigint AS line_no, 0::bigint AS pos, NULL::text AS label, "
                       "NULL::text AS value, NULL::text AS problem WHERE false");
        return;
    }
    strbuf_addf(q,
                "SELECT a.line_no, e.pos, e.label, e.value, e.problem FROM (SELECT * FROM %s a "
                "WHERE coalesce(",
                rows_sql);
    for (size_t i = 0; i < n; i++)
        strbuf_addf(q, "%s%s", i ? ", " : "", checks[i].expr.data ? checks[i].expr.data : "NULL");
    strbuf_addf(q, ") IS NOT NULL) a CROSS JOIN LATERAL (VALUES ");
    for (size_t i = 0; i < n; i++) {
        strbuf_addf(q, "%s(%zu::bigint, ", i ? ", " : "", checks[i].pos);
        sb_lit(q, pg, checks[i].label);
        strbuf_addf(q, "::text, %s, %s)", checks[i].value,
                    checks[i].expr.data ? checks[i].expr.data : "NULL");
    }
    strbuf_addf(q, ") AS e(pos, label, value, problem) WHERE e.problem IS NOT NULL");
}

static void free_checks(row_check *checks, size_t n) {
    for (size_t i = 0; i < n; i++)
        strbuf_free(&checks[i].expr);
    free(checks);
}

/* Appends "UNION ALL SELECT ..." finding the rows of `table` that repeat the
 * key (cols, n) of an earlier row; errors go under `label`, showing `value_col`. */
static void sb_duplicates(strbuf *q, PGconn *pg, const char *table, const char *const *cols,
                          size_t n, const char *value_col, const char *label, const char *key_desc,
                          size_t pos) {
    strbuf_addf(q, " UNION ALL SELECT line_no, %zu, ", pos);
    sb_lit(q, pg, label);
    strbuf_addf(q, ", value, 'repeats line ' || first_line || ");
    char desc[300];
    snprintf(desc, sizeof desc, " (the same %s)", key_desc);
    sb_lit(q, pg, desc);
    strbuf_addf(q, " FROM (SELECT line_no, %s::text AS value, min(line_no) OVER (PARTITION BY ",
                value_col);
    for (size_t k = 0; k < n; k++)
        strbuf_addf(q, "%s%s", k ? ", " : "", cols[k]);
    strbuf_addf(q, ") AS first_line FROM %s) d WHERE line_no <> first_line", table);
}

/* Checks the staged values against the source columns and the unique keys,
 * into the TEMP table import_errors (the rows it names are left out of the
 * mapping, so that the target checks still run on the others and one pass
 * reports every error of the file). */
static int validate_source(import_job *j) {
    const import_template *t = j->t;
    PGconn *pg = db_pg(j->c);
    row_check *checks = calloc(t->n_columns ? t->n_columns : 1, sizeof *checks);
    if (!checks) {
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n_columns; i++) {
        if (!j->present[i])
            continue;
        row_check *ck = &checks[n];
        if (!sb_column_case(&ck->expr, pg, &t->columns[i])) {
            strbuf_free(&ck->expr);
            memset(ck, 0, sizeof *ck);
            continue;
        }
        ck->pos = i;
        ck->label = j->label[i];
        snprintf(ck->value, sizeof ck->value, "a.\"%s\"", t->columns[i].name);
        n++;
    }
    strbuf q = {0};
    strbuf_addf(&q, "CREATE TEMP TABLE import_errors ON COMMIT DROP AS "
                    "SELECT line_no, pos, label, value, problem FROM (");
    sb_check_rows(&q, pg, "import_stage", checks, n);
    int oom = 0;
    for (size_t i = 0; i < n; i++)
        oom |= checks[i].expr.oom;
    free_checks(checks, n ? n : 1);
    for (size_t u = 0; u < t->n_unique; u++) {
        const import_unique *key = &t->unique[u];
        if (key->n == 0)
            continue;
        const char *cols[16];
        char names[16][80];
        char desc[256];
        size_t nk = key->n < 16 ? key->n : 16, o = 0;
        for (size_t k = 0; k < nk; k++) {
            snprintf(names[k], sizeof names[k], "\"%s\"", t->columns[key->columns[k]].name);
            cols[k] = names[k];
            o += (size_t)snprintf(desc + o, o < sizeof desc ? sizeof desc - o : 0, "%s%s",
                                  k ? ", " : "", j->label[key->columns[k]]);
            if (o >= sizeof desc)
                o = sizeof desc - 1;
        }
        size_t last = key->columns[nk - 1];
        sb_duplicates(&q, pg, "import_stage", cols, nk, names[nk - 1], j->label[last], desc,
                      t->n_columns + u);
    }
    strbuf_addf(&q, ") x");
    if (q.oom || oom) {
        strbuf_free(&q);
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    db_error err;
    int rc = db_exec(j->c, q.data, &err);
    strbuf_free(&q);
    if (rc < 0)
        /* The patterns are the template's: a bad one fails here. */
        return template_step_failed(j, "checking the values", &err);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT line_no, label, value, problem, count(*) OVER () FROM import_errors "
             "ORDER BY line_no, pos LIMIT %d",
             IMPORT_MAX_ERRORS_SHOWN);
    if (collect_errors(j, sql, 0, &err) < 0)
        return cli_fail_db(&err, "import: reading the errors");
    return ALLOC_EXIT_OK;
}

static const char *sql_type(import_type t) {
    switch (t) {
    case IMPORT_TYPE_AMOUNT:
    case IMPORT_TYPE_NUMBER:
        return "numeric";
    case IMPORT_TYPE_INTEGER:
        return "bigint";
    default:
        return "text";
    }
}

/* Creates import_rows and fills it with the mapped rows. */
static int map_rows(import_job *j) {
    const import_template *t = j->t;
    PGconn *pg = db_pg(j->c);
    size_t n;
    const import_target_column *tc = import_target_columns(t->target, &n);
    strbuf q = {0};
    strbuf_addf(&q, "CREATE TEMP TABLE import_rows (line_no bigint NOT NULL");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(&q, ", %s %s", tc[i].name, tc[i].type == IMPORT_TYPE_TEXT ? "text" : "numeric");
    strbuf_addf(&q, ") ON COMMIT DROP");
    db_error err;
    if (q.oom || db_exec(j->c, q.data, &err) < 0) {
        strbuf_free(&q);
        return q.oom ? ALLOC_EXIT_RUNTIME : cli_fail_db(&err, "import: creating import_rows");
    }
    q.len = 0;
    strbuf_addf(&q, "INSERT INTO import_rows (line_no");
    for (size_t i = 0; i < n; i++)
        strbuf_addf(&q, ", %s", tc[i].name);
    strbuf_addf(&q, ") SELECT s.line_no");
    for (size_t i = 0; i < n; i++) {
        const import_mapping *m = &t->mapping[i];
        const char *type = tc[i].type == IMPORT_TYPE_TEXT ? "text" : "numeric";
        int is_period = !strcmp(tc[i].name, "period_code");
        strbuf_addf(&q, ", %s", is_period ? "coalesce(" : "");
        switch (m->kind) {
        case IMPORT_MAP_NONE:
            strbuf_addf(&q, "NULL::%s", type);
            break;
        case IMPORT_MAP_COLUMN:
            strbuf_addf(&q, "s.\"%s\"::%s", t->columns[m->column].name, type);
            break;
        case IMPORT_MAP_CONST:
            if (m->value) {
                sb_lit(&q, pg, m->value);
                strbuf_addf(&q, "::%s", type);
            } else {
                strbuf_addf(&q, "NULL::%s", type);
            }
            break;
        case IMPORT_MAP_SQL:
            strbuf_addf(&q, "(%s)::%s", m->value, type);
            break;
        }
        strbuf_addf(&q, "%s", is_period ? ", $1::text)" : "");
    }
    strbuf_addf(&q, " FROM (SELECT line_no");
    for (size_t i = 0; i < t->n_columns; i++)
        strbuf_addf(&q, ", \"%s\"::%s AS \"%s\"", t->columns[i].name, sql_type(t->columns[i].type),
                    t->columns[i].name);
    /* "$1 IS NOT NULL" gives the period parameter a type when no column uses it */
    strbuf_addf(&q,
                " FROM import_stage st WHERE NOT EXISTS (SELECT 1 FROM import_errors e "
                "WHERE e.line_no = st.line_no)) s%s",
                j->req->period ? " WHERE $1::text IS NOT NULL" : "");
    if (q.oom) {
        strbuf_free(&q);
        return ALLOC_EXIT_RUNTIME;
    }
    const char *params[] = {j->req->period};
    int64_t rc = db_exec_params(j->c, q.data, j->req->period ? 1 : 0, params, &err);
    strbuf_free(&q);
    if (rc < 0)
        return template_step_failed(j, "mapping the rows", &err);
    return ALLOC_EXIT_OK;
}

/* Appends "UNION ALL SELECT ..." finding the rows of import_rows that change
 * column `col` (data_source or company_code) of an existing project that has
 * ledger rows or driver values in a closed period: a project's data source and
 * company change only while every period it is in is open, so that the live
 * tables keep telling what a closed period's report was made of. */
static void sb_project_history(strbuf *q, PGconn *pg, const char *col, const char *label,
                               const char *what, size_t pos) {
    strbuf_addf(q, " UNION ALL SELECT r.line_no, %zu, ", pos);
    sb_lit(q, pg, label);
    strbuf_addf(q, ", r.%s, ", col);
    char head[96];
    snprintf(head, sizeof head, "changes the %s of project ", what);
    sb_lit(q, pg, head);
    strbuf_addf(
        q,
        " || r.project_code || ' (now ' || p.%s || '), which has ledger rows or driver "
        "values in closed period ' || c.period_code || ': a project''s data source and "
        "company change only while its periods are open' "
        "FROM import_rows r JOIN project p ON p.project_code = r.project_code "
        "CROSS JOIN LATERAL (SELECT min(cp.period_code) AS period_code FROM period cp "
        " WHERE cp.status = 'closed' AND (EXISTS (SELECT 1 FROM ledger_entry l "
        "  WHERE l.period_code = cp.period_code AND l.project_code = p.project_code) "
        " OR EXISTS (SELECT 1 FROM allocation_driver d WHERE d.period_code = cp.period_code "
        "  AND d.project_code = p.project_code))) c "
        "WHERE r.%s IS DISTINCT FROM p.%s AND c.period_code IS NOT NULL",
        col, col, col);
}

/* Checks the mapped rows against the target table. */
static int validate_target(import_job *j) {
    const import_template *t = j->t;
    PGconn *pg = db_pg(j->c);
    size_t n;
    const import_target_column *tc = import_target_columns(t->target, &n);
    const char *table = import_target_table(t->target);
    int drivers = t->target == IMPORT_TARGET_DRIVERS;
    int projects = t->target == IMPORT_TARGET_PROJECTS;
    row_check checks[IMPORT_MAX_TARGET_COLUMNS];
    char labels[IMPORT_MAX_TARGET_COLUMNS][96];
    memset(checks, 0, sizeof checks);
    int oom = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = tc[i].name;
        row_check *ck = &checks[i];
        strbuf *e = &ck->expr;
        ck->pos = i;
        ck->label = target_label(j, i, labels[i], sizeof labels[i]);
        snprintf(ck->value, sizeof ck->value, "a.%s::text", name);
        strbuf_addf(e, "CASE WHEN a.%s IS NULL THEN ", name);
        if (tc[i].not_null) {
            char msg[128];
            snprintf(msg, sizeof msg, "is empty: a value is required (%s.%s is NOT NULL)", table,
                     name);
            sb_lit(e, pg, msg);
        } else {
            strbuf_addf(e, "NULL::text");
        }
        if (!strcmp(name, "period_code"))
            strbuf_addf(e,
                        " WHEN a.period_code <> $1::text THEN 'is not the period being imported (' "
                        "|| $1::text || ')'");
        if (tc[i].project_ref)
            strbuf_addf(e, " WHEN NOT a.known_project THEN 'is not a known project'");
        if (projects && !strcmp(name, "project_code"))
            strbuf_addf(e, " WHEN a.project_code LIKE '" RESERVED_PREFIX
                           "%%' THEN 'starts with " RESERVED_PREFIX " (such codes are "
                           "reserved)'");
        if (projects && !strcmp(name, "active"))
            strbuf_addf(
                e, " WHEN lower(a.active) <> ALL (ARRAY['true', 'false', 't', 'f', 'yes', "
                   "'no', 'y', 'n', '1', '0']) THEN 'is not true or false (or yes, no, 1, 0)'");
        if (!drivers && !strcmp(name, "data_source"))
            strbuf_addf(e, " WHEN a.data_source LIKE '" RESERVED_PREFIX
                           "%%' THEN 'starts with " RESERVED_PREFIX " (such codes are "
                           "reserved)'");
        if (tc[i].data_source_ref)
            strbuf_addf(e,
                        " WHEN NOT a.known_%s THEN 'is not a known data source "
                        "(no project has it)'",
                        name);
        if (drivers && !strcmp(name, "driver"))
            strbuf_addf(e,
                        " WHEN a.driver = 'equal' THEN 'is the built-in driver of equal weights: "
                        "it takes no values'");
        if (tc[i].type != IMPORT_TYPE_TEXT) {
            char v[64];
            snprintf(v, sizeof v, "a.%s", name);
            if (drivers)
                strbuf_addf(e, " WHEN %s < 0 THEN 'is negative (driver values are >= 0)'", v);
            sb_numeric_checks(e, v, tc[i].scale, "");
        }
        strbuf_addf(e, " END");
        oom |= e->oom;
    }
    /* The rows with known_project and, per data_source_ref column, known_<name>:
     * hash joins against project and its distinct data sources (a few thousand
     * rows), so a file of millions of rows costs one scan, not a lookup per row. */
    strbuf rows = {0};
    strbuf_addf(&rows, "(SELECT r.*, p.project_code IS NOT NULL AS known_project");
    for (size_t i = 0; i < n; i++)
        if (tc[i].data_source_ref)
            strbuf_addf(&rows, ", ds%zu.data_source IS NOT NULL AS known_%s", i, tc[i].name);
    strbuf_addf(&rows,
                " FROM import_rows r LEFT JOIN project p ON p.project_code = r.project_code");
    for (size_t i = 0; i < n; i++)
        if (tc[i].data_source_ref)
            strbuf_addf(&rows,
                        " LEFT JOIN (SELECT DISTINCT data_source FROM project) ds%zu"
                        " ON ds%zu.data_source = r.%s",
                        i, i, tc[i].name);
    strbuf_addf(&rows, ")");
    oom |= rows.oom;
    strbuf q = {0};
    strbuf_addf(&q, "SELECT line_no, label, value, problem, count(*) OVER () FROM (");
    sb_check_rows(&q, pg, rows.data ? rows.data : "", checks, n);
    strbuf_free(&rows);
    for (size_t i = 0; i < n; i++)
        strbuf_free(&checks[i].expr);
    if (drivers) {
        static const char *const key[] = {"driver", "project_code"};
        char buf[96];
        sb_duplicates(&q, pg, "import_rows", key, 2, "project_code",
                      target_label(j, 2 /* project_code */, buf, sizeof buf), "driver and project",
                      n);
    }
    if (projects) {
        sb_project_history(&q, pg, "data_source", target_label(j, 2, labels[2], sizeof labels[2]),
                           "data source", n);
        sb_project_history(&q, pg, "company_code", target_label(j, 1, labels[1], sizeof labels[1]),
                           "company", n + 1);
    }
    strbuf_addf(&q, ") x ORDER BY line_no, pos LIMIT %d", IMPORT_MAX_ERRORS_SHOWN);
    if (q.oom || oom) {
        strbuf_free(&q);
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    db_error err;
    int rc = collect_errors(j, q.data, j->req->period != NULL, &err);
    strbuf_free(&q);
    if (rc < 0)
        return cli_fail_db(&err, "import: checking the mapped rows");
    return ALLOC_EXIT_OK;
}

/* ---- storing -------------------------------------------------------------------- */

/* 1 when the file's header has source column `name`. */
static int has_column(const import_job *j, const char *name) {
    for (size_t i = 0; i < j->t->n_columns; i++)
        if (!strcmp(j->t->columns[i].name, name))
            return j->present[i];
    return 0;
}

/* Upserts import_rows into project by project_code. A column the header lacks
 * (business_line, active) keeps an existing project's value; an empty active
 * keeps it too (a new project is active). Writes the summary into msg. */
static int store_projects(import_job *j, char *msg, size_t msglen) {
    db_error err;
    int keep_line = !has_column(j, "business_line");
    static const char active_sql[] =
        "CASE WHEN lower(r.active) IN ('true', 't', 'yes', 'y', '1') THEN true "
        "WHEN lower(r.active) IN ('false', 'f', 'no', 'n', '0') THEN false END";
    char count_sql[1024];
    snprintf(count_sql, sizeof count_sql,
             "SELECT count(*) FILTER (WHERE p.project_code IS NULL), "
             "count(*) FILTER (WHERE p.project_code IS NOT NULL AND (p.company_code, "
             "p.data_source, p.business_line, p.active) IS DISTINCT FROM (r.company_code, "
             "r.data_source, %s, coalesce(%s, p.active))) "
             "FROM import_rows r LEFT JOIN project p ON p.project_code = r.project_code",
             keep_line ? "p.business_line" : "r.business_line", active_sql);
    PGresult *res = db_query(j->c, count_sql, 0, NULL, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "import: comparing the projects");
    long long added = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long changed = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    /* update, then insert: the table is locked against other writers (lock_period) */
    char update[1024];
    snprintf(update, sizeof update,
             "UPDATE project p SET company_code = r.company_code, data_source = r.data_source%s, "
             "active = coalesce(%s, p.active) FROM import_rows r "
             "WHERE p.project_code = r.project_code",
             keep_line ? "" : ", business_line = r.business_line", active_sql);
    int64_t updated = db_exec_params(j->c, update, 0, NULL, &err);
    int64_t inserted =
        updated < 0 ? -1
                    : db_exec_params(j->c,
                                     "INSERT INTO project (project_code, company_code, "
                                     "data_source, business_line, active) "
                                     "SELECT r.project_code, r.company_code, r.data_source, "
                                     "r.business_line, coalesce(CASE WHEN lower(r.active) IN "
                                     "('false', 'f', 'no', 'n', '0') THEN false END, true) "
                                     "FROM import_rows r WHERE NOT EXISTS (SELECT 1 FROM "
                                     "project p WHERE p.project_code = r.project_code) "
                                     "ORDER BY r.line_no",
                                     0, NULL, &err);
    if (updated < 0 || inserted < 0) {
        if (err.sqlstate[0] == '2' && !err.conn_lost) { /* data or constraint */
            fprintf(stderr, "%s: %s\n", j->req->label, err.msg);
            return ALLOC_EXIT_VALIDATION;
        }
        return cli_fail_db(&err, "import: storing the projects");
    }
    int64_t n = updated + inserted;
    snprintf(msg, msglen, "%" PRId64 " project%s from %s: %lld new, %lld changed, %lld unchanged",
             n, n == 1 ? "" : "s", j->req->label, added, changed, (long long)n - added - changed);
    return ALLOC_EXIT_OK;
}

/* Inserts import_rows into the target (drivers: after deleting the period's
 * values of the drivers in the file; projects: an upsert). Writes the summary
 * into msg. */
static int store(import_job *j, char *msg, size_t msglen) {
    if (j->t->target == IMPORT_TARGET_PROJECTS)
        return store_projects(j, msg, msglen);
    const import_template *t = j->t;
    char via[128] = ""; /* "(template salary)"; nothing for --kind ledger|drivers */
    if (strcmp(t->origin, "built-in") != 0)
        snprintf(via, sizeof via, " (template %s)", t->name);
    const char *params[] = {j->req->period};
    db_error err;
    if (t->target == IMPORT_TARGET_DRIVERS) {
        PGresult *res = db_query(j->c,
                                 "SELECT count(*), count(DISTINCT driver), "
                                 "coalesce(string_agg(DISTINCT driver, ', ' ORDER BY driver), '') "
                                 "FROM import_rows",
                                 0, NULL, PGRES_TUPLES_OK, &err);
        if (!res)
            return cli_fail_db(&err, "import: summing up the drivers");
        char drivers[256];
        snprintf(drivers, sizeof drivers, "%s", PQgetvalue(res, 0, 2));
        long long n_drivers = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        PQclear(res);
        int64_t deleted = db_exec_params(j->c,
                                         "DELETE FROM allocation_driver WHERE period_code = $1 "
                                         "AND driver IN (SELECT driver FROM import_rows)",
                                         1, params, &err);
        if (deleted < 0)
            return cli_fail_db(&err, "import: deleting the drivers' earlier values");
        int64_t inserted = db_exec_params(
            j->c,
            "INSERT INTO allocation_driver (period_code, driver, project_code, value) "
            "SELECT period_code, driver, project_code, value::numeric(18,6) FROM import_rows "
            "ORDER BY line_no",
            0, NULL, &err);
        if (inserted < 0) {
            if (err.sqlstate[0] == '2' && !err.conn_lost) { /* data or constraint */
                fprintf(stderr, "%s: %s\n", j->req->label, err.msg);
                return ALLOC_EXIT_VALIDATION;
            }
            return cli_fail_db(&err, "import: inserting the driver values");
        }
        snprintf(msg, msglen,
                 "%" PRId64 " driver value%s for period %s from %s%s: driver%s %s "
                 "replaced (%" PRId64 " earlier value%s deleted)",
                 inserted, inserted == 1 ? "" : "s", j->req->period, j->req->label, via,
                 n_drivers == 1 ? "" : "s", n_drivers ? drivers : "none", deleted,
                 deleted == 1 ? "" : "s");
        return ALLOC_EXIT_OK;
    }

    PGresult *res = db_query(j->c,
                             "SELECT count(*) FILTER (WHERE project_code IS NULL), "
                             "coalesce(sum(amount), 0)::numeric(20,2)::text FROM import_rows",
                             0, NULL, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "import: summing up the rows");
    long long pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char total[REPORT_FMT_AMOUNT_MAX];
    if (report_fmt_thousands_text(PQgetvalue(res, 0, 1), total, sizeof total) < 0)
        snprintf(total, sizeof total, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    int64_t inserted = db_exec_params(
        j->c,
        "INSERT INTO ledger_entry (period_code, company_code, data_source, business_line, "
        "budget_item_code, account_code, project_code, category, amount) "
        "SELECT period_code, company_code, data_source, business_line, budget_item_code, "
        "account_code, project_code, category, amount::numeric(18,2) FROM import_rows "
        "ORDER BY line_no",
        0, NULL, &err);
    if (inserted < 0) {
        if (db_error_is(&err, DB_SQLSTATE_PERIOD_CLOSED))
            return cli_refuse("import: %s", err.msg);
        if (err.sqlstate[0] == '2' && !err.conn_lost) {
            fprintf(stderr, "%s: %s\n", j->req->label, err.msg);
            return ALLOC_EXIT_VALIDATION;
        }
        return cli_fail_db(&err, "import: inserting the ledger rows");
    }
    snprintf(msg, msglen,
             "%" PRId64 " ledger row%s for period %s from %s%s: %lld pending "
             "allocation, amount total %s",
             inserted, inserted == 1 ? "" : "s", j->req->period, j->req->label, via, pending,
             total);
    return ALLOC_EXIT_OK;
}

/* ---- the whole import ----------------------------------------------------------- */

static int import_in_transaction(import_job *j, char *msg, size_t msglen) {
    int rc = lock_period(j);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    rc = run_steps(j, j->t->pre_sql, j->t->n_pre_sql, "pre_sql");
    if (rc != ALLOC_EXIT_OK || j->errors.total)
        return rc != ALLOC_EXIT_OK ? rc : ALLOC_EXIT_VALIDATION;

    csv_reader *r = csv_new_file(j->req->file);
    if (!r) {
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    csv_set_delimiter(r, j->t->delimiter);
    if (read_header(j, r) > 0) {
        csv_free(r);
        return ALLOC_EXIT_VALIDATION;
    }
    rc = load_rows(j, r);
    csv_free(r);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    if ((rc = validate_source(j)) != ALLOC_EXIT_OK)
        return rc;
    if ((rc = map_rows(j)) != ALLOC_EXIT_OK)
        return rc;
    if ((rc = validate_target(j)) != ALLOC_EXIT_OK)
        return rc;
    if (j->errors.total)
        return ALLOC_EXIT_VALIDATION;
    if ((rc = store(j, msg, msglen)) != ALLOC_EXIT_OK)
        return rc;
    rc = run_steps(j, j->t->post_sql, j->t->n_post_sql, "post_sql");
    if (rc != ALLOC_EXIT_OK)
        return rc;
    return j->errors.total ? ALLOC_EXIT_VALIDATION : ALLOC_EXIT_OK;
}

int import_run(db_conn *c, const import_template *t, const import_request *req) {
    import_job j = {0};
    j.c = c;
    j.t = t;
    j.req = req;
    j.present = calloc(t->n_columns ? t->n_columns : 1, sizeof *j.present);
    j.label = calloc(t->n_columns ? t->n_columns : 1, sizeof *j.label);
    if (!j.present || !j.label) {
        free(j.present);
        free(j.label);
        fprintf(stderr, "alloc-producer: import: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < t->n_columns; i++) {
        size_t n = strlen(t->columns[i].header) + 1;
        j.label[i] = malloc(n);
        if (j.label[i])
            memcpy(j.label[i], t->columns[i].header, n);
    }
    int rc = ALLOC_EXIT_OK;
    for (size_t i = 0; i < t->n_columns; i++)
        if (!j.label[i])
            rc = ALLOC_EXIT_RUNTIME;

    db_error err;
    char msg[512] = "";
    if (rc != ALLOC_EXIT_OK) {
        fprintf(stderr, "alloc-producer: import: out of memory\n");
    } else if (db_begin(c, NULL, &err) < 0) {
        rc = cli_fail_db(&err, "import: starting the transaction");
    } else if (db_exec(c, "SET LOCAL client_encoding = 'UTF8'", &err) < 0) {
        rc = cli_fail_db(&err, "import: setting the client encoding");
        db_rollback(c, NULL);
    } else {
        rc = import_in_transaction(&j, msg, sizeof msg);
        if (rc == ALLOC_EXIT_OK && !req->dry_run) {
            if (db_commit(c, &err) < 0)
                rc = cli_fail_db(&err, "import: committing");
        } else {
            db_rollback(c, NULL);
        }
    }

    if (j.errors.total) {
        errors_print(&j.errors, req->label);
        fprintf(stderr, "alloc-producer: import: %s: %" PRId64 " error%s; nothing imported\n",
                req->label, j.errors.total, j.errors.total == 1 ? "" : "s");
    } else if (rc == ALLOC_EXIT_OK) {
        char skipped[64] = "";
        if (j.skipped)
            snprintf(skipped, sizeof skipped, " (%" PRId64 " empty line%s skipped)", j.skipped,
                     j.skipped == 1 ? "" : "s");
        if (j.notes.data && !j.notes.oom)
            fputs(j.notes.data, stdout);
        if (req->dry_run)
            printf("dry run: %s%s; nothing changed\n", msg, skipped);
        else
            printf("imported %s%s\n", msg, skipped);
    }
    errors_free(&j.errors);
    for (size_t i = 0; i < t->n_columns; i++)
        free(j.label[i]);
    free(j.label);
    free(j.present);
    free(j.field_col);
    strbuf_free(&j.notes);
    return rc;
}
