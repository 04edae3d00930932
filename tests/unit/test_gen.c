/* Unit tests of the pure parts of alloc-gen: the PRNG and sampling helpers,
 * COPY text encoding, the world and ruleset builders (every formula and audit
 * rule valid per DESIGN.md 5.5, acyclic, covering the whole grammar) and the
 * determinism of the ledger rows. The Makefile links unit tests against
 * liballoc.a only, so the generator's pure sources are compiled in here. */
#include "harness.h"

#include "../../tools/gen/gen_ledger.c"
#include "../../tools/gen/gen_rng.c"
#include "../../tools/gen/gen_ruleset.c"
#include "../../tools/gen/gen_text.c"
#include "../../tools/gen/gen_world.c"

#include <ctype.h>
#include <stdbool.h>
#include <strings.h>

/* ------------------------------------------------------------- RNG */

static void test_splitmix64_known_values(void) {
    uint64_t st = 0;
    CHECK(gen_splitmix64(&st) == 0xe220a8397b1dcdafULL, "first splitmix64 output of state 0");
    CHECK(gen_splitmix64(&st) == 0x6e789e6aa1b965f4ULL, "second splitmix64 output of state 0");
}

static void test_rng_deterministic_and_streams_differ(void) {
    gen_rng a, b, c;
    gen_rng_seed(&a, 42, 7);
    gen_rng_seed(&b, 42, 7);
    gen_rng_seed(&c, 42, 8);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = gen_rng_next(&a), y = gen_rng_next(&b), z = gen_rng_next(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same, "same seed and stream gave different numbers");
    CHECK(differ > 990, "streams 7 and 8 agree on %d of 1000 outputs", 1000 - differ);
}

static void test_rng_below_is_in_range_and_uniform(void) {
    gen_rng r;
    gen_rng_seed(&r, 1, 1);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t x = gen_rng_below(&r, 10);
        CHECK(x < 10, "below(10) gave %llu", (unsigned long long)x);
        if (x < 10)
            counts[x]++;
    }
    for (int k = 0; k < 10; k++)
        CHECK(counts[k] > 9500 && counts[k] < 10500, "value %d drawn %d times of 100000", k,
              counts[k]);
    for (int i = 0; i < 1000; i++) {
        int64_t v = gen_rng_range(&r, -3, 3);
        CHECK(v >= -3 && v <= 3, "range(-3, 3) gave %lld", (long long)v);
    }
}

static void test_picker_follows_weights(void) {
    double w[] = {1, 0, 3};
    gen_picker p;
    CHECK(gen_picker_init(&p, w, 3) == 0, "picker init");
    gen_rng r;
    gen_rng_seed(&r, 9, 9);
    int counts[3] = {0};
    for (int i = 0; i < 40000; i++)
        counts[gen_picker_pick(&p, &r)]++;
    CHECK(counts[1] == 0, "zero weight drawn %d times", counts[1]);
    CHECK(counts[2] > 29000 && counts[2] < 31000, "weight 3 of 4 drawn %d of 40000", counts[2]);
    gen_picker_free(&p);
    double none[] = {0, 0};
    CHECK(gen_picker_init(&p, none, 2) == -1, "all-zero weights must fail");
}

static void test_apportion_is_exact(void) {
    double w[30];
    int64_t out[30];
    gen_zipf_weights(w, 30, 1.0);
    CHECK(gen_apportion(2000000, w, 30, 1, out) == 0, "apportion");
    int64_t sum = 0;
    for (int i = 0; i < 30; i++)
        sum += out[i];
    CHECK_EQ_LL(sum, 2000000);
    CHECK(out[0] > 495000 && out[0] < 505000, "largest Zipf(1) part of 30: %lld",
          (long long)out[0]);
    CHECK(gen_apportion(37, w, 30, 1, out) == 0, "apportion small");
    sum = 0;
    int64_t min = out[0];
    for (int i = 0; i < 30; i++) {
        sum += out[i];
        if (out[i] < min)
            min = out[i];
    }
    CHECK_EQ_LL(sum, 37);
    CHECK_EQ_LL(min, 1);
    double even[] = {1, 1, 1};
    CHECK(gen_apportion(10, even, 3, 0, out) == 0, "apportion even");
    CHECK(out[0] == 4 && out[1] == 3 && out[2] == 3, "ties go to the lower index: %lld %lld %lld",
          (long long)out[0], (long long)out[1], (long long)out[2]);
}

