/* Waiting for a stage of a run: batch markers are the truth, the completing
 * consumer's control message wakes the wait early (DESIGN.md 5.6). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "counter.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "run_wait.h"

/* ---- waiting for the allocation stage --------------------------------------------- */

static int64_t markers_done(run_state *st, const char *stage, db_error *e) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, stage};
    int64_t n = 0;
    if (db_query_int64(st->db, "SELECT count(*) FROM batch_marker WHERE run_id = $1 AND stage = $2",
                       2, p, &n, e) < 0)
        return -1;
    return n;
}

static int run_status(run_state *st, char *status, size_t len, db_error *e) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    PGresult *r = db_query(st->db,
                           "UPDATE alloc_run SET heartbeat_at = now() WHERE run_id = $1 "
                           "RETURNING status",
                           1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    snprintf(status, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "missing");
    PQclear(r);
    return 0;
}

/* Redis lost the counter (a restart): put the marked batch ids back so the
 * consumers' counts, and so their completion notice, stay right. */
static void rebuild_counter(run_state *st, const char *stage, int64_t marked) {
    char err[256];
    int64_t count = counter_count(st->cache, st->run_id, stage, err, sizeof err);
    if (count < 0 || count >= marked)
        return;
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, stage};
    db_error e;
    PGresult *r =
        db_query(st->db, "SELECT batch_id FROM batch_marker WHERE run_id = $1 AND stage = $2", 2, p,
                 PGRES_TUPLES_OK, &e);
    if (!r)
        return;
    int n = PQntuples(r);
    const char **ids = calloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; ids && i < n; i++)
        ids[i] = PQgetvalue(r, i, 0);
    int64_t now = 0;
    if (ids &&
        counter_rebuild(st->cache, st->run_id, stage, ids, (size_t)n, &now, err, sizeof err) == 0)
        log_warn("%s counter of run %" PRId64 " had %" PRId64
                 " of %d marked batches: rebuilt from the markers",
                 stage, st->run_id, count, n);
    free(ids);
    PQclear(r);
}

/* Seconds between two progress lines (not on a terminal) and between two looks
 * at the consumers of the stage's queues. */
#define WAIT_REPORT_S 5

/* Writes into buf how many consumers the queues the stage's batches wait in
 * have: the allocation stage needs splitters (alloc.buckets) and allocators
 * (alloc.batches), the formula stage alloc.formulas. A queue nobody consumes
 * says so: "0 consumers on alloc.batches: start alloc-consumer". Empty when the
 * broker could not be asked (the wait goes on; mq_next reconnects). */
static void describe_consumers(run_state *st, const char *stage, char *buf, size_t len) {
    static const char *const allocate_queues[] = {MQ_QUEUE_BUCKETS, MQ_QUEUE_BATCHES, NULL};
    static const char *const formula_queues[] = {MQ_QUEUE_FORMULAS, NULL};
    const char *const *queues = !strcmp(stage, "formula") ? formula_queues : allocate_queues;
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; queues[i] && o < len; i++) {
        uint32_t consumers = 0;
        char err[256];
        if (mq_queue_info(st->mq, queues[i], NULL, &consumers, err, sizeof err) != MQ_OK) {
            log_debug("consumers of %s: %s", queues[i], err);
            buf[0] = '\0';
            return;
        }
        o += (size_t)snprintf(buf + o, len - o, "%s%u consumer%s on %s%s", i ? "; " : "", consumers,
                              consumers == 1 ? "" : "s", queues[i],
                              consumers ? "" : ": start alloc-consumer");
    }
}

/* Progress: one rewritten line on a terminal, timestamped lines every
 * WAIT_REPORT_S seconds otherwise, with what the stage's queues have for
 * consumers (`consumers`, may be ""). */
