/* The binary form of a compiled ruleset, as cached in Redis, and its fully
 * validating reader. All integers little-endian:
 *
 *   "FXRS" u32 version (1)
 *   u32 n_items,  n_items  x { u8 kind (0 base, 1 formula), u32 len, code bytes }
 *   u32 n_audits, n_audits x { u32 len, code bytes }
 *   for each formula item in slot order, then each audit rule:
 *     u32 n_consts, n_consts x f64 (IEEE-754 bits), u32 n_code, n_code x { u8 op, u8 aux, u32 arg }
 *   u32 n_order, n_order x u32 slot          (formula slots in evaluation order)
 *
 * The reader trusts nothing: every count is checked against the bytes left
 * before anything is allocated, every program goes through fx_program_check,
 * codes are unique and NUL-free, and the order is a permutation of the formula
 * slots in which every formula only reads base items and earlier formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx_internal.h"

#define FX_MAGIC "FXRS"
#define FX_FORMAT_VERSION 1u

/* ----------------------------------------------------------------- writer */

typedef struct writer {
    unsigned char *buf;
    size_t len, cap;
    bool oom;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u8(writer *w, uint8_t v) {
    put(w, &v, 1);
}

static void put_u32(writer *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}

static void put_f64(writer *w, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_code(writer *w, const char *code) {
    size_t n = strlen(code);
    put_u32(w, (uint32_t)n);
    put(w, code, n);
}

static void put_program(writer *w, const fx_program *p) {
    put_u32(w, p->n_consts);
    for (uint32_t i = 0; i < p->n_consts; i++)
        put_f64(w, p->consts[i]);
    put_u32(w, p->n_code);
    for (uint32_t i = 0; i < p->n_code; i++) {
        put_u8(w, p->code[i].op);
        put_u8(w, p->code[i].aux);
        put_u32(w, p->code[i].arg);
    }
}

int fx_ruleset_serialize(const fx_ruleset *rs, unsigned char **buf, size_t *len) {
    if (!rs || !rs->compiled)
        return -1;
    writer w = {0};
    put(&w, FX_MAGIC, 4);
    put_u32(&w, FX_FORMAT_VERSION);
    put_u32(&w, (uint32_t)rs->n_items);
    for (size_t i = 0; i < rs->n_items; i++) {
        put_u8(&w, rs->items[i].is_formula ? 1 : 0);
        put_code(&w, rs->items[i].code);
    }
    put_u32(&w, (uint32_t)rs->n_audits);
    for (size_t i = 0; i < rs->n_audits; i++)
        put_code(&w, rs->audits[i].code);
    for (size_t i = 0; i < rs->n_items; i++)
        if (rs->items[i].is_formula)
            put_program(&w, &rs->items[i].prog);
    for (size_t i = 0; i < rs->n_audits; i++)
        put_program(&w, &rs->audits[i].prog);
    put_u32(&w, (uint32_t)rs->n_order);
    for (size_t i = 0; i < rs->n_order; i++)
        put_u32(&w, rs->order[i]);
    if (w.oom) {
        free(w.buf);
        return -1;
    }
    *buf = w.buf;
    *len = w.len;
    return 0;
}

/* ----------------------------------------------------------------- reader */

typedef struct reader {
    const unsigned char *p;
    size_t left;
    char *err;
    size_t errlen;
    bool failed;
} reader;

static bool bad(reader *r, const char *what) {
    if (!r->failed && r->err)
        snprintf(r->err, r->errlen, "bad compiled ruleset: %s", what);
    r->failed = true;
    return false;
}

static bool get(reader *r, void *out, size_t n, const char *what) {
    if (r->failed)
        return false;
    if (r->left < n)
        return bad(r, what);
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

static bool get_u8(reader *r, uint8_t *v, const char *what) {
    return get(r, v, 1, what);
}

static bool get_u32(reader *r, uint32_t *v, const char *what) {
    unsigned char b[4];
    if (!get(r, b, 4, what))
        return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

/* A count of elements of at least elem_size bytes each: never more than the
 * bytes left can hold, so garbage cannot make us allocate gigabytes. */
static bool get_count(reader *r, uint32_t *n, size_t elem_size, const char *what) {
    if (!get_u32(r, n, what))
        return false;
    if (*n > r->left / elem_size)
        return bad(r, what);
    return true;
}

static char *get_code(reader *r, const char *what) {
    uint32_t n;
    if (!get_count(r, &n, 1, what))
        return NULL;
    if (memchr(r->p, '\0', n)) {
        bad(r, what);
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        bad(r, "out of memory");
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->left -= n;
    return s;
}

static bool get_program(reader *r, fx_program *p, uint32_t n_slots) {
    uint32_t n;
    if (!get_count(r, &n, 8, "constant count"))
        return false;
    if (n && !(p->consts = malloc((size_t)n * sizeof *p->consts)))
        return bad(r, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo, hi;
        if (!get_u32(r, &lo, "constant") || !get_u32(r, &hi, "constant"))
            return false;
        uint64_t bits = (uint64_t)hi << 32 | lo;
        memcpy(&p->consts[i], &bits, sizeof bits);
        if (!isfinite(p->consts[i]))
            return bad(r, "constant not finite");
        p->n_consts = i + 1;
    }
    if (!get_count(r, &n, 6, "instruction count"))
        return false;
    if (n && !(p->code = malloc((size_t)n * sizeof *p->code)))
        return bad(r, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        fx_insn in;
        if (!get_u8(r, &in.op, "instruction") || !get_u8(r, &in.aux, "instruction") ||
            !get_u32(r, &in.arg, "instruction"))
            return false;
        p->code[i] = in;
        p->n_code = i + 1;
    }
    char why[96];
    if (fx_program_check(p, n_slots, why, sizeof why) != 0)
        return bad(r, why);
    return true;
}

fx_ruleset *fx_ruleset_deserialize(const void *buf, size_t len, char *err, size_t errlen) {
    if (err && errlen)
        err[0] = '\0';
    reader r = {buf, buf ? len : 0, err, errlen, false};
    fx_ruleset *rs = fx_ruleset_new();
    uint32_t *pos = NULL;
    bool *dup = NULL;
    if (!rs) {
        bad(&r, "out of memory");
        return NULL;
    }
    char magic[4];
    uint32_t version, n;
    if (!get(&r, magic, 4, "header") || memcmp(magic, FX_MAGIC, 4)) {
        bad(&r, "not a compiled ruleset");
        goto fail;
    }
    if (!get_u32(&r, &version, "header"))
        goto fail;
    if (version != FX_FORMAT_VERSION) {
        bad(&r, "unknown format version");
        goto fail;
    }

    if (!get_count(&r, &n, 5, "item count"))
        goto fail;
    if (n && !(rs->items = calloc(n, sizeof *rs->items))) {
        bad(&r, "out of memory");
        goto fail;
    }
    rs->cap_items = n;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t kind;
        if (!get_u8(&r, &kind, "item"))
            goto fail;
        if (kind > 1) {
            bad(&r, "item kind");
            goto fail;
        }
        char *code = get_code(&r, "item code");
        if (!code)
            goto fail;
        rs->items[i].code = code;
        rs->items[i].is_formula = kind == 1;
        rs->n_items = i + 1;
    }
    if (fx_ruleset_build_index(rs) != 0) {
        bad(&r, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rs->n_items; i++)
        if (fx_ruleset_slot(rs, rs->items[i].code) != (long)i) {
            bad(&r, "duplicate item code");
            goto fail;
        }

    if (!get_count(&r, &n, 4, "audit rule count"))
        goto fail;
    if (n && !(rs->audits = calloc(n, sizeof *rs->audits))) {
        bad(&r, "out of memory");
        goto fail;
    }
    rs->cap_audits = n;
    for (uint32_t i = 0; i < n; i++) {
        char *code = get_code(&r, "audit rule code");
        if (!code)
            goto fail;
        rs->audits[i].code = code;
        rs->n_audits = i + 1;
    }
    if (!(dup = calloc(rs->n_audits + 1, sizeof *dup)) || fx_audit_duplicates(rs, dup) != 0) {
        bad(&r, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rs->n_audits; i++)
        if (dup[i]) {
            bad(&r, "duplicate audit rule code");
            goto fail;
        }

    for (size_t i = 0; i < rs->n_items; i++)
        if (rs->items[i].is_formula && !get_program(&r, &rs->items[i].prog, (uint32_t)rs->n_items))
            goto fail;
    for (size_t i = 0; i < rs->n_audits; i++)
        if (!get_program(&r, &rs->audits[i].prog, (uint32_t)rs->n_items))
            goto fail;

    /* the order: each formula once, after every formula it reads */
    size_t n_formulas = fx_ruleset_formula_count(rs);
    if (!get_count(&r, &n, 4, "order count"))
        goto fail;
    if (n != n_formulas) {
        bad(&r, "order does not list every formula");
        goto fail;
    }
    rs->order = malloc((n ? n : 1) * sizeof *rs->order);
    pos = malloc((rs->n_items ? rs->n_items : 1) * sizeof *pos);
    if (!rs->order || !pos) {
        bad(&r, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < rs->n_items; i++)
        pos[i] = UINT32_MAX;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t slot;
        if (!get_u32(&r, &slot, "order"))
            goto fail;
        if (slot >= rs->n_items || !rs->items[slot].is_formula || pos[slot] != UINT32_MAX) {
            bad(&r, "order slot");
            goto fail;
        }
        const fx_program *p = &rs->items[slot].prog;
        for (uint32_t i = 0; i < p->n_code; i++)
            if (p->code[i].op == FX_OP_LOAD && rs->items[p->code[i].arg].is_formula &&
                pos[p->code[i].arg] == UINT32_MAX) {
                bad(&r, "order puts a formula before one it reads");
                goto fail;
            }
        pos[slot] = k;
        rs->order[k] = slot;
        rs->n_order = k + 1;
    }
    if (r.left) {
        bad(&r, "trailing bytes");
        goto fail;
    }
    for (size_t i = 0; i < rs->n_items; i++)
        if (rs->items[i].prog.max_stack > rs->max_stack)
            rs->max_stack = rs->items[i].prog.max_stack;
    for (size_t i = 0; i < rs->n_audits; i++)
        if (rs->audits[i].prog.max_stack > rs->max_stack)
            rs->max_stack = rs->audits[i].prog.max_stack;
    rs->attempted = rs->compiled = true;
    free(pos);
    free(dup);
    return rs;
fail:
    free(pos);
    free(dup);
    fx_ruleset_free(rs);
    return NULL;
}