/* ------------------------------------------------------------- text */

static void test_format_fixed(void) {
    char buf[32];
    const char *b = buf;
    gen_format_fixed(buf, -123456, 2);
    CHECK_STR(b, "-1234.56");
    gen_format_fixed(buf, 0, 2);
    CHECK_STR(b, "0.00");
    gen_format_fixed(buf, -5, 2);
    CHECK_STR(b, "-0.05");
    gen_format_fixed(buf, 5000000, 6);
    CHECK_STR(b, "5.000000");
    gen_format_fixed(buf, 42, 0);
    CHECK_STR(b, "42");
    gen_format_fixed(buf, INT64_MIN, 2);
    CHECK_STR(b, "-92233720368547758.08");
}

static void test_copy_escaping(void) {
    gen_text t;
    gen_text_init(&t);
    gen_copy_field(&t, "a b");
    gen_copy_field(&t, NULL);
    gen_copy_field(&t, "x\ty\nz\\w");
    gen_copy_fixed(&t, -100, 2);
    gen_copy_end_row(&t);
    gen_copy_field(&t, "next");
    gen_copy_end_row(&t);
    CHECK_STR(t.text.data, "a b\t\\N\tx\\ty\\nz\\\\w\t-1.00\nnext\n");
    gen_text_free(&t);
}

/* ------------------------------------------------------------- world */

static void test_world_seed_scale_shape(void) {
    gen_world *w = gen_world_std(1.0);
    CHECK(w != NULL, "world");
    if (!w)
        return;
    CHECK_EQ_LL(w->n_cities, 30);
    CHECK_EQ_LL(w->n_projects, 3000);
    CHECK_EQ_LL(w->n_companies, 7);
    int64_t rows = 0, pending = 0;
    size_t inactive = 0, biggest = 0;
    for (size_t c = 0; c < w->n_cities; c++) {
        rows += w->cities[c].rows;
        pending += w->cities[c].pending;
        CHECK(w->cities[c].pending <= w->cities[c].rows, "city %s", w->cities[c].code);
        if (w->cities[c].rows > w->cities[biggest].rows)
            biggest = c;
    }
    CHECK_EQ_LL(rows, 2000000);
    CHECK_EQ_LL(pending, 400000);
    CHECK(w->cities[biggest].n_projects >= 550 && w->cities[biggest].n_projects <= 650,
          "largest city has %zu projects", w->cities[biggest].n_projects);
    double share = (double)w->cities[biggest].rows / (double)rows;
    CHECK(share > 0.24 && share < 0.26, "largest city share %.3f", share);
    for (size_t p = 0; p < w->n_projects; p++)
        inactive += !w->projects[p].active;
    CHECK(inactive > 30 && inactive < 120, "%zu inactive projects of 3000", inactive);
    gen_world_free(w);
}

static void test_world_small_scale_keeps_every_city(void) {
    gen_world *w = gen_world_std(0.01);
    CHECK(w != NULL, "world");
    if (!w)
        return;
    CHECK_EQ_LL(w->n_projects, GEN_MIN_PROJECTS);
    CHECK_EQ_LL(w->rows, 20000);
    CHECK_EQ_LL(w->pending, 4000);
    int no_active = 0, no_revenue = 0;
    for (size_t c = 0; c < w->n_cities; c++) {
        const gen_city *city = &w->cities[c];
        CHECK(city->n_projects >= 1, "city %s has no project", city->code);
        CHECK(city->n_companies >= 1 && city->n_companies <= 3, "city %s has %d companies",
              city->code, city->n_companies);
        size_t active = 0;
        for (size_t i = 0; i < city->n_projects; i++)
            active += w->projects[city->first_project + i].active;
        if (city->no_active) {
            no_active++;
            CHECK(active == 0, "no_active city %s has %zu active projects", city->code, active);
        } else {
            CHECK(active >= 1, "city %s has no active project", city->code);
        }
        no_revenue += city->no_revenue;
    }
    CHECK_EQ_LL(no_active, 1);
    CHECK_EQ_LL(no_revenue, 1);
    gen_world_free(w);
}

