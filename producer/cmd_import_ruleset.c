/* alloc-producer import --kind ruleset --file R.json: replaces one ruleset's
 * report items, bindings, allocation rules and audit rules (and upserts report
 * versions) from a JSON file laid out as schemas/ruleset.schema.json says.
 *
 * All-or-nothing: the whole file is parsed and every element validated (types,
 * enums, duplicates, references), every formula and audit rule compiled with
 * the same compiler the run uses (formulas_compile_mem), and the versions the
 * allocation rules name checked against the database, before one transaction
 * deletes the ruleset's rows and inserts the new ones. Any error names the
 * element ("R.json: bindings[3]: item X is not a base item") and exits 3 with
 * nothing changed. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "drivers.h"
#include "formulas.h"
#include "fx.h"
#include "import_json.h"
#include "review.h"

#define IMPORT_MAX_FILE (64L * 1024 * 1024) /* a ruleset file is small; refuse absurd ones */
#define IMPORT_MAX_SHOWN 200                /* error lines printed before "... and N more" */
#define RULESET_NAME_MAX 64

/* One validation pass over a file: where errors go and how many there were. */
typedef struct import_check {
    const char *file;
    int errors;
} import_check;

/* Prints "FILE: <message>" (the first IMPORT_MAX_SHOWN of them; the format of
 * the CSV imports' "F.csv:17: ..." lines) and counts the error. */
static void bad(import_check *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(import_check *ck, const char *fmt, ...) {
    if (ck->errors++ >= IMPORT_MAX_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", ck->file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The element's name in messages: "items[3]", or "items[3] (CODE)" once its code is known. */
static void element_name(char *buf, size_t len, const char *array, size_t i, const char *code) {
    if (code)
        snprintf(buf, len, "%s[%zu] (%s)", array, i, code);
    else
        snprintf(buf, len, "%s[%zu]", array, i);
}

/* Reports every key of obj that is not in allowed (a NULL-terminated list). */
static void check_keys(import_check *ck, json_t *obj, const char *where,
                       const char *const *allowed) {
    void *it = NULL;
    for (const char *key; (key = import_json_unknown_key(obj, allowed, 0, &it));)
        bad(ck, "%s: unknown field \"%s\"", where, key);
}

/* Whether s holds a control character (codes never do: they appear in keys,
 * CSV exports and one-line messages). */
static int has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Field `key` of obj as a string. Returns it, or NULL: after reporting the
 * problem (missing when required, wrong type, or for a code empty or with
 * control characters), or silently when it is optional and absent. */
enum { FIELD_REQUIRED = 1, FIELD_CODE = 2 };
static const char *get_string(import_check *ck, json_t *obj, const char *key, const char *where,
                              int flags) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (flags & FIELD_REQUIRED)
            bad(ck, "%s: \"%s\" is missing", where, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        bad(ck, "%s: \"%s\" must be a string", where, key);
        return NULL;
    }
    const char *s = json_string_value(v);
    if ((flags & FIELD_CODE) && (!*s || has_control(s))) {
        bad(ck, "%s: \"%s\" must be a non-empty code without control characters", where, key);
        return NULL;
    }
    return s;
}

/* The array `key` of the root, or NULL after reporting it missing or not an
 * array (when optional and absent: NULL, no error). */
static json_t *get_array(import_check *ck, json_t *root, const char *key, int required) {
    json_t *a = json_object_get(root, key);
    if (!a) {
        if (required)
            bad(ck, "\"%s\" is missing (an empty list is [])", key);
        return NULL;
    }
    if (!json_is_array(a)) {
        bad(ck, "\"%s\" must be an array", key);
        return NULL;
    }
    return a;
}

/* The element's object, or NULL after reporting it is not one. */
static json_t *element_object(import_check *ck, json_t *array, size_t i, const char *name) {
    json_t *o = json_array_get(array, i);
    if (!json_is_object(o)) {
        bad(ck, "%s[%zu]: must be an object", name, i);
        return NULL;
    }
    return o;
}

/* ---- keys: duplicate checks and lookups by sorting ----------------------------
 * A ruleset may hold many thousand bindings: no quadratic scans. */

typedef struct keyed {
    char *key; /* "a" or "a\x1fb" */
    size_t index;
} keyed;

typedef struct keyset {
    keyed *k;
    size_t n, cap;
    int sorted;
} keyset;

/* Adds element index with key a (and b, when not NULL); copies them. */
static void keyset_add(keyset *s, size_t index, const char *a, const char *b) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->k = realloc(s->k, s->cap * sizeof *s->k);
        ALLOC_ASSERT(s->k != NULL);
    }
    size_t la = strlen(a), lb = b ? strlen(b) + 1 : 0;
    char *key = malloc(la + lb + 1);
    ALLOC_ASSERT(key != NULL);
    memcpy(key, a, la);
    if (b) {
        key[la] = '\x1f';
        memcpy(key + la + 1, b, lb - 1);
    }
    key[la + lb] = '\0';
    s->k[s->n++] = (keyed){.key = key, .index = index};
    s->sorted = 0;
}