static void show_progress(run_state *st, const char *stage, int64_t done, int64_t expected,
                          int final, const char *consumers) {
    static time_t last_line;
    static char last_stage[16]; /* a new stage's first line is shown at once */
    time_t now = time(NULL);
    long elapsed = (long)(now - st->started);
    double frac = expected ? (double)done / (double)expected : 1.0;
    long eta = frac > 0 && frac < 1 ? (long)((double)elapsed * (1 - frac) / frac) : 0;
    char rate[64] = "";
    if (!strcmp(stage, "allocate") && elapsed > 0)
        snprintf(rate, sizeof rate, ", %.0f rows/s",
                 frac * (double)st->rows_pending / (double)elapsed);
    char waiting[320] = "";
    if (!final && consumers[0])
        snprintf(waiting, sizeof waiting, "; %s", consumers);
    if (isatty(STDOUT_FILENO)) {
        printf("\r%-9s batches %" PRId64 "/%" PRId64 "%s, elapsed %lds, ETA %lds%s\033[K%s", stage,
               done, expected, rate, elapsed, eta, waiting, final ? "\n" : "");
        fflush(stdout);
    } else if (final || now - last_line >= WAIT_REPORT_S || strcmp(stage, last_stage) != 0) {
        last_line = now;
        snprintf(last_stage, sizeof last_stage, "%s", stage);
        char when[32];
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s run %" PRId64 " %s: batches %" PRId64 "/%" PRId64 "%s, elapsed %lds%s\n", when,
               st->run_id, stage, done, expected, rate, elapsed, waiting);
        fflush(stdout);
    }
}

/* Waits until every batch of a stage has its marker. The control message of
 * the completing consumer wakes the wait early; the markers decide. Returns an
 * exit code (ALLOC_EXIT_TIMEOUT when --timeout passed or on SIGINT/SIGTERM:
 * the run goes on and stays resumable). */
int run_wait_stage(run_state *st, const char *stage, int64_t expected, wait_hook hook) {
    char err[512];
    db_error e;
    int64_t last_done = -1;
    time_t consumers_at = 0;
    char consumers[256] = "";
    for (;;) {
        int64_t done = markers_done(st, stage, &e);
        if (done < 0) {
            if (!db_ok(st->db) && run_reset_db(st->db, 60000, &e) == 0)
                continue;
            return cli_fail_db(&e, "count batch markers");
        }
        char status[32];
        if (run_status(st, status, sizeof status, &e) != 0) {
            /* PostgreSQL can go away here as well as in markers_done (a restart
             * while this UPDATE waits for a batch transaction's row lock) */
            if (!db_ok(st->db) && run_reset_db(st->db, 60000, &e) == 0)
                continue;
            return cli_fail_db(&e, "read run status");
        }
        if (strcmp(status, "running") != 0) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            cli_error("run %" PRId64 " is %s", st->run_id, status);
            return ALLOC_EXIT_RUNTIME;
        }
        /* progress on every poll (show_progress keeps to one line per
         * WAIT_REPORT_S when not on a terminal), so that a wait is never silent */
        if (done < expected && time(NULL) - consumers_at >= WAIT_REPORT_S) {
            describe_consumers(st, stage, consumers, sizeof consumers);
            consumers_at = time(NULL);
        }
        show_progress(st, stage, done, expected, done >= expected, consumers);
        if (done >= expected)
            return ALLOC_EXIT_OK;
        if (done == last_done)
            rebuild_counter(st, stage, done);
        if (hook)
            hook(st);
        last_done = done;
        if (run_interrupted) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            cli_error("interrupted; run %" PRId64 " goes on: "
                      "alloc-producer resume --run %" PRId64,
                      st->run_id, st->run_id);
            return ALLOC_EXIT_TIMEOUT;
        }
        if (st->timeout_s > 0 && time(NULL) - st->started >= st->timeout_s) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            cli_error("run %" PRId64 " timed out after %lds with %" PRId64 " of %" PRId64
                      " %s batches done; it stays resumable: alloc-producer resume --run %" PRId64,
                      st->run_id, st->timeout_s, done, expected, stage, st->run_id);
            return ALLOC_EXIT_TIMEOUT;
        }
        mq_delivery d;
        int rc = mq_next(st->mq, POLL_MS, &d, err, sizeof err);
        if (rc == MQ_OK) {
            msg_any m;
            char merr[256] = "";
            if (msg_decode(d.body, d.len, &m, merr, sizeof merr) != 0 || m.type != MSG_STAGE_DONE ||
                m.stage_done.run_id != st->run_id)
                log_warn("ignoring a foreign message on the control queue: %s",
                         m.type == MSG_STAGE_DONE ? "another run" : merr);
            msg_any_free(&m);
            mq_ack(st->mq, d.tag, err, sizeof err);
            mq_delivery_free(&d);
        } else if (rc == MQ_ERR_CONN) {
            log_warn("broker connection lost while waiting: %s; reconnecting", err);
            if (mq_reconnect(st->mq, 0, err, sizeof err) != MQ_OK)
                log_warn("reconnect failed: %s", err);
        }
    }
}