static void test_drivers_zero_weight_city(void) {
    gen_world *w = gen_world_std(0.05);
    gen_drivers *d = w ? gen_drivers_build(w, 1, "2026-10") : NULL;
    CHECK(d != NULL, "drivers");
    if (!d) {
        gen_world_free(w);
        return;
    }
    size_t zeros = 0, rev_city_nonzero = 0;
    for (int k = 0; k < GEN_N_DRIVERS; k++)
        for (size_t p = 0; p < w->n_projects; p++) {
            int64_t v = d->value[(size_t)k * w->n_projects + p];
            CHECK(v >= 0, "negative driver value");
            zeros += v == 0;
            if (k == 2 && w->cities[w->projects[p].city].zero_revenue_driver)
                rev_city_nonzero += v != 0;
        }
    CHECK(zeros > 0, "no zero driver values");
    CHECK_EQ_LL(rev_city_nonzero, 0);
    gen_drivers *d2 = gen_drivers_build(w, 1, "2026-10");
    CHECK(d2 && !memcmp(d->value, d2->value, GEN_N_DRIVERS * w->n_projects * sizeof(int64_t)),
          "drivers differ between two builds with the same seed");
    gen_drivers_free(d2);
    gen_drivers_free(d);
    gen_world_free(w);
}

/* ------------------------------------------------------ formula grammar */

/* A recognizer of the DESIGN.md 5.5 grammar that records the references and
 * which constructs occur, so the test can tell the ruleset uses them all. */
typedef struct fx_check {
    const char *src, *p;
    char err[160];
    char refs[64][48];
    int n_refs;
    /* coverage */
    bool op[4], unary_minus, unary_plus, cmp[6], and_, or_, not_, fn[7], round_n[7];
    bool num_frac, num_leading_dot, bracket_space, bracket_bare, lower_keyword, newline;
} fx_check;

static const char *const fx_funcs[7] = {"SUM", "IF", "ROUND", "ABS", "MIN", "MAX", "COALESCE"};
static const char *const fx_cmps[6] = {"=", "<>", "<", "<=", ">", ">="};

static void fx_ws(fx_check *c) {
    while (isspace((unsigned char)*c->p)) {
        if (*c->p == '\n')
            c->newline = true;
        c->p++;
    }
}

static bool fx_fail(fx_check *c, const char *what) {
    if (!c->err[0])
        snprintf(c->err, sizeof c->err, "%s at offset %d", what, (int)(c->p - c->src));
    return false;
}

/* Matches a keyword (case-insensitive) not followed by an identifier character. */
static bool fx_keyword(fx_check *c, const char *kw) {
    fx_ws(c);
    size_t n = strlen(kw);
    if (strncasecmp(c->p, kw, n) || isalnum((unsigned char)c->p[n]) || c->p[n] == '_')
        return false;
    if (strncmp(c->p, kw, n))
        c->lower_keyword = true;
    c->p += n;
    return true;
}

static bool fx_expr(fx_check *c);