static int keyed_cmp(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->index < b->index ? -1 : a->index > b->index);
}

static void keyset_sort(keyset *s) {
    if (!s->sorted)
        qsort(s->k, s->n, sizeof *s->k, keyed_cmp);
    s->sorted = 1;
}

/* The first element (lowest index) with this key, or -1. */
static long keyset_find(keyset *s, const char *key) {
    keyset_sort(s);
    size_t lo = 0, hi = s->n;
    while (lo < hi) { /* the first entry whose key is >= key */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->k[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && !strcmp(s->k[lo].key, key) ? (long)s->k[lo].index : -1;
}

/* Reports, in element order, every element of `array` (nelements long) whose key
 * repeats an earlier element's: "array[i] (CODE): duplicate WHAT K (also
 * array[j])", the key K shown with sep between its parts; (CODE) only when
 * named (the key is the element's code). Fills first (may be NULL; nelements
 * long) with the index of the first element with the same key (i itself when
 * unique or keyless). */
static void keyset_report_duplicates(import_check *ck, keyset *s, const char *array,
                                     size_t nelements, int named, const char *what, const char *sep,
                                     size_t *first) {
    keyset_sort(s);
    size_t *firsts = malloc((nelements + 1) * sizeof *firsts);
    const char **keys = calloc(nelements + 1, sizeof *keys);
    ALLOC_ASSERT(firsts && keys);
    for (size_t i = 0; i < nelements; i++)
        firsts[i] = i;
    for (size_t g = 0; g < s->n;) {
        size_t e = g + 1;
        while (e < s->n && !strcmp(s->k[e].key, s->k[g].key))
            e++;
        for (size_t k = g; k < e; k++) {
            firsts[s->k[k].index] = s->k[g].index;
            keys[s->k[k].index] = s->k[k].key;
        }
        g = e;
    }
    for (size_t i = 0; i < nelements; i++) {
        if (first)
            first[i] = firsts[i];
        if (firsts[i] == i)
            continue;
        char shown[512], where[600];
        size_t n = 0;
        for (const char *p = keys[i]; *p && n + 8 < sizeof shown; p++) {
            if (*p == '\x1f')
                n += (size_t)snprintf(shown + n, sizeof shown - n, "%s", sep);
            else
                shown[n++] = *p;
        }
        shown[n] = '\0';
        element_name(where, sizeof where, array, i, named ? keys[i] : NULL);
        bad(ck, "%s: duplicate %s %s (also %s[%zu])", where, what, shown, array, firsts[i]);
    }
    free(firsts);
    free(keys);
}

static void keyset_free(keyset *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->k[i].key);
    free(s->k);
    memset(s, 0, sizeof *s);
}

/* ---- the parsed ruleset ------------------------------------------------------ */

typedef struct item_in {
    const char *code; /* NULL when the element's code is unusable */
    int is_formula;   /* -1 when the kind is bad */
    const char *formula;
    int sort_order;
    size_t first; /* index of the first element with this code (itself unless a duplicate) */
} item_in;

typedef struct ruleset_in {
    const char *name;
    json_t *items, *bindings, *rules, *audits, *versions;
    int parsed;        /* the file is a JSON object: its elements were checked */
    item_in *item;     /* one per element of items */
    keyset item_codes; /* the usable item codes, for lookups */
    size_t nitems;
    size_t nformula;
} ruleset_in;

/* Index of the first item element with this code, or -1. */
static long find_item(ruleset_in *r, const char *code) {
    return keyset_find(&r->item_codes, code);
}

/* "does not exist" / "is not a base item" for an item an element names, or NULL when fine. */
static const char *base_item_problem(ruleset_in *r, const char *code) {
    long k = find_item(r, code);
    if (k < 0)
        return "does not exist";
    if (r->item[k].is_formula == 1)
        return "is not a base item";
    return NULL;
}

static void check_items(import_check *ck, ruleset_in *r) {
    static const char *const keys[] = {"code", "name", "kind", "formula", "sort_order", NULL};
    r->nitems = r->items ? json_array_size(r->items) : 0;
    r->item = calloc(r->nitems ? r->nitems : 1, sizeof *r->item);
    ALLOC_ASSERT(r->item != NULL);
    if (r->items && r->nitems == 0)
        bad(ck, "\"items\" is empty: a ruleset needs report items");
    for (size_t i = 0; i < r->nitems; i++) {
        item_in *it = &r->item[i];
        it->first = i;
        it->is_formula = -1;
        json_t *o = element_object(ck, r->items, i, "items");
        if (!o)
            continue;
        char where[320];
        element_name(where, sizeof where, "items", i, NULL);
        const char *code = get_string(ck, o, "code", where, FIELD_REQUIRED | FIELD_CODE);
        if (code && !strcmp(code, "*")) {
            bad(ck, "%s: item code '*' is reserved (the default of allocation rules)", where);
            code = NULL;
        }
        element_name(where, sizeof where, "items", i, code);
        check_keys(ck, o, where, keys);
        if (code)
            keyset_add(&r->item_codes, i, code, NULL);
        it->code = code;
        const char *name = get_string(ck, o, "name", where, FIELD_REQUIRED);
        if (name && !*name)
            bad(ck, "%s: \"name\" is empty", where);
        const char *kind = get_string(ck, o, "kind", where, FIELD_REQUIRED);
        if (kind) {
            if (!strcmp(kind, "base"))
                it->is_formula = 0;
            else if (!strcmp(kind, "formula"))
                it->is_formula = 1;
            else
                bad(ck, "%s: \"kind\" must be \"base\" or \"formula\", not \"%s\"", where, kind);
        }
        json_t *f = json_object_get(o, "formula");
        if (f && !json_is_null(f) && !json_is_string(f))
            bad(ck, "%s: \"formula\" must be a string or null", where);
        else if (it->is_formula == 1 && (!f || json_is_null(f)))
            bad(ck, "%s: a formula item needs \"formula\"", where);
        else if (it->is_formula == 0 && json_is_string(f))
            bad(ck, "%s: a base item has no \"formula\" (null or absent)", where);
        it->formula = json_is_string(f) ? json_string_value(f) : NULL;
        /* an integer; 10.0 too, as JSON Schema counts it an integer */
        json_t *so = json_object_get(o, "sort_order");
        double sv = json_is_integer(so) ? (double)json_integer_value(so)
                    : json_is_real(so)  ? json_real_value(so)
                                        : 0.5;
        if (!so)
            bad(ck, "%s: \"sort_order\" is missing", where);
        else if (sv < INT_MIN || sv > INT_MAX || sv != (double)(int)sv)
            bad(ck, "%s: \"sort_order\" must be an integer (32-bit)", where);
        else {
            it->sort_order = (int)sv;
            if (json_is_real(so)) /* written as an int column: 10.0 would not cast */
                json_object_set_new(o, "sort_order", json_integer(it->sort_order));
        }
    }
    size_t *first = malloc((r->nitems + 1) * sizeof *first);
    ALLOC_ASSERT(first != NULL);
    keyset_report_duplicates(ck, &r->item_codes, "items", r->nitems, 1, "item code", "", first);
    for (size_t i = 0; i < r->nitems; i++) {
        r->item[i].first = first[i];
        if (r->item[i].is_formula == 1 && first[i] == i)
            r->nformula++;
    }
    free(first);
}

static void check_bindings(import_check *ck, ruleset_in *r) {
    static const char *const keys[] = {"match_kind", "match_code", "item_code", NULL};
    size_t n = r->bindings ? json_array_size(r->bindings) : 0;
    keyset seen = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *o = element_object(ck, r->bindings, i, "bindings");
        if (!o)
            continue;
        char where[64];
        element_name(where, sizeof where, "bindings", i, NULL);
        check_keys(ck, o, where, keys);
        const char *kind = get_string(ck, o, "match_kind", where, FIELD_REQUIRED);
        if (kind && strcmp(kind, "budget_item") && strcmp(kind, "account")) {
            bad(ck, "%s: \"match_kind\" must be \"budget_item\" or \"account\", not \"%s\"", where,
                kind);
            kind = NULL;
        }
        const char *match = get_string(ck, o, "match_code", where, FIELD_REQUIRED | FIELD_CODE);
        const char *item = get_string(ck, o, "item_code", where, FIELD_REQUIRED | FIELD_CODE);
        if (item) {
            const char *why = base_item_problem(r, item);
            if (why)
                bad(ck, "%s: item %s %s", where, item, why);
        }
        if (kind && match)
            keyset_add(&seen, i, kind, match);
    }
    keyset_report_duplicates(ck, &seen, "bindings", n, 0, "binding", " ", NULL);
    keyset_free(&seen);
}

