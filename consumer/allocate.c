/* The allocate stage in a worker thread: one batch is allocated against the run's
 * public data (from Redis), its partial sums, unallocated counts, detail lines
 * and batch marker are written in one transaction, then the completion counter
 * is bumped exactly once for it (DESIGN.md 5.3, 5.6).
 *
 * Each worker thread has its own PostgreSQL and Redis connections (thread-local,
 * opened on first use). Parsed public data is shared between threads. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "batch.h"
#include "cache.h"
#include "consumer.h"
#include "counter.h"
#include "db.h"
#include "log.h"
#include "msg.h"
#include "pubdata.h"
#include "reserved.h"

#define PUBLIC_TTL_S (7 * 24 * 3600)
#define PUBDATA_CACHE_MAX 8

static _Thread_local worker_conns *conns;

#define thread_db (conns->db)
#define thread_cache (conns->cache)

/* ---- parsed public data, shared by the worker threads ------------------------- */

typedef struct pub_entry {
    char *key;
    pubdata *pd;
    int refs;
    uint64_t used;
} pub_entry;

static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static pub_entry pub_cache[PUBDATA_CACHE_MAX];
static uint64_t pub_clock;

static void pub_release(const pubdata *pd) {
    pthread_mutex_lock(&pub_lock);
    for (int i = 0; i < PUBDATA_CACHE_MAX; i++)
        if (pub_cache[i].pd == pd)
            pub_cache[i].refs--;
    pthread_mutex_unlock(&pub_lock);
}

static const pubdata *pub_lookup(const char *key) {
    const pubdata *pd = NULL;
    pthread_mutex_lock(&pub_lock);
    for (int i = 0; i < PUBDATA_CACHE_MAX && !pd; i++) {
        if (pub_cache[i].key && !strcmp(pub_cache[i].key, key)) {
            pub_cache[i].refs++;
            pub_cache[i].used = ++pub_clock;
            pd = pub_cache[i].pd;
        }
    }
    pthread_mutex_unlock(&pub_lock);
    return pd;
}

/* Keeps pd under key (or returns the entry another thread stored meanwhile and
 * frees pd); evicts the least recently used entry nobody holds. */
static const pubdata *pub_store(const char *key, pubdata *pd) {
    pthread_mutex_lock(&pub_lock);
    int slot = -1;
    for (int i = 0; i < PUBDATA_CACHE_MAX; i++) {
        if (pub_cache[i].key && !strcmp(pub_cache[i].key, key)) {
            pub_cache[i].refs++;
            const pubdata *have = pub_cache[i].pd;
            pthread_mutex_unlock(&pub_lock);
            pubdata_free(pd);
            return have;
        }
        if (pub_cache[i].refs == 0 &&
            (slot < 0 || !pub_cache[i].key ||
             (pub_cache[slot].key && pub_cache[i].used < pub_cache[slot].used)))
            slot = i;
    }
    if (slot < 0) { /* every entry in use: keep pd for this batch only */
        pthread_mutex_unlock(&pub_lock);
        return NULL;
    }
    free(pub_cache[slot].key);
    pubdata_free(pub_cache[slot].pd);
    pub_cache[slot].key = strdup(key);
    pub_cache[slot].pd = pd;
    pub_cache[slot].refs = 1;
    pub_cache[slot].used = ++pub_clock;
    pthread_mutex_unlock(&pub_lock);
    return pd;
}

/* The public data of a run: from the process cache, else Redis, else (a lost
 * Redis key) the copy the producer kept in run_public, which is then put back
 * into Redis. *owned is set when the result is not shared and must be freed. */
