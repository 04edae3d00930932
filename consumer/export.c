/* The export worker (DESIGN.md 5.7): one thread per consumer claims export
 * tasks, reads the run's rows in key order in segments by keyset pagination
 * inside one read-only snapshot, formats (and, for csv.gz, compresses) each
 * segment's rows in a thread pool in fixed-size chunks, writes the chunks in
 * order, and records the file's path, row count and SHA-256 on the task.
 *
 * Memory is bounded by two segments (the one being formatted and the next one,
 * fetched meanwhile) and their chunks' buffers, whatever the export's size;
 * libxlsxwriter runs in constant-memory mode (rows go to a temporary file as
 * they are written).
 *
 * Connections: `ctl` (autocommit) claims tasks, beats the heartbeat and
 * records outcomes; `data` holds the REPEATABLE READ READ ONLY transaction the
 * segments are read in, so a run started meanwhile (which deletes earlier
 * unpublished results) cannot tear a file. Both belong to the export thread.
 *
 * A claim is guarded by a token: the task's `attempts` value the claim set.
 * Every later update of the task requires it, so a worker whose task was
 * claimed again (its heartbeat went stale) cannot overwrite the new owner's
 * outcome; the final rename and 'done' update happen while the task row is
 * locked.
 *
 * Test knobs (environment of the consumer): ALLOC_EXPORT_SEGMENT_ROWS (rows per
 * segment, default 50000), ALLOC_EXPORT_SHEET_ROWS (rows per xlsx sheet with its
 * header, default and at most 1048576), ALLOC_EXPORT_STALE_SECONDS (heartbeat
 * age after which a running task is claimed again, default 120),
 * ALLOC_EXPORT_SEGMENT_PAUSE_MS (a pause after each segment, default 0, so that
 * tests can stop or kill a worker in the middle of an export). */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <xlsxwriter.h>

#include "backoff.h"
#include "db.h"
#include "export_fmt.h"
#include "log.h"
#include "pool.h"

#define EXPORT_SEGMENT_ROWS 50000
#define EXPORT_CHUNK_ROWS 5000 /* fixed, so the file does not depend on the thread count */
#define EXPORT_POLL_MS 1000
#define EXPORT_HEARTBEAT_MS 5000
#define EXPORT_STALE_SECONDS 120
#define EXPORT_MAX_ATTEMPTS 5
#define EXPORT_GZIP_LEVEL 6
#define EXPORT_SHEET_ROWS 1048576 /* Excel's row limit, header included */
#define EXPORT_ERR_MAX 512

/* ---- what is exported ------------------------------------------------------ */

/* How a column goes into an xlsx cell. */
typedef enum { CELL_TEXT, CELL_INTEGER, CELL_AMOUNT } cell_kind;

/* The rows of one table: the selected columns (the key columns first, in key
 * order), their header names and cell kinds. */
typedef struct export_shape {
    const char *table;
    int ncols, nkeys;
    const char *cols[5];
    const int key_is_text[4];
    const cell_kind kinds[5];
    const double widths[5]; /* xlsx column widths */
} export_shape;

static const export_shape report_shape = {
    "report_after",
    5,
    4,
    {"version", "data_source", "project_code", "item_code", "amount"},
    {1, 1, 1, 1},
    {CELL_TEXT, CELL_TEXT, CELL_TEXT, CELL_TEXT, CELL_AMOUNT},
    {9, 16, 16, 24, 18},
};

static const export_shape detail_shape = {
    "alloc_detail",
    4,
    3,
    {"version", "entry_id", "project_code", "amount"},
    {1, 0, 1},
    {CELL_TEXT, CELL_INTEGER, CELL_TEXT, CELL_AMOUNT},
    {9, 14, 16, 16},
};

/* A claimed task. */
typedef struct export_task {
    int64_t task_id, run_id; /* run_id 0: none recorded */
    int attempt;             /* the claim's token */
    char period[16];
    char version[256]; /* "" = every version */
    int detail, xlsx;
    char id_text[24], attempt_text[16], run_text[24];
} export_task;

/* How a task ended. */
typedef enum {
    OUTCOME_DONE,   /* file stored, task recorded done */
    OUTCOME_FAILED, /* cannot be done: record failed with the reason */
    OUTCOME_RETRY,  /* stop asked or a connection lost: back to the queue */
    OUTCOME_LOST    /* another worker owns the task now: touch nothing */
} export_outcome;

/* The export thread's state. */
typedef struct exporter {
    const consumer_env *env;
    int threads;
    int segment_rows;
    long sheet_rows;
    int stale_seconds;
    int pause_ms;
    pool *formatters;
    db_conn *ctl, *data;
    backoff bo;
} exporter;

static pthread_t export_thread;
static int export_started;
static exporter the_exporter;

/* ---- small helpers ------------------------------------------------------------ */