static bool fx_primary(fx_check *c) {
    fx_ws(c);
    const char *s = c->p;
    if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
        if (*s == '.')
            c->num_leading_dot = true;
        while (isdigit((unsigned char)*c->p))
            c->p++;
        if (*c->p == '.') {
            c->p++;
            if (!isdigit((unsigned char)*c->p))
                return fx_fail(c, "digit expected after '.'");
            c->num_frac = true;
            while (isdigit((unsigned char)*c->p))
                c->p++;
        }
        return true;
    }
    if (*s == '(') {
        c->p++;
        if (!fx_expr(c))
            return false;
        fx_ws(c);
        if (*c->p != ')')
            return fx_fail(c, "')' expected");
        c->p++;
        return true;
    }
    if (*s == '[') {
        const char *e = strchr(s + 1, ']');
        if (!e || e == s + 1)
            return fx_fail(c, "unterminated or empty [item]");
        bool bare = isalpha((unsigned char)s[1]) || s[1] == '_';
        for (const char *q = s + 1; q < e; q++) {
            if (*q == ' ')
                c->bracket_space = true;
            if (!isalnum((unsigned char)*q) && *q != '_')
                bare = false;
        }
        if (bare)
            c->bracket_bare = true;
        if (c->n_refs < 64)
            snprintf(c->refs[c->n_refs++], 48, "%.*s", (int)(e - s - 1), s + 1);
        c->p = e + 1;
        return true;
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        const char *e = s;
        while (isalnum((unsigned char)*e) || *e == '_')
            e++;
        const char *q = e;
        while (isspace((unsigned char)*q))
            q++;
        for (int f = 0; f < 7 && *q == '('; f++) {
            if ((size_t)(e - s) != strlen(fx_funcs[f]) ||
                strncasecmp(s, fx_funcs[f], (size_t)(e - s)))
                continue;
            if (strncmp(s, fx_funcs[f], (size_t)(e - s)))
                c->lower_keyword = true;
            c->fn[f] = true;
            c->p = q + 1;
            int args = 0;
            fx_ws(c);
            const char *last_arg = NULL;
            if (*c->p != ')') {
                for (;;) {
                    fx_ws(c);
                    last_arg = c->p;
                    if (!fx_expr(c))
                        return false;
                    args++;
                    fx_ws(c);
                    if (*c->p == ',') {
                        c->p++;
                        continue;
                    }
                    break;
                }
            }
            if (*c->p != ')')
                return fx_fail(c, "')' expected after arguments");
            int ok = f == 0   ? 1
                     : f == 1 ? args == 3
                     : f == 2 ? args == 2
                     : f == 3 ? args == 1
                              : args >= 1;
            if (!ok)
                return fx_fail(c, "wrong number of arguments");
            if (f == 2) {
                /* ROUND's second argument: an integer literal 0..6 */
                int n = -1;
                if (isdigit((unsigned char)last_arg[0]) &&
                    (last_arg[1] == ')' || isspace((unsigned char)last_arg[1])))
                    n = last_arg[0] - '0';
                if (n < 0 || n > 6)
                    return fx_fail(c, "ROUND digits must be a literal 0..6");
                c->round_n[n] = true;
            }
            c->p++;
            return true;
        }
        static const char *const reserved[] = {"AND", "OR", "NOT"};
        for (int k = 0; k < 3; k++)
            if ((size_t)(e - s) == strlen(reserved[k]) &&
                !strncasecmp(s, reserved[k], (size_t)(e - s)))
                return fx_fail(c, "keyword where an operand was expected");
        if (c->n_refs < 64)
            snprintf(c->refs[c->n_refs++], 48, "%.*s", (int)(e - s), s);
        c->p = e;
        return true;
    }
    return fx_fail(c, "operand expected");
}

static bool fx_unary(fx_check *c) {
    fx_ws(c);
    if (*c->p == '-' || *c->p == '+') {
        if (*c->p == '-')
            c->unary_minus = true;
        else
            c->unary_plus = true;
        c->p++;
        return fx_unary(c);
    }
    return fx_primary(c);
}

static bool fx_mul(fx_check *c) {
    if (!fx_unary(c))
        return false;
    for (;;) {
        fx_ws(c);
        if (*c->p != '*' && *c->p != '/')
            return true;
        c->op[*c->p == '*' ? 2 : 3] = true;
        c->p++;
        if (!fx_unary(c))
            return false;
    }
}

static bool fx_add(fx_check *c) {
    if (!fx_mul(c))
        return false;
    for (;;) {
        fx_ws(c);
        if (*c->p != '+' && *c->p != '-')
            return true;
        c->op[*c->p == '+' ? 0 : 1] = true;
        c->p++;
        if (!fx_mul(c))
            return false;
    }
}

