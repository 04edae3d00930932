/* Publishing a run's pending rows as bucket messages with publisher confirms in
 * a bounded window (DESIGN.md 5.8), and caching its public data in Redis. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "log.h"
#include "msg.h"
#include "run_stages.h"
#include "run_state.h"

/* ---- publishing buckets ------------------------------------------------------- */

/* Caches the public data in Redis under its key (from run_public). */
int run_cache_public(run_state *st) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db, "SELECT body FROM run_public WHERE run_id = $1", 1, p,
                           PGRES_TUPLES_OK, &e);
    if (!r)
        return cli_fail_db(&e, "read public data");
    int rc = ALLOC_EXIT_OK;
    if (PQntuples(r) == 1 && cache_set(st->cache, st->public_key, PQgetvalue(r, 0, 0),
                                       (size_t)PQgetlength(r, 0, 0), PUBLIC_TTL_S) != 0) {
        cli_error("cache public data of run %s: %s", id, cache_error(st->cache));
        rc = ALLOC_EXIT_RUNTIME;
    }
    PQclear(r);
    return rc;
}

typedef struct bucket_plan {
    char *bucket_id;
    char *data_source;
    int64_t first_row, row_count;
    int batch_count;
    int publish; /* not every batch of it is marked done */
} bucket_plan;

static void free_plans(bucket_plan *b, int n) {
    for (int i = 0; i < n; i++) {
        free(b[i].bucket_id);
        free(b[i].data_source);
    }
    free(b);
}

/* The run's buckets in (data source, first row) order, with whether each still
 * has batches without a marker. */
static bucket_plan *load_plans(run_state *st, int *n, db_error *e) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    PGresult *r = db_query(
        st->db,
        "SELECT b.bucket_id, b.data_source, b.first_row, b.row_count, b.batch_count, "
        "  (SELECT count(*) FROM batch_marker m WHERE m.run_id = b.run_id AND m.stage = 'allocate' "
        "   AND m.batch_id LIKE replace(replace(replace(b.bucket_id, '\\', '\\\\'), '%', '\\%'), "
        "       '_', '\\_') || '/%') "
        "FROM run_bucket b WHERE b.run_id = $1 "
        "ORDER BY b.data_source COLLATE \"C\", b.first_row",
        1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return NULL;
    *n = PQntuples(r);
    bucket_plan *b = calloc((size_t)*n + 1, sizeof *b);
    for (int i = 0; b && i < *n; i++) {
        b[i].bucket_id = strdup(PQgetvalue(r, i, 0));
        b[i].data_source = strdup(PQgetvalue(r, i, 1));
        b[i].first_row = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        b[i].row_count = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        b[i].batch_count = atoi(PQgetvalue(r, i, 4));
        b[i].publish = strtoll(PQgetvalue(r, i, 5), NULL, 10) < b[i].batch_count;
    }
    PQclear(r);
    return b;
}

