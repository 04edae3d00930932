/* The formula stage in a worker thread (DESIGN.md 5.4, 5.5): one unit of a run
 * (the projects of one data source in one range of project codes, run_unit)
 * is assembled in one transaction: its direct rows summed (its report_before
 * rows, written as they are), its base rows (those sums plus the allocated
 * partials), every formula item of each vector evaluated in dependency order,
 * then the audit rules; base and formula rows go once, by COPY and in key
 * order, into the unit's own table (keyed there, attached by the run's last
 * transaction), with the findings, the unit's per-item totals (for the
 * producer's roll-ups) and the batch marker. Then the completion counter is
 * bumped once.
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
#include "pubdata.h"
#include "report_rows.h"

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

/* The rows of a unit; %s is the run's number, the project range (NULL: open)
 * is compared in the columns' own collation as the producer cut the units.
 * Its direct rows ($1 data source, $2 / $3 the range), from the snapshot's
 * run_direct_N (in unit order under a block-range index), with their category:
 * the versions a row takes part in are the run's (its public data, as the
 * snapshot saw them, $1 run). Its allocated partials ($1 data source, $2 / $3
 * the range; %s the columns cents_K of the run's K-th version, NULL where the
 * batch gave that version nothing). */
static const char UNIT_DIRECT_SQL[] =
    "SELECT project_code, item_code, category, cents FROM run_direct_%s "
    "WHERE data_source = $1 AND ($2::text IS NULL OR project_code >= $2) "
    "AND ($3::text IS NULL OR project_code < $3)";
static const char UNIT_PARTIAL_SQL[] =
    "SELECT project_code, item_code%s FROM alloc_partial_run_%s "
    "WHERE data_source = $1 AND ($2::text IS NULL OR project_code >= $2) "
    "AND ($3::text IS NULL OR project_code < $3)";
static const char UNIT_VERSIONS_SQL[] =
    "SELECT v ->> 0, (v -> 1)::text FROM run_public r, "
    "json_array_elements(r.body::json -> 'versions') v WHERE r.run_id = $1";

/* The vectors of a unit, summed in memory from its raw rows (its direct rows
 * and its partials, in no order): per (version, project), the cents of
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

/* The vectors' numbers in (version, project) byte order (malloc'd; NULL when
 * out of memory). */
typedef struct vector_key {
    const char *version, *project;
    size_t k;
} vector_key;

static int vector_key_cmp(const void *a, const void *b) {
    const vector_key *x = a, *y = b;
    int c = strcmp(x->version, y->version);
    return c ? c : strcmp(x->project, y->project);
}

static size_t *unit_vector_order(const unit_vectors *u) {
    vector_key *keys = malloc((u->n + 1) * sizeof *keys);
    size_t *order = malloc((u->n + 1) * sizeof *order);
    if (!keys || !order) {
        free(keys);
        free(order);
        return NULL;
    }
    for (size_t k = 0; k < u->n; k++)
        keys[k] = (vector_key){u->version[k], u->project[k], k};
    qsort(keys, u->n, sizeof *keys, vector_key_cmp);
    for (size_t k = 0; k < u->n; k++)
        order[k] = keys[k].k;
    free(keys);
    return order;
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

/* The versions of a run and, per category met so far, the versions it takes
 * part in (DESIGN.md 5.1): a version with no category list takes every row. */
typedef struct run_versions {
    size_t n;
    const char **name; /* into the versions' query result */
    json_t **cats;     /* the category list, or NULL: every category */
    size_t ncat, catcap;
    const char **cat;  /* the categories met (NULL: a row without one) */
    unsigned char *in; /* ncat x n: category k takes part in version v */
} run_versions;

static void run_versions_free(run_versions *rv) {
    for (size_t v = 0; v < rv->n; v++)
        json_decref(rv->cats[v]);
    free(rv->name);
    free(rv->cats);
    free(rv->cat);
    free(rv->in);
    memset(rv, 0, sizeof *rv);
}

/* Reads the run's versions from res (version, category list as JSON text).
 * Returns 0, or -1 with e. */
static int run_versions_load(run_versions *rv, const PGresult *res, db_error *e) {
    size_t n = (size_t)PQntuples(res);
    rv->name = calloc(n + 1, sizeof *rv->name);
    rv->cats = calloc(n + 1, sizeof *rv->cats);
    if (!rv->name || !rv->cats) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return -1;
    }
    for (size_t v = 0; v < n; v++) {
        json_error_t jerr;
        json_t *cats = json_loads(PQgetvalue(res, (int)v, 1), JSON_DECODE_ANY, &jerr);
        rv->name[v] = PQgetvalue(res, (int)v, 0);
        rv->n = v + 1;
        if (!cats || !(json_is_null(cats) || json_is_array(cats))) {
            json_decref(cats);
            snprintf(e->msg, sizeof e->msg, "the run's version %s has no readable category list",
                     rv->name[v]);
            return -1;
        }
        rv->cats[v] = json_is_null(cats) ? NULL : cats;
        if (!rv->cats[v])
            json_decref(cats);
    }
    return 0;
}