static bool fx_cmp(fx_check *c) {
    if (!fx_add(c))
        return false;
    fx_ws(c);
    int k = -1;
    if (c->p[0] == '<' && c->p[1] == '>')
        k = 1;
    else if (c->p[0] == '<' && c->p[1] == '=')
        k = 3;
    else if (c->p[0] == '>' && c->p[1] == '=')
        k = 5;
    else if (c->p[0] == '=')
        k = 0;
    else if (c->p[0] == '<')
        k = 2;
    else if (c->p[0] == '>')
        k = 4;
    if (k < 0)
        return true;
    c->cmp[k] = true;
    c->p += strlen(fx_cmps[k]);
    return fx_add(c);
}

static bool fx_not(fx_check *c) {
    if (fx_keyword(c, "NOT")) {
        c->not_ = true;
        return fx_not(c);
    }
    return fx_cmp(c);
}

static bool fx_and(fx_check *c) {
    if (!fx_not(c))
        return false;
    while (fx_keyword(c, "AND")) {
        c->and_ = true;
        if (!fx_not(c))
            return false;
    }
    return true;
}

static bool fx_expr(fx_check *c) {
    if (!fx_and(c))
        return false;
    while (fx_keyword(c, "OR")) {
        c->or_ = true;
        if (!fx_and(c))
            return false;
    }
    return true;
}

/* Parses text into c (keeping coverage flags already set); true when valid. */
static bool fx_parse(fx_check *c, const char *text) {
    c->src = c->p = text;
    c->err[0] = '\0';
    c->n_refs = 0;
    if (!fx_expr(c))
        return false;
    fx_ws(c);
    if (*c->p)
        return fx_fail(c, "trailing text");
    return true;
}

/* Checks every formula and audit rule of rs: valid, references known items,
 * no cycle among formula items. Coverage goes to *cov. */
static void check_ruleset_formulas(const gen_ruleset *rs, fx_check *cov,
                                   bool *formula_refs_formula) {
    size_t n = rs->n_items;
    int *state = calloc(n, sizeof(int)); /* dependency DFS: 0 new, 1 on stack, 2 done */
    /* adjacency: deps[i] lists formula items item i refers to */
    size_t(*deps)[64] = calloc(n, sizeof *deps);
    int *n_deps = calloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        const gen_item *it = &rs->items[i];
        if (!it->formula)
            continue;
        CHECK(fx_parse(cov, it->text), "formula %s invalid: %s: %s", it->code, cov->err, it->text);
        for (int r = 0; r < cov->n_refs; r++) {
            long k = gen_ruleset_find(rs, cov->refs[r]);
            CHECK(k >= 0, "formula %s refers to unknown item '%s'", it->code, cov->refs[r]);
            CHECK(k != (long)i, "formula %s refers to itself", it->code);
            if (k >= 0 && rs->items[k].formula) {
                *formula_refs_formula = true;
                deps[i][n_deps[i]++] = (size_t)k;
            }
        }
    }
    for (size_t a = 0; a < rs->n_audits; a++) {
        CHECK(fx_parse(cov, rs->audits[a].expr), "audit rule %s invalid: %s", rs->audits[a].code,
              cov->err);
        for (int r = 0; r < cov->n_refs; r++)
            CHECK(gen_ruleset_find(rs, cov->refs[r]) >= 0,
                  "audit rule %s refers to unknown item '%s'", rs->audits[a].code, cov->refs[r]);
    }
    /* Cycle check: iterative relaxation, a formula is done when its deps are. */
    size_t done = 0;
    for (size_t pass = 0; pass < n; pass++) {
        size_t progressed = 0;
        for (size_t i = 0; i < n; i++) {
            if (!rs->items[i].formula || state[i] == 2)
                continue;
            bool ready = true;
            for (int d = 0; d < n_deps[i]; d++)
                ready &= state[deps[i][d]] == 2;
            if (ready) {
                state[i] = 2;
                progressed++;
                done++;
            }
        }
        if (!progressed)
            break;
    }
    CHECK_EQ_LL(done, rs->n_formula);
    free(state);
    free(deps);
    free(n_deps);
}