/* The versions the allocation rules may name: those of the file's "versions"
 * (checked here) plus known (report_version rows, NULL-terminated; may be NULL). */
static int version_known(const ruleset_in *r, char *const *known, const char *v) {
    size_t n = r->versions ? json_array_size(r->versions) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_object_get(json_array_get(r->versions, i), "version");
        if (json_is_string(s) && !strcmp(json_string_value(s), v))
            return 1;
    }
    for (; known && *known; known++)
        if (!strcmp(*known, v))
            return 1;
    return 0;
}

/* Allocation rules. With known == NULL the version check is left for later
 * (check_rule_versions, once the database has been read). */
static void check_rules(import_check *ck, ruleset_in *r) {
    static const char *const keys[] = {"version", "item_code", "driver", "scope", NULL};
    size_t n = r->rules ? json_array_size(r->rules) : 0;
    keyset seen = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *o = element_object(ck, r->rules, i, "allocation_rules");
        if (!o)
            continue;
        char where[64];
        element_name(where, sizeof where, "allocation_rules", i, NULL);
        check_keys(ck, o, where, keys);
        const char *version = get_string(ck, o, "version", where, FIELD_REQUIRED | FIELD_CODE);
        const char *item = get_string(ck, o, "item_code", where, FIELD_REQUIRED | FIELD_CODE);
        get_string(ck, o, "driver", where, FIELD_REQUIRED | FIELD_CODE);
        const char *scope = get_string(ck, o, "scope", where, FIELD_REQUIRED);
        if (scope && strcmp(scope, "city") && strcmp(scope, "company"))
            bad(ck, "%s: \"scope\" must be \"city\" or \"company\", not \"%s\"", where, scope);
        if (item && strcmp(item, "*")) {
            const char *why = base_item_problem(r, item);
            if (why)
                bad(ck, "%s: item %s %s", where, item, why);
        }
        if (version && item)
            keyset_add(&seen, i, version, item);
    }
    keyset_report_duplicates(ck, &seen, "allocation_rules", n, 0, "rule for version/item", "/",
                             NULL);
    keyset_free(&seen);
}

