/* The export worker (DESIGN.md 5.7), the task's state machine: one thread per
 * consumer claims export tasks (export_sql.c), reads the run's rows in key order in segments by
 * keyset pagination inside one read-only snapshot, formats (and, for csv.gz, compresses) each
 * segment's rows in a thread pool in fixed-size chunks, writes the chunks in
 * order (export_write.c), and records the file's path, row count and SHA-256 on the task.
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
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "db.h"
#include "export_internal.h"
#include "export_sql.h"
#include "export_write.h"
#include "log.h"
#include "pool.h"

#define EXPORT_SEGMENT_ROWS 50000
#define EXPORT_CHUNK_ROWS 5000 /* fixed, so the file does not depend on the thread count */
#define EXPORT_POLL_MS 1000
#define EXPORT_HEARTBEAT_MS 5000
#define EXPORT_STALE_SECONDS 120
#define EXPORT_MAX_ATTEMPTS 5
#define EXPORT_SHEET_ROWS 1048576 /* Excel's row limit, header included */

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
    char why[EXPORT_ERR_MAX]; /* the failure, for EXPORT_OUTCOME_FAILED */
} export_job;

/* Maps a failed database call to an outcome: a lost connection is retried,
 * anything else fails the task with what and the message. */
static export_outcome db_outcome(export_job *j, const char *what, const db_error *err) {
    snprintf(j->why, sizeof j->why, "%s: %.400s", what, err->msg);
    return db_error_retryable(err) ? EXPORT_OUTCOME_RETRY : EXPORT_OUTCOME_FAILED;
}

/* Reads one segment: the first when last is NULL, else the rows after row
 * `last_row` of last. Returns the result (caller PQclears) or NULL with err. */
static PGresult *fetch_segment(export_job *j, const PGresult *last, int last_row, db_error *err) {
    return export_sql_fetch_segment(j->x->data, last ? j->next_sql : j->first_sql, j->t,
                                    j->limit_text, j->shape, last, last_row, err);
}

/* Checks, in the export's snapshot, that the task's run can be exported.
 * Returns EXPORT_OUTCOME_DONE when it can, else the outcome with j->why. */
static export_outcome check_run(export_job *j) {
    db_error err;
    int ok = export_sql_check_run(j->x->data, j->t, j->shape, j->why, sizeof j->why, &err);
    if (ok < 0)
        return db_outcome(j, "reading the run", &err);
    return ok ? EXPORT_OUTCOME_DONE : EXPORT_OUTCOME_FAILED;
}

/* Beats the heartbeat when it is due. Returns EXPORT_OUTCOME_DONE to go on, else
 * the outcome. */
static export_outcome maybe_beat(export_job *j) {
    double now = now_s();
    if ((now - j->last_beat) * 1000 < EXPORT_HEARTBEAT_MS)
        return EXPORT_OUTCOME_DONE;
    db_error err;
    if (!ensure_conn(j->x, &j->x->ctl, "control")) {
        snprintf(j->why, sizeof j->why, "control connection lost");
        return EXPORT_OUTCOME_RETRY;
    }
    int held = export_sql_heartbeat(j->x->ctl, j->t, j->rows, &err);
    if (held < 0)
        return db_outcome(j, "heartbeat", &err);
    if (!held)
        return EXPORT_OUTCOME_LOST;
    j->last_beat = now;
    return EXPORT_OUTCOME_DONE;
}

/* Reads every segment and writes it: formats segment k in the pool while
 * segment k+1 is fetched. Returns EXPORT_OUTCOME_DONE when all rows are written. */
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
            return EXPORT_OUTCOME_FAILED;
        }
        for (int i = 0; i < nchunks; i++) {
            export_chunk *ch = &chunks[i];
            ch->res = res;
            ch->shape = j->shape;
            ch->first = i * EXPORT_CHUNK_ROWS;
            ch->count = n - ch->first < EXPORT_CHUNK_ROWS ? n - ch->first : EXPORT_CHUNK_ROWS;
            ch->xlsx = w->xlsx;
            pool_submit(x->formatters, export_write_format_chunk, ch);
        }
        /* a full segment may have a successor: fetch it while the pool formats */
        PGresult *next = NULL;
        int fetch_failed = 0;
        if (n == x->segment_rows) {
            next = fetch_segment(j, res, n - 1, &err);
            fetch_failed = next == NULL;
        }
        pool_wait(x->formatters);
        int wrote = export_write_chunks(w, chunks, nchunks);
        export_write_chunks_free(chunks, nchunks);
        PQclear(res);
        if (wrote < 0) {
            PQclear(next);
            snprintf(j->why, sizeof j->why, "%s", w->err);
            return EXPORT_OUTCOME_FAILED;
        }
        if (fetch_failed)
            return db_outcome(j, "reading a segment", &err);
        j->rows += n;
        res = next;
        nap(x, x->pause_ms);
        export_outcome beat = maybe_beat(j);
        if (beat != EXPORT_OUTCOME_DONE || stopping(x)) {
            PQclear(res);
            if (beat == EXPORT_OUTCOME_DONE)
                snprintf(j->why, sizeof j->why, "the consumer is stopping");
            return beat == EXPORT_OUTCOME_DONE ? EXPORT_OUTCOME_RETRY : beat;
        }
    }
    return EXPORT_OUTCOME_DONE;
}