static int stopping(const exporter *x) {
    return *x->env->stop != 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps up to ms milliseconds, waking early when a stop is asked for. */
static void nap(const exporter *x, int ms) {
    while (ms > 0 && !stopping(x)) {
        int step = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* An integer from the environment within [lo, hi], else fallback. */
static long env_long(const char *name, long fallback, long lo, long hi) {
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        log_warn("%s=%s: expected %ld..%ld; using %ld", name, v, lo, hi, fallback);
        return fallback;
    }
    return n;
}

/* mkdir -p: creates dir and its missing parents (mode 0755). Returns 0, or -1
 * with errno. */
static int make_dirs(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* fsyncs a directory, so a rename in it survives a crash. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The lowercase hex SHA-256 of the file at path into hex. Returns 0, or -1
 * with the reason in err. */
static int sha256_file(const char *path, char hex[65], char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "reading %.300s for its SHA-256: %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        static const size_t block = 1 << 20;
        unsigned char *buf = malloc(block);
        size_t n;
        int ok = buf != NULL;
        while (ok && (n = fread(buf, 1, block, f)) > 0)
            ok = EVP_DigestUpdate(ctx, buf, n) == 1;
        unsigned char md[32];
        unsigned int mdlen = 0;
        if (ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32) {
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            rc = 0;
        }
        free(buf);
    }
    if (rc < 0)
        snprintf(err, errlen, "SHA-256 of %.300s failed%s%s", path, ferror(f) ? ": " : "",
                 ferror(f) ? strerror(errno) : "");
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

/* ---- formatting in the pool ------------------------------------------------- */

/* Rows [first, first + count) of a segment, formatted by one pool task. */
typedef struct export_chunk {
    const PGresult *res; /* read-only while the pool runs; owned by the export thread */
    const export_shape *shape;
    int first, count;
    int xlsx;
    /* csv.gz: the rows as CSV text, deflated */
    strbuf deflated;
    uint32_t crc;
    size_t text_len;
    /* xlsx: the numeric columns parsed, numbers[row * ncols + col] */
    double *numbers;
    char err[256]; /* non-empty: the chunk failed */
} export_chunk;

static void format_csv_chunk(export_chunk *ch) {
    const export_shape *s = ch->shape;
    strbuf text = {0};
    strbuf_reserve(&text, (size_t)ch->count * 64);
    for (int r = ch->first; r < ch->first + ch->count; r++) {
        for (int c = 0; c < s->ncols; c++) {
            if (c)
                strbuf_add(&text, ",", 1);
            if (!PQgetisnull(ch->res, r, c))
                export_fmt_csv_field(&text, PQgetvalue(ch->res, r, c),
                                     (size_t)PQgetlength(ch->res, r, c));
        }
        strbuf_add(&text, "\n", 1);
    }
    if (text.oom) {
        snprintf(ch->err, sizeof ch->err, "out of memory formatting %d rows", ch->count);
    } else {
        ch->text_len = text.len;
        export_fmt_deflate_chunk(text.data, text.len, EXPORT_GZIP_LEVEL, &ch->deflated, &ch->crc,
                                 ch->err, sizeof ch->err);
    }
    strbuf_free(&text);
}

static void format_xlsx_chunk(export_chunk *ch) {
    const export_shape *s = ch->shape;
    ch->numbers = malloc(sizeof *ch->numbers * (size_t)ch->count * (size_t)s->ncols);
    if (!ch->numbers) {
        snprintf(ch->err, sizeof ch->err, "out of memory formatting %d rows", ch->count);
        return;
    }
    for (int r = 0; r < ch->count; r++)
        for (int c = 0; c < s->ncols; c++) {
            double v = 0;
            if (s->kinds[c] != CELL_TEXT && !PQgetisnull(ch->res, ch->first + r, c)) {
                const char *text = PQgetvalue(ch->res, ch->first + r, c);
                char *end;
                v = strtod(text, &end);
                if (end == text || *end) {
                    snprintf(ch->err, sizeof ch->err, "column %s: '%s' is not a number", s->cols[c],
                             text);
                    return;
                }
            }
            ch->numbers[(size_t)r * (size_t)s->ncols + (size_t)c] = v;
        }
}

/* A pool task: formats one chunk. */
static void format_chunk(void *arg) {
    export_chunk *ch = arg;
    if (ch->xlsx)
        format_xlsx_chunk(ch);
    else
        format_csv_chunk(ch);
}

static void chunks_free(export_chunk *chunks, int n) {
    for (int i = 0; i < n; i++) {
        strbuf_free(&chunks[i].deflated);
        free(chunks[i].numbers);
    }
    free(chunks);
}

/* ---- the file ------------------------------------------------------------------ */

/* The file being written: csv.gz through stdio, xlsx through libxlsxwriter. */
typedef struct export_writer {
    const export_shape *shape;
    int xlsx;
    long sheet_rows;
    FILE *f;
    export_fmt_gzip gz;
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *head_fmt, *amount_fmt, *int_fmt;
    long sheet_row; /* next row of the current sheet */
    int sheets;
    char err[EXPORT_ERR_MAX];
} export_writer;

static int xlsx_fail(export_writer *w, const char *what, lxw_error e) {
    snprintf(w->err, sizeof w->err, "xlsx: %s: %s", what, lxw_strerror(e));
    return -1;
}

/* Starts a new sheet with the header row. */
static int xlsx_new_sheet(export_writer *w) {
    w->ws = workbook_add_worksheet(w->wb, NULL);
    if (!w->ws) {
        snprintf(w->err, sizeof w->err, "xlsx: cannot add sheet %d", w->sheets + 1);
        return -1;
    }
    w->sheets++;
    const export_shape *s = w->shape;
    for (int c = 0; c < s->ncols; c++) {
        lxw_error e = worksheet_set_column(w->ws, (lxw_col_t)c, (lxw_col_t)c, s->widths[c], NULL);
        if (e != LXW_NO_ERROR)
            return xlsx_fail(w, "column width", e);
    }
    worksheet_freeze_panes(w->ws, 1, 0);
    for (int c = 0; c < s->ncols; c++) {
        lxw_error e = worksheet_write_string(w->ws, 0, (lxw_col_t)c, s->cols[c], w->head_fmt);
        if (e != LXW_NO_ERROR)
            return xlsx_fail(w, "header", e);
    }
    w->sheet_row = 1;
    return 0;
}

/* Creates the file at path (temporary files of libxlsxwriter go to tmpdir)
 * and writes the header. Returns 0, or -1 with w->err. */
static int writer_open(export_writer *w, const char *path, const char *tmpdir) {
    const export_shape *s = w->shape;
    if (!w->xlsx) {
        w->f = fopen(path, "wb");
        if (!w->f) {
            snprintf(w->err, sizeof w->err, "creating %.300s: %s", path, strerror(errno));
            return -1;
        }
        unsigned char head[EXPORT_FMT_GZIP_HEADER_LEN];
        export_fmt_gzip_header(head);
        strbuf header = {0};
        for (int c = 0; c < s->ncols; c++) {
            if (c)
                strbuf_add(&header, ",", 1);
            export_fmt_csv_field(&header, s->cols[c], strlen(s->cols[c]));
        }
        strbuf_add(&header, "\n", 1);
        strbuf deflated = {0};
        uint32_t crc = 0;
        int rc = header.oom ? -1
                            : export_fmt_deflate_chunk(header.data, header.len, EXPORT_GZIP_LEVEL,
                                                       &deflated, &crc, w->err, sizeof w->err);
        if (rc == 0) {
            export_fmt_gzip_add(&w->gz, crc, header.len);
            if (fwrite(head, 1, sizeof head, w->f) != sizeof head ||
                fwrite(deflated.data, 1, deflated.len, w->f) != deflated.len) {
                snprintf(w->err, sizeof w->err, "writing %.300s: %s", path, strerror(errno));
                rc = -1;
            }
        } else if (header.oom) {
            snprintf(w->err, sizeof w->err, "out of memory");
        }
        strbuf_free(&header);
        strbuf_free(&deflated);
        return rc;
    }
    lxw_workbook_options opt = {
        .constant_memory = LXW_TRUE, .tmpdir = (char *)tmpdir, .use_zip64 = LXW_FALSE};
    w->wb = workbook_new_opt(path, &opt);
    if (!w->wb) {
        snprintf(w->err, sizeof w->err, "xlsx: cannot create workbook %.300s", path);
        return -1;
    }
    w->head_fmt = workbook_add_format(w->wb);
    w->amount_fmt = workbook_add_format(w->wb);
    w->int_fmt = workbook_add_format(w->wb);
    if (!w->head_fmt || !w->amount_fmt || !w->int_fmt) {
        snprintf(w->err, sizeof w->err, "xlsx: out of memory");
        return -1;
    }
    format_set_bold(w->head_fmt);
    format_set_num_format(w->amount_fmt, "#,##0.00");
    format_set_num_format(w->int_fmt, "0");
    return xlsx_new_sheet(w);
}

/* Writes a segment's formatted chunks in order. Returns 0, or -1 with w->err. */
static int writer_chunks(export_writer *w, export_chunk *chunks, int nchunks) {
    const export_shape *s = w->shape;
    for (int i = 0; i < nchunks; i++) {
        export_chunk *ch = &chunks[i];
        if (ch->err[0]) {
            snprintf(w->err, sizeof w->err, "%s", ch->err);
            return -1;
        }
        if (!w->xlsx) {
            export_fmt_gzip_add(&w->gz, ch->crc, ch->text_len);
            if (fwrite(ch->deflated.data, 1, ch->deflated.len, w->f) != ch->deflated.len) {
                snprintf(w->err, sizeof w->err, "writing the file: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        for (int r = 0; r < ch->count; r++) {
            if (w->sheet_row >= w->sheet_rows && xlsx_new_sheet(w) < 0)
                return -1;
            lxw_row_t row = (lxw_row_t)w->sheet_row++;
            for (int c = 0; c < s->ncols; c++) {
                if (PQgetisnull(ch->res, ch->first + r, c))
                    continue; /* a NULL amount: an empty cell */
                lxw_error e;
                if (s->kinds[c] == CELL_TEXT)
                    e = worksheet_write_string(w->ws, row, (lxw_col_t)c,
                                               PQgetvalue(ch->res, ch->first + r, c), NULL);
                else
                    e = worksheet_write_number(
                        w->ws, row, (lxw_col_t)c,
                        ch->numbers[(size_t)r * (size_t)s->ncols + (size_t)c],
                        s->kinds[c] == CELL_AMOUNT ? w->amount_fmt : w->int_fmt);
                if (e != LXW_NO_ERROR)
                    return xlsx_fail(w, "writing a cell", e);
            }
        }
    }
    return 0;
}

/* Ends the file: the gzip trailer, flushed and synced; or the xlsx package.
 * Returns 0, or -1 with w->err. The writer holds nothing afterwards. */
static int writer_close(export_writer *w) {
    int rc = 0;
    if (w->f) {
        unsigned char tail[EXPORT_FMT_GZIP_FINISH_LEN];
        export_fmt_gzip_finish(&w->gz, tail);
        if (fwrite(tail, 1, sizeof tail, w->f) != sizeof tail || fflush(w->f) != 0 ||
            fsync(fileno(w->f)) != 0) {
            snprintf(w->err, sizeof w->err, "writing the file: %s", strerror(errno));
            rc = -1;
        }
        if (fclose(w->f) != 0 && rc == 0) {
            snprintf(w->err, sizeof w->err, "closing the file: %s", strerror(errno));
            rc = -1;
        }
        w->f = NULL;
    }
    if (w->wb) {
        lxw_error e = workbook_close(w->wb); /* frees the workbook whatever happens */
        w->wb = NULL;
        if (e != LXW_NO_ERROR && rc == 0)
            rc = xlsx_fail(w, "writing the package", e);
    }
    return rc;
}

/* ---- database ---------------------------------------------------------------- */

/* Opens (or re-opens after a loss) a connection. Returns it, or NULL (logged). */
static db_conn *ensure_conn(exporter *x, db_conn **slot, const char *what) {
    char err[DB_ERRMSG_MAX];
    if (*slot && db_ok(*slot))
        return *slot;
    if (*slot) {
        db_error e;
        if (db_reset(*slot, 2000, &e) == 0)
            return *slot;
        log_warn("export: %s connection: %s", what, e.msg);
        return NULL;
    }
    *slot = db_connect(x->env->cfg->pg_dsn, err, sizeof err);
    if (!*slot)
        log_warn("export: %s connection: %s", what, err);
    return *slot;
}

/* Claims the oldest queued task, or one whose worker stopped beating. Returns
 * 1 with *t filled, 0 when there is none, -1 with err. */
static int claim_task(exporter *x, export_task *t, db_error *err) {
    char stale[16];
    snprintf(stale, sizeof stale, "%d", x->stale_seconds);
    const char *params[] = {x->env->name, stale};
    PGresult *res = db_query(
        x->ctl,
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

/* Beats the heartbeat and records the rows written so far. Returns 1 while
 * the claim holds, 0 when the task was claimed again by another worker, -1
 * with err. */
static int heartbeat(exporter *x, const export_task *t, int64_t rows, db_error *err) {
    char rows_text[24];
    snprintf(rows_text, sizeof rows_text, "%" PRId64, rows);
    const char *params[] = {t->id_text, t->attempt_text, rows_text};
    int64_t n = db_exec_params(x->ctl,
                               "UPDATE export_task SET heartbeat_at = now(), row_count = $3 "
                               "WHERE task_id = $1 AND attempts = $2 AND status = 'running'",
                               3, params, err);
    return n < 0 ? -1 : n > 0;
}

/* Records the task failed with why (when the claim still holds). */
static void record_failed(exporter *x, const export_task *t, const char *why) {
    const char *params[] = {t->id_text, t->attempt_text, why};
    db_error err;
    if (!ensure_conn(x, &x->ctl, "control"))
        snprintf(err.msg, sizeof err.msg, "no connection");
    else if (db_exec_params(x->ctl,
                            "UPDATE export_task SET status = 'failed', error = $3, "
                            "  finished_at = now() "
                            "WHERE task_id = $1 AND attempts = $2 AND status = 'running'",
                            3, params, &err) >= 0)
        return;
    log_warn("export task %" PRId64 ": cannot record the failure (%s); it will be claimed "
             "again once its heartbeat is stale",
             t->task_id, err.msg);
}

/* Puts the task back in the queue. refund: the attempt does not count (the
 * worker stopped on purpose). */
static void record_requeued(exporter *x, const export_task *t, int refund) {
    const char *params[] = {t->id_text, t->attempt_text, refund ? "1" : "0"};
    db_error err;
    if (!ensure_conn(x, &x->ctl, "control"))
        snprintf(err.msg, sizeof err.msg, "no connection");
    else if (db_exec_params(x->ctl,
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

/* Moves the temporary file to its place and records the task done, while the
 * task row is locked, so that exactly one worker's file is the recorded one.
 * Returns OUTCOME_DONE, OUTCOME_LOST, OUTCOME_FAILED with why (the file cannot
 * be moved) or OUTCOME_RETRY (logged). */
static export_outcome record_done(exporter *x, const export_task *t, const char *tmp,
                                  const char *final, const char *dir, int64_t rows, const char *sha,
                                  char *why, size_t whylen) {
    db_error err;
    char rows_text[24];
    snprintf(rows_text, sizeof rows_text, "%" PRId64, rows);
    const char *lock_params[] = {t->id_text, t->attempt_text};
    const char *done_params[] = {t->id_text, final, rows_text, sha};
    int64_t held = 0;
    if (db_begin(x->ctl, NULL, &err) < 0)
        goto db_failed;
    int found = db_query_int64(x->ctl,
                               "SELECT 1 FROM export_task WHERE task_id = $1 AND attempts = $2 "
                               "AND status = 'running' FOR UPDATE",
                               2, lock_params, &held, &err);
    if (found < 0)
        goto db_failed;
    if (!found) {
        db_rollback(x->ctl, NULL);
        return OUTCOME_LOST;
    }
    if (rename(tmp, final) != 0) {
        snprintf(why, whylen, "moving %.200s to %.200s: %s", tmp, final, strerror(errno));
        db_rollback(x->ctl, NULL);
        return OUTCOME_FAILED;
    }
    sync_dir(dir);
    if (db_exec_params(x->ctl,
                       "UPDATE export_task SET status = 'done', path = $2, row_count = $3, "
                       "  sha256 = $4, error = NULL, finished_at = now(), heartbeat_at = now() "
                       "WHERE task_id = $1",
                       4, done_params, &err) < 0 ||
        db_commit(x->ctl, &err) < 0)
        goto db_failed;
    return OUTCOME_DONE;

db_failed:
    db_rollback(x->ctl, NULL);
    log_warn("export task %" PRId64 ": recording the outcome: %s; the task will be claimed "
             "again once its heartbeat is stale",
             t->task_id, err.msg);
    return OUTCOME_RETRY;
}

/* Appends the key columns to sql, each COLLATE "C" when needed. */
static void append_keys(char *sql, size_t n, const export_shape *s, int byte_order) {
    for (int k = 0; k < s->nkeys; k++) {
        size_t len = strlen(sql);
        snprintf(sql + len, n - len, "%s%s%s", k ? ", " : "", s->cols[k],
                 s->key_is_text[k] && !byte_order ? " COLLATE \"C\"" : "");
    }
}

/* The segment query: $1 run, $2 limit, [$3 version], then the last key of the
 * previous segment when `after`. */
static void segment_sql(char *sql, size_t n, const export_shape *s, int by_version, int after,
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

/* ---- one task ------------------------------------------------------------------ */

/* What run_export works with. */
typedef struct export_job {
    exporter *x;
    const export_task *t;
    const export_shape *shape;
    char first_sql[1024], next_sql[1024];
    char limit_text[16];
    int64_t rows;
    double last_beat;
    char why[EXPORT_ERR_MAX]; /* the failure, for OUTCOME_FAILED */
} export_job;

/* Maps a failed database call to an outcome: a lost connection is retried,
 * anything else fails the task with what and the message. */
static export_outcome db_outcome(export_job *j, const char *what, const db_error *err) {
    snprintf(j->why, sizeof j->why, "%s: %.400s", what, err->msg);
    return db_error_retryable(err) ? OUTCOME_RETRY : OUTCOME_FAILED;
}

/* Reads one segment: the first when last is NULL, else the rows after row
 * `last_row` of last. Returns the result (caller PQclears) or NULL with err. */
static PGresult *fetch_segment(export_job *j, const PGresult *last, int last_row, db_error *err) {
    const char *params[3 + 4];
    int n = 0;
    params[n++] = j->t->run_text;
    params[n++] = j->limit_text;
    if (j->t->version[0])
        params[n++] = j->t->version;
    if (last)
        for (int k = 0; k < j->shape->nkeys; k++)
            params[n++] = PQgetvalue(last, last_row, k);
    return db_query(j->x->data, last ? j->next_sql : j->first_sql, n, params, PGRES_TUPLES_OK, err);
}

/* Checks, in the export's snapshot, that the task's run can be exported.
 * Returns OUTCOME_DONE when it can, else the outcome with j->why. */
static export_outcome check_run(export_job *j) {
    const export_task *t = j->t;
    if (t->run_id <= 0) {
        snprintf(j->why, sizeof j->why, "the task names no run");
        return OUTCOME_FAILED;
    }
    const char *params[] = {t->run_text};
    db_error err;
    PGresult *res = db_query(j->x->data,
                             "SELECT r.status, r.detail, r.period_code, r.replaced_by "
                             "FROM alloc_run r WHERE r.run_id = $1",
                             1, params, PGRES_TUPLES_OK, &err);
    if (!res)
        return db_outcome(j, "reading the run", &err);
    export_outcome out = OUTCOME_DONE;
    if (PQntuples(res) != 1) {
        snprintf(j->why, sizeof j->why, "run %s does not exist", t->run_text);
        out = OUTCOME_FAILED;
    } else if (strcmp(PQgetvalue(res, 0, 0), "succeeded") != 0) {
        snprintf(j->why, sizeof j->why, "run %s is %s, not succeeded", t->run_text,
                 PQgetvalue(res, 0, 0));
        out = OUTCOME_FAILED;
    } else if (strcmp(PQgetvalue(res, 0, 2), t->period) != 0) {
        snprintf(j->why, sizeof j->why, "run %s belongs to period %s, not %s", t->run_text,
                 PQgetvalue(res, 0, 2), t->period);
        out = OUTCOME_FAILED;
    } else if (t->detail && PQgetvalue(res, 0, 1)[0] != 't') {
        snprintf(j->why, sizeof j->why, "run %s was made without --detail: it has no %s",
                 t->run_text, j->shape->table);
        out = OUTCOME_FAILED;
    } else if (!PQgetisnull(res, 0, 3)) {
        snprintf(j->why, sizeof j->why,
                 "the results of run %s were replaced by run %s (the success of a later run "
                 "deletes the unpublished results of earlier runs); file the export again",
                 t->run_text, PQgetvalue(res, 0, 3));
        out = OUTCOME_FAILED;
    }
    PQclear(res);
    return out;
}

/* Beats the heartbeat when it is due. Returns OUTCOME_DONE to go on, else
 * the outcome. */
static export_outcome maybe_beat(export_job *j) {
    double now = now_s();
    if ((now - j->last_beat) * 1000 < EXPORT_HEARTBEAT_MS)
        return OUTCOME_DONE;
    db_error err;
    if (!ensure_conn(j->x, &j->x->ctl, "control")) {
        snprintf(j->why, sizeof j->why, "control connection lost");
        return OUTCOME_RETRY;
    }
    int held = heartbeat(j->x, j->t, j->rows, &err);
    if (held < 0)
        return db_outcome(j, "heartbeat", &err);
    if (!held)
        return OUTCOME_LOST;
    j->last_beat = now;
    return OUTCOME_DONE;
}

/* Reads every segment and writes it: formats segment k in the pool while
 * segment k+1 is fetched. Returns OUTCOME_DONE when all rows are written. */
static export_outcome copy_segments(export_job *j, export_writer *w) {
    exporter *x = j->x;
    db_error err;
    PGresult *res = fetch_segment(j, NULL, 0, &err);
    if (!res)
        return db_outcome(j, "reading the first segment", &err);
    while (res) {
        int n = PQntuples(res);
        int nchunks = (n + EXPORT_CHUNK_ROWS - 1) / EXPORT_CHUNK_ROWS;
        export_chunk *chunks = calloc((size_t)(nchunks > 0 ? nchunks : 1), sizeof *chunks);
        if (!chunks) {
            PQclear(res);
            snprintf(j->why, sizeof j->why, "out of memory");
            return OUTCOME_FAILED;
        }
        for (int i = 0; i < nchunks; i++) {
            export_chunk *ch = &chunks[i];
            ch->res = res;
            ch->shape = j->shape;
            ch->first = i * EXPORT_CHUNK_ROWS;
            ch->count = n - ch->first < EXPORT_CHUNK_ROWS ? n - ch->first : EXPORT_CHUNK_ROWS;
            ch->xlsx = w->xlsx;
            pool_submit(x->formatters, format_chunk, ch);
        }
        /* a full segment may have a successor: fetch it while the pool formats */
        PGresult *next = NULL;
        int fetch_failed = 0;
        if (n == x->segment_rows) {
            next = fetch_segment(j, res, n - 1, &err);
            fetch_failed = next == NULL;
        }
        pool_wait(x->formatters);
        int wrote = writer_chunks(w, chunks, nchunks);
        chunks_free(chunks, nchunks);
        PQclear(res);
        if (wrote < 0) {
            PQclear(next);
            snprintf(j->why, sizeof j->why, "%s", w->err);
            return OUTCOME_FAILED;
        }
        if (fetch_failed)
            return db_outcome(j, "reading a segment", &err);
        j->rows += n;
        res = next;
        nap(x, x->pause_ms);
        export_outcome beat = maybe_beat(j);
        if (beat != OUTCOME_DONE || stopping(x)) {
            PQclear(res);
            if (beat == OUTCOME_DONE)
                snprintf(j->why, sizeof j->why, "the consumer is stopping");
            return beat == OUTCOME_DONE ? OUTCOME_RETRY : beat;
        }
    }
    return OUTCOME_DONE;
}

/* Writes the task's file and records the outcome, which it returns. */
static export_outcome run_task(exporter *x, const export_task *t) {
    export_job j;
    memset(&j, 0, sizeof j);
    j.x = x;
    j.t = t;
    j.shape = t->detail ? &detail_shape : &report_shape;
    j.last_beat = now_s();
    snprintf(j.limit_text, sizeof j.limit_text, "%d", x->segment_rows);
    const char *ext = t->xlsx ? "xlsx" : "csv.gz";
    log_set_run(t->run_id);
    log_info("export task %" PRId64 " (attempt %d): %s of run %s, period %s, version %s, %s",
             t->task_id, t->attempt, j.shape->table, t->run_text, t->period,
             t->version[0] ? t->version : "all", ext);
    double t0 = now_s();

    if (t->attempt > EXPORT_MAX_ATTEMPTS) {
        char why[EXPORT_ERR_MAX];
        snprintf(why, sizeof why,
                 "claimed %d times: each worker stopped answering before it finished "
                 "(see the consumers' logs)",
                 t->attempt - 1);
        log_error("export task %" PRId64 ": %s", t->task_id, why);
        record_failed(x, t, why);
        log_set_run(0);
        return OUTCOME_FAILED;
    }

    char dir[PATH_MAX], abs_dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
    export_writer w;
    memset(&w, 0, sizeof w);
    w.shape = j.shape;
    w.xlsx = t->xlsx;
    w.sheet_rows = x->sheet_rows;
    export_outcome out = OUTCOME_DONE;
    int in_tx = 0, opened = 0;

    snprintf(dir, sizeof dir, "%s/%s", x->env->cfg->file_store, t->period);
    if (make_dirs(dir) != 0 || !realpath(dir, abs_dir)) {
        snprintf(j.why, sizeof j.why, "creating the directory %.300s: %s", dir, strerror(errno));
        out = OUTCOME_FAILED;
    } else if (snprintf(final, sizeof final, "%s/%" PRId64 ".%s", abs_dir, t->task_id, ext) >=
                   (int)sizeof final ||
               snprintf(tmp, sizeof tmp, "%s/.%" PRId64 ".%s.%d.tmp", abs_dir, t->task_id, ext,
                        t->attempt) >= (int)sizeof tmp) {
        snprintf(j.why, sizeof j.why, "the path under %.300s is too long", abs_dir);
        out = OUTCOME_FAILED;
    } else {
        /* what earlier attempts of a worker that died left behind */
        for (int k = 1; k < t->attempt; k++) {
            char old[PATH_MAX];
            if (snprintf(old, sizeof old, "%s/.%" PRId64 ".%s.%d.tmp", abs_dir, t->task_id, ext,
                         k) < (int)sizeof old)
                unlink(old);
        }
    }

    db_error err;
    if (out == OUTCOME_DONE && !ensure_conn(x, &x->data, "data")) {
        snprintf(j.why, sizeof j.why, "no data connection");
        out = OUTCOME_RETRY;
    }
    if (out == OUTCOME_DONE) {
        static const char *const tables[] = {"report_after", "alloc_detail"};
        int byte_order = db_keys_in_byte_order(x->data, tables, 2);
        segment_sql(j.first_sql, sizeof j.first_sql, j.shape, t->version[0] != 0, 0, byte_order);
        segment_sql(j.next_sql, sizeof j.next_sql, j.shape, t->version[0] != 0, 1, byte_order);
        if (db_begin(x->data, "REPEATABLE READ READ ONLY", &err) < 0)
            out = db_outcome(&j, "starting the snapshot", &err);
        else
            in_tx = 1;
    }
    if (out == OUTCOME_DONE)
        out = check_run(&j);
    if (out == OUTCOME_DONE) {
        opened = 1;
        if (writer_open(&w, tmp, abs_dir) < 0) {
            snprintf(j.why, sizeof j.why, "%s", w.err);
            out = OUTCOME_FAILED;
        }
    }
    if (out == OUTCOME_DONE)
        out = copy_segments(&j, &w);
    if (in_tx)
        db_rollback(x->data, NULL); /* read only: nothing to keep */
    if (opened && writer_close(&w) < 0 && out == OUTCOME_DONE) {
        snprintf(j.why, sizeof j.why, "%s", w.err);
        out = OUTCOME_FAILED;
    }

    char sha[65] = "";
    if (out == OUTCOME_DONE && sha256_file(tmp, sha, j.why, sizeof j.why) < 0)
        out = OUTCOME_FAILED;
    if (out == OUTCOME_DONE && !ensure_conn(x, &x->ctl, "control")) {
        snprintf(j.why, sizeof j.why, "no control connection");
        out = OUTCOME_RETRY;
    }
    if (out == OUTCOME_DONE)
        out = record_done(x, t, tmp, final, abs_dir, j.rows, sha, j.why, sizeof j.why);
    if (out != OUTCOME_DONE && opened)
        unlink(tmp); /* gone already when it was moved */

    double secs = now_s() - t0;
    switch (out) {
    case OUTCOME_DONE:
        log_info("export task %" PRId64 " done: %" PRId64 " rows in %.1f s (%.0f rows/s), %s, "
                 "sha256 %s",
                 t->task_id, j.rows, secs, secs > 0 ? (double)j.rows / secs : 0.0, final, sha);
        break;
    case OUTCOME_FAILED:
        log_error("export task %" PRId64 " failed: %s", t->task_id, j.why);
        record_failed(x, t, j.why);
        break;
    case OUTCOME_RETRY:
        log_warn("export task %" PRId64 ": stopped after %" PRId64 " rows (%s); back to the "
                 "queue",
                 t->task_id, j.rows, j.why[0] ? j.why : "interrupted");
        record_requeued(x, t, stopping(x));
        break;
    case OUTCOME_LOST:
        log_warn("export task %" PRId64 ": another worker claimed it (this one's heartbeat "
                 "went stale); dropped",
                 t->task_id);
        break;
    }
    log_set_run(0);
    return out;
}

/* ---- the thread ---------------------------------------------------------------- */

static void *export_main(void *arg) {
    exporter *x = arg;
    log_info("export: worker started (%d formatting thread(s), segments of %d rows)", x->threads,
             x->segment_rows);
    while (!stopping(x)) {
        if (!ensure_conn(x, &x->ctl, "control")) {
            nap(x, backoff_next_ms(&x->bo));
            continue;
        }
        export_task t;
        db_error err;
        int got = claim_task(x, &t, &err);
        if (got < 0) {
            log_warn("export: claiming a task: %s", err.msg);
            nap(x, backoff_next_ms(&x->bo));
            continue;
        }
        backoff_reset(&x->bo);
        if (!got)
            nap(x, EXPORT_POLL_MS);
        else if (run_task(x, &t) == OUTCOME_RETRY)
            nap(x, EXPORT_POLL_MS); /* a server went away: do not claim it back at once */
    }
    db_close(x->ctl);
    db_close(x->data);
    x->ctl = x->data = NULL;
    log_info("export: worker stopped");
    return NULL;
}

int export_start(const consumer_env *env, int threads) {
    exporter *x = &the_exporter;
    memset(x, 0, sizeof *x);
    x->env = env;
    x->threads = threads > 0 ? threads : 1;
    x->segment_rows = (int)env_long("ALLOC_EXPORT_SEGMENT_ROWS", EXPORT_SEGMENT_ROWS, 1, 1000000);
    x->sheet_rows = env_long("ALLOC_EXPORT_SHEET_ROWS", EXPORT_SHEET_ROWS, 2, EXPORT_SHEET_ROWS);
    x->stale_seconds = (int)env_long("ALLOC_EXPORT_STALE_SECONDS", EXPORT_STALE_SECONDS, 1, 86400);
    x->pause_ms = (int)env_long("ALLOC_EXPORT_SEGMENT_PAUSE_MS", 0, 0, 60000);
    x->bo = (backoff)BACKOFF_INIT;
    int chunks = (x->segment_rows + EXPORT_CHUNK_ROWS - 1) / EXPORT_CHUNK_ROWS;
    x->formatters = pool_new(x->threads, (size_t)(chunks < 64 ? chunks : 64));
    if (!x->formatters) {
        log_error("export: cannot start %d formatting threads: %s", x->threads, strerror(errno));
        return -1;
    }
    int rc = pthread_create(&export_thread, NULL, export_main, x);
    if (rc != 0) {
        log_error("export: cannot start the export thread: %s", strerror(rc));
        pool_free(x->formatters);
        x->formatters = NULL;
        return -1;
    }
    export_started = 1;
    return 0;
}

void export_stop(void) {
    if (!export_started)
        return;
    pthread_join(export_thread, NULL);
    pool_free(the_exporter.formatters);
    the_exporter.formatters = NULL;
    export_started = 0;
}
