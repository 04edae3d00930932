/* The message codec on jansson. Each message type is a table of fields (name,
 * kind, place in the C struct); one table-driven walker decodes, validates and
 * copies a message into an arena, and the encoder builds the JSON from the same
 * table and runs the walker over it before printing, so both ends agree on the
 * rules by construction. Adding a type = a struct, a table, a row in types[]. */
#include "msg.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- arena: the strings and arrays of one decoded message ---- */

struct msg_arena {
    struct msg_arena *next; /* the previous (full) chunk */
    size_t used, cap;       /* bytes of data[] handed out / available */
    unsigned char data[];
};

/* data[] follows the header at an offset that keeps 8-byte alignment */
_Static_assert(sizeof(struct msg_arena) % 8 == 0, "arena header breaks alignment");

#define ARENA_MIN_CHUNK 65536

/* Returns size bytes aligned to align (a power of two, at most 8) from the
 * arena *a, starting a new chunk when the current one is full (first_cap sizes
 * the very first chunk). NULL when out of memory. */
static void *arena_alloc(struct msg_arena **a, size_t size, size_t align, size_t first_cap) {
    struct msg_arena *c = *a;
    size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (!c || at > c->cap || c->cap - at < size) {
        size_t cap = c ? ARENA_MIN_CHUNK : first_cap;
        if (cap < ARENA_MIN_CHUNK / 16)
            cap = ARENA_MIN_CHUNK / 16;
        if (cap < size)
            cap = size;
        struct msg_arena *n = malloc(sizeof *n + cap);
        if (!n)
            return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        *a = c = n;
        at = 0;
    }
    void *p = c->data + at;
    c->used = at + size;
    return p;
}

static void arena_free(struct msg_arena *a) {
    while (a) {
        struct msg_arena *next = a->next;
        free(a);
        a = next;
    }
}

/* ---- the tables ---- */

typedef enum field_kind {
    FK_ID,      /* int64_t, an integer > 0 */
    FK_COUNT,   /* int64_t, an integer >= 0 */
    FK_NAME,    /* const char *, a non-empty string */
    FK_PERIOD,  /* const char *, "YYYY-MM" */
    FK_BOOL,    /* bool */
    FK_STAGE,   /* msg_stage, "allocate" | "formula" */
    FK_ROWS,    /* msg_row * + size_t count, [[entry_id, company, item, category, cents]...] */
    FK_VECTORS, /* msg_vector * + size_t count, [{version, data_source, project_code, items}...] */
    FK_ITEMS    /* msg_item_value * + size_t count, [[item_code, cents]...] */
} field_kind;

typedef struct field_spec {
    const char *name;
    field_kind kind;
    size_t off;       /* of the value (or array pointer) in the C struct */
    size_t count_off; /* arrays: of the element count */
} field_spec;

typedef struct type_spec {
    msg_type type;
    const char *name;
    const field_spec *fields;
    size_t nfields;
} type_spec;