/* The versions row of category cat (NULL: none) takes part in: a row of
 * rv->n flags, or NULL when out of memory. */
static const unsigned char *run_versions_of(run_versions *rv, const char *cat) {
    for (size_t k = 0; k < rv->ncat; k++)
        if (cat ? rv->cat[k] && !strcmp(rv->cat[k], cat) : !rv->cat[k])
            return rv->in + k * rv->n;
    if (rv->ncat == rv->catcap) {
        size_t cap = rv->catcap ? rv->catcap * 2 : 8;
        const char **c = realloc(rv->cat, cap * sizeof *c);
        if (c)
            rv->cat = c;
        unsigned char *in = realloc(rv->in, cap * (rv->n + 1));
        if (in)
            rv->in = in;
        if (!c || !in)
            return NULL;
        rv->catcap = cap;
    }
    size_t k = rv->ncat++;
    rv->cat[k] = cat;
    unsigned char *in = rv->in + k * rv->n;
    for (size_t v = 0; v < rv->n; v++) {
        in[v] = rv->cats[v] == NULL;
        size_t i;
        json_t *c;
        json_array_foreach(rv->cats[v], i, c) {
            if (cat && json_is_string(c) && !strcmp(json_string_value(c), cat))
                in[v] = 1;
        }
    }
    return in;
}

/* Adds one raw row (cents as text) to the vector of (version, project).
 * Returns 0, or -1 with e. */
static int unit_add(unit_vectors *uv, const fx_ruleset *rs, const msg_assemble *a,
                    const char *version, const char *project, const char *item,
                    const char *cents_text, db_error *e) {
    long slot = fx_ruleset_slot(rs, item);
    if (slot < 0 || fx_ruleset_slot_is_formula(rs, (size_t)slot)) {
        snprintf(e->msg, sizeof e->msg, "%s/%s/%s: item %s is not a base item of %s", version,
                 a->data_source, project, item, a->fx_key);
        return -1;
    }
    char *end;
    errno = 0;
    long long cents = strtoll(cents_text, &end, 10);
    long k = unit_vector(uv, version, project);
    if (k < 0) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return -1;
    }
    size_t at = (size_t)k * uv->nslots + (size_t)slot;
    if (errno || *end != '\0' ||
        __builtin_add_overflow(uv->cents[at], (int64_t)cents, &uv->cents[at])) {
        snprintf(e->msg, sizeof e->msg, "%s/%s/%s item %s: the sum overflows", version,
                 a->data_source, project, item);
        return -1;
    }
    uv->present[at] = 1;
    return 0;
}

/* Sums the unit's direct rows into uv and writes them, as they are, into the
 * run's report_before_run_N (DESIGN.md 5.4). Returns 0, or -1 with e. */