static void check_rule_versions(import_check *ck, const ruleset_in *r, char *const *known) {
    size_t n = r->rules ? json_array_size(r->rules) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(json_array_get(r->rules, i), "version");
        if (json_is_string(v) && *json_string_value(v) &&
            !version_known(r, known, json_string_value(v)))
            bad(ck,
                "allocation_rules[%zu]: version %s does not exist (neither in report_version nor "
                "in \"versions\")",
                i, json_string_value(v));
    }
}

static void check_audits(import_check *ck, ruleset_in *r) {
    static const char *const keys[] = {"rule_code", "expr", "message", "severity", NULL};
    size_t n = r->audits ? json_array_size(r->audits) : 0;
    keyset seen = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *o = element_object(ck, r->audits, i, "audit_rules");
        if (!o)
            continue;
        char where[320];
        element_name(where, sizeof where, "audit_rules", i, NULL);
        const char *code = get_string(ck, o, "rule_code", where, FIELD_REQUIRED | FIELD_CODE);
        if (code && !strcmp(code, "unallocated")) {
            bad(ck, "%s: rule code \"unallocated\" is reserved for the allocation warnings", where);
            code = NULL;
        }
        element_name(where, sizeof where, "audit_rules", i, code);
        check_keys(ck, o, where, keys);
        get_string(ck, o, "expr", where, FIELD_REQUIRED);
        const char *msg = get_string(ck, o, "message", where, FIELD_REQUIRED);
        if (msg && !*msg)
            bad(ck, "%s: \"message\" is empty", where);
        const char *sev = get_string(ck, o, "severity", where, FIELD_REQUIRED);
        if (sev && strcmp(sev, "error") && strcmp(sev, "warning"))
            bad(ck, "%s: \"severity\" must be \"error\" or \"warning\", not \"%s\"", where, sev);
        if (code)
            keyset_add(&seen, i, code, NULL);
    }
    keyset_report_duplicates(ck, &seen, "audit_rules", n, 1, "audit rule code", "", NULL);
    keyset_free(&seen);
}

