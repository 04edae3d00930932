/* libFuzzer target of the fx module: parse + compile + evaluate formulas, and
 * deserialize compiled rulesets. Built by `make fuzz` (clang, sanitizers); the
 * same function replays tests/fx/corpus in `make test` through
 * `test_fx --replay` (tests/unit/test_fx.c includes this file).
 *
 * Input: the first byte picks the mode (byte % 3), the rest is
 *   0: one formula X over base items A=1.5, B=NULL, C=0, D=-2.5, [a b]=100
 *   1: a ruleset, one record per line: "CODE=formula" (a formula item),
 *      "?CODE=expr" (an audit rule), "CODE" (a base item); '`' in a formula
 *      stands for a newline
 *   2: bytes handed to fx_ruleset_deserialize
 * Oracles besides the sanitizers: a compiled ruleset survives serialize ->
 * deserialize -> serialize byte for byte and evaluates to the same bits; an
 * accepted blob serializes back to itself; compile errors are one non-empty
 * line each and the first is what err says. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"

static void fuzz_check(int cond) {
    if (!cond)
        abort();
}

/* A base value per slot from a fixed palette: ordinary, NULL, extreme. */
static fx_value fuzz_base_value(size_t slot) {
    static const double palette[] = {0.0,    1.0,   -1.0,  0.5, 2.5,    -2.5,     1e308,
                                     -1e308, 1.005, 100.0, 0.1, 1e-300, 12345.67, 0.0};
    size_t k = (slot * 7 + 3) % (sizeof palette / sizeof palette[0]);
    return k == 13 ? fx_null() : fx_number(palette[k]);
}

static int same_value(fx_value a, fx_value b) {
    if (a.null || b.null)
        return a.null == b.null;
    return memcmp(&a.v, &b.v, sizeof a.v) == 0;
}

/* Evaluates rs with the palette; fills values (n_slots) and audits. */
static void fuzz_eval(const fx_ruleset *rs, fx_value *values, fx_value *audits,
                      fx_scratch *scratch) {
    size_t n = fx_ruleset_slot_count(rs);
    for (size_t i = 0; i < n; i++)
        values[i] = fuzz_base_value(i);
    fuzz_check(fx_ruleset_eval(rs, values, audits, scratch) == 0);
    for (size_t i = 0; i < n; i++) {
        int64_t cents;
        fx_store_result r = fx_store_cents(values[i], &cents);
        fuzz_check(r == FX_STORE_OK || r == FX_STORE_NULL || r == FX_STORE_RANGE);
        fuzz_check(values[i].null || isfinite(values[i].v));
    }
}

/* The round trip oracle of a compiled ruleset. */
static void fuzz_compiled(fx_ruleset *rs) {
    size_t n = fx_ruleset_slot_count(rs), na = fx_ruleset_audit_count(rs);
    fx_value *v1 = calloc(n + 1, sizeof *v1), *v2 = calloc(n + 1, sizeof *v2);
    fx_value *a1 = calloc(na + 1, sizeof *a1), *a2 = calloc(na + 1, sizeof *a2);
    fx_scratch *scratch = fx_scratch_new();
    fuzz_check(v1 && v2 && a1 && a2 && scratch);
    fuzz_eval(rs, v1, a1, scratch);

    unsigned char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    fuzz_check(fx_ruleset_serialize(rs, &buf, &len) == 0);
    char err[256];
    fx_ruleset *back = fx_ruleset_deserialize(buf, len, err, sizeof err);
    fuzz_check(back != NULL);
    fuzz_check(fx_ruleset_serialize(back, &buf2, &len2) == 0);
    fuzz_check(len == len2 && memcmp(buf, buf2, len) == 0);
    fuzz_eval(back, v2, a2, NULL);
    for (size_t i = 0; i < n; i++)
        fuzz_check(same_value(v1[i], v2[i]));
    for (size_t i = 0; i < na; i++)
        fuzz_check(same_value(a1[i], a2[i]));

    fx_ruleset_free(back);
    free(buf);
    free(buf2);
    fx_scratch_free(scratch);
    free(v1);
    free(v2);
    free(a1);
    free(a2);
}

/* Compiles rs and applies the error or round trip oracles. */
static void fuzz_compile(fx_ruleset *rs) {
    char err[512];
    int r = fx_ruleset_compile(rs, err, sizeof err);
    fuzz_check(r >= 0);
    fuzz_check((size_t)r == fx_ruleset_error_count(rs));
    if (r == 0) {
        fuzz_compiled(rs);
        return;
    }
    fuzz_check(strncmp(err, fx_ruleset_error(rs, 0)->text, sizeof err - 1) == 0);
    for (size_t i = 0; i < (size_t)r; i++) {
        const fx_error *e = fx_ruleset_error(rs, i);
        fuzz_check(e->text[0] != '\0' && strchr(e->text, '\n') == NULL);
    }
    fuzz_check(fx_ruleset_eval(rs, NULL, NULL, NULL) == -1);
}

static char *fuzz_strndup(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    fuzz_check(s != NULL);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void fuzz_one_formula(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    fx_ruleset *rs = fx_ruleset_new();
    fuzz_check(rs != NULL);
    static const char *const bases[] = {"A", "B", "C", "D", "a b"};
    for (size_t i = 0; i < 5; i++)
        fuzz_check(fx_ruleset_add_item(rs, bases[i], false, NULL) == 0);
    fuzz_check(fx_ruleset_add_item(rs, "X", true, text) == 0);
    fuzz_check(fx_ruleset_add_audit(rs, "R", "X > 0 OR X = 0") == 0);
    fuzz_compile(rs);
    fx_ruleset_free(rs);
    free(text);
}

static void fuzz_ruleset_text(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    fx_ruleset *rs = fx_ruleset_new();
    fuzz_check(rs != NULL);
    char *line = text;
    for (;;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            for (char *q = eq + 1; *q; q++)
                if (*q == '`')
                    *q = '\n';
            if (line[0] == '?')
                fuzz_check(fx_ruleset_add_audit(rs, line + 1, eq + 1) == 0);
            else
                fuzz_check(fx_ruleset_add_item(rs, line, true, eq + 1) == 0);
        } else if (line[0]) {
            fuzz_check(fx_ruleset_add_item(rs, line, false, NULL) == 0);
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    fuzz_compile(rs);
    fx_ruleset_free(rs);
    free(text);
}

static void fuzz_blob(const uint8_t *data, size_t size) {
    char err[256];
    fx_ruleset *rs = fx_ruleset_deserialize(data, size, err, sizeof err);
    if (!rs) {
        fuzz_check(err[0] != '\0');
        return;
    }
    unsigned char *buf = NULL;
    size_t len = 0;
    fuzz_check(fx_ruleset_serialize(rs, &buf, &len) == 0);
    fuzz_check(len == size && memcmp(buf, data, size) == 0);
    free(buf);
    size_t n = fx_ruleset_slot_count(rs), na = fx_ruleset_audit_count(rs);
    fx_value *v = calloc(n + 1, sizeof *v), *a = calloc(na + 1, sizeof *a);
    fuzz_check(v && a);
    fuzz_eval(rs, v, a, NULL);
    free(v);
    free(a);
    fx_ruleset_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_one_formula(data + 1, size - 1);
        break;
    case 1:
        fuzz_ruleset_text(data + 1, size - 1);
        break;
    default:
        fuzz_blob(data + 1, size - 1);
        break;
    }
    return 0;
}
