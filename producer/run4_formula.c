/* The formula stage of a run (DESIGN.md 5.5): the compiled ruleset cached in
 * Redis, the vectors of report_after packed into formula batches. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "fx.h"
#include "log.h"
#include "msg.h"
#include "run_stages.h"
#include "run_state.h"
#include "run_wait.h"

/* ---- the formula stage (DESIGN.md 5.5) ---------------------------------------------- */

/* The compiled ruleset of the run, as its snapshot stored it. */
typedef struct run_formulas {
    fx_ruleset *rs;
    unsigned char *bytes;
    size_t len;
    char *audits;
} run_formulas;

static void run_formulas_free(run_formulas *f) {
    fx_ruleset_free(f->rs);
    free(f->bytes);
    free(f->audits);
    memset(f, 0, sizeof *f);
}

static int load_formulas(run_state *st, run_formulas *f) {
    memset(f, 0, sizeof *f);
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db,
                           "SELECT formulas, audits FROM run_public "
                           "WHERE run_id = $1 AND formulas IS NOT NULL",
                           1, p, PGRES_TUPLES_OK, &e);
    if (!r)
        return run_fail_db("read the run's formulas", &e);
    if (PQntuples(r) != 1) {
        PQclear(r);
        cli_error("run %s has no compiled formulas", id);
        return ALLOC_EXIT_RUNTIME;
    }
    /* the bytea arrives in its text form ('\x' hex): libpq turns it back into bytes */
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    f->bytes = malloc(len + 1);
    f->audits = strdup(PQgetvalue(r, 0, 1));
    ALLOC_ASSERT(raw && f->bytes && f->audits);
    memcpy(f->bytes, raw, len);
    f->len = len;
    PQfreemem(raw);
    PQclear(r);
    char err[256];
    f->rs = fx_ruleset_deserialize(f->bytes, f->len, err, sizeof err);
    if (!f->rs) {
        cli_error("the compiled formulas of run %s are damaged: %s", id, err);
        run_formulas_free(f);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

static char audits_key_buf[600];
static const char *audits_key(const run_state *st) {
    snprintf(audits_key_buf, sizeof audits_key_buf, "%s:audits", st->fx_key);
    return audits_key_buf;
}

static const run_formulas *cached_formulas; /* for the wait hook */

/* Puts the compiled formulas into Redis under their key (with the audit rules'
 * severities and messages beside them) unless they are there. */
static void cache_formulas(run_state *st) {
    if (!cached_formulas)
        return;
    redisReply *rep = cache_command(st->cache, "EXISTS %s %s", st->fx_key, audits_key(st));
    int present = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2;
    if (rep)
        freeReplyObject(rep);
    if (present)
        return;
    if (cache_set(st->cache, st->fx_key, cached_formulas->bytes, cached_formulas->len,
                  PUBLIC_TTL_S) != 0 ||
        cache_set(st->cache, audits_key(st), cached_formulas->audits,
                  strlen(cached_formulas->audits), PUBLIC_TTL_S) != 0)
        log_warn("cache formulas %s: %s", st->fx_key, cache_error(st->cache));
}

typedef struct vector_buf {
    msg_vector *v;
    size_t n, cap;
    msg_item_value *items; /* items of the vector being filled */
    size_t nitems, cap_items;
} vector_buf;

static void vector_buf_clear(vector_buf *b) {
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->v[i].version);
        free((char *)b->v[i].data_source);
        free((char *)b->v[i].project_code);
        for (size_t k = 0; k < b->v[i].nitems; k++)
            free((char *)b->v[i].items[k].item_code);
        free(b->v[i].items);
    }
    b->n = 0;
}

