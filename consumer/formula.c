/* The formula stage in a worker thread (DESIGN.md 5.5): every vector of a
 * formula batch gets every formula item, evaluated in dependency order, then the
 * audit rules; formula rows of report_after, audit findings and the batch marker
 * commit in one transaction, then the completion counter is bumped once.
 *
 * Compiled formulas come from Redis only (never from PostgreSQL): a consumer
 * loads a key once and keeps it in memory; the key holds the ruleset and its
 * stamp, so a changed rule is a new key. A missing key (Redis restarted) is
 * waited for, up to FX_MISSING_WAIT_S, while the producer re-caches it; only
 * then is the batch put back. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "consumer.h"
#include "counter.h"
#include "fx.h"
#include "log.h"
#include "msg.h"

#define FX_CACHE_MAX 4
/* How long a batch waits for missing compiled formulas before it is requeued.
 * The producer puts them back within a poll (about a second); an immediate
 * requeue would spend the queue's delivery limit in milliseconds and get the
 * batch dead-lettered, leaving the run unable to finish. */
#define FX_MISSING_WAIT_S 30

/* A compiled ruleset with its audit rules' severities and messages. */
typedef struct fx_entry {
    char *key;
    fx_ruleset *rs;
    json_t *audits; /* [[rule_code, severity, message], ...] in fx audit order */
    int refs;
    uint64_t used;
} fx_entry;

static pthread_mutex_t fx_lock = PTHREAD_MUTEX_INITIALIZER;
static fx_entry fx_cache[FX_CACHE_MAX];
static uint64_t fx_clock;

static void fx_entry_clear(fx_entry *e) {
    free(e->key);
    fx_ruleset_free(e->rs);
    json_decref(e->audits);
    memset(e, 0, sizeof *e);
}

static void fx_release(fx_entry *e) {
    pthread_mutex_lock(&fx_lock);
    if (--e->refs == 0 && !e->key)
        fx_entry_clear(e);
    pthread_mutex_unlock(&fx_lock);
}

/* The compiled ruleset under key: from memory, else from Redis. Returns a held
 * entry (fx_release it), or NULL with err (missing: *missing set). */
static fx_entry *fx_get(cache_conn *cache, const char *key, int *missing, char *err,
                        size_t errlen) {
    *missing = 0;
    pthread_mutex_lock(&fx_lock);
    for (int i = 0; i < FX_CACHE_MAX; i++) {
        if (fx_cache[i].key && !strcmp(fx_cache[i].key, key)) {
            fx_cache[i].refs++;
            fx_cache[i].used = ++fx_clock;
            pthread_mutex_unlock(&fx_lock);
            return &fx_cache[i];
        }
    }
    pthread_mutex_unlock(&fx_lock);

    size_t len = 0, alen = 0;
    char akey[600];
    snprintf(akey, sizeof akey, "%s:audits", key);
    char *bytes = cache_get(cache, key, &len);
    char *audits_text = bytes ? cache_get(cache, akey, &alen) : NULL;
    if (!bytes || !audits_text) {
        const char *why = cache_error(cache);
        *missing = why == NULL;
        snprintf(err, errlen, "compiled formulas %s: %s", key, why ? why : "not in Redis");
        free(bytes);
        free(audits_text);
        return NULL;
    }
    fx_ruleset *rs = fx_ruleset_deserialize(bytes, len, err, errlen);
    json_error_t jerr;
    json_t *audits = json_loadb(audits_text, alen, 0, &jerr);
    free(bytes);
    free(audits_text);
    if (!rs || !json_is_array(audits) || json_array_size(audits) != fx_ruleset_audit_count(rs)) {
        if (rs)
            snprintf(err, errlen, "compiled formulas %s: audit rules do not match", key);
        fx_ruleset_free(rs);
        json_decref(audits);
        return NULL;
    }
    pthread_mutex_lock(&fx_lock);
    int slot = -1;
    for (int i = 0; i < FX_CACHE_MAX; i++) {
        if (fx_cache[i].key && !strcmp(fx_cache[i].key, key)) { /* another thread was faster */
            fx_cache[i].refs++;
            pthread_mutex_unlock(&fx_lock);
            fx_ruleset_free(rs);
            json_decref(audits);
            return &fx_cache[i];
        }
        if (fx_cache[i].refs == 0 &&
            (slot < 0 || !fx_cache[i].key ||
             (fx_cache[slot].key && fx_cache[i].used < fx_cache[slot].used)))
            slot = i;
    }
    if (slot < 0) {
        pthread_mutex_unlock(&fx_lock);
        fx_ruleset_free(rs);
        json_decref(audits);
        snprintf(err, errlen, "compiled formulas %s: every cache slot is in use", key);
        return NULL;
    }
    fx_entry_clear(&fx_cache[slot]);
    fx_cache[slot].key = strdup(key);
    fx_cache[slot].rs = rs;
    fx_cache[slot].audits = audits;
    fx_cache[slot].refs = 1;
    fx_cache[slot].used = ++fx_clock;
    pthread_mutex_unlock(&fx_lock);
    log_info("compiled formulas %s loaded: %zu formulas, %zu audit rules", key,
             fx_ruleset_formula_count(rs), fx_ruleset_audit_count(rs));
    return &fx_cache[slot];
}