/* The recognizer itself must refuse what the grammar refuses, or the ruleset
 * checks below prove nothing. */
static void test_recognizer_rejects_bad_formulas(void) {
    static const char *const bad[] = {
        "ROUND(A, 7)", "ROUND(A, 1.5)", "ROUND(A, B)", "A +",    "IF(A, B)", "[A",
        "1.",          "NOT",           "A AND OR B",  "A B",    "(A",       "ABS()",
        "-",           "A <> ",         "SUM(A,)",     "A = = B"};
    static const char *const good[] = {
        "A",     "[x y]",       ".5 + 0.25",         "-+-A",        "NOT NOT A",
        "sum()", "If(A, B, C)", "A <= B AND C <> D", "round(A, 0)", "Coalesce(A / 0, 1)"};
    fx_check c;
    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!fx_parse(&c, bad[i]), "accepted invalid formula '%s'", bad[i]);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(fx_parse(&c, good[i]), "refused valid formula '%s': %s", good[i], c.err);
}

static void test_std_ruleset_shape(void) {
    gen_ruleset *rs = gen_ruleset_std();
    CHECK(rs != NULL, "ruleset");
    if (!rs)
        return;
    CHECK_EQ_LL(rs->n_items, 500);
    CHECK_EQ_LL(rs->n_base, 450);
    CHECK_EQ_LL(rs->n_formula, 50);
    int spaced = 0, defaults_m = 0, defaults_f = 0;
    for (size_t i = 0; i < rs->n_items; i++) {
        CHECK(gen_ruleset_find(rs, rs->items[i].code) == (long)i, "duplicate item code %s",
              rs->items[i].code);
        CHECK(rs->items[i].sort_order == 10 * (int)(i + 1), "sort order of %s", rs->items[i].code);
        CHECK(rs->items[i].name[0] != '\0', "item %s has no name", rs->items[i].code);
        if (!rs->items[i].formula && strchr(rs->items[i].code, ' '))
            spaced++;
    }
    CHECK(spaced >= 3, "only %d base item codes hold spaces", spaced);
    for (size_t r = 0; r < rs->n_rules; r++) {
        const gen_alloc_rule *ru = &rs->rules[r];
        if (!strcmp(ru->item_code, "*")) {
            defaults_m += !strcmp(ru->version, "M");
            defaults_f += !strcmp(ru->version, "F");
            continue;
        }
        long k = gen_ruleset_find(rs, ru->item_code);
        CHECK(k >= 0 && !rs->items[k].formula, "rule for %s: not a base item", ru->item_code);
        CHECK(!strcmp(ru->scope, "city") || !strcmp(ru->scope, "company"), "scope %s", ru->scope);
    }
    CHECK_EQ_LL(defaults_m, 1);
    CHECK_EQ_LL(defaults_f, 1);
    /* M and F differ for some items. */
    int differ = 0;
    for (size_t i = 0; i < rs->n_items; i++) {
        if (rs->items[i].formula)
            continue;
        const gen_alloc_rule *m = gen_ruleset_rule_for(rs, "M", rs->items[i].code);
        const gen_alloc_rule *f = gen_ruleset_rule_for(rs, "F", rs->items[i].code);
        differ += strcmp(m->driver, f->driver) || strcmp(m->scope, f->scope);
    }
    CHECK(differ > 0, "M and F rules never differ");
    /* Budget item codes and account codes are unique binding keys. */
    for (size_t i = 0; i < rs->n_items; i++)
        for (int k = 0; k < rs->items[i].n_budget; k++)
            for (size_t j = i; j < rs->n_items; j++)
                for (int l = j == i ? k + 1 : 0; l < rs->items[j].n_budget; l++)
                    CHECK(strcmp(rs->items[i].budget[k], rs->items[j].budget[l]),
                          "budget code %s bound twice", rs->items[i].budget[k]);
    for (size_t a = 0; a < rs->n_accounts; a++) {
        CHECK(!rs->items[rs->accounts[a].item].formula, "account %s bound to a formula",
              rs->accounts[a].code);
        for (size_t b = a + 1; b < rs->n_accounts; b++)
            CHECK(strcmp(rs->accounts[a].code, rs->accounts[b].code), "account %s twice",
                  rs->accounts[a].code);
    }
    CHECK(rs->n_audits >= 3 && rs->n_audits <= 6, "%zu audit rules", rs->n_audits);
    int errors = 0, warnings = 0;
    for (size_t a = 0; a < rs->n_audits; a++) {
        errors += !strcmp(rs->audits[a].severity, "error");
        warnings += !strcmp(rs->audits[a].severity, "warning");
    }
    CHECK(errors > 0 && warnings > 0 && errors + warnings == (int)rs->n_audits, "audit severities");
    gen_ruleset_free(rs);
}