#define F(st, name, kind)                                                                          \
    { #name, kind, offsetof(st, name), 0 }
#define A(st, name, kind, count)                                                                   \
    { #name, kind, offsetof(st, name), offsetof(st, count) }

static const field_spec bucket_fields[] = {
    F(msg_bucket, run_id, FK_ID),        F(msg_bucket, period, FK_PERIOD),
    F(msg_bucket, ruleset, FK_NAME),     F(msg_bucket, stamp, FK_NAME),
    F(msg_bucket, bucket_id, FK_NAME),   F(msg_bucket, data_source, FK_NAME),
    F(msg_bucket, detail, FK_BOOL),      F(msg_bucket, batch_size, FK_ID),
    F(msg_bucket, public_key, FK_NAME),  F(msg_bucket, expected, FK_COUNT),
    A(msg_bucket, rows, FK_ROWS, nrows),
};

static const field_spec batch_fields[] = {
    F(msg_batch, run_id, FK_ID),      F(msg_batch, period, FK_PERIOD),
    F(msg_batch, ruleset, FK_NAME),   F(msg_batch, stamp, FK_NAME),
    F(msg_batch, batch_id, FK_NAME),  F(msg_batch, data_source, FK_NAME),
    F(msg_batch, detail, FK_BOOL),    F(msg_batch, public_key, FK_NAME),
    F(msg_batch, expected, FK_COUNT), A(msg_batch, rows, FK_ROWS, nrows),
};

static const field_spec stage_done_fields[] = {
    F(msg_stage_done, run_id, FK_ID),
    F(msg_stage_done, stage, FK_STAGE),
    F(msg_stage_done, batch_count, FK_COUNT),
};

static const field_spec formula_fields[] = {
    F(msg_formula, run_id, FK_ID),      F(msg_formula, period, FK_PERIOD),
    F(msg_formula, ruleset, FK_NAME),   F(msg_formula, stamp, FK_NAME),
    F(msg_formula, batch_id, FK_NAME),  F(msg_formula, fx_key, FK_NAME),
    F(msg_formula, expected, FK_COUNT), A(msg_formula, vectors, FK_VECTORS, nvectors),
};

static const field_spec assemble_fields[] = {
    F(msg_assemble, run_id, FK_ID),      F(msg_assemble, period, FK_PERIOD),
    F(msg_assemble, ruleset, FK_NAME),   F(msg_assemble, stamp, FK_NAME),
    F(msg_assemble, batch_id, FK_NAME),  F(msg_assemble, fx_key, FK_NAME),
    F(msg_assemble, expected, FK_COUNT), F(msg_assemble, data_source, FK_NAME),
    F(msg_assemble, unit_id, FK_COUNT),
};

static const field_spec vector_fields[] = {
    F(msg_vector, version, FK_NAME),
    F(msg_vector, data_source, FK_NAME),
    F(msg_vector, project_code, FK_NAME),
    A(msg_vector, items, FK_ITEMS, nitems),
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static const type_spec types[] = {
    {MSG_BUCKET, "bucket", bucket_fields, NFIELDS(bucket_fields)},
    {MSG_BATCH, "batch", batch_fields, NFIELDS(batch_fields)},
    {MSG_STAGE_DONE, "stage_done", stage_done_fields, NFIELDS(stage_done_fields)},
    {MSG_FORMULA, "formula", formula_fields, NFIELDS(formula_fields)},
    {MSG_ASSEMBLE, "assemble", assemble_fields, NFIELDS(assemble_fields)},
};

static const char *const stage_names[] = {NULL, "allocate", "formula"};

const char *msg_type_name(msg_type type) {
    for (size_t i = 0; i < NFIELDS(types); i++)
        if (types[i].type == type)
            return types[i].name;
    return "?";
}

const char *msg_stage_name(msg_stage stage) {
    return stage == MSG_STAGE_ALLOCATE || stage == MSG_STAGE_FORMULA ? stage_names[stage] : "?";
}

/* ---- the walker ---- */

/* Where a value sits, for error messages, formatted only when there is an
 * error: `field "name"` at the top level, `prefix.name` inside an object of an
 * array, with up to two indexes: `rows[3][4]`, `vectors[2].items[0][1]`. */
typedef struct where {
    const char *prefix; /* "" at the top level */
    const char *name;
    long i, j; /* -1: none */
} where;

typedef struct walker {
    char *err;
    size_t errlen;
    struct msg_arena *arena; /* grows as values are copied */
    size_t first_chunk;      /* size of the first arena chunk */
    int copy;                /* 0: validate only (the encoder), nothing is stored */
    const char *type_name;   /* of the message, for "unexpected field" at the top */
} walker;

static void where_format(const where *w, char *buf, size_t n) {
    if (w->i < 0) {
        if (w->prefix[0])
            snprintf(buf, n, "%s.%s", w->prefix, w->name);
        else
            snprintf(buf, n, "field \"%s\"", w->name);
        return;
    }
    int k = w->prefix[0] ? snprintf(buf, n, "%s.%s[%ld]", w->prefix, w->name, w->i)
                         : snprintf(buf, n, "%s[%ld]", w->name, w->i);
    if (w->j >= 0 && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "[%ld]", w->j);
}

static int fail(walker *d, const where *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "<where>: <message>" (or just the message when w is NULL) to the
 * walker's error buffer. Returns -1. */
static int fail(walker *d, const where *w, const char *fmt, ...) {
    if (!d->err || !d->errlen)
        return -1;
    size_t k = 0;
    if (w) {
        char at[200];
        where_format(w, at, sizeof at);
        int n = snprintf(d->err, d->errlen, "%s: ", at);
        k = n < 0 ? 0 : (size_t)n < d->errlen ? (size_t)n : d->errlen - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err + k, d->errlen - k, fmt, ap);
    va_end(ap);
    return -1;
}

/* "a string", "an integer", ... for "expected X, got Y". */
static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Copies up to 40 bytes of s into buf for quoting in a message, with
 * non-printable bytes as '?' and a "..." when cut (never inside a UTF-8
 * character, so the message stays valid UTF-8). */
static const char *quote_excerpt(const char *s, size_t len, char buf[48]) {
    size_t n = len > 40 ? 40 : len;
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
    }
    if (len > n)
        memcpy(buf + n, "...", 4);
    else
        buf[n] = '\0';
    return buf;
}

static int take_int(walker *d, const where *w, const json_t *v, int64_t min, int64_t *out) {
    if (!json_is_integer(v))
        return fail(d, w, "expected an integer, got %s", json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < min)
        return fail(d, w, "expected an integer %s, got %lld", min == 1 ? "> 0" : ">= 0",
                    (long long)x);
    if (out)
        *out = (int64_t)x;
    return 0;
}

static int take_cents(walker *d, const where *w, const json_t *v, int64_t *out) {
    if (!json_is_integer(v))
        return fail(d, w, "expected an integer (cents), got %s", json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x > MSG_MAX_CENTS || x < -MSG_MAX_CENTS)
        return fail(d, w, "amount %lld cents out of range (|cents| <= %lld)", (long long)x,
                    (long long)MSG_MAX_CENTS);
    if (out)
        *out = (int64_t)x;
    return 0;
}

/* A non-empty string, copied into the arena when out != NULL. */
static int take_name(walker *d, const where *w, const json_t *v, const char **out) {
    if (!json_is_string(v))
        return fail(d, w, "expected a string, got %s", json_kind(v));
    size_t n = json_string_length(v);
    if (n == 0)
        return fail(d, w, "expected a non-empty string, got \"\"");
    if (out) {
        char *s = arena_alloc(&d->arena, n + 1, 1, d->first_chunk);
        if (!s)
            return fail(d, w, "out of memory");
        memcpy(s, json_string_value(v), n + 1);
        *out = s;
    }
    return 0;
}

static int take_period(walker *d, const where *w, const json_t *v, const char **out) {
    if (!json_is_string(v))
        return fail(d, w, "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n != 7 || !util_period_valid(s)) { /* n: a NUL inside is no period either */
        char q[48];
        return fail(d, w, "expected YYYY-MM, got \"%s\"", quote_excerpt(s, n, q));
    }
    return take_name(d, w, v, out);
}

static int take_bool(walker *d, const where *w, const json_t *v, bool *out) {
    if (!json_is_boolean(v))
        return fail(d, w, "expected true or false, got %s", json_kind(v));
    if (out)
        *out = json_is_true(v);
    return 0;
}

static int take_stage(walker *d, const where *w, const json_t *v, msg_stage *out) {
    if (!json_is_string(v))
        return fail(d, w, "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    for (int st = MSG_STAGE_ALLOCATE; st <= MSG_STAGE_FORMULA; st++) {
        if (n == strlen(stage_names[st]) && memcmp(s, stage_names[st], n) == 0) {
            if (out)
                *out = (msg_stage)st;
            return 0;
        }
    }
    char q[48];
    return fail(d, w, "expected \"allocate\" or \"formula\", got \"%s\"", quote_excerpt(s, n, q));
}

/* Checks that v is an array, allocates count elements of size elem in the
 * arena when copying, and stores the pointer and count. */
static int take_array(walker *d, const where *w, const json_t *v, size_t elem, void **arr,
                      size_t *count) {
    if (!json_is_array(v))
        return fail(d, w, "expected an array, got %s", json_kind(v));
    size_t n = json_array_size(v);
    if (arr) {
        *arr = NULL;
        if (n > 0) {
            *arr = arena_alloc(&d->arena, n * elem, 8, d->first_chunk);
            if (!*arr)
                return fail(d, w, "out of memory for %zu elements", n);
            memset(*arr, 0, n * elem);
        }
        *count = n;
    }
    return 0;
}

/* Checks that element i of an array is itself an array of exactly n values. */
static int take_tuple(walker *d, const where *w, const json_t *v, size_t n, const char *shape) {
    if (!json_is_array(v))
        return fail(d, w, "expected an array %s, got %s", shape, json_kind(v));
    if (json_array_size(v) != n)
        return fail(d, w, "expected %zu elements %s, got %zu", n, shape, json_array_size(v));
    return 0;
}

static int take_rows(walker *d, const where *fw, const json_t *v, msg_row **out, size_t *count) {
    void *arr = NULL;
    if (take_array(d, fw, v, sizeof(msg_row), out ? &arr : NULL, count) != 0)
        return -1;
    msg_row *rows = arr;
    if (out)
        *out = rows;
    size_t n = json_array_size(v);
    static const char shape[] = "[entry_id, company_code, item_code, category, cents]";
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        where w = {fw->prefix, fw->name, (long)i, -1};
        if (take_tuple(d, &w, e, 5, shape) != 0)
            return -1;
        msg_row *r = rows ? &rows[i] : NULL;
        w.j = 0;
        if (take_int(d, &w, json_array_get(e, 0), 1, r ? &r->entry_id : NULL) != 0)
            return -1;
        w.j = 1;
        if (take_name(d, &w, json_array_get(e, 1), r ? &r->company_code : NULL) != 0)
            return -1;
        w.j = 2;
        if (take_name(d, &w, json_array_get(e, 2), r ? &r->item_code : NULL) != 0)
            return -1;
        w.j = 3;
        if (take_name(d, &w, json_array_get(e, 3), r ? &r->category : NULL) != 0)
            return -1;
        w.j = 4;
        if (take_cents(d, &w, json_array_get(e, 4), r ? &r->cents : NULL) != 0)
            return -1;
    }
    return 0;
}

static int take_items(walker *d, const where *fw, const json_t *v, msg_item_value **out,
                      size_t *count) {
    void *arr = NULL;
    if (take_array(d, fw, v, sizeof(msg_item_value), out ? &arr : NULL, count) != 0)
        return -1;
    msg_item_value *items = arr;
    if (out)
        *out = items;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        where w = {fw->prefix, fw->name, (long)i, -1};
        if (take_tuple(d, &w, e, 2, "[item_code, cents]") != 0)
            return -1;
        msg_item_value *it = items ? &items[i] : NULL;
        w.j = 0;
        if (take_name(d, &w, json_array_get(e, 0), it ? &it->item_code : NULL) != 0)
            return -1;
        w.j = 1;
        if (take_cents(d, &w, json_array_get(e, 1), it ? &it->cents : NULL) != 0)
            return -1;
    }
    return 0;
}

static int take_object(walker *d, const json_t *obj, const field_spec *fields, size_t nfields,
                       void *out, const char *prefix);

static int take_vectors(walker *d, const where *fw, const json_t *v, msg_vector **out,
                        size_t *count) {
    void *arr = NULL;
    if (take_array(d, fw, v, sizeof(msg_vector), out ? &arr : NULL, count) != 0)
        return -1;
    msg_vector *vecs = arr;
    if (out)
        *out = vecs;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        where w = {fw->prefix, fw->name, (long)i, -1};
        if (!json_is_object(e))
            return fail(d, &w, "expected an object, got %s", json_kind(e));
        char prefix[128];
        where_format(&w, prefix, sizeof prefix);
        if (take_object(d, e, vector_fields, NFIELDS(vector_fields), vecs ? &vecs[i] : NULL,
                        prefix) != 0)
            return -1;
    }
    return 0;
}