static int unit_direct(db_conn *db, const char *run_id, const msg_assemble *a,
                       const PGresult *direct, run_versions *rv, unit_vectors *uv,
                       const fx_ruleset *rs, db_error *e) {
    int n = PQntuples(direct);
    for (int i = 0; i < n; i++) {
        const char *project = PQgetvalue(direct, i, 0);
        const unsigned char *in =
            run_versions_of(rv, PQgetisnull(direct, i, 2) ? NULL : PQgetvalue(direct, i, 2));
        if (!in) {
            snprintf(e->msg, sizeof e->msg, "out of memory");
            return -1;
        }
        for (size_t v = 0; v < rv->n; v++)
            if (in[v] && unit_add(uv, rs, a, rv->name[v], project, PQgetvalue(direct, i, 1),
                                  PQgetvalue(direct, i, 3), e) != 0)
                return -1;
    }
    if (uv->n == 0)
        return 0;
    char table[64], copy[256];
    snprintf(table, sizeof table, "report_before_run_%s", run_id);
    snprintf(copy, sizeof copy, REPORT_ROWS_COPY_SQL, table);
    if (db_copy_in_begin(db, copy, e) != 0)
        return -1;
    for (size_t k = 0; k < uv->n; k++) {
        report_vector v = {run_id, uv->version[k], a->data_source, uv->project[k]};
        for (size_t slot = 0; slot < uv->nslots; slot++)
            if (uv->present[k * uv->nslots + slot] &&
                report_rows_base(db, &v, fx_ruleset_slot_code(rs, slot),
                                 uv->cents[k * uv->nslots + slot], e) != 0) {
                db_copy_in_abort(db, "row failed");
                return -1;
            }
    }
    return db_copy_in_end(db, e) < 0 ? -1 : 0;
}

/* Creates the unit's own table of report_after rows, checked to hold only the
 * unit's keys, so that the run's last transaction attaches it as a partition
 * of report_after_run_N without reading it. Returns 0, or -1 with e. */
static int unit_table(db_conn *db, const char *run_id, const msg_assemble *a,
                      const char *const range[2], const char *table, db_error *e) {
    PGconn *pg = db_pg(db);
    char *ds = PQescapeLiteral(pg, a->data_source, strlen(a->data_source));
    char *lo = range[0] ? PQescapeLiteral(pg, range[0], strlen(range[0])) : NULL;
    char *hi = range[1] ? PQescapeLiteral(pg, range[1], strlen(range[1])) : NULL;
    int rc = -1;
    if (!ds || (range[0] && !lo) || (range[1] && !hi)) {
        snprintf(e->msg, sizeof e->msg, "quoting the unit's range: %s", PQerrorMessage(pg));
    } else {
        size_t len = strlen(ds) + (lo ? strlen(lo) : 0) + (hi ? strlen(hi) : 0) + 512;
        char *sql = malloc(len);
        if (!sql) {
            snprintf(e->msg, sizeof e->msg, "out of memory");
        } else {
            snprintf(sql, len,
                     "CREATE TABLE %s (LIKE report_after INCLUDING DEFAULTS, "
                     "CHECK (run_id = %s), CHECK (data_source = %s%s%s%s%s))",
                     table, run_id, ds, lo ? " AND project_code >= " : "", lo ? lo : "",
                     hi ? " AND project_code < " : "", hi ? hi : "");
            rc = db_exec(db, sql, e);
            free(sql);
        }
    }
    PQfreemem(ds);
    PQfreemem(lo);
    PQfreemem(hi);
    return rc;
}

/* Writes the unit's rows inside the open transaction: its direct rows into
 * report_before, then, with its partials added, its base and formula rows into
 * a table of its own (keyed at the end, in one pass over its few rows), its
 * findings and its totals. Returns 0 or -1 with e. */