static void check_versions(import_check *ck, ruleset_in *r) {
    static const char *const keys[] = {"version", "name", "include_categories", NULL};
    size_t n = r->versions ? json_array_size(r->versions) : 0;
    keyset seen = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *o = element_object(ck, r->versions, i, "versions");
        if (!o)
            continue;
        char where[320];
        element_name(where, sizeof where, "versions", i, NULL);
        const char *version = get_string(ck, o, "version", where, FIELD_REQUIRED | FIELD_CODE);
        element_name(where, sizeof where, "versions", i, version);
        check_keys(ck, o, where, keys);
        const char *name = get_string(ck, o, "name", where, FIELD_REQUIRED);
        if (name && !*name)
            bad(ck, "%s: \"name\" is empty", where);
        json_t *cats = json_object_get(o, "include_categories");
        if (!cats) {
            bad(ck, "%s: \"include_categories\" is missing (null means every category)", where);
        } else if (!json_is_null(cats)) {
            if (!json_is_array(cats)) {
                bad(ck, "%s: \"include_categories\" must be null or an array of strings", where);
            } else {
                for (size_t k = 0; k < json_array_size(cats); k++) {
                    json_t *c = json_array_get(cats, k);
                    if (!json_is_string(c) || !*json_string_value(c) ||
                        has_control(json_string_value(c)))
                        bad(ck, "%s: include_categories[%zu] must be a non-empty category name",
                            where, k);
                }
            }
        }
        if (version)
            keyset_add(&seen, i, version, NULL);
    }
    keyset_report_duplicates(ck, &seen, "versions", n, 1, "version", "", NULL);
    keyset_free(&seen);
}

/* Compiles every formula and audit rule (usable elements only: unique codes)
 * and reports each compile error on its element. */
static void check_formulas(import_check *ck, ruleset_in *r) {
    size_t naudits = r->audits ? json_array_size(r->audits) : 0;
    formulas_entry *items = calloc(r->nitems + 1, sizeof *items);
    formulas_entry *rules = calloc(naudits + 1, sizeof *rules);
    ALLOC_ASSERT(items && rules);
    keyset seen = {0}; /* audit rule codes -> element */
    size_t ni = 0, nr = 0;
    for (size_t i = 0; i < r->nitems; i++) {
        const item_in *it = &r->item[i];
        if (!it->code || it->first != i)
            continue;
        /* an item whose kind or formula is bad (reported already) is taken as a base
         * item, so that references to it resolve */
        items[ni++] = (formulas_entry){.code = it->code,
                                       .is_formula = it->is_formula == 1 && it->formula,
                                       .text = it->formula,
                                       .sort_order = it->sort_order};
    }
    for (size_t i = 0; i < naudits; i++) {
        json_t *o = json_array_get(r->audits, i);
        json_t *c = json_object_get(o, "rule_code"), *e = json_object_get(o, "expr");
        if (!json_is_string(c) || !*json_string_value(c) || !json_is_string(e))
            continue;
        if (keyset_find(&seen, json_string_value(c)) >= 0)
            continue; /* a duplicate (reported) */
        keyset_add(&seen, i, json_string_value(c), NULL);
        rules[nr++] = (formulas_entry){.code = json_string_value(c), .text = json_string_value(e)};
    }
    int errors = 0;
    fx_ruleset *rs = formulas_compile_mem(items, ni, rules, nr, &errors);
    ALLOC_ASSERT(rs != NULL);
    for (size_t i = 0; i < fx_ruleset_error_count(rs); i++) {
        const fx_error *e = fx_ruleset_error(rs, i);
        char where[320] = "";
        long k = e->source == FX_ERROR_ITEM ? find_item(r, e->code) : keyset_find(&seen, e->code);
        element_name(where, sizeof where, e->source == FX_ERROR_ITEM ? "items" : "audit_rules",
                     k < 0 ? 0 : (size_t)k, e->code);
        bad(ck, "%s: %s", where, e->text);
    }
    fx_ruleset_free(rs);
    free(items);
    free(rules);
    keyset_free(&seen);
}

/* Parses and validates the whole file, printing every problem. Returns the
 * number of errors; on 0, r holds the ruleset and *root owns its memory. */