/* Writes the task's file and records the outcome, which it returns. */
static export_outcome run_task(exporter *x, const export_task *t) {
    export_job j;
    memset(&j, 0, sizeof j);
    j.x = x;
    j.t = t;
    j.shape = t->detail ? &export_detail_shape : &export_report_shape;
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
        export_sql_record_failed(ensure_conn(x, &x->ctl, "control"), t, why);
        log_set_run(0);
        return EXPORT_OUTCOME_FAILED;
    }

    char dir[PATH_MAX], abs_dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
    export_writer w;
    memset(&w, 0, sizeof w);
    w.shape = j.shape;
    w.xlsx = t->xlsx;
    w.sheet_rows = x->sheet_rows;
    export_outcome out = EXPORT_OUTCOME_DONE;
    int in_tx = 0, opened = 0;

    snprintf(dir, sizeof dir, "%s/%s", x->env->cfg->file_store, t->period);
    if (export_write_make_dirs(dir) != 0 || !realpath(dir, abs_dir)) {
        snprintf(j.why, sizeof j.why, "creating the directory %.300s: %s", dir, strerror(errno));
        out = EXPORT_OUTCOME_FAILED;
    } else if (snprintf(final, sizeof final, "%s/%" PRId64 ".%s", abs_dir, t->task_id, ext) >=
                   (int)sizeof final ||
               snprintf(tmp, sizeof tmp, "%s/.%" PRId64 ".%s.%d.tmp", abs_dir, t->task_id, ext,
                        t->attempt) >= (int)sizeof tmp) {
        snprintf(j.why, sizeof j.why, "the path under %.300s is too long", abs_dir);
        out = EXPORT_OUTCOME_FAILED;
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
    if (out == EXPORT_OUTCOME_DONE && !ensure_conn(x, &x->data, "data")) {
        snprintf(j.why, sizeof j.why, "no data connection");
        out = EXPORT_OUTCOME_RETRY;
    }
    if (out == EXPORT_OUTCOME_DONE) {
        static const char *const tables[] = {"report_after", "alloc_detail"};
        int byte_order = db_keys_in_byte_order(x->data, tables, 2);
        export_sql_segment(j.first_sql, sizeof j.first_sql, j.shape, t->version[0] != 0, 0,
                           byte_order);
        export_sql_segment(j.next_sql, sizeof j.next_sql, j.shape, t->version[0] != 0, 1,
                           byte_order);
        if (db_begin(x->data, "REPEATABLE READ READ ONLY", &err) < 0)
            out = db_outcome(&j, "starting the snapshot", &err);
        else
            in_tx = 1;
    }
    if (out == EXPORT_OUTCOME_DONE)
        out = check_run(&j);
    if (out == EXPORT_OUTCOME_DONE) {
        opened = 1;
        if (export_write_open(&w, tmp, abs_dir) < 0) {
            snprintf(j.why, sizeof j.why, "%s", w.err);
            out = EXPORT_OUTCOME_FAILED;
        }
    }
    if (out == EXPORT_OUTCOME_DONE)
        out = copy_segments(&j, &w);
    if (in_tx)
        db_rollback(x->data, NULL); /* read only: nothing to keep */
    if (opened && export_write_close(&w) < 0 && out == EXPORT_OUTCOME_DONE) {
        snprintf(j.why, sizeof j.why, "%s", w.err);
        out = EXPORT_OUTCOME_FAILED;
    }

    char sha[65] = "";
    if (out == EXPORT_OUTCOME_DONE && export_write_sha256(tmp, sha, j.why, sizeof j.why) < 0)
        out = EXPORT_OUTCOME_FAILED;
    if (out == EXPORT_OUTCOME_DONE && !ensure_conn(x, &x->ctl, "control")) {
        snprintf(j.why, sizeof j.why, "no control connection");
        out = EXPORT_OUTCOME_RETRY;
    }
    if (out == EXPORT_OUTCOME_DONE)
        out = export_sql_record_done(x->ctl, t, tmp, final, abs_dir, j.rows, sha, j.why,
                                     sizeof j.why);
    if (out != EXPORT_OUTCOME_DONE && opened)
        unlink(tmp); /* gone already when it was moved */

    double secs = now_s() - t0;
    switch (out) {
    case EXPORT_OUTCOME_DONE:
        log_info("export task %" PRId64 " done: %" PRId64 " rows in %.1f s (%.0f rows/s), %s, "
                 "sha256 %s",
                 t->task_id, j.rows, secs, secs > 0 ? (double)j.rows / secs : 0.0, final, sha);
        break;
    case EXPORT_OUTCOME_FAILED:
        log_error("export task %" PRId64 " failed: %s", t->task_id, j.why);
        export_sql_record_failed(ensure_conn(x, &x->ctl, "control"), t, j.why);
        break;
    case EXPORT_OUTCOME_RETRY:
        log_warn("export task %" PRId64 ": stopped after %" PRId64 " rows (%s); back to the "
                 "queue",
                 t->task_id, j.rows, j.why[0] ? j.why : "interrupted");
        export_sql_record_requeued(ensure_conn(x, &x->ctl, "control"), t, stopping(x));
        break;
    case EXPORT_OUTCOME_LOST:
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
        int got = export_sql_claim(x->ctl, x->env->name, x->stale_seconds, &t, &err);
        if (got < 0) {
            log_warn("export: claiming a task: %s", err.msg);
            nap(x, backoff_next_ms(&x->bo));
            continue;
        }
        backoff_reset(&x->bo);
        if (!got)
            nap(x, EXPORT_POLL_MS);
        else if (run_task(x, &t) == EXPORT_OUTCOME_RETRY)
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