static const pubdata *pub_get(const msg_batch *b, pubdata **owned, char *err, size_t errlen) {
    *owned = NULL;
    const pubdata *pd = pub_lookup(b->public_key);
    if (pd)
        return pd;
    size_t len = 0;
    char *body = cache_get(thread_cache, b->public_key, &len);
    if (!body) {
        if (cache_error(thread_cache)) {
            snprintf(err, errlen, "read public data %s: %s", b->public_key,
                     cache_error(thread_cache));
            return NULL;
        }
        char id[32];
        snprintf(id, sizeof id, "%" PRId64, b->run_id);
        const char *p[] = {id};
        db_error e;
        PGresult *r = db_query(thread_db, "SELECT body FROM run_public WHERE run_id = $1", 1, p,
                               PGRES_TUPLES_OK, &e);
        if (!r || PQntuples(r) != 1) {
            snprintf(err, errlen,
                     "public data of run %s is neither in Redis nor in run_public%s%.300s", id,
                     r ? "" : ": ", r ? "" : e.msg);
            if (r)
                PQclear(r);
            return NULL;
        }
        len = (size_t)PQgetlength(r, 0, 0);
        body = malloc(len + 1);
        if (body)
            memcpy(body, PQgetvalue(r, 0, 0), len + 1);
        PQclear(r);
        if (!body) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        log_warn("public data %s was not in Redis: restored from run_public", b->public_key);
        cache_set(thread_cache, b->public_key, body, len, PUBLIC_TTL_S);
    }
    pubdata *parsed = pubdata_parse(body, len, err, errlen);
    free(body);
    if (!parsed)
        return NULL;
    pd = pub_store(b->public_key, parsed);
    if (!pd) {
        *owned = parsed;
        return parsed;
    }
    return pd;
}

/* ---- writing a batch ---------------------------------------------------------- */

typedef enum {
    WRITE_OK = 0,
    WRITE_DUPLICATE,
    WRITE_DROPPED,
    WRITE_RETRY,
    WRITE_FAILED
} write_result;

static const char *target_code(const pubdata *pd, uint32_t t) {
    return t == BATCH_UNALLOCATED ? RESERVED_UNALLOCATED : pubdata_project_code(pd, t);
}

static const char *target_source(const pubdata *pd, uint32_t t, const char *batch_source) {
    return t == BATCH_UNALLOCATED ? batch_source : pubdata_project_source(pd, t);
}

/* Partials in (target, item, version) order: one COPY row per (target, item)
 * then carries the cents of every version. */
static int partial_cmp(const void *a, const void *b) {
    const batch_partial *x = *(const batch_partial *const *)a,
                        *y = *(const batch_partial *const *)b;
    if (x->target != y->target)
        return x->target < y->target ? -1 : 1;
    int c = x->item_code == y->item_code ? 0 : strcmp(x->item_code, y->item_code);
    if (c)
        return c;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* The batch's partials into the run's own table (made by its snapshot), one
 * row per (target, item) with a column of cents per version. Returns 0, or -1
 * with e. */
static int copy_partials(const msg_batch *b, const pubdata *pd, const batch_result *res,
                         const char *id, db_error *e) {
    size_t nv = pubdata_version_count(pd), n = res->n_partials;
    const batch_partial **sorted = malloc((n + 1) * sizeof *sorted);
    if (!sorted) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &res->partials[i];
    qsort(sorted, n, sizeof *sorted, partial_cmp);
    char copy[320];
    int len = snprintf(copy, sizeof copy,
                       "COPY alloc_partial_run_%s (data_source, project_code, item_code", id);
    for (size_t v = 0; v < nv; v++)
        len += snprintf(copy + len, sizeof copy - (size_t)len, ", cents_%zu", v);
    snprintf(copy + len, sizeof copy - (size_t)len, ") FROM STDIN");
    int rc = -1;
    if (db_copy_in_begin(thread_db, copy, e) != 0)
        goto done;
    for (size_t i = 0; i < n;) {
        const batch_partial *p = sorted[i];
        db_copy_field_text(thread_db, target_source(pd, p->target, b->data_source));
        db_copy_field_text(thread_db, target_code(pd, p->target));
        db_copy_field_text(thread_db, p->item_code);
        size_t j = i;
        for (size_t v = 0; v < nv; v++) {
            if (j < n && sorted[j]->target == p->target && sorted[j]->version == v &&
                !strcmp(sorted[j]->item_code, p->item_code))
                db_copy_field_int64(thread_db, sorted[j++]->cents);
            else
                db_copy_field_null(thread_db);
        }
        if (j == i || db_copy_row_end(thread_db, e) != 0) {
            if (j == i)
                snprintf(e->msg, sizeof e->msg, "a partial of version %u beyond the run's %zu",
                         p->version, nv);
            db_copy_in_abort(thread_db, "row failed");
            goto done;
        }
        i = j;
    }
    rc = db_copy_in_end(thread_db, e) < 0 ? -1 : 0;
done:
    free(sorted);
    return rc;
}

static int copy_results(const msg_batch *b, const pubdata *pd, const batch_result *res,
                        db_error *e) {
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, b->run_id);
    if (res->n_partials && copy_partials(b, pd, res, id, e) != 0)
        return -1;
    if (res->n_unallocated) {
        if (db_copy_in_begin(thread_db,
                             "COPY alloc_unallocated (run_id, batch_id, version, data_source, "
                             "item_code, rows) FROM STDIN",
                             e) != 0)
            return -1;
        for (size_t i = 0; i < res->n_unallocated; i++) {
            const batch_unallocated *u = &res->unallocated[i];
            db_copy_field_text(thread_db, id);
            db_copy_field_text(thread_db, b->batch_id);
            db_copy_field_text(thread_db, pubdata_version_name(pd, u->version));
            db_copy_field_text(thread_db, b->data_source);
            db_copy_field_text(thread_db, u->item_code);
            db_copy_field_int64(thread_db, u->rows);
            if (db_copy_row_end(thread_db, e) != 0) {
                db_copy_in_abort(thread_db, "row failed");
                return -1;
            }
        }
        if (db_copy_in_end(thread_db, e) < 0)
            return -1;
    }
    if (res->n_details) {
        if (db_copy_in_begin(thread_db,
                             "COPY alloc_detail (run_id, version, entry_id, project_code, amount) "
                             "FROM STDIN",
                             e) != 0)
            return -1;
        for (size_t i = 0; i < res->n_details; i++) {
            const batch_detail *d = &res->details[i];
            db_copy_field_text(thread_db, id);
            db_copy_field_text(thread_db, pubdata_version_name(pd, d->version));
            db_copy_field_int64(thread_db, d->entry_id);
            db_copy_field_text(thread_db, target_code(pd, d->target));
            db_copy_field_cents(thread_db, d->cents);
            if (db_copy_row_end(thread_db, e) != 0) {
                db_copy_in_abort(thread_db, "row failed");
                return -1;
            }
        }
        if (db_copy_in_end(thread_db, e) < 0)
            return -1;
    }
    return 0;
}