static int check_file(import_check *ck, const char *text, size_t len, json_t **root,
                      ruleset_in *r) {
    json_error_t jerr;
    memset(r, 0, sizeof *r);
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        if (jerr.line > 0)
            bad(ck, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
        else
            bad(ck, "%s", jerr.text);
        return ck->errors;
    }
    if (!json_is_object(*root)) {
        bad(ck, "the top level must be an object {\"ruleset\": ..., \"items\": [...], ...}");
        return ck->errors;
    }
    static const char *const keys[] = {"$schema",          "ruleset",     "items",    "bindings",
                                       "allocation_rules", "audit_rules", "versions", NULL};
    r->parsed = 1;
    check_keys(ck, *root, "top level", keys);
    r->name = get_string(ck, *root, "ruleset", "top level", FIELD_REQUIRED | FIELD_CODE);
    if (r->name) {
        size_t n = strlen(r->name);
        int ok = n <= RULESET_NAME_MAX;
        for (const char *p = r->name; *p && ok; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_' || *p == '-' || *p == '.';
        if (!ok)
            bad(ck,
                "\"ruleset\" must be 1..%d of A-Z a-z 0-9 _ - . (it is part of cache keys), not "
                "\"%s\"",
                RULESET_NAME_MAX, r->name);
    }
    r->items = get_array(ck, *root, "items", 1);
    r->bindings = get_array(ck, *root, "bindings", 1);
    r->rules = get_array(ck, *root, "allocation_rules", 1);
    r->audits = get_array(ck, *root, "audit_rules", 1);
    r->versions = get_array(ck, *root, "versions", 0);
    check_items(ck, r);
    check_bindings(ck, r);
    check_rules(ck, r);
    check_audits(ck, r);
    check_versions(ck, r);
    check_formulas(ck, r);
    return ck->errors;
}

/* Reads the whole file ("-": standard input). Returns a malloc'ed buffer
 * (NUL-terminated, *len without it), or NULL with the reason in why. */
static char *read_file(const char *path, size_t *len, char *why, size_t whylen) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    ALLOC_ASSERT(buf != NULL);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= (size_t)IMPORT_MAX_FILE) {
                snprintf(why, whylen, "larger than %ld MiB", IMPORT_MAX_FILE >> 20);
                goto fail;
            }
            cap *= 2;
            buf = realloc(buf, cap);
            ALLOC_ASSERT(buf != NULL);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(why, whylen, "%s", strerror(errno ? errno : EIO));
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return NULL;
}

/* ---- writing ---------------------------------------------------------------- */

/* The ruleset's rows, replaced in the caller's transaction. $1 is the ruleset,
 * $2 the elements as a JSON array (validated), $3 the update time. */
static const struct {
    const char *table, *insert;
} REPLACE[] = {
    {"report_item",
     "INSERT INTO report_item (ruleset, item_code, name, kind, formula, sort_order, updated_at) "
     "SELECT $1, code, name, kind, formula, sort_order, $3::timestamptz "
     "FROM json_to_recordset($2::json) AS x(code text, name text, kind text, formula text, "
     "sort_order int)"},
    {"binding_rule",
     "INSERT INTO binding_rule (ruleset, match_kind, match_code, item_code, updated_at) "
     "SELECT $1, match_kind, match_code, item_code, $3::timestamptz "
     "FROM json_to_recordset($2::json) AS x(match_kind text, match_code text, item_code text)"},
    {"allocation_rule",
     "INSERT INTO allocation_rule (ruleset, version, item_code, driver, scope, updated_at) "
     "SELECT $1, version, item_code, driver, scope, $3::timestamptz "
     "FROM json_to_recordset($2::json) AS x(version text, item_code text, driver text, scope "
     "text)"},
    {"audit_rule",
     "INSERT INTO audit_rule (ruleset, rule_code, expr, message, severity, updated_at) "
     "SELECT $1, rule_code, expr, message, severity, $3::timestamptz "
     "FROM json_to_recordset($2::json) AS x(rule_code text, expr text, message text, "
     "severity text)"},
};

/* The update time of the new rows: now, but always later than every row the
 * ruleset has, so the ruleset stamp (latest updated_at plus row count) of the
 * new rules can never equal an earlier one even when clocks or concurrent
 * transactions disagree. Taken after the ruleset's import lock. */