static int publish_formula_batch(run_state *st, int64_t k, vector_buf *b) {
    char batch_id[32];
    snprintf(batch_id, sizeof batch_id, "F%" PRId64, k);
    msg_formula m = {
        .run_id = st->run_id,
        .period = st->period,
        .ruleset = st->ruleset,
        .stamp = st->stamp,
        .batch_id = batch_id,
        .fx_key = st->fx_key,
        .expected = st->formula_expected,
        .vectors = b->v,
        .nvectors = b->n,
    };
    char err[512];
    size_t len;
    char *body = msg_encode_formula(&m, &len, err, sizeof err);
    if (!body) {
        cli_error("encode formula batch %s: %s", batch_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int rc =
        mq_publish(st->mq, MQ_EXCHANGE_WORK, MQ_KEY_FORMULA, body, len, NULL, 0, err, sizeof err);
    free(body);
    if (rc != MQ_OK) {
        cli_error("publish formula batch %s: %s", batch_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Streams the base and roll-up rows of report_after vector by vector, packs
 * FORMULA_VECTORS_PER_BATCH vectors per message and publishes the batches that
 * have no marker yet (all of them, except on resume). Memory: one batch. */
static int publish_formulas(run_state *st, const fx_ruleset *rs) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *done = db_query(st->db,
                              "SELECT substr(batch_id, 2)::bigint FROM batch_marker "
                              "WHERE run_id = $1 AND stage = 'formula'",
                              1, p, PGRES_TUPLES_OK, &e);
    if (!done)
        return run_fail_db("read formula markers", &e);
    int ndone = PQntuples(done);
    db_stream *s = db_stream_open(st->db,
                                  "SELECT version, data_source, project_code, item_code, "
                                  "(amount * 100)::bigint FROM report_after WHERE run_id = $1 "
                                  "ORDER BY version, data_source, project_code",
                                  1, p, &e);
    if (!s) {
        PQclear(done);
        return run_fail_db("stream report rows", &e);
    }
    vector_buf b;
    memset(&b, 0, sizeof b);
    int64_t k = 0, published = 0;
    int rc = ALLOC_EXIT_OK, more;
    while (rc == ALLOC_EXIT_OK) {
        more = db_stream_next(s, &e);
        if (more < 0) {
            rc = run_fail_db("stream report rows", &e);
            break;
        }
        int new_vector = more == 0 || b.n == 0;
        if (more && b.n > 0) {
            const msg_vector *last = &b.v[b.n - 1];
            new_vector = strcmp(last->version, db_stream_get(s, 0)) ||
                         strcmp(last->data_source, db_stream_get(s, 1)) ||
                         strcmp(last->project_code, db_stream_get(s, 2));
        }
        /* a batch is full when the next vector starts (or the rows end) */
        if (new_vector && (b.n == FORMULA_VECTORS_PER_BATCH || (more == 0 && b.n > 0))) {
            int is_done = 0;
            for (int i = 0; i < ndone && !is_done; i++)
                is_done = strtoll(PQgetvalue(done, i, 0), NULL, 10) == k;
            if (!is_done) {
                rc = publish_formula_batch(st, k, &b);
                published++;
            }
            vector_buf_clear(&b);
            k++;
        }
        if (more == 0 || rc != ALLOC_EXIT_OK)
            break;
        long slot = fx_ruleset_slot(rs, db_stream_get(s, 3));
        if (slot >= 0 && fx_ruleset_slot_is_formula(rs, (size_t)slot))
            continue; /* a resumed run's */
        if (new_vector) {
            if (b.n == b.cap) {
                b.cap = b.cap ? b.cap * 2 : 64;
                b.v = realloc(b.v, b.cap * sizeof *b.v);
                ALLOC_ASSERT(b.v != NULL);
            }
            msg_vector *v = &b.v[b.n++];
            memset(v, 0, sizeof *v);
            v->version = strdup(db_stream_get(s, 0));
            v->data_source = strdup(db_stream_get(s, 1));
            v->project_code = strdup(db_stream_get(s, 2));
            b.cap_items = 0;
        }
        msg_vector *v = &b.v[b.n - 1];
        if (v->nitems == b.cap_items) {
            b.cap_items = b.cap_items ? b.cap_items * 2 : 64;
            v->items = realloc(v->items, b.cap_items * sizeof *v->items);
            ALLOC_ASSERT(v->items != NULL);
        }
        v->items[v->nitems].item_code = strdup(db_stream_get(s, 3));
        v->items[v->nitems].cents = strtoll(db_stream_get(s, 4), NULL, 10);
        v->nitems++;
    }
    vector_buf_clear(&b);
    free(b.v);
    db_stream_close(s);
    PQclear(done);
    if (rc == ALLOC_EXIT_OK && k != st->formula_expected) {
        cli_error("run %s: %" PRId64 " formula batches, %" PRId64 " expected", id, k,
                  st->formula_expected);
        rc = ALLOC_EXIT_RUNTIME;
    }
    if (rc == ALLOC_EXIT_OK) {
        char err[512];
        if (mq_flush(st->mq, -1, err, sizeof err) != MQ_OK) {
            cli_error("confirm formula batches of run %s: %s", id, err);
            rc = ALLOC_EXIT_RUNTIME;
        } else {
            log_info("run %s: %" PRId64 " formula batch(es) published", id, published);
        }
    }
    return rc;
}

int run_has_rules(run_state *st) {
    run_formulas f;
    if (load_formulas(st, &f) != ALLOC_EXIT_OK)
        return -1;
    int has = fx_ruleset_formula_count(f.rs) + fx_ruleset_audit_count(f.rs) > 0;
    run_formulas_free(&f);
    return has;
}

int run_formula_stage(run_state *st) {
    run_formulas f;
    int rc = load_formulas(st, &f);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    cached_formulas = &f;
    cache_formulas(st);
    rc = publish_formulas(st, f.rs);
    if (rc == ALLOC_EXIT_OK)
        rc = run_wait_stage(st, "formula", st->formula_expected, cache_formulas);
    cached_formulas = NULL;
    run_formulas_free(&f);
    return rc;
}