/* One attempt at the batch transaction: the run must be running, the marker
 * must be new; results and marker commit together. */
static write_result write_batch(const consumer_env *env, const msg_batch *b, const pubdata *pd,
                                const batch_result *res, char *err, size_t errlen) {
    db_error e;
    char id[32], rows[32];
    snprintf(id, sizeof id, "%" PRId64, b->run_id);
    snprintf(rows, sizeof rows, "%zu", b->nrows);
    if (db_begin(thread_db, NULL, &e) != 0)
        goto db_failed;
    const char *p[] = {id};
    PGresult *r = db_query(thread_db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR SHARE", 1,
                           p, PGRES_TUPLES_OK, &e);
    if (!r)
        goto db_failed;
    int running = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "running");
    if (!running)
        snprintf(err, errlen, "run %s is %s: batch dropped", id,
                 PQntuples(r) ? PQgetvalue(r, 0, 0) : "unknown");
    PQclear(r);
    if (!running) {
        db_rollback(thread_db, NULL);
        return WRITE_DROPPED;
    }
    const char *mp[] = {id, b->batch_id, env->name, rows};
    int64_t added =
        db_exec_params(thread_db,
                       "INSERT INTO batch_marker (run_id, stage, batch_id, consumer, rows) "
                       "VALUES ($1, 'allocate', $2, $3, $4) ON CONFLICT DO NOTHING",
                       4, mp, &e);
    if (added < 0)
        goto db_failed;
    if (added == 0) {
        db_rollback(thread_db, NULL);
        return WRITE_DUPLICATE;
    }
    if (copy_results(b, pd, res, &e) != 0)
        goto db_failed;
    if (db_commit(thread_db, &e) != 0)
        goto db_failed;
    return WRITE_OK;

db_failed:
    snprintf(err, errlen, "%s", e.msg);
    db_rollback(thread_db, NULL);
    return db_error_retryable(&e) || !db_ok(thread_db) ? WRITE_RETRY : WRITE_FAILED;
}

