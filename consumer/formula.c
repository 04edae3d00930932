/* The formula stage in a worker thread (DESIGN.md 5.4, 5.5): one unit of a run
 * (the projects of one data source in one range of project codes, run_unit)
 * is assembled in one transaction: its base rows (direct sums from
 * report_before plus the allocated partials), every formula item of each
 * vector evaluated in dependency order, then the audit rules; base and formula
 * rows go once, by COPY, into the run's own report_after table, with the
 * findings, the unit's per-item totals (for the producer's roll-ups) and the
 * batch marker. Then the completion counter is bumped once.
 *
 * Compiled formulas come from Redis only (never from PostgreSQL): a consumer
 * loads a key once and keeps it in memory; the key holds the ruleset and its
 * stamp, so a changed rule is a new key. A missing key (Redis restarted) is
 * waited for, up to FX_MISSING_WAIT_S, while the producer re-caches it; only
 * then is the batch put back. */
#include <errno.h>
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
#include "report_rows.h"
#include "reserved.h"

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

/* ---- one unit ---------------------------------------------------------------------- */

/* The base rows of a unit: direct sums (report_before without #POOL) plus the
 * allocated partials of the unit's projects, by (version, project), in cents.
 * $1 run, $2 data source, $3 / $4 the project range (NULL: open), compared in
 * the columns' own collation as the producer cut the units. */
#define UNIT_RANGE                                                                                 \
    " WHERE run_id = $1 AND data_source = $2 AND ($3::text IS NULL OR project_code >= $3) "        \
    "AND ($4::text IS NULL OR project_code < $4)"
static const char UNIT_BASE_SQL[] =
    "SELECT version, project_code, item_code, (amount * 100)::bigint "
    "FROM report_before" UNIT_RANGE " AND project_code <> '" RESERVED_POOL "' "
    "UNION ALL "
    "SELECT version, project_code, item_code, cents FROM alloc_partial_run_%s" UNIT_RANGE;

/* The vectors of a unit, summed in memory from its raw rows (the direct rows'
 * sums and the partials, in no order): per (version, project), the cents of
 * each base slot and whether any row contributed to it. Version and project
 * strings point into the query's result. */
typedef struct unit_vectors {
    size_t n, cap, nslots;
    const char **version, **project;
    int64_t *cents;         /* n x nslots */
    unsigned char *present; /* n x nslots */
    uint32_t *index;        /* open addressing: vector + 1, 0 = empty */
    size_t index_cap;
} unit_vectors;

static void unit_vectors_free(unit_vectors *u) {
    free(u->version);
    free(u->project);
    free(u->cents);
    free(u->present);
    free(u->index);
    memset(u, 0, sizeof *u);
}

static uint64_t vector_hash(const char *version, const char *project) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = version; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *c = project; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return h;
}

/* Places vector i in the index (which has room). */
static void vector_index_put(unit_vectors *u, size_t i) {
    size_t h = (size_t)vector_hash(u->version[i], u->project[i]) & (u->index_cap - 1);
    while (u->index[h])
        h = (h + 1) & (u->index_cap - 1);
    u->index[h] = (uint32_t)(i + 1);
}

/* The vector of (version, project), added (all slots absent) when new.
 * Returns its number, or -1 when out of memory. */
static long unit_vector(unit_vectors *u, const char *version, const char *project) {
    if (u->index_cap) {
        size_t h = (size_t)vector_hash(version, project) & (u->index_cap - 1);
        while (u->index[h]) {
            size_t i = u->index[h] - 1;
            if (!strcmp(u->project[i], project) && !strcmp(u->version[i], version))
                return (long)i;
            h = (h + 1) & (u->index_cap - 1);
        }
    }
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        const char **v = realloc(u->version, cap * sizeof *v);
        if (v)
            u->version = v;
        const char **p = realloc(u->project, cap * sizeof *p);
        if (p)
            u->project = p;
        int64_t *c = realloc(u->cents, cap * u->nslots * sizeof *c);
        if (c)
            u->cents = c;
        unsigned char *pr = realloc(u->present, cap * u->nslots);
        if (pr)
            u->present = pr;
        uint32_t *ix = calloc(cap * 2, sizeof *ix);
        if (!v || !p || !c || !pr || !ix) {
            free(ix);
            return -1;
        }
        free(u->index);
        u->index = ix;
        u->index_cap = cap * 2;
        u->cap = cap;
        for (size_t i = 0; i < u->n; i++)
            vector_index_put(u, i);
    }
    size_t i = u->n++;
    u->version[i] = version;
    u->project[i] = project;
    memset(u->cents + i * u->nslots, 0, u->nslots * sizeof *u->cents);
    memset(u->present + i * u->nslots, 0, u->nslots);
    vector_index_put(u, i);
    return (long)i;
}