/* Validates the fields of obj against the table (each present, no others) and,
 * when out != NULL, stores them in the struct at out. prefix is "" for the
 * message itself ("v" and "type" are then allowed and checked by the caller). */
static int take_object(walker *d, const json_t *obj, const field_spec *fields, size_t nfields,
                       void *out, const char *prefix) {
    const char *key;
    json_t *val;
    void *iter;
    for (iter = json_object_iter((json_t *)obj); iter;
         iter = json_object_iter_next((json_t *)obj, iter)) {
        key = json_object_iter_key(iter);
        size_t klen = json_object_iter_key_len(iter);
        int known = !prefix[0] && (strcmp(key, "v") == 0 || strcmp(key, "type") == 0);
        for (size_t f = 0; !known && f < nfields; f++)
            known = strlen(fields[f].name) == klen && memcmp(fields[f].name, key, klen) == 0;
        if (!known) {
            char q[48];
            quote_excerpt(key, klen, q);
            if (prefix[0])
                return fail(d, NULL, "%s: unexpected field \"%s\"", prefix, q);
            return fail(d, NULL, "unexpected field \"%s\" in %s message", q, d->type_name);
        }
    }
    unsigned char *base = out;
    for (size_t f = 0; f < nfields; f++) {
        const field_spec *fs = &fields[f];
        where w = {prefix, fs->name, -1, -1};
        val = json_object_get(obj, fs->name);
        if (!val)
            return fail(d, &w, "missing");
        void *p = base ? base + fs->off : NULL;
        size_t *count = base ? (size_t *)(base + fs->count_off) : NULL;
        int rc = 0;
        switch (fs->kind) {
        case FK_ID:
            rc = take_int(d, &w, val, 1, p);
            break;
        case FK_COUNT:
            rc = take_int(d, &w, val, 0, p);
            break;
        case FK_NAME:
            rc = take_name(d, &w, val, p);
            break;
        case FK_PERIOD:
            rc = take_period(d, &w, val, p);
            break;
        case FK_BOOL:
            rc = take_bool(d, &w, val, p);
            break;
        case FK_STAGE:
            rc = take_stage(d, &w, val, p);
            break;
        case FK_ROWS:
            rc = take_rows(d, &w, val, p, count);
            break;
        case FK_ITEMS:
            rc = take_items(d, &w, val, p, count);
            break;
        case FK_VECTORS:
            rc = take_vectors(d, &w, val, p, count);
            break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Validates a whole message tree: "v", "type", then the type's fields. Returns
 * the type's table entry, or NULL with the error set. */
static const type_spec *take_message(walker *d, const json_t *root, void *out) {
    if (!json_is_object(root)) {
        fail(d, NULL, "expected a JSON object, got %s", json_kind(root));
        return NULL;
    }
    where wv = {"", "v", -1, -1}, wt = {"", "type", -1, -1};
    const json_t *v = json_object_get(root, "v");
    if (!v) {
        fail(d, &wv, "missing");
        return NULL;
    }
    if (!json_is_integer(v)) {
        fail(d, &wv, "expected an integer, got %s", json_kind(v));
        return NULL;
    }
    if (json_integer_value(v) != MSG_VERSION) {
        fail(d, &wv, "unsupported version %lld, expected %d", (long long)json_integer_value(v),
             MSG_VERSION);
        return NULL;
    }
    const json_t *t = json_object_get(root, "type");
    if (!t) {
        fail(d, &wt, "missing");
        return NULL;
    }
    if (!json_is_string(t)) {
        fail(d, &wt, "expected a string, got %s", json_kind(t));
        return NULL;
    }
    const type_spec *ts = NULL;
    for (size_t i = 0; !ts && i < NFIELDS(types); i++)
        if (strlen(types[i].name) == json_string_length(t) &&
            memcmp(types[i].name, json_string_value(t), json_string_length(t)) == 0)
            ts = &types[i];
    if (!ts) {
        char q[48];
        fail(d, NULL, "unknown message type \"%s\"",
             quote_excerpt(json_string_value(t), json_string_length(t), q));
        return NULL;
    }
    d->type_name = ts->name;
    return take_object(d, root, ts->fields, ts->nfields, out, "") == 0 ? ts : NULL;
}

int msg_decode(const char *buf, size_t len, msg_any *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    /* the copies take about as many bytes as the text: usually one chunk */
    walker d = {err, errlen, NULL, 2 * len + 1024, 1, ""};
    json_error_t je;
    json_t *root = json_loadb(buf ? buf : "", buf ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(&d, NULL, "not JSON: %s at %d:%d", je.text, je.line, je.column);
    const type_spec *ts = take_message(&d, root, &out->bucket);
    json_decref(root);
    if (!ts) {
        arena_free(d.arena);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->type = ts->type;
    out->arena = d.arena;
    return 0;
}

void msg_any_free(msg_any *m) {
    if (!m)
        return;
    arena_free(m->arena);
    memset(m, 0, sizeof *m);
}

/* ---- encoding ---- */

/* A JSON string for s: null for NULL (the validation pass then names the
 * field), NULL for invalid UTF-8 or no memory. */
static json_t *enc_string(const char *s) {
    return s ? json_string(s) : json_null();
}

/* Appends value to arr (stealing it). Returns 0, or -1 when value is NULL. */
static int append(json_t *arr, json_t *value) {
    return value && json_array_append_new(arr, value) == 0 ? 0 : -1;
}

static json_t *enc_object(const field_spec *fields, size_t nfields, const void *in,
                          const char *prefix, char *err, size_t errlen);

/* Builds the JSON value of one field; NULL with err set on failure. */
static json_t *enc_field(const field_spec *fs, const unsigned char *base, const char *prefix,
                         char *err, size_t errlen) {
    const void *p = base + fs->off;
    int is_array = fs->kind == FK_ROWS || fs->kind == FK_ITEMS || fs->kind == FK_VECTORS;
    size_t n = is_array ? *(const size_t *)(base + fs->count_off) : 0;
    json_t *arr = NULL;
    where w = {prefix, fs->name, -1, -1};
    walker d = {err, errlen, NULL, 0, 0, ""};
    switch (fs->kind) {
    case FK_ID:
    case FK_COUNT:
        return json_integer(*(const int64_t *)p);
    case FK_BOOL:
        return json_boolean(*(const bool *)p);
    case FK_STAGE:
        return json_string(msg_stage_name(*(const msg_stage *)p));
    case FK_NAME:
    case FK_PERIOD: {
        json_t *s = enc_string(*(const char *const *)p);
        if (!s)
            fail(&d, &w, "not valid UTF-8");
        return s;
    }
    case FK_ROWS: {
        const msg_row *rows = *(msg_row *const *)p;
        arr = json_array();
        if (n && !rows) {
            fail(&d, &w, "NULL with %zu elements", n);
            json_decref(arr);
            return NULL;
        }
        for (size_t i = 0; arr && i < n; i++) {
            const msg_row *r = &rows[i];
            json_t *e = json_array();
            if (!e || append(arr, e) != 0 || append(e, json_integer(r->entry_id)) != 0 ||
                append(e, enc_string(r->company_code)) != 0 ||
                append(e, enc_string(r->item_code)) != 0 ||
                append(e, enc_string(r->category)) != 0 || append(e, json_integer(r->cents)) != 0) {
                w.i = (long)i;
                fail(&d, &w, "not valid UTF-8 (or out of memory)");
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    case FK_ITEMS: {
        const msg_item_value *items = *(msg_item_value *const *)p;
        arr = json_array();
        if (n && !items) {
            fail(&d, &w, "NULL with %zu elements", n);
            json_decref(arr);
            return NULL;
        }
        for (size_t i = 0; arr && i < n; i++) {
            json_t *e = json_array();
            if (!e || append(arr, e) != 0 || append(e, enc_string(items[i].item_code)) != 0 ||
                append(e, json_integer(items[i].cents)) != 0) {
                w.i = (long)i;
                fail(&d, &w, "not valid UTF-8 (or out of memory)");
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    case FK_VECTORS: {
        const msg_vector *vecs = *(msg_vector *const *)p;
        arr = json_array();
        if (n && !vecs) {
            fail(&d, &w, "NULL with %zu elements", n);
            json_decref(arr);
            return NULL;
        }
        for (size_t i = 0; arr && i < n; i++) {
            w.i = (long)i;
            char sub[128];
            where_format(&w, sub, sizeof sub);
            json_t *o =
                enc_object(vector_fields, NFIELDS(vector_fields), &vecs[i], sub, err, errlen);
            if (append(arr, o) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    }
    return NULL;
}

/* Builds an object from the struct at in following the table. */
static json_t *enc_object(const field_spec *fields, size_t nfields, const void *in,
                          const char *prefix, char *err, size_t errlen) {
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (size_t f = 0; f < nfields; f++) {
        json_t *v = enc_field(&fields[f], in, prefix, err, errlen);
        if (!v || json_object_set_new(obj, fields[f].name, v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

char *msg_encode(const msg_any *m, size_t *len, char *err, size_t errlen) {
    *len = 0;
    char why[400] = "out of memory";
    const type_spec *ts = NULL;
    for (size_t i = 0; !ts && i < NFIELDS(types); i++)
        if (types[i].type == m->type)
            ts = &types[i];
    if (!ts) {
        if (err && errlen)
            snprintf(err, errlen, "encode: unknown message type %d", (int)m->type);
        return NULL;
    }
    walker d = {why, sizeof why, NULL, 0, 0, ts->name};
    char *out = NULL;
    json_t *root = json_object();
    int ok = root && json_object_set_new(root, "v", json_integer(MSG_VERSION)) == 0 &&
             json_object_set_new(root, "type", json_string(ts->name)) == 0;
    const unsigned char *base = (const unsigned char *)&m->bucket;
    for (size_t f = 0; ok && f < ts->nfields; f++) {
        json_t *v = enc_field(&ts->fields[f], base, "", why, sizeof why);
        ok = v && json_object_set_new(root, ts->fields[f].name, v) == 0;
    }
    /* the decoder's rules, so that whatever is sent can be received */
    if (ok && take_message(&d, root, NULL)) {
        out = json_dumps(root, JSON_COMPACT);
        if (out)
            *len = strlen(out);
        else
            snprintf(why, sizeof why, "out of memory");
    }
    json_decref(root);
    if (!out && err && errlen)
        snprintf(err, errlen, "encode %s: %s", ts->name, why);
    return out;
}

char *msg_encode_bucket(const msg_bucket *m, size_t *len, char *err, size_t errlen) {
    msg_any a = {.type = MSG_BUCKET, .bucket = *m};
    return msg_encode(&a, len, err, errlen);
}

char *msg_encode_batch(const msg_batch *m, size_t *len, char *err, size_t errlen) {
    msg_any a = {.type = MSG_BATCH, .batch = *m};
    return msg_encode(&a, len, err, errlen);
}

char *msg_encode_stage_done(const msg_stage_done *m, size_t *len, char *err, size_t errlen) {
    msg_any a = {.type = MSG_STAGE_DONE, .stage_done = *m};
    return msg_encode(&a, len, err, errlen);
}

char *msg_encode_formula(const msg_formula *m, size_t *len, char *err, size_t errlen) {
    msg_any a = {.type = MSG_FORMULA, .formula = *m};
    return msg_encode(&a, len, err, errlen);
}

char *msg_encode_assemble(const msg_assemble *m, size_t *len, char *err, size_t errlen) {
    msg_any a = {.type = MSG_ASSEMBLE, .assemble = *m};
    return msg_encode(&a, len, err, errlen);
}