static int ensure_connections(const consumer_env *env, char *err, size_t errlen) {
    conns = worker_connect(env, err, errlen);
    return conns ? 0 : -1;
}

/* Bumps the completion counter for a batch whose marker is committed. */
static int bump_counter(const msg_batch *b, job *j, char *err, size_t errlen) {
    counter_result cr;
    if (counter_bump(thread_cache, b->run_id, "allocate", b->batch_id, b->expected, &cr, err,
                     errlen) != 0)
        return -1;
    /* completer stays 1 for the completing batch id, so a notice lost with a
     * crash is sent again when that batch is redelivered */
    j->notify = cr.completer;
    j->batch_count = cr.count;
    return 0;
}

void allocate_job(const consumer_env *env, job *j) {
    j->stage = MSG_STAGE_ALLOCATE;
    msg_any m;
    char err[512] = "";
    if (msg_decode(j->delivery.body, j->delivery.len, &m, err, sizeof err) != 0) {
        j->outcome = JOB_DEAD;
        snprintf(j->reason, sizeof j->reason, "malformed batch message: %s", err);
        log_error("%s", j->reason);
        return;
    }
    if (m.type != MSG_BATCH) {
        j->outcome = JOB_DEAD;
        snprintf(j->reason, sizeof j->reason, "expected a batch message on %s, got %s",
                 j->delivery.queue, msg_type_name(m.type));
        log_error("%s", j->reason);
        msg_any_free(&m);
        return;
    }
    const msg_batch *b = &m.batch;
    j->run_id = b->run_id;
    log_set_run(b->run_id);
    log_set_batch(b->batch_id);

    backoff bo = BACKOFF_INIT;
    batch_result res;
    memset(&res, 0, sizeof res);
    int allocated = 0;
    pubdata *owned = NULL;
    const pubdata *pd = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (ensure_connections(env, err, sizeof err) == 0) {
            if (!pd)
                pd = pub_get(b, &owned, err, sizeof err);
            if (pd && !allocated) {
                if (batch_allocate(pd, b->data_source, b->rows, b->nrows, b->detail, &res, err,
                                   sizeof err) != 0) {
                    j->outcome = JOB_DEAD;
                    snprintf(j->reason, sizeof j->reason, "batch %s: %s", b->batch_id, err);
                    log_error("%s", j->reason);
                    break;
                }
                allocated = 1;
            }
            if (pd) {
                write_result w = write_batch(env, b, pd, &res, err, sizeof err);
                if (w == WRITE_DROPPED) {
                    log_info("%s", err);
                    j->outcome = JOB_ACK;
                    break;
                }
                if (w == WRITE_FAILED) {
                    /* not a lost connection: let the broker's delivery limit decide */
                    j->outcome = JOB_REQUEUE;
                    snprintf(j->reason, sizeof j->reason, "write batch %s: %s", b->batch_id, err);
                    log_error("%s", j->reason);
                    break;
                }
                if (w == WRITE_OK || w == WRITE_DUPLICATE) {
                    if (w == WRITE_DUPLICATE)
                        log_info("batch %s was done before: not written again", b->batch_id);
                    if (bump_counter(b, j, err, sizeof err) == 0) {
                        clock_gettime(CLOCK_MONOTONIC, &t1);
                        if (w == WRITE_OK)
                            log_info("batch %s: %zu rows, %" PRId64 " shares, %zu partials in "
                                     "%.0f ms",
                                     b->batch_id, b->nrows, res.shares, res.n_partials,
                                     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                                         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
                        j->outcome = JOB_ACK;
                        break;
                    }
                    /* the marker is committed: retrying finds it and only bumps */
                }
            }
        }
        if (*env->stop) {
            j->outcome = JOB_REQUEUE;
            snprintf(j->reason, sizeof j->reason, "shutting down: %s", err);
            break;
        }
        log_warn("batch %s: %s; retrying", b->batch_id, err);
        backoff_sleep(&bo);
    }
    batch_result_free(&res);
    if (owned)
        pubdata_free(owned);
    else if (pd)
        pub_release(pd);
    msg_any_free(&m);
    log_set_batch(NULL);
    log_set_run(0);
}