/* Per version: the unit's totals per base item (slot), for the roll-ups. */
typedef struct unit_totals {
    char *version;
    int64_t *cents, *rows;
} unit_totals;

typedef struct unit_result {
    size_t vectors, rows;
    int64_t findings;
    double read_s; /* the base rows' query */
} unit_result;

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Writes the unit's rows (base, formula), its findings and totals, inside the
 * open transaction. Returns 0 or -1 with e. */
static int write_unit(db_conn *db, const char *run_id, const msg_assemble *a,
                      const char *const range[2], const fx_entry *fx, fx_scratch *scratch,
                      unit_result *out, db_error *e) {
    const fx_ruleset *rs = fx->rs;
    size_t nslots = fx_ruleset_slot_count(rs), naudit = fx_ruleset_audit_count(rs);
    const char *p[] = {run_id, a->data_source, range[0], range[1]};
    char sql[sizeof UNIT_BASE_SQL + 32];
    snprintf(sql, sizeof sql, UNIT_BASE_SQL, run_id);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PGresult *base = db_query(db, sql, 4, p, PGRES_TUPLES_OK, e);
    if (!base)
        return -1;
    out->read_s = seconds_since(&t0);
    fx_value *values = malloc((nslots + 1) * sizeof *values);
    fx_value *avals = malloc((naudit + 1) * sizeof *avals);
    unsigned char *failed = malloc(naudit + 1);
    report_findings *found = report_findings_new();
    unit_totals *tot = NULL;
    size_t ntot = 0;
    unit_vectors uv;
    memset(&uv, 0, sizeof uv);
    uv.nslots = nslots;
    int rc = -1, copying = 0;
    char table[64], copy[256];
    if (!values || !avals || !failed || !found) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        goto done;
    }
    snprintf(table, sizeof table, "report_after_run_%s", run_id);
    snprintf(copy, sizeof copy, REPORT_ROWS_COPY_SQL, table);
    int n = PQntuples(base);
    if (n > 0) {
        if (db_copy_in_begin(db, copy, e) != 0)
            goto done;
        copying = 1;
    }
    /* sum the raw rows into their vectors */
    for (int i = 0; i < n; i++) {
        const char *item = PQgetvalue(base, i, 2);
        long slot = fx_ruleset_slot(rs, item);
        if (slot < 0 || fx_ruleset_slot_is_formula(rs, (size_t)slot)) {
            snprintf(e->msg, sizeof e->msg, "%s/%s/%s: item %s is not a base item of %s",
                     PQgetvalue(base, i, 0), a->data_source, PQgetvalue(base, i, 1), item,
                     a->fx_key);
            goto done;
        }
        char *end;
        errno = 0;
        long long cents = strtoll(PQgetvalue(base, i, 3), &end, 10);
        long k = unit_vector(&uv, PQgetvalue(base, i, 0), PQgetvalue(base, i, 1));
        if (k < 0) {
            snprintf(e->msg, sizeof e->msg, "out of memory");
            goto done;
        }
        int64_t *sum = &uv.cents[(size_t)k * nslots + (size_t)slot];
        if (errno || *end != '\0' || __builtin_add_overflow(*sum, (int64_t)cents, sum)) {
            snprintf(e->msg, sizeof e->msg, "%s/%s/%s item %s: the sum overflows",
                     PQgetvalue(base, i, 0), a->data_source, PQgetvalue(base, i, 1), item);
            goto done;
        }
        uv.present[(size_t)k * nslots + (size_t)slot] = 1;
    }
    for (size_t k = 0; k < uv.n; k++) {
        report_vector v = {run_id, uv.version[k], a->data_source, uv.project[k]};
        unit_totals *t = NULL;
        for (size_t x = 0; x < ntot && !t; x++)
            if (!strcmp(tot[x].version, v.version))
                t = &tot[x];
        if (!t) {
            unit_totals *grown = realloc(tot, (ntot + 1) * sizeof *tot);
            if (!grown) {
                snprintf(e->msg, sizeof e->msg, "out of memory");
                goto done;
            }
            tot = grown;
            t = &tot[ntot];
            t->version = strdup(v.version);
            t->cents = calloc(nslots + 1, sizeof *t->cents);
            t->rows = calloc(nslots + 1, sizeof *t->rows);
            ntot++;
            if (!t->version || !t->cents || !t->rows) {
                snprintf(e->msg, sizeof e->msg, "out of memory");
                goto done;
            }
        }
        for (size_t slot = 0; slot < nslots; slot++)
            values[slot] = fx_number(0);
        for (size_t slot = 0; slot < nslots; slot++) {
            if (!uv.present[k * nslots + slot])
                continue;
            int64_t cents = uv.cents[k * nslots + slot];
            const char *item = fx_ruleset_slot_code(rs, slot);
            if (cents > MSG_MAX_CENTS || cents < -MSG_MAX_CENTS) {
                snprintf(e->msg, sizeof e->msg,
                         "%s/%s/%s item %s: %" PRId64 " cents is beyond numeric(18,2)", v.version,
                         v.data_source, v.project_code, item, cents);
                goto done;
            }
            values[slot] = fx_from_cents(cents);
            if (__builtin_add_overflow(t->cents[slot], cents, &t->cents[slot])) {
                snprintf(e->msg, sizeof e->msg, "the total of item %s overflows", item);
                goto done;
            }
            t->rows[slot]++;
            if (report_rows_base(db, &v, item, cents, e) != 0)
                goto done;
            out->rows++;
        }
        int nf = report_rows_formulas(db, &v, rs, values, avals, scratch, failed, e);
        if (nf < 0)
            goto done;
        out->rows += (size_t)nf;
        if (report_findings_add(found, &v, failed, naudit) != 0) {
            snprintf(e->msg, sizeof e->msg, "out of memory");
            goto done;
        }
        out->vectors++;
    }
    if (copying) {
        copying = 0;
        if (db_copy_in_end(db, e) < 0)
            goto done;
    }
    out->findings = report_findings_copy(db, run_id, found, rs, fx->audits, e);
    if (out->findings < 0)
        goto done;
    if (ntot > 0) {
        char unit[32];
        snprintf(unit, sizeof unit, "%" PRId64, a->unit_id);
        if (db_copy_in_begin(db,
                             "COPY run_unit_total (run_id, unit_id, version, data_source, "
                             "item_code, cents, rows) FROM STDIN",
                             e) != 0)
            goto done;
        for (size_t k = 0; k < ntot; k++)
            for (size_t slot = 0; slot < nslots; slot++) {
                if (tot[k].rows[slot] == 0)
                    continue;
                db_copy_field_text(db, run_id);
                db_copy_field_text(db, unit);
                db_copy_field_text(db, tot[k].version);
                db_copy_field_text(db, a->data_source);
                db_copy_field_text(db, fx_ruleset_slot_code(rs, slot));
                db_copy_field_int64(db, tot[k].cents[slot]);
                db_copy_field_int64(db, tot[k].rows[slot]);
                if (db_copy_row_end(db, e) != 0) {
                    db_copy_in_abort(db, "row failed");
                    goto done;
                }
            }
        if (db_copy_in_end(db, e) < 0)
            goto done;
    }
    rc = 0;