static const char *STAMP_TIME_SQL =
    "SELECT greatest(clock_timestamp(), max(u) + interval '1 microsecond')::text FROM ("
    " SELECT max(updated_at) AS u FROM report_item WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at) FROM binding_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at) FROM allocation_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at) FROM audit_rule WHERE ruleset = $1) s";

/* Checks the versions the allocation rules name against report_version (and the
 * file's versions). Returns ALLOC_EXIT_OK (errors, if any, counted in ck) or
 * ALLOC_EXIT_RUNTIME when the database failed. */
static int check_rule_versions_db(db_conn *c, import_check *ck, const ruleset_in *r) {
    db_error e;
    PGresult *v = db_query(c, "SELECT version FROM report_version", 0, NULL, PGRES_TUPLES_OK, &e);
    if (!v)
        return cli_fail_db(&e, "import: reading report_version");
    int nv = PQntuples(v);
    char **known = calloc((size_t)nv + 1, sizeof *known);
    ALLOC_ASSERT(known != NULL);
    for (int i = 0; i < nv; i++)
        known[i] = PQgetvalue(v, i, 0);
    check_rule_versions(ck, r, known);
    free(known);
    PQclear(v);
    return ALLOC_EXIT_OK;
}

/* Takes the ruleset's import lock, checks the allocation rules' versions and
 * replaces the rows, in the open transaction. Returns an exit code (errors
 * printed). */
static int replace_rows(db_conn *c, import_check *ck, ruleset_in *r, int64_t replaced[4]) {
    db_error e;
    const char *rp[] = {r->name};
    /* one import of a ruleset at a time: a second waits, then replaces the first's rows */
    PGresult *lock = db_query(c,
                              "SELECT pg_advisory_xact_lock(hashtext('alloc.import.ruleset'), "
                              "hashtext($1))",
                              1, rp, PGRES_TUPLES_OK, &e);
    if (!lock)
        return cli_fail_db(&e, "import: locking the ruleset");
    PQclear(lock);
    int rc = check_rule_versions_db(c, ck, r);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    if (ck->errors)
        return ALLOC_EXIT_VALIDATION;

    PGresult *t = db_query(c, STAMP_TIME_SQL, 1, rp, PGRES_TUPLES_OK, &e);
    if (!t)
        return cli_fail_db(&e, "import: reading the ruleset's update times");
    char at[64];
    snprintf(at, sizeof at, "%s", PQgetvalue(t, 0, 0));
    PQclear(t);

    json_t *arrays[] = {r->items, r->bindings, r->rules, r->audits};
    for (size_t i = 0; i < sizeof REPLACE / sizeof REPLACE[0]; i++) {
        char del[128], what[96];
        snprintf(del, sizeof del, "DELETE FROM %s WHERE ruleset = $1", REPLACE[i].table);
        replaced[i] = db_exec_params(c, del, 1, rp, &e);
        snprintf(what, sizeof what, "replacing %s", REPLACE[i].table);
        if (replaced[i] < 0)
            return cli_fail_db(&e, "import: %s", what);
        char *rows = json_dumps(arrays[i], JSON_COMPACT);
        ALLOC_ASSERT(rows != NULL);
        const char *ip[] = {r->name, rows, at};
        int64_t n = db_exec_params(c, REPLACE[i].insert, 3, ip, &e);
        free(rows);
        if (n < 0)
            return cli_fail_db(&e, "import: %s", what);
    }
    if (r->versions && json_array_size(r->versions) > 0) {
        char *rows = json_dumps(r->versions, JSON_COMPACT);
        ALLOC_ASSERT(rows != NULL);
        const char *vp[] = {rows};
        int64_t n = db_exec_params(c,
                                   "INSERT INTO report_version (version, name, include_categories) "
                                   "SELECT version, name, include_categories "
                                   "FROM json_to_recordset($1::json) AS x(version text, name text, "
                                   "include_categories text[]) "
                                   "ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, "
                                   "include_categories = EXCLUDED.include_categories",
                                   1, vp, &e);
        free(rows);
        if (n < 0)
            return cli_fail_db(&e, "import: upserting report_version");
    }
    return ALLOC_EXIT_OK;
}

/* Warns (stderr, after the import) about every allocation rule whose driver
 * has no value in any period: most likely a mistyped name, whose rows would
 * all go to #UNALLOCATED. Not an error: the driver's values may come later. */