/* ---- evaluation ---------------------------------------------------------------- */

/* Evaluates every vector and COPYs the formula rows into report_after, then the
 * findings into audit_finding. Returns 0 or -1 with e. */
static int write_results(db_conn *db, const char *run_id, const msg_formula *f, const fx_entry *fx,
                         fx_scratch *scratch, size_t *nrows, size_t *nfindings, db_error *e) {
    const fx_ruleset *rs = fx->rs;
    size_t nslots = fx_ruleset_slot_count(rs), nform = fx_ruleset_formula_count(rs),
           naudit = fx_ruleset_audit_count(rs);
    fx_value *values = malloc((nslots + 1) * sizeof *values);
    fx_value *audits = malloc((naudit + 1) * sizeof *audits);
    uint8_t *failed = malloc((f->nvectors * (naudit + 1)) + 1);
    int rc = -1;
    if (!values || !audits || !failed) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        goto done;
    }
    *nrows = *nfindings = 0;
    if (nform > 0 && db_copy_in_begin(db,
                                      "COPY report_after (run_id, version, data_source, "
                                      "project_code, item_code, amount) FROM STDIN",
                                      e) != 0)
        goto done;
    for (size_t v = 0; v < f->nvectors; v++) {
        const msg_vector *vec = &f->vectors[v];
        for (size_t i = 0; i < nslots; i++)
            values[i] = fx_number(0);
        for (size_t i = 0; i < vec->nitems; i++) {
            long slot = fx_ruleset_slot(rs, vec->items[i].item_code);
            if (slot >= 0 && !fx_ruleset_slot_is_formula(rs, (size_t)slot))
                values[slot] = fx_from_cents(vec->items[i].cents);
        }
        if (fx_ruleset_eval(rs, values, audits, scratch) != 0) {
            snprintf(e->msg, sizeof e->msg, "evaluation failed (out of memory)");
            if (nform > 0)
                db_copy_in_abort(db, "evaluation failed");
            goto done;
        }
        for (size_t i = 0; i < nform; i++) {
            size_t slot = fx_ruleset_order(rs, i);
            int64_t cents;
            db_copy_field_text(db, run_id);
            db_copy_field_text(db, vec->version);
            db_copy_field_text(db, vec->data_source);
            db_copy_field_text(db, vec->project_code);
            db_copy_field_text(db, fx_ruleset_slot_code(rs, slot));
            /* NULL stays NULL; a value beyond numeric(18,2) is stored as NULL too */
            if (fx_store_cents(values[slot], &cents) == FX_STORE_OK)
                db_copy_field_cents(db, cents);
            else
                db_copy_field_null(db);
            if (db_copy_row_end(db, e) != 0) {
                db_copy_in_abort(db, "row failed");
                goto done;
            }
            (*nrows)++;
        }
        for (size_t a = 0; a < naudit; a++)
            failed[v * naudit + a] = !fx_value_true(audits[a]);
    }
    if (nform > 0 && db_copy_in_end(db, e) < 0)
        goto done;

    int open = 0;
    for (size_t v = 0; v < f->nvectors; v++) {
        for (size_t a = 0; a < naudit; a++) {
            if (!failed[v * naudit + a])
                continue;
            if (!open) {
                if (db_copy_in_begin(
                        db,
                        "COPY audit_finding (run_id, version, data_source, project_code, "
                        "rule_code, severity, message) FROM STDIN",
                        e) != 0)
                    goto done;
                open = 1;
            }
            json_t *rule = json_array_get(fx->audits, a);
            db_copy_field_text(db, run_id);
            db_copy_field_text(db, f->vectors[v].version);
            db_copy_field_text(db, f->vectors[v].data_source);
            db_copy_field_text(db, f->vectors[v].project_code);
            db_copy_field_text(db, fx_ruleset_audit_code(fx->rs, a));
            db_copy_field_text(db, json_string_value(json_array_get(rule, 1)));
            db_copy_field_text(db, json_string_value(json_array_get(rule, 2)));
            if (db_copy_row_end(db, e) != 0) {
                db_copy_in_abort(db, "row failed");
                goto done;
            }
            (*nfindings)++;
        }
    }
    if (open && db_copy_in_end(db, e) < 0)
        goto done;
    rc = 0;
done:
    free(values);
    free(audits);
    free(failed);
    return rc;
}

typedef enum { F_OK = 0, F_DUPLICATE, F_DROPPED, F_RETRY, F_FAILED } f_result;