done:
    if (copying)
        db_copy_in_abort(db, "unit failed");
    for (size_t k = 0; k < ntot; k++) {
        free(tot[k].version);
        free(tot[k].cents);
        free(tot[k].rows);
    }
    free(tot);
    unit_vectors_free(&uv);
    report_findings_free(found);
    free(values);
    free(avals);
    free(failed);
    PQclear(base);
    return rc;
}

typedef enum { F_OK = 0, F_DUPLICATE, F_DROPPED, F_RETRY, F_FAILED } f_result;

/* The unit's transaction: run check, marker, rows. */
static f_result write_batch(const consumer_env *env, db_conn *db, const msg_assemble *a,
                            const fx_entry *fx, fx_scratch *scratch, unit_result *out, char *err,
                            size_t errlen) {
    db_error e;
    char id[32], unit[32];
    snprintf(id, sizeof id, "%" PRId64, a->run_id);
    snprintf(unit, sizeof unit, "%" PRId64, a->unit_id);
    if (db_begin(db, NULL, &e) != 0)
        goto db_failed;
    const char *p[] = {id};
    PGresult *r = db_query(db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR SHARE", 1, p,
                           PGRES_TUPLES_OK, &e);
    if (!r)
        goto db_failed;
    int running = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "running");
    if (!running)
        snprintf(err, errlen, "run %s is %s: formula batch %s dropped", id,
                 PQntuples(r) ? PQgetvalue(r, 0, 0) : "unknown", a->batch_id);
    PQclear(r);
    if (!running) {
        db_rollback(db, NULL);
        return F_DROPPED;
    }
    const char *up[] = {id, unit, a->data_source};
    r = db_query(db,
                 "SELECT project_lo, project_hi FROM run_unit "
                 "WHERE run_id = $1 AND unit_id = $2 AND data_source = $3",
                 3, up, PGRES_TUPLES_OK, &e);
    if (!r)
        goto db_failed;
    if (PQntuples(r) != 1) {
        PQclear(r);
        db_rollback(db, NULL);
        snprintf(err, errlen, "run %s has no unit %s of data source %s", id, unit, a->data_source);
        return F_FAILED;
    }
    char lo[512], hi[512];
    snprintf(lo, sizeof lo, "%s", PQgetvalue(r, 0, 0));
    snprintf(hi, sizeof hi, "%s", PQgetvalue(r, 0, 1));
    const char *range[2] = {PQgetisnull(r, 0, 0) ? NULL : lo, PQgetisnull(r, 0, 1) ? NULL : hi};
    PQclear(r);
    const char *mp[] = {id, a->batch_id, env->name};
    int64_t added =
        db_exec_params(db,
                       "INSERT INTO batch_marker (run_id, stage, batch_id, consumer, rows) "
                       "VALUES ($1, 'formula', $2, $3, 0) ON CONFLICT DO NOTHING",
                       3, mp, &e);
    if (added < 0)
        goto db_failed;
    if (added == 0) {
        db_rollback(db, NULL);
        return F_DUPLICATE;
    }
    if (write_unit(db, id, a, range, fx, scratch, out, &e) != 0)
        goto db_failed;
    char nv[32];
    snprintf(nv, sizeof nv, "%zu", out->vectors);
    const char *rp[] = {id, a->batch_id, nv};
    if (db_exec_params(db,
                       "UPDATE batch_marker SET rows = $3 "
                       "WHERE run_id = $1 AND stage = 'formula' AND batch_id = $2",
                       3, rp, &e) < 0)
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
        m.type != MSG_ASSEMBLE) {
        j->outcome = JOB_DEAD;
        if (err[0])
            snprintf(j->reason, sizeof j->reason, "malformed formula message: %s", err);
        else if (m.type == MSG_FORMULA)
            snprintf(j->reason, sizeof j->reason,
                     "a formula message of vectors (from an older producer) on %s: this consumer "
                     "assembles units; resume the run with this build's producer",
                     j->delivery.queue);
        else
            snprintf(j->reason, sizeof j->reason, "expected an assemble message on %s, got %s",
                     j->delivery.queue, msg_type_name(m.type));
        log_error("%s", j->reason);
        msg_any_free(&m);
        return;
    }
    const msg_assemble *a = &m.assemble;
    j->run_id = a->run_id;
    log_set_run(a->run_id);
    log_set_batch(a->batch_id);
    fx_scratch *scratch = fx_scratch_new();
    fx_entry *fx = NULL;
    backoff bo = BACKOFF_INIT;
    time_t waiting_since = time(NULL);
    for (;;) {
        worker_conns *c = worker_connect(env, err, sizeof err);
        if (c && !fx) {
            int missing;
            fx = fx_get(c->cache, a->fx_key, &missing, err, sizeof err);
            if (!fx && missing && time(NULL) - waiting_since >= FX_MISSING_WAIT_S) {
                /* the producer puts it back while it waits (it may be down:
                 * `resume` republishes unmarked batches); try again later */
                j->outcome = JOB_REQUEUE;
                snprintf(j->reason, sizeof j->reason, "%s", err);
                log_warn("formula batch %s: %s; requeued", a->batch_id, err);
                break;
            }
        }
        if (c && fx) {
            unit_result res = {0, 0, 0, 0};
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            f_result w = write_batch(env, c->db, a, fx, scratch, &res, err, sizeof err);
            if (w == F_DROPPED) {
                log_info("%s", err);
                j->outcome = JOB_ACK;
                break;
            }
            if (w == F_FAILED) {
                j->outcome = JOB_REQUEUE;
                snprintf(j->reason, sizeof j->reason, "write formula batch %s: %s", a->batch_id,
                         err);
                log_error("%s", j->reason);
                break;
            }
            if (w == F_OK || w == F_DUPLICATE) {
                counter_result cr;
                if (counter_bump(c->cache, a->run_id, "formula", a->batch_id, a->expected, &cr, err,
                                 sizeof err) == 0) {
                    j->notify = cr.completer;
                    j->batch_count = cr.count;
                    j->outcome = JOB_ACK;
                    if (w == F_OK)
                        log_info("formula batch %s (%s): %zu vectors, %zu rows, %" PRId64
                                 " findings in %.2fs (base rows read in %.2fs)",
                                 a->batch_id, a->data_source, res.vectors, res.rows, res.findings,
                                 seconds_since(&t0), res.read_s);
                    else
                        log_info("formula batch %s was done before: not written again",
                                 a->batch_id);
                    break;
                }
            }
        }
        if (*env->stop) {
            j->outcome = JOB_REQUEUE;
            snprintf(j->reason, sizeof j->reason, "shutting down: %s", err);
            break;
        }
        log_warn("formula batch %s: %s; retrying", a->batch_id, err);
        backoff_sleep(&bo);
    }
    if (fx)
        fx_release(fx);
    fx_scratch_free(scratch);
    msg_any_free(&m);
    log_set_batch(NULL);
    log_set_run(0);
}