static void warn_unknown_drivers(db_conn *c, const char *label, const ruleset_in *r) {
    driver_names known;
    db_error e;
    if (drivers_known(c, NULL, &known, &e) < 0) {
        fprintf(stderr,
                "alloc-producer: import: warning: the rules' drivers were not checked: %s\n",
                e.msg);
        return;
    }
    size_t n = r->rules ? json_array_size(r->rules) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(r->rules, i);
        const char *driver = json_string_value(json_object_get(o, "driver"));
        if (!driver || drivers_has(&known, driver))
            continue;
        if (known.n == 0) {
            fprintf(stderr,
                    "%s: warning: no driver has values in any period yet, so the allocation "
                    "rules' drivers are not checked here (run warns about a driver with no "
                    "value in its period)\n",
                    label);
            break;
        }
        char hint[160];
        drivers_hint(&known, driver, hint, sizeof hint);
        fprintf(stderr,
                "%s: allocation_rules[%zu] (%s/%s): warning: driver %s has no value in any "
                "period%s; the pending rows it allocates go to #UNALLOCATED\n",
                label, i, json_string_value(json_object_get(o, "version")),
                json_string_value(json_object_get(o, "item_code")), driver, hint);
    }
    drivers_free(&known);
}

int import_ruleset(const alloc_config *cfg, const char *file) {
    const char *label = strcmp(file, "-") == 0 ? "<stdin>" : file;
    import_check ck = {.file = label, .errors = 0};
    char why[256];
    size_t len = 0;
    char *text = read_file(file, &len, why, sizeof why);
    if (!text) {
        /* a file that cannot be read is bad input, like a bad row: exit 3 */
        fprintf(stderr, "%s: cannot open: %s\n", label, why);
        return ALLOC_EXIT_VALIDATION;
    }
    json_t *root = NULL;
    ruleset_in r;
    int errors = check_file(&ck, text, len, &root, &r);
    free(text);
    int rc = ALLOC_EXIT_VALIDATION;
    int64_t replaced[4] = {0, 0, 0, 0};
    db_conn *c = NULL;
    if (r.parsed) {
        /* the versions the allocation rules name are checked even when the file
         * has other errors, so that one attempt lists every problem */
        c = errors ? db_connect(cfg->pg_dsn, why, sizeof why) : cli_connect_db(cfg, "import");
        db_error e;
        if (!c) {
            if (errors)
                fprintf(stderr, "alloc-producer: import: versions not checked: %s\n", why);
            rc = errors ? ALLOC_EXIT_VALIDATION : ALLOC_EXIT_RUNTIME;
        } else if (db_begin(c, NULL, &e) != 0) {
            rc = cli_fail_db(&e, "import: starting the transaction");
        } else {
            rc = errors ? check_rule_versions_db(c, &ck, &r) : replace_rows(c, &ck, &r, replaced);
            if (rc == ALLOC_EXIT_OK && ck.errors)
                rc = ALLOC_EXIT_VALIDATION;
            if (rc == ALLOC_EXIT_OK && db_commit(c, &e) != 0)
                rc = cli_fail_db(&e, "import: committing");
            if (rc != ALLOC_EXIT_OK)
                db_rollback(c, NULL);
        }
        if (errors) /* the file is refused whatever the database said */
            rc = ALLOC_EXIT_VALIDATION;
    }
    if (ck.errors > IMPORT_MAX_SHOWN)
        fprintf(stderr, "%s: ... and %d more error(s)\n", ck.file, ck.errors - IMPORT_MAX_SHOWN);
    if (ck.errors > 0)
        fprintf(stderr, "alloc-producer: import: %s refused: %d error(s), nothing changed\n", label,
                ck.errors);
    if (rc == ALLOC_EXIT_OK) {
        size_t nversions = r.versions ? json_array_size(r.versions) : 0;
        printf("imported ruleset %s from %s: %zu items (%zu base, %zu formula), %zu bindings, "
               "%zu allocation rules, %zu audit rules",
               r.name, label, r.nitems, r.nitems - r.nformula, r.nformula,
               json_array_size(r.bindings), json_array_size(r.rules), json_array_size(r.audits));
        if (nversions)
            printf(", %zu versions upserted", nversions);
        printf("; replaced %lld items, %lld bindings, %lld allocation rules, %lld audit rules\n",
               (long long)replaced[0], (long long)replaced[1], (long long)replaced[2],
               (long long)replaced[3]);
        fflush(stdout);
        warn_unknown_drivers(c, label, &r);
    }
    db_close(c);
    free(r.item);
    keyset_free(&r.item_codes);
    json_decref(root);
    return rc;
}