static int write_unit(db_conn *db, const char *run_id, const msg_assemble *a,
                      const char *const range[2], const fx_entry *fx, fx_scratch *scratch,
                      unit_result *out, db_error *e) {
    const fx_ruleset *rs = fx->rs;
    size_t nslots = fx_ruleset_slot_count(rs), naudit = fx_ruleset_audit_count(rs);
    const char *pv[] = {run_id};
    const char *pd[] = {a->data_source, range[0], range[1]};
    char sql[sizeof UNIT_PARTIAL_SQL + sizeof UNIT_DIRECT_SQL + 16 * PUBDATA_MAX_VERSIONS + 64];
    char cols[16 * PUBDATA_MAX_VERSIONS + 1] = "";
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PGresult *versions = NULL, *direct = NULL, *partial = NULL;
    fx_value *values = malloc((nslots + 1) * sizeof *values);
    fx_value *avals = malloc((naudit + 1) * sizeof *avals);
    unsigned char *failed = malloc(naudit + 1);
    report_findings *found = report_findings_new();
    unit_totals *tot = NULL;
    size_t ntot = 0;
    unit_vectors uv;
    memset(&uv, 0, sizeof uv);
    uv.nslots = nslots;
    run_versions rv;
    memset(&rv, 0, sizeof rv);
    size_t *vec_order = NULL, *slot_order = NULL;
    int rc = -1, copying = 0;
    char table[96], copy[256];
    if (!values || !avals || !failed || !found) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        goto done;
    }
    if (!(versions = db_query(db, UNIT_VERSIONS_SQL, 1, pv, PGRES_TUPLES_OK, e)) ||
        run_versions_load(&rv, versions, e) != 0)
        goto done;
    snprintf(sql, sizeof sql, UNIT_DIRECT_SQL, run_id);
    if (!(direct = db_query(db, sql, 3, pd, PGRES_TUPLES_OK, e)))
        goto done;
    if (rv.n > PUBDATA_MAX_VERSIONS) {
        snprintf(e->msg, sizeof e->msg, "the run has %zu versions: at most %d are supported", rv.n,
                 PUBDATA_MAX_VERSIONS);
        goto done;
    }
    for (size_t v = 0, len = 0; v < rv.n; v++)
        len += (size_t)snprintf(cols + len, sizeof cols - len, ", cents_%zu", v);
    snprintf(sql, sizeof sql, UNIT_PARTIAL_SQL, cols, run_id);
    if (!(partial = db_query(db, sql, 3, pd, PGRES_TUPLES_OK, e)))
        goto done;
    out->read_s = seconds_since(&t0);
    if (unit_direct(db, run_id, a, direct, &rv, &uv, rs, e) != 0)
        goto done;
    for (int i = 0, n = PQntuples(partial); i < n; i++)
        for (size_t v = 0; v < rv.n; v++)
            if (!PQgetisnull(partial, i, 2 + (int)v) &&
                unit_add(&uv, rs, a, rv.name[v], PQgetvalue(partial, i, 0),
                         PQgetvalue(partial, i, 1), PQgetvalue(partial, i, 2 + (int)v), e) != 0)
                goto done;
    snprintf(table, sizeof table, "report_after_run_%s_u%" PRId64, run_id, a->unit_id);
    if (unit_table(db, run_id, a, range, table, e) != 0)
        goto done;
    snprintf(copy, sizeof copy, REPORT_ROWS_COPY_SQL, table);
    if (uv.n > 0) {
        if (db_copy_in_begin(db, copy, e) != 0)
            goto done;
        copying = 1;
    }
    /* vectors in (version, project) order and items in code order: the rows
     * come out in the key's order, and keying the unit's table is one pass */
    if (!(vec_order = unit_vector_order(&uv)) || !(slot_order = report_rows_key_order(rs))) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        goto done;
    }
    for (size_t x = 0; x < uv.n; x++) {
        size_t k = vec_order[x];
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
        }
        int nf = report_rows_vector(db, &v, rs, slot_order, uv.cents + k * nslots,
                                    uv.present + k * nslots, values, avals, scratch, failed, e);
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
    snprintf(sql, sizeof sql,
             "ALTER TABLE %s ADD PRIMARY KEY (run_id, version, data_source, project_code, "
             "item_code)",
             table);
    if (db_exec(db, sql, e) != 0)
        goto done;
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
    run_versions_free(&rv);
    free(vec_order);
    free(slot_order);
    report_findings_free(found);
    free(values);
    free(avals);
    free(failed);
    PQclear(versions);
    PQclear(direct);
    PQclear(partial);
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