/* Publishes one bucket message built from rows[0..n). */
static int publish_bucket(run_state *st, const bucket_plan *b, msg_row *rows, size_t n) {
    msg_bucket m = {
        .run_id = st->run_id,
        .period = st->period,
        .ruleset = st->ruleset,
        .stamp = st->stamp,
        .public_key = st->public_key,
        .bucket_id = b->bucket_id,
        .data_source = b->data_source,
        .detail = st->detail,
        .batch_size = st->batch_size,
        .expected = st->expected,
        .rows = rows,
        .nrows = n,
    };
    char err[512];
    size_t len;
    char *body = msg_encode_bucket(&m, &len, err, sizeof err);
    if (!body) {
        cli_error("encode bucket %s: %s", b->bucket_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int rc =
        mq_publish(st->mq, MQ_EXCHANGE_WORK, MQ_KEY_BUCKET, body, len, NULL, 0, err, sizeof err);
    free(body);
    if (rc != MQ_OK) {
        cli_error("publish bucket %s of run %" PRId64 ": %s", b->bucket_id, st->run_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Streams the run's pending rows in bucket order and publishes every bucket
 * that still has unfinished batches. Memory: one bucket of rows. */
int run_publish_buckets(run_state *st, int *published) {
    db_error e;
    int nplans = 0;
    bucket_plan *plans = load_plans(st, &nplans, &e);
    if (!plans)
        return cli_fail_db(&e, "read buckets");
    *published = 0;
    int todo = 0;
    for (int i = 0; i < nplans; i++)
        todo += plans[i].publish;
    if (todo == 0) {
        free_plans(plans, nplans);
        return ALLOC_EXIT_OK;
    }

    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    /* the sort of the pending rows in memory, not in temporary files (from
     * scale 2 on, the server's work_mem is too small for them) */
    if (db_exec(st->db, "SET work_mem = '512MB'", &e) != 0) {
        free_plans(plans, nplans);
        return cli_fail_db(&e, "stream pending rows");
    }
    db_stream *s =
        db_stream_open(st->db,
                       "SELECT entry_id, data_source, company_code, item_code, category, "
                       "cents FROM run_pending WHERE run_id = $1 "
                       "ORDER BY data_source COLLATE \"C\", item_code COLLATE \"C\", entry_id",
                       1, p, &e);
    if (!s) {
        free_plans(plans, nplans);
        return cli_fail_db(&e, "stream pending rows");
    }
    int rc = ALLOC_EXIT_OK;
    /* Rows of the current bucket; strings live in one arena per bucket. */
    size_t cap = 0, n = 0;
    msg_row *rows = NULL;
    char *arena = NULL;
    size_t arena_cap = 0, arena_len = 0;
    int cur = 0;
    int64_t row_in_source = 0;
    char prev_source[256] = "";
    int more;
    while (rc == ALLOC_EXIT_OK && (more = db_stream_next(s, &e)) == 1) {
        const char *ds = db_stream_get(s, 1);
        if (strcmp(ds, prev_source) != 0) {
            snprintf(prev_source, sizeof prev_source, "%s", ds);
            row_in_source = 0;
        }
        while (cur < nplans && (strcmp(plans[cur].data_source, ds) != 0 ||
                                row_in_source >= plans[cur].first_row + plans[cur].row_count))
            cur++;
        ALLOC_ASSERT(cur < nplans && row_in_source >= plans[cur].first_row);
        row_in_source++;
        if (!plans[cur].publish)
            continue;

        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            msg_row *grown = realloc(rows, cap * sizeof *rows);
            ALLOC_ASSERT(grown != NULL);
            rows = grown;
        }
        /* strings are copied into the arena and fixed up to pointers at publish time */
        size_t need = 0;
        for (int c = 2; c <= 4; c++)
            need += (size_t)db_stream_getlen(s, c) + 1;
        if (arena_len + need > arena_cap) {
            arena_cap = (arena_cap + need) * 2;
            char *grown = realloc(arena, arena_cap);
            ALLOC_ASSERT(grown != NULL);
            arena = grown;
        }
        msg_row *row = &rows[n++];
        row->entry_id = strtoll(db_stream_get(s, 0), NULL, 10);
        row->cents = strtoll(db_stream_get(s, 5), NULL, 10);
        size_t offs[3];
        for (int c = 2; c <= 4; c++) {
            offs[c - 2] = arena_len;
            size_t l = (size_t)db_stream_getlen(s, c);
            memcpy(arena + arena_len, db_stream_get(s, c), l + 1);
            arena_len += l + 1;
        }
        row->company_code = (const char *)(uintptr_t)offs[0];
        row->item_code = (const char *)(uintptr_t)offs[1];
        row->category = (const char *)(uintptr_t)offs[2];

        if (row_in_source == plans[cur].first_row + plans[cur].row_count) {
            for (size_t i = 0; i < n; i++) {
                rows[i].company_code = arena + (uintptr_t)rows[i].company_code;
                rows[i].item_code = arena + (uintptr_t)rows[i].item_code;
                rows[i].category = arena + (uintptr_t)rows[i].category;
            }
            rc = publish_bucket(st, &plans[cur], rows, n);
            (*published)++;
            n = 0;
            arena_len = 0;
        }
    }
    if (rc == ALLOC_EXIT_OK && more < 0)
        rc = cli_fail_db(&e, "stream pending rows");
    db_stream_close(s);
    if (db_exec(st->db, "RESET work_mem", &e) != 0)
        log_warn("RESET work_mem: %s", e.msg);
    free(rows);
    free(arena);
    free_plans(plans, nplans);
    if (rc == ALLOC_EXIT_OK) {
        char err[512];
        if (mq_flush(st->mq, -1, err, sizeof err) != MQ_OK) {
            cli_error("confirm buckets of run %" PRId64 ": %s", st->run_id, err);
            rc = ALLOC_EXIT_RUNTIME;
        }
    }
    return rc;
}