static void test_std_formulas_valid_acyclic_cover_grammar(void) {
    gen_ruleset *rs = gen_ruleset_std();
    if (!rs)
        return;
    fx_check cov;
    memset(&cov, 0, sizeof cov);
    bool refs_formula = false;
    check_ruleset_formulas(rs, &cov, &refs_formula);
    static const char *const opn[4] = {"+", "-", "*", "/"};
    for (int k = 0; k < 4; k++)
        CHECK(cov.op[k], "operator %s unused", opn[k]);
    for (int k = 0; k < 6; k++)
        CHECK(cov.cmp[k], "comparison %s unused", fx_cmps[k]);
    for (int k = 0; k < 7; k++)
        CHECK(cov.fn[k], "function %s unused", fx_funcs[k]);
    for (int k = 0; k <= 6; k++)
        CHECK(cov.round_n[k], "ROUND(x, %d) unused", k);
    CHECK(cov.unary_minus && cov.unary_plus, "unary minus/plus unused");
    CHECK(cov.and_ && cov.or_ && cov.not_, "AND/OR/NOT unused");
    CHECK(cov.num_frac && cov.num_leading_dot, "numbers like 0.5 and .25 unused");
    CHECK(cov.bracket_space, "no [bracketed code with spaces]");
    CHECK(cov.bracket_bare, "no [BRACKETED] plain code");
    CHECK(cov.lower_keyword, "keywords never change case");
    CHECK(cov.newline, "no multi-line formula");
    CHECK(refs_formula, "no formula refers to another formula");
    gen_ruleset_free(rs);
}

static void test_demo_ruleset(void) {
    gen_ruleset *rs = gen_ruleset_demo();
    CHECK(rs != NULL, "demo ruleset");
    if (!rs)
        return;
    CHECK_EQ_LL(rs->n_items, 10);
    CHECK(rs->n_formula >= 3 && rs->n_formula <= 4, "%zu demo formulas", rs->n_formula);
    fx_check cov;
    memset(&cov, 0, sizeof cov);
    bool refs_formula = false;
    check_ruleset_formulas(rs, &cov, &refs_formula);
    CHECK(gen_ruleset_rule_for(rs, "M", "STAFF_COST") != NULL, "M default rule");
    CHECK(gen_ruleset_rule_for(rs, "F", "STAFF_COST") != NULL, "F default rule");
    gen_ruleset_free(rs);
}

/* ------------------------------------------------------------- ledger */

/* All COPY text of a period, or NULL. */
static char *ledger_text(const gen_world *w, const gen_ruleset *rs, uint64_t seed,
                         const char *period, gen_ledger_stats *total) {
    gen_drivers *d = gen_drivers_build(w, seed, period);
    gen_ledger *g = d ? gen_ledger_new(w, rs, d, period, seed) : NULL;
    gen_text t;
    gen_text_init(&t);
    int more = 1;
    while (g && more > 0)
        more = gen_ledger_fill(g, &t, t.text.len + 4096);
    if (g && total)
        gen_ledger_total_stats(g, total);
    gen_ledger_free(g);
    gen_drivers_free(d);
    return more == 0 ? strbuf_take(&t.text) : (gen_text_free(&t), NULL);
}

