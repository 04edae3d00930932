/* Unit tests of the fx module (common/fx*.c): the data-driven formula cases of
 * tests/fx/cases, one .txt file per topic (format at the top of each file; one "ok" line per file
 * with its case count, each failing case on stderr as file:line), then API
 * tests: storage rounding, serialization and hostile blobs, ordering, limits,
 * threads. `test_fx --replay DIR` instead runs every file of DIR through the
 * fuzz target (tests/fuzz/fuzz_fx.c), as tests/integration/t_fx_corpus.sh does. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/fx.h"
#include "../fuzz/fuzz_fx.c"
#include "harness.h"

#define CASES_DIR "tests/fx/cases"

/* CHECK_STR for a char array (the harness macro tests the pointer for NULL). */
#define CHECK_BUF(buf, want)                                                                       \
    CHECK(strcmp((buf), (want)) == 0, "got \"%s\", want \"%s\"", (buf), (want))

/* ------------------------------------------------------------- utilities */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular file names of dir, sorted; *n gets the count. NULL on error. */
static char **list_dir(const char *dir, size_t *n) {
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p)
                abort();
            names = p;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

static void free_list(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            unsigned char *p = realloc(buf, cap + 1);
            if (!p)
                abort();
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *show(fx_value v, char *buf, size_t len) {
    if (v.null)
        snprintf(buf, len, "NULL");
    else
        snprintf(buf, len, "%.17g", v.v);
    return buf;
}

/* ------------------------------------------------------ the case language */

/* One case being read: where it is, and what it builds and expects. */
typedef struct fx_case {
    const char *file;
    int line;
    fx_ruleset *rs;
    fx_value base[256];
    size_t n_base;
    char *expect_errors[32];
    size_t n_expect_errors;
    struct {
        char code[128];
        char want[256];
        int line;
    } expect[64];
    size_t n_expect;
    char order[512];
    bool has_order;
    bool bad; /* the case itself is malformed */
} fx_case;

static int case_failures;

static void case_fail(const fx_case *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void case_fail(const fx_case *c, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  %s:%d: ", c->file, line ? line : c->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    case_failures++;
}

/* Replaces \n, \t and \\ in s, in place. */
static void unescape(char *s) {
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == '\\')) {
            p++;
            *o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : '\\';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Reads an item code at *p (bare up to '=', ':' or a space, or [in brackets])
 * into code; advances *p. Returns false when there is none. */
static bool read_code(char **p, char *code, size_t len) {
    char *s = *p;
    while (*s == ' ')
        s++;
    size_t n;
    if (*s == '[') {
        char *e = strchr(s, ']');
        if (!e)
            return false;
        n = (size_t)(e - s - 1);
        s++;
        *p = e + 1;
    } else {
        n = strcspn(s, "=: ");
        *p = s + n;
    }
    if (n == 0 || n >= len)
        return false;
    memcpy(code, s, n);
    code[n] = '\0';
    return true;
}

static bool parse_value(const char *s, fx_value *v) {
    if (!strcmp(s, "NULL")) {
        *v = fx_null();
        return true;
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end)
        return false;
    *v = (fx_value){d, false}; /* raw, even when not finite: the evaluator must cope */
    return true;
}

/* Adds base items from "CODE=VALUE CODE=VALUE ...". */
static bool add_inputs(fx_case *c, char *s) {
    for (;;) {
        while (*s == ' ')
            s++;
        if (!*s)
            return true;
        char code[128];
        if (!read_code(&s, code, sizeof code) || *s != '=')
            return false;
        s++;
        size_t n = strcspn(s, " ");
        char val[64];
        if (n >= sizeof val || c->n_base >= 256)
            return false;
        memcpy(val, s, n);
        val[n] = '\0';
        s += n;
        if (!parse_value(val, &c->base[c->n_base]))
            return false;
        if (fx_ruleset_add_item(c->rs, code, false, NULL) != 0)
            abort();
        c->n_base++;
    }
}

/* Checks one value against an expectation: NUMBER, exact NUMBER, NULL, cents N. */
static void check_expect(fx_case *c, int line, const char *code, fx_value got, const char *want) {
    char g[64];
    fx_value w;
    if (!strncmp(want, "exact ", 6)) {
        if (!parse_value(want + 6, &w) || w.null) {
            case_fail(c, line, "bad expectation '%s'", want);
            return;
        }
        if (got.null || memcmp(&got.v, &w.v, sizeof w.v))
            case_fail(c, line, "%s: got %s, want exactly %s", code, show(got, g, sizeof g),
                      want + 6);
        return;
    }
    if (!strncmp(want, "cents ", 6)) {
        int64_t cents = 0;
        fx_store_result r = fx_store_cents(got, &cents);
        char gs[64];
        if (r == FX_STORE_NULL)
            snprintf(gs, sizeof gs, "NULL");
        else if (r == FX_STORE_RANGE)
            snprintf(gs, sizeof gs, "RANGE");
        else
            snprintf(gs, sizeof gs, "%lld", (long long)cents);
        if (strcmp(gs, want + 6))
            case_fail(c, line, "%s: stored %s cents (value %s), want %s", code, gs,
                      show(got, g, sizeof g), want + 6);
        return;
    }
    if (!parse_value(want, &w)) {
        case_fail(c, line, "bad expectation '%s'", want);
        return;
    }
    if (w.null) {
        if (!got.null)
            case_fail(c, line, "%s: got %s, want NULL", code, show(got, g, sizeof g));
        return;
    }
    if (got.null || !(fabs(got.v - w.v) <= 1e-9 * fmax(1.0, fabs(w.v))))
        case_fail(c, line, "%s: got %s, want %s", code, show(got, g, sizeof g), want);
}

/* Compiles and evaluates a case and checks everything it expects. */
static void run_case(fx_case *c) {
    if (c->bad)
        return;
    char err[512];
    int r = fx_ruleset_compile(c->rs, err, sizeof err);
    size_t n_err = fx_ruleset_error_count(c->rs);
    if (c->n_expect_errors) {
        bool same = n_err == c->n_expect_errors;
        for (size_t i = 0; same && i < n_err; i++)
            same = !strcmp(fx_ruleset_error(c->rs, i)->text, c->expect_errors[i]);
        if (!same) {
            case_fail(c, 0, "compile errors differ; want:");
            for (size_t i = 0; i < c->n_expect_errors; i++)
                fprintf(stderr, "      %s\n", c->expect_errors[i]);
            fprintf(stderr, "    got (%d):\n", r);
            for (size_t i = 0; i < n_err; i++)
                fprintf(stderr, "      %s\n", fx_ruleset_error(c->rs, i)->text);
        } else if (r != (int)n_err || strcmp(err, c->expect_errors[0])) {
            case_fail(c, 0, "compile returned %d with err '%s'", r, err);
        }
        return;
    }
    if (r != 0) {
        case_fail(c, 0, "compile failed: %s", err);
        for (size_t i = 1; i < n_err; i++)
            fprintf(stderr, "      %s\n", fx_ruleset_error(c->rs, i)->text);
        return;
    }
    if (c->has_order) {
        char got[512] = "";
        for (size_t i = 0; i < fx_ruleset_formula_count(c->rs); i++) {
            if (i)
                strncat(got, " ", sizeof got - strlen(got) - 1);
            strncat(got, fx_ruleset_slot_code(c->rs, fx_ruleset_order(c->rs, i)),
                    sizeof got - strlen(got) - 1);
        }
        if (strcmp(got, c->order))
            case_fail(c, 0, "order '%s', want '%s'", got, c->order);
    }
    size_t n = fx_ruleset_slot_count(c->rs), na = fx_ruleset_audit_count(c->rs);
    fx_value *values = calloc(n + 1, sizeof *values), *audits = calloc(na + 1, sizeof *audits);
    if (!values || !audits)
        abort();
    for (size_t i = 0, b = 0; i < n; i++)
        if (!fx_ruleset_slot_is_formula(c->rs, i))
            values[i] = c->base[b++];
    if (fx_ruleset_eval(c->rs, values, audits, NULL) != 0)
        case_fail(c, 0, "eval failed");
    for (size_t i = 0; i < c->n_expect; i++) {
        long s = fx_ruleset_slot(c->rs, c->expect[i].code);
        fx_value got;
        if (s >= 0) {
            got = values[s];
        } else {
            size_t a = 0;
            while (a < na && strcmp(fx_ruleset_audit_code(c->rs, a), c->expect[i].code))
                a++;
            if (a == na) {
                case_fail(c, c->expect[i].line, "no item or rule %s", c->expect[i].code);
                continue;
            }
            got = audits[a];
        }
        check_expect(c, c->expect[i].line, c->expect[i].code, got, c->expect[i].want);
    }
    free(values);
    free(audits);
}

static void case_begin(fx_case *c, const char *file, int line) {
    memset(c, 0, sizeof *c);
    c->file = file;
    c->line = line;
    c->rs = fx_ruleset_new();
    if (!c->rs)
        abort();
}

static void case_end(fx_case *c) {
    run_case(c);
    fx_ruleset_free(c->rs);
    for (size_t i = 0; i < c->n_expect_errors; i++)
        free(c->expect_errors[i]);
}

static void add_expect_error(fx_case *c, const char *text) {
    if (c->n_expect_errors < 32)
        c->expect_errors[c->n_expect_errors++] = strdup(text);
}

/* A one-line case: FORMULA [| INPUTS] => EXPECTED, the formula being item X. */
static void one_line_case(fx_case *c, char *line) {
    char *sep = NULL;
    for (char *p = line; (p = strstr(p, "=> ")); p++)
        if (p == line || p[-1] == ' ')
            sep = p;
    if (!sep) {
        case_fail(c, 0, "no ' => ' in the case");
        c->bad = true;
        return;
    }
    char *want = sep + 3;
    if (sep > line)
        sep--; /* the space before "=>" */
    *sep = '\0';
    char *inputs = strstr(line, " | ");
    if (inputs) {
        *inputs = '\0';
        if (!add_inputs(c, inputs + 3)) {
            case_fail(c, 0, "bad inputs '%s'", inputs + 3);
            c->bad = true;
            return;
        }
    }
    unescape(line);
    if (fx_ruleset_add_item(c->rs, "X", true, line) != 0)
        abort();
    if (!strncmp(want, "error: ", 7)) {
        add_expect_error(c, want + 7);
    } else {
        snprintf(c->expect[0].code, sizeof c->expect[0].code, "X");
        snprintf(c->expect[0].want, sizeof c->expect[0].want, "%s", want);
        c->expect[0].line = c->line;
        c->n_expect = 1;
    }
}

/* One line inside a "ruleset NAME" ... "end" block. */
static void block_line(fx_case *c, int lineno, char *line) {
    char code[128];
    char *p;
    if (!strncmp(line, "base ", 5)) {
        if (!add_inputs(c, line + 5))
            goto bad;
    } else if (!strncmp(line, "formula ", 8) || !strncmp(line, "audit ", 6)) {
        bool audit = line[0] == 'a';
        p = line + (audit ? 6 : 8);
        if (!read_code(&p, code, sizeof code) || strncmp(p, ": ", 2))
            goto bad;
        p += 2;
        unescape(p);
        int r = audit ? fx_ruleset_add_audit(c->rs, code, p)
                      : fx_ruleset_add_item(c->rs, code, true, p);
        if (r != 0)
            abort();
    } else if (!strncmp(line, "expect ", 7)) {
        p = line + 7;
        if (c->n_expect >= 64 || !read_code(&p, code, sizeof code) || *p != ' ')
            goto bad;
        snprintf(c->expect[c->n_expect].code, sizeof c->expect[0].code, "%s", code);
        snprintf(c->expect[c->n_expect].want, sizeof c->expect[0].want, "%s", p + 1);
        c->expect[c->n_expect++].line = lineno;
    } else if (!strncmp(line, "error: ", 7)) {
        add_expect_error(c, line + 7);
    } else if (!strncmp(line, "order ", 6)) {
        snprintf(c->order, sizeof c->order, "%s", line + 6);
        c->has_order = true;
    } else {
        goto bad;
    }
    return;
bad:
    case_fail(c, lineno, "malformed line '%s'", line);
    c->bad = true;
}

/* Runs every case of one file; returns the number of cases. */
static int run_case_file(const char *path, const char *name) {
    size_t len;
    char *text = (char *)read_file(path, &len);
    if (!text) {
        fprintf(stderr, "  cannot read %s: %s\n", path, strerror(errno));
        case_failures++;
        return 0;
    }
    int n_cases = 0, lineno = 0;
    bool in_block = false;
    fx_case *c = malloc(sizeof *c);
    if (!c)
        abort();
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (in_block) {
            char *s = line;
            while (*s == ' ')
                s++;
            if (!strcmp(s, "end")) {
                case_end(c);
                in_block = false;
            } else if (*s && *s != '#') {
                block_line(c, lineno, s);
            }
        } else if (!strncmp(line, "ruleset ", 8)) {
            case_begin(c, name, lineno);
            in_block = true;
            n_cases++;
        } else if (n && line[0] != '#') {
            case_begin(c, name, lineno);
            one_line_case(c, line);
            case_end(c);
            n_cases++;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (in_block) {
        case_fail(c, lineno, "ruleset block without 'end'");
        case_end(c);
    }
    free(c);
    free(text);
    return n_cases;
}

/* ----------------------------------------------------------- API tests */

/* Builds and compiles a ruleset from code/formula pairs (NULL formula: base). */
static fx_ruleset *build(const char *const *items, size_t n, const char *const *audits, size_t na) {
    fx_ruleset *rs = fx_ruleset_new();
    for (size_t i = 0; i < n; i += 2)
        CHECK(fx_ruleset_add_item(rs, items[i], items[i + 1] != NULL, items[i + 1]) == 0, "add %s",
              items[i]);
    for (size_t i = 0; i < na; i += 2)
        CHECK(fx_ruleset_add_audit(rs, audits[i], audits[i + 1]) == 0, "add audit %s", audits[i]);
    char err[256];
    int r = fx_ruleset_compile(rs, err, sizeof err);
    CHECK(r == 0, "compile: %s", err);
    return rs;
}

static void storage_rounds_half_away_from_zero_at_cents(void) {
    static const struct {
        double v;
        fx_store_result r;
        long long cents;
    } t[] = {
        {0.125, FX_STORE_OK, 13},     {-0.125, FX_STORE_OK, -13},
        {1.005, FX_STORE_OK, 100},    {2.675, FX_STORE_OK, 268},
        {-0.001, FX_STORE_OK, 0},     {-0.005, FX_STORE_OK, -1},
        {0.005, FX_STORE_OK, 1},      {-0.0, FX_STORE_OK, 0},
        {123.45, FX_STORE_OK, 12345}, {1e14, FX_STORE_OK, 10000000000000000LL},
        {1e16, FX_STORE_RANGE, 0},    {-1e16, FX_STORE_RANGE, 0},
        {1e300, FX_STORE_RANGE, 0},   {0.1 + 0.2, FX_STORE_OK, 30},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t cents = 777;
        fx_store_result r = fx_store_cents(fx_number(t[i].v), &cents);
        CHECK(r == t[i].r, "%.17g: result %d, want %d", t[i].v, (int)r, (int)t[i].r);
        if (r == FX_STORE_OK)
            CHECK_EQ_LL(cents, t[i].cents);
        if (r == FX_STORE_RANGE)
            CHECK_EQ_LL(cents, 777);
    }
    int64_t cents = 5;
    CHECK(fx_store_cents(fx_null(), &cents) == FX_STORE_NULL, "NULL stores NULL");
    CHECK(fx_store_cents((fx_value){INFINITY, false}, &cents) == FX_STORE_NULL, "inf is NULL");
    CHECK(fx_store_cents((fx_value){NAN, false}, &cents) == FX_STORE_NULL, "nan is NULL");
    CHECK_EQ_LL(cents, 5);
    /* a negative zero is stored as 0: the sign is gone */
    CHECK(fx_store_cents(fx_number(-0.004), &cents) == FX_STORE_OK && cents == 0 &&
              !signbit((double)cents),
          "-0.004 stores 0");
}

static void base_items_enter_as_cents_over_100(void) {
    CHECK(fx_from_cents(12345).v == 123.45, "12345 cents is 123.45");
    CHECK(fx_from_cents(-1).v == -0.01, "-1 cent is -0.01");
    CHECK(!fx_from_cents(0).null && fx_from_cents(0).v == 0.0, "0 cents is 0");
    CHECK(fx_number(NAN).null && fx_number(INFINITY).null && fx_number(-INFINITY).null,
          "non-finite numbers are NULL");
    CHECK(!fx_value_true(fx_null()) && !fx_value_true(fx_number(0)) &&
              fx_value_true(fx_number(-0.5)),
          "audit truth: non-NULL and nonzero");
    int64_t cents;
    for (int64_t c = -100000; c <= 100000; c += 7) {
        fx_store_cents(fx_from_cents(c), &cents);
        if (cents != c) {
            CHECK(cents == c, "cents %lld round trip to %lld", (long long)c, (long long)cents);
            break;
        }
    }
}

static const char *const std_items[] = {
    "REVENUE",      NULL,
    "COST",         NULL,
    "Salary Total", NULL,
    "NET_MARGIN",   "if(REVENUE <> 0, Round(NET_PROFIT / REVENUE, 4), 0)",
    "GROSS_PROFIT", "REVENUE - COST",
    "NET_PROFIT",   "GROSS_PROFIT - [Salary Total]",
    "FLAG",         "NOT (NET_PROFIT >= 0) OR COALESCE(NET_MARGIN, 0) < .1",
    "BIG",          "SUM(REVENUE, COST, MIN(REVENUE, COST), MAX(REVENUE, 1), ABS(-COST))",
};
static const char *const std_audits[] = {
    "GP",
    "ABS(GROSS_PROFIT - (REVENUE - COST)) < 0.01",
    "NO_REV",
    "REVENUE <> 0 OR COST = 0",
};

static void serialize_round_trip_is_exact_and_deterministic(void) {
    fx_ruleset *a = build(std_items, 16, std_audits, 4), *b = build(std_items, 16, std_audits, 4);
    unsigned char *ba, *bb, *bc;
    size_t la, lb, lc;
    CHECK(fx_ruleset_serialize(a, &ba, &la) == 0, "serialize a");
    CHECK(fx_ruleset_serialize(b, &bb, &lb) == 0, "serialize b");
    CHECK(la == lb && !memcmp(ba, bb, la), "two compiles give the same bytes");
    char err[256];
    fx_ruleset *c = fx_ruleset_deserialize(ba, la, err, sizeof err);
    CHECK(c != NULL, "deserialize: %s", err);
    if (!c)
        return;
    CHECK(fx_ruleset_serialize(c, &bc, &lc) == 0 && lc == la && !memcmp(ba, bc, la),
          "serialize(deserialize(x)) == x");
    CHECK_EQ_LL(fx_ruleset_slot_count(c), 8);
    CHECK_EQ_LL(fx_ruleset_formula_count(c), 5);
    CHECK_EQ_LL(fx_ruleset_audit_count(c), 2);
    CHECK_STR(fx_ruleset_audit_code(c, 1), "NO_REV");
    CHECK_EQ_LL(fx_ruleset_slot(c, "Salary Total"), 2);
    CHECK_EQ_LL(fx_ruleset_slot(c, "nope"), -1);
    CHECK(fx_ruleset_slot_text(c, 3) == NULL, "no texts after deserialization");
    CHECK_STR(fx_ruleset_slot_text(a, 3), "if(REVENUE <> 0, Round(NET_PROFIT / REVENUE, 4), 0)");
    for (size_t i = 0; i < fx_ruleset_formula_count(a); i++)
        CHECK(fx_ruleset_order(a, i) == fx_ruleset_order(c, i), "order %zu", i);
    /* both evaluate to the same bits */
    fx_value va[8] = {fx_from_cents(1000000), fx_from_cents(912345), fx_from_cents(-3)};
    fx_value vc[8] = {fx_from_cents(1000000), fx_from_cents(912345), fx_from_cents(-3)};
    fx_value aa[2], ac[2];
    CHECK(fx_ruleset_eval(a, va, aa, NULL) == 0 && fx_ruleset_eval(c, vc, ac, NULL) == 0, "eval");
    for (size_t i = 0; i < 8; i++)
        CHECK(va[i].null == vc[i].null && (va[i].null || va[i].v == vc[i].v), "slot %zu", i);
    CHECK(aa[0].v == 1 && ac[0].v == 1 && aa[1].v == 1, "audits pass");
    /* GROSS_PROFIT 10000 - 9123.45 = 876.55; NET_PROFIT 876.55 + 0.03 */
    CHECK(fabs(va[4].v - 876.55) < 1e-9 && fabs(va[5].v - 876.58) < 1e-9, "profits %.17g %.17g",
          va[4].v, va[5].v);
    free(ba);
    free(bb);
    free(bc);
    fx_ruleset_free(a);
    fx_ruleset_free(b);
    fx_ruleset_free(c);
}

/* Whether deserializing buf either fails with a reason or gives a ruleset that
 * evaluates and serializes back to the same bytes. */
static bool hostile_blob_is_handled(const unsigned char *buf, size_t len) {
    char err[256] = "";
    fx_ruleset *rs = fx_ruleset_deserialize(buf, len, err, sizeof err);
    if (!rs)
        return err[0] != '\0';
    unsigned char *again;
    size_t alen;
    bool ok =
        fx_ruleset_serialize(rs, &again, &alen) == 0 && alen == len && !memcmp(again, buf, len);
    if (ok)
        free(again);
    fx_value *v = calloc(fx_ruleset_slot_count(rs) + 1, sizeof *v);
    fx_value *a = calloc(fx_ruleset_audit_count(rs) + 1, sizeof *a);
    ok = ok && v && a && fx_ruleset_eval(rs, v, a, NULL) == 0;
    free(v);
    free(a);
    fx_ruleset_free(rs);
    return ok;
}

static void deserialize_rejects_truncated_and_corrupt_blobs(void) {
    fx_ruleset *rs = build(std_items, 16, std_audits, 4);
    unsigned char *buf;
    size_t len;
    CHECK(fx_ruleset_serialize(rs, &buf, &len) == 0, "serialize");
    char err[256];
    for (size_t n = 0; n < len; n++) {
        fx_ruleset *t = fx_ruleset_deserialize(buf, n, err, sizeof err);
        CHECK(t == NULL && err[0], "a blob cut at %zu bytes is refused", n);
        fx_ruleset_free(t);
    }
    unsigned char *m = malloc(len + 1);
    size_t accepted = 0;
    for (size_t i = 0; i < len; i++) {
        static const unsigned char flips[] = {0x01, 0x02, 0x10, 0x80, 0xff};
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(m, buf, len);
            m[i] ^= flips[f];
            bool ok = hostile_blob_is_handled(m, len);
            CHECK(ok, "byte %zu ^ %#x mishandled", i, flips[f]);
            if (!ok)
                break;
            fx_ruleset *t = fx_ruleset_deserialize(m, len, err, sizeof err);
            accepted += t != NULL;
            fx_ruleset_free(t);
        }
    }
    memcpy(m, buf, len);
    m[len] = 0;
    CHECK(fx_ruleset_deserialize(m, len + 1, err, sizeof err) == NULL, "trailing byte refused");
    CHECK_BUF(err, "bad compiled ruleset: trailing bytes");
    CHECK(fx_ruleset_deserialize(NULL, 0, err, sizeof err) == NULL, "NULL refused");
    CHECK(fx_ruleset_deserialize("FXRS\2\0\0\0", 8, err, sizeof err) == NULL, "version 2 refused");
    CHECK_BUF(err, "bad compiled ruleset: unknown format version");
    /* a count claiming more items than bytes must not allocate */
    CHECK(fx_ruleset_deserialize("FXRS\1\0\0\0\xff\xff\xff\xff", 12, err, sizeof err) == NULL,
          "huge count refused");
    /* pseudo-random garbage behind a valid header */
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 2000; round++) {
        size_t n = 8 + (size_t)(round % 97);
        memcpy(m, "FXRS\1\0\0\0", 8);
        for (size_t i = 8; i < n && i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            m[i] = (unsigned char)(round % 3 ? x % 4 : x);
        }
        CHECK(hostile_blob_is_handled(m, n < len ? n : len), "garbage round %d", round);
    }
    (void)accepted;
    free(m);
    free(buf);
    fx_ruleset_free(rs);
}

static void deserialize_rejects_an_order_that_reads_ahead(void) {
    static const char *const items[] = {"A", NULL, "X", "A + 1", "Y", "X * 2"};
    fx_ruleset *rs = build(items, 6, NULL, 0);
    unsigned char *buf;
    size_t len;
    CHECK(fx_ruleset_serialize(rs, &buf, &len) == 0, "serialize");
    /* the order is the last 8 bytes: slot 1 (X) then slot 2 (Y); swap them */
    CHECK(buf[len - 8] == 1 && buf[len - 4] == 2, "order X Y");
    buf[len - 8] = 2;
    buf[len - 4] = 1;
    char err[256];
    CHECK(fx_ruleset_deserialize(buf, len, err, sizeof err) == NULL, "Y before X refused");
    CHECK_BUF(err, "bad compiled ruleset: order puts a formula before one it reads");
    buf[len - 8] = 1;
    buf[len - 4] = 1;
    CHECK(fx_ruleset_deserialize(buf, len, err, sizeof err) == NULL, "X twice refused");
    CHECK_BUF(err, "bad compiled ruleset: order slot");
    free(buf);
    fx_ruleset_free(rs);
}

static void errors_are_all_listed_with_their_source(void) {
    fx_ruleset *rs = fx_ruleset_new();
    fx_ruleset_add_item(rs, "A", false, NULL);
    fx_ruleset_add_item(rs, "X", true, "A +");
    fx_ruleset_add_item(rs, "Net Sales", true, "A + $");
    fx_ruleset_add_item(rs, "A", true, "1");
    fx_ruleset_add_item(rs, "Y", true, NULL);
    fx_ruleset_add_item(rs, "Z", true, "Q + [W 2] + Q");
    fx_ruleset_add_audit(rs, "R", "X > ");
    fx_ruleset_add_audit(rs, "R", "1");
    char err[16];
    int r = fx_ruleset_compile(rs, err, sizeof err);
    CHECK_EQ_LL(r, 8);
    CHECK_BUF(err, "A: duplicate it"); /* truncated to the buffer */
    static const char *const want[] = {
        "A: duplicate item code",           "R: duplicate audit rule code",
        "X 1:4: unexpected end of formula", "[Net Sales] 1:5: unexpected character '$'",
        "Y 1:1: unexpected end of formula", "Z 1:1: unknown item Q",
        "Z 1:5: unknown item [W 2]",        "R 1:5: unexpected end of formula",
    };
    for (size_t i = 0; i < 8 && i < fx_ruleset_error_count(rs); i++)
        CHECK_STR(fx_ruleset_error(rs, i)->text, want[i]);
    const fx_error *e = fx_ruleset_error(rs, 6);
    CHECK(e && e->source == FX_ERROR_ITEM && !strcmp(e->code, "Z") && e->line == 1 &&
              e->column == 5 && !strcmp(e->message, "unknown item [W 2]"),
          "structured error");
    e = fx_ruleset_error(rs, 7);
    CHECK(e && e->source == FX_ERROR_AUDIT && !strcmp(e->code, "R"), "audit error source");
    CHECK(fx_ruleset_error(rs, 8) == NULL, "no ninth error");
    fx_value v[6];
    CHECK(fx_ruleset_eval(rs, v, NULL, NULL) == -1, "a failed ruleset does not evaluate");
    CHECK(fx_ruleset_compile(rs, NULL, 0) == -1, "compile twice refused");
    CHECK(fx_ruleset_add_item(rs, "B", false, NULL) == -1, "add after compile refused");
    unsigned char *buf;
    size_t len;
    CHECK(fx_ruleset_serialize(rs, &buf, &len) == -1, "a failed ruleset does not serialize");
    fx_ruleset_free(rs);
    fx_ruleset_free(NULL);
    fx_scratch_free(NULL);
}

static void order_is_topological_and_first_added_first(void) {
    static const char *const items[] = {
        "A", NULL, "C", "B + 1", "B", "A + 1", "D", "7", "E", "C + B + D", "F", "A",
    };
    fx_ruleset *rs = build(items, 12, NULL, 0);
    static const char *const want[] = {"B", "C", "D", "E", "F"};
    CHECK_EQ_LL(fx_ruleset_formula_count(rs), 5);
    for (size_t i = 0; i < 5; i++)
        CHECK_STR(fx_ruleset_slot_code(rs, fx_ruleset_order(rs, i)), want[i]);
    fx_value v[6] = {fx_number(1)};
    CHECK(fx_ruleset_eval(rs, v, NULL, NULL) == 0, "eval");
    CHECK(v[1].v == 3 && v[2].v == 2 && v[4].v == 12 && v[5].v == 1, "values");
    fx_ruleset_free(rs);
}

static void long_chains_and_wide_calls_do_not_recurse(void) {
    /* 100,000 terms of one sum: the parser loops, it does not recurse */
    size_t terms = 100000;
    char *text = malloc(terms * 2 + 1);
    for (size_t i = 0; i < terms; i++)
        memcpy(text + 2 * i, "1+", 2);
    text[terms * 2 - 1] = '\0';
    const char *items[] = {"X", text};
    fx_ruleset *rs = build(items, 2, NULL, 0);
    fx_value v[1];
    CHECK(fx_ruleset_eval(rs, v, NULL, NULL) == 0 && v[0].v == 100000.0, "sum of 1s");
    fx_ruleset_free(rs);
    /* SUM with 20,000 arguments needs a deep value stack (no scratch, then one) */
    size_t args = 20000;
    text = realloc(text, args * 2 + 8);
    strcpy(text, "SUM(");
    for (size_t i = 0; i < args; i++)
        memcpy(text + 4 + 2 * i, i ? ",2" : " 2", 2);
    strcpy(text + 4 + 2 * args, ")");
    items[1] = text;
    rs = build(items, 2, NULL, 0);
    fx_scratch *s = fx_scratch_new();
    CHECK(fx_ruleset_eval(rs, v, NULL, NULL) == 0 && v[0].v == 40000.0, "wide SUM, no scratch");
    CHECK(fx_ruleset_eval(rs, v, NULL, s) == 0 && v[0].v == 40000.0, "wide SUM, scratch");
    fx_scratch_free(s);
    fx_ruleset_free(rs);
    free(text);
}

static void nesting_is_capped_at_256_levels(void) {
    char text[2048];
    for (int depth = 255; depth <= 257; depth++) {
        int o = 0;
        for (int i = 0; i < depth; i++)
            text[o++] = '(';
        text[o++] = '1';
        for (int i = 0; i < depth; i++)
            text[o++] = ')';
        text[o] = '\0';
        fx_ruleset *rs = fx_ruleset_new();
        fx_ruleset_add_item(rs, "X", true, text);
        char err[256];
        int r = fx_ruleset_compile(rs, err, sizeof err);
        if (depth <= 256)
            CHECK(r == 0, "%d levels: %s", depth, err);
        else
            CHECK_BUF(err, "X 1:257: formula nested too deeply (more than 256 levels)");
        fx_ruleset_free(rs);
    }
    /* 100,000 minus signs or NOTs stop at the cap too, without a crash */
    size_t n = 100000;
    char *big = malloc(n * 4 + 2);
    for (int kind = 0; kind < 2; kind++) {
        for (size_t i = 0; i < n; i++)
            memcpy(big + 4 * i, kind ? "NOT " : "  - ", 4);
        strcpy(big + 4 * n, "1");
        fx_ruleset *rs = fx_ruleset_new();
        fx_ruleset_add_item(rs, "X", true, big);
        char err[256];
        CHECK(fx_ruleset_compile(rs, err, sizeof err) == 1 && strstr(err, "nested too deeply"),
              "%s", err);
        fx_ruleset_free(rs);
    }
    free(big);
}

static void long_formula_chains_order_and_cycles(void) {
    /* F0 = 1, F1 = F0 + 1, ... added in reverse: the order must still be F0..Fn */
    enum { N = 3000 };
    fx_ruleset *rs = fx_ruleset_new();
    char code[32], text[64];
    for (int i = N - 1; i >= 0; i--) {
        snprintf(code, sizeof code, "F%d", i);
        if (i)
            snprintf(text, sizeof text, "F%d + 1", i - 1);
        else
            snprintf(text, sizeof text, "1");
        fx_ruleset_add_item(rs, code, true, text);
    }
    char err[256];
    CHECK(fx_ruleset_compile(rs, err, sizeof err) == 0, "chain: %s", err);
    CHECK_STR(fx_ruleset_slot_code(rs, fx_ruleset_order(rs, 0)), "F0");
    CHECK_STR(fx_ruleset_slot_code(rs, fx_ruleset_order(rs, N - 1)), "F2999");
    fx_value *v = calloc(N, sizeof *v);
    CHECK(fx_ruleset_eval(rs, v, NULL, NULL) == 0 && v[0].v == N, "F2999 = %g", v[0].v);
    free(v);
    fx_ruleset_free(rs);
    /* a cycle through all of them: one error with the whole path */
    rs = fx_ruleset_new();
    for (int i = 0; i < N; i++) {
        snprintf(code, sizeof code, "F%d", i);
        snprintf(text, sizeof text, "F%d + 1", (i + 1) % N);
        fx_ruleset_add_item(rs, code, true, text);
    }
    CHECK(fx_ruleset_compile(rs, err, sizeof err) == 1, "one cycle error");
    const fx_error *e = fx_ruleset_error(rs, 0);
    CHECK(e && !strncmp(e->text, "F0 1:1: cycle F0 -> F1 -> F2 -> ", 32), "%s", err);
    CHECK(e && strlen(e->text) > 6 * N && !strcmp(e->text + strlen(e->text) - 11, "F2999 -> F0"),
          "the path ends F2999 -> F0");
    fx_ruleset_free(rs);
}

/* ------------------------------------------------------------- threads */

typedef struct thread_job {
    const fx_ruleset *rs;
    int seed;
    int mismatches;
    fx_value want[8];
} thread_job;

static void vector_for(int k, fx_value *v) {
    memset(v, 0, 8 * sizeof *v);
    v[0] = fx_from_cents(100000 + k * 37);
    v[1] = fx_from_cents(-5000 + k * 11);
    v[2] = k % 5 ? fx_from_cents(k * 3) : fx_null();
}

static bool same_vector(const fx_value *a, const fx_value *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i].null != b[i].null || (!a[i].null && a[i].v != b[i].v))
            return false;
    return true;
}