static f_result write_batch(const consumer_env *env, db_conn *db, const msg_formula *f,
                            const fx_entry *fx, fx_scratch *scratch, size_t *nrows,
                            size_t *nfindings, char *err, size_t errlen) {
    db_error e;
    char id[32], nv[32];
    snprintf(id, sizeof id, "%" PRId64, f->run_id);
    snprintf(nv, sizeof nv, "%zu", f->nvectors);
    if (db_begin(db, NULL, &e) != 0)
        goto db_failed;
    const char *p[] = {id};
    PGresult *r = db_query(db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR SHARE", 1, p,
                           PGRES_TUPLES_OK, &e);
    if (!r)
        goto db_failed;
    int running = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "running");
    if (!running)
        snprintf(err, errlen, "run %s is %s: formula batch dropped", id,
                 PQntuples(r) ? PQgetvalue(r, 0, 0) : "unknown");
    PQclear(r);
    if (!running) {
        db_rollback(db, NULL);
        return F_DROPPED;
    }
    const char *mp[] = {id, f->batch_id, env->name, nv};
    int64_t added =
        db_exec_params(db,
                       "INSERT INTO batch_marker (run_id, stage, batch_id, consumer, rows) "
                       "VALUES ($1, 'formula', $2, $3, $4) ON CONFLICT DO NOTHING",
                       4, mp, &e);
    if (added < 0)
        goto db_failed;
    if (added == 0) {
        db_rollback(db, NULL);
        return F_DUPLICATE;
    }
    if (write_results(db, id, f, fx, scratch, nrows, nfindings, &e) != 0)
        goto db_failed;
    if (db_commit(db, &e) != 0)
        goto db_failed;
    return F_OK;
db_failed:
    snprintf(err, errlen, "%s", e.msg);
    db_rollback(db, NULL);
    return db_error_retryable(&e) || !db_ok(db) ? F_RETRY : F_FAILED;
}

void formula_job(const consumer_env *env, job *j) {
    j->stage = MSG_STAGE_FORMULA;
    msg_any m;
    char err[512] = "";
    if (msg_decode(j->delivery.body, j->delivery.len, &m, err, sizeof err) != 0 ||
        m.type != MSG_FORMULA) {
        j->outcome = JOB_DEAD;
        if (err[0])
            snprintf(j->reason, sizeof j->reason, "malformed formula message: %s", err);
        else
            snprintf(j->reason, sizeof j->reason, "expected a formula message on %s, got %s",
                     j->delivery.queue, msg_type_name(m.type));
        log_error("%s", j->reason);
        msg_any_free(&m);
        return;
    }
    const msg_formula *f = &m.formula;
    j->run_id = f->run_id;
    log_set_run(f->run_id);
    log_set_batch(f->batch_id);
    fx_scratch *scratch = fx_scratch_new();
    fx_entry *fx = NULL;
    backoff bo = BACKOFF_INIT;
    time_t waiting_since = time(NULL);
    for (;;) {
        worker_conns *c = worker_connect(env, err, sizeof err);
        if (c && !fx) {
            int missing;
            fx = fx_get(c->cache, f->fx_key, &missing, err, sizeof err);
            if (!fx && missing && time(NULL) - waiting_since >= FX_MISSING_WAIT_S) {
                /* the producer puts it back while it waits (it may be down:
                 * `resume` republishes unmarked batches); try again later */
                j->outcome = JOB_REQUEUE;
                snprintf(j->reason, sizeof j->reason, "%s", err);
                log_warn("formula batch %s: %s; requeued", f->batch_id, err);
                break;
            }
        }
        if (c && fx) {
            size_t nrows = 0, nfindings = 0;
            f_result w =
                write_batch(env, c->db, f, fx, scratch, &nrows, &nfindings, err, sizeof err);
            if (w == F_DROPPED) {
                log_info("%s", err);
                j->outcome = JOB_ACK;
                break;
            }
            if (w == F_FAILED) {
                j->outcome = JOB_REQUEUE;
                snprintf(j->reason, sizeof j->reason, "write formula batch %s: %s", f->batch_id,
                         err);
                log_error("%s", j->reason);
                break;
            }
            if (w == F_OK || w == F_DUPLICATE) {
                counter_result cr;
                if (counter_bump(c->cache, f->run_id, "formula", f->batch_id, f->expected, &cr, err,
                                 sizeof err) == 0) {
                    j->notify = cr.completer;
                    j->batch_count = cr.count;
                    j->outcome = JOB_ACK;
                    if (w == F_OK)
                        log_info("formula batch %s: %zu vectors, %zu formula rows, %zu findings",
                                 f->batch_id, f->nvectors, nrows, nfindings);
                    else
                        log_info("formula batch %s was done before: not written again",
                                 f->batch_id);
                    break;
                }
            }
        }
        if (*env->stop) {
            j->outcome = JOB_REQUEUE;
            snprintf(j->reason, sizeof j->reason, "shutting down: %s", err);
            break;
        }
        log_warn("formula batch %s: %s; retrying", f->batch_id, err);
        backoff_sleep(&bo);
    }
    if (fx)
        fx_release(fx);
    fx_scratch_free(scratch);
    msg_any_free(&m);
    log_set_batch(NULL);
    log_set_run(0);
}