static bool bound(const gen_ruleset *rs, const char *budget, const char *account) {
    for (size_t i = 0; i < rs->n_items; i++)
        for (int k = 0; k < rs->items[i].n_budget; k++)
            if (!strcmp(rs->items[i].budget[k], budget))
                return true;
    for (size_t a = 0; a < rs->n_accounts; a++)
        if (!strcmp(rs->accounts[a].code, account))
            return true;
    return false;
}

static void test_ledger_deterministic_and_bound(void) {
    gen_world *w = gen_world_std(0.005);
    gen_ruleset *rs = gen_ruleset_std();
    gen_ledger_stats st;
    char *a = w && rs ? ledger_text(w, rs, 1, "2026-10", &st) : NULL;
    char *b = w && rs ? ledger_text(w, rs, 1, "2026-10", NULL) : NULL;
    char *c = w && rs ? ledger_text(w, rs, 2, "2026-10", NULL) : NULL;
    CHECK(a && b && c, "ledger text");
    if (a && b && c) {
        CHECK(!strcmp(a, b), "same seed gave different rows");
        CHECK(strcmp(a, c), "seeds 1 and 2 gave the same rows");
        CHECK_EQ_LL(st.rows, 10000);
        CHECK_EQ_LL(st.pending, 2000);
        CHECK(st.negative > 0 && st.zero > 0 && st.mgmt_diff > 0 && st.via_account > 0,
              "negative %lld zero %lld mgmt_diff %lld via_account %lld", (long long)st.negative,
              (long long)st.zero, (long long)st.mgmt_diff, (long long)st.via_account);
        /* Every row: 9 fields and bound by budget item or account. */
        int64_t lines = 0, unbound = 0, bad = 0;
        for (char *line = a; *line;) {
            char *end = strchr(line, '\n');
            *end = '\0';
            char *f[9];
            int n = 0;
            for (char *p = line; n < 9; n++) {
                f[n] = p;
                char *tab = strchr(p, '\t');
                if (!tab) {
                    n++;
                    break;
                }
                *tab = '\0';
                p = tab + 1;
            }
            if (n != 9)
                bad++;
            else if (!bound(rs, f[4], f[5]))
                unbound++;
            lines++;
            line = end + 1;
        }
        CHECK_EQ_LL(lines, 10000);
        CHECK_EQ_LL(bad, 0);
        CHECK_EQ_LL(unbound, 0);
    }
    free(a);
    free(b);
    free(c);
    gen_ruleset_free(rs);
    gen_world_free(w);
}

static void test_ledger_period_changes_rows(void) {
    gen_world *w = gen_world_demo();
    gen_ruleset *rs = gen_ruleset_demo();
    gen_ledger_stats st;
    char *a = w && rs ? ledger_text(w, rs, 1, "2026-10", &st) : NULL;
    char *b = w && rs ? ledger_text(w, rs, 1, "2026-11", NULL) : NULL;
    CHECK(a && b, "demo ledger text");
    if (a && b) {
        CHECK_EQ_LL(st.rows, 200);
        CHECK_EQ_LL(st.pending, 40);
        /* Skip the period column: the amounts themselves must differ. */
        CHECK(strcmp(a + 8, b + 8), "two periods of one seed gave the same rows");
    }
    free(a);
    free(b);
    gen_ruleset_free(rs);
    gen_world_free(w);
}

TEST_MAIN(TEST(test_splitmix64_known_values), TEST(test_rng_deterministic_and_streams_differ),
          TEST(test_rng_below_is_in_range_and_uniform), TEST(test_picker_follows_weights),
          TEST(test_apportion_is_exact), TEST(test_format_fixed), TEST(test_copy_escaping),
          TEST(test_world_seed_scale_shape), TEST(test_world_small_scale_keeps_every_city),
          TEST(test_drivers_zero_weight_city), TEST(test_recognizer_rejects_bad_formulas),
          TEST(test_std_ruleset_shape), TEST(test_std_formulas_valid_acyclic_cover_grammar),
          TEST(test_demo_ruleset), TEST(test_ledger_deterministic_and_bound),
          TEST(test_ledger_period_changes_rows))