static void *eval_many(void *arg) {
    thread_job *j = arg;
    fx_scratch *s = fx_scratch_new();
    fx_value v[8], a[2];
    for (int k = 0; k < 20000; k++) {
        vector_for(j->seed, v);
        if (fx_ruleset_eval(j->rs, v, a, s) != 0 || !same_vector(v, j->want, 8))
            j->mismatches++;
    }
    fx_scratch_free(s);
    return NULL;
}

static void evaluation_is_thread_safe(void) {
    fx_ruleset *rs = build(std_items, 16, std_audits, 4);
    thread_job jobs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (thread_job){.rs = rs, .seed = t * 1000 + 1};
        vector_for(jobs[t].seed, jobs[t].want);
        fx_value a[2];
        fx_ruleset_eval(rs, jobs[t].want, a, NULL);
        pthread_create(&th[t], NULL, eval_many, &jobs[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(jobs[t].mismatches == 0, "thread %d: %d mismatches", t, jobs[t].mismatches);
    }
    fx_ruleset_free(rs);
}

/* ---------------------------------------------------------------- main */

static int replay(const char *dir) {
    size_t n;
    char **names = list_dir(dir, &n);
    if (!names) {
        fprintf(stderr, "cannot read %s: %s\n", dir, strerror(errno));
        printf("not ok - fx replay %s\n0 passed, 1 failed\n", dir);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        unsigned char *data = read_file(path, &len);
        if (!data)
            continue;
        fprintf(stderr, "# %s\n", path);   /* the last one names a crashing input */
        LLVMFuzzerTestOneInput(data, len); /* aborts on a broken oracle */
        free(data);
    }
    printf("ok - fx replay of %zu corpus inputs from %s\n1 passed, 0 failed\n", n, dir);
    free_list(names, n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--replay"))
        return replay(argv[2]);
    int passed = 0, failed = 0, total_cases = 0;
    size_t n;
    char **files = list_dir(CASES_DIR, &n);
    if (!files || n == 0) {
        printf("not ok - fx cases: no files in %s (run from the repository root)\n", CASES_DIR);
        failed++;
    }
    for (size_t i = 0; files && i < n; i++) {
        size_t len = strlen(files[i]);
        if (len < 4 || strcmp(files[i] + len - 4, ".txt"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", CASES_DIR, files[i]);
        int before = case_failures;
        int cases = run_case_file(path, files[i]);
        total_cases += cases;
        bool ok = case_failures == before && cases > 0;
        printf("%s - fx cases %s (%d cases)\n", ok ? "ok" : "not ok", files[i], cases);
        ok ? passed++ : failed++;
    }
    if (files)
        free_list(files, n);
    fprintf(stderr, "  %d formula cases in %s\n", total_cases, CASES_DIR);

    harness_case tests[] = {
        TEST(storage_rounds_half_away_from_zero_at_cents),
        TEST(base_items_enter_as_cents_over_100),
        TEST(serialize_round_trip_is_exact_and_deterministic),
        TEST(deserialize_rejects_truncated_and_corrupt_blobs),
        TEST(deserialize_rejects_an_order_that_reads_ahead),
        TEST(errors_are_all_listed_with_their_source),
        TEST(order_is_topological_and_first_added_first),
        TEST(long_chains_and_wide_calls_do_not_recurse),
        TEST(nesting_is_capped_at_256_levels),
        TEST(long_formula_chains_order_and_cycles),
        TEST(evaluation_is_thread_safe),
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = harness_failed_checks;
        tests[i].fn();
        bool ok = harness_failed_checks == before;
        printf("%s - %s\n", ok ? "ok" : "not ok", tests[i].name);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
