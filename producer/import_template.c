/* Import templates: the JSON format of schemas/templates/README.md read into an
 * import_template and checked as a whole (every problem reported, not just the
 * first), the built-in templates of `import --kind ledger|drivers` written in the
 * same format, and the :period parameter of the SQL steps. */
#include "import_template.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import_json.h"
#include "util.h"

/* ---- target tables ------------------------------------------------------------ */

/* A ledger row's data_source must be one a project has (DESIGN.md section 4):
 * a row of any other would be reported under <source>/#UNALLOCATED by every run. */
static const import_target_column ledger_columns[] = {
    {"period_code", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"company_code", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"data_source", IMPORT_TYPE_TEXT, 0, 1, 0, 1},
    {"business_line", IMPORT_TYPE_TEXT, 0, 0, 0, 0},
    {"budget_item_code", IMPORT_TYPE_TEXT, 0, 0, 0, 0},
    {"account_code", IMPORT_TYPE_TEXT, 0, 0, 0, 0},
    {"project_code", IMPORT_TYPE_TEXT, 0, 0, 1, 0},
    {"category", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"amount", IMPORT_TYPE_AMOUNT, 2, 1, 0, 0},
};

static const import_target_column driver_columns[] = {
    {"period_code", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"driver", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"project_code", IMPORT_TYPE_TEXT, 0, 1, 1, 0},
    {"value", IMPORT_TYPE_NUMBER, 6, 1, 0, 0},
};

/* Projects are keyed by project_code (an upsert); a data source may be new.
 * active is text here ("true", "no", ...), turned into a boolean when stored. */
static const import_target_column project_columns[] = {
    {"project_code", IMPORT_TYPE_TEXT, 0, 1, 0, 0}, {"company_code", IMPORT_TYPE_TEXT, 0, 1, 0, 0},
    {"data_source", IMPORT_TYPE_TEXT, 0, 1, 0, 0},  {"business_line", IMPORT_TYPE_TEXT, 0, 0, 0, 0},
    {"active", IMPORT_TYPE_TEXT, 0, 0, 0, 0},
};

const char *import_target_table(import_target t) {
    if (t == IMPORT_TARGET_PROJECTS)
        return "project";
    return t == IMPORT_TARGET_DRIVERS ? "allocation_driver" : "ledger_entry";
}

const import_target_column *import_target_columns(import_target t, size_t *n) {
    if (t == IMPORT_TARGET_PROJECTS) {
        *n = sizeof project_columns / sizeof project_columns[0];
        return project_columns;
    }
    if (t == IMPORT_TARGET_DRIVERS) {
        *n = sizeof driver_columns / sizeof driver_columns[0];
        return driver_columns;
    }
    *n = sizeof ledger_columns / sizeof ledger_columns[0];
    return ledger_columns;
}

/* ---- built-in templates ------------------------------------------------------- */

static const char builtin_ledger[] =
    "{\"name\": \"ledger\","
    " \"description\": \"general-ledger rows, one per line, columns named as in ledger_entry\","
    " \"target\": \"ledger_entry\","
    " \"columns\": ["
    "  {\"name\": \"period_code\", \"type\": \"period\"},"
    "  {\"name\": \"company_code\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"data_source\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"business_line\"},"
    "  {\"name\": \"budget_item_code\", \"required\": true},"
    "  {\"name\": \"account_code\", \"required\": true},"
    "  {\"name\": \"project_code\", \"required\": true},"
    "  {\"name\": \"category\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"amount\", \"type\": \"amount\", \"required\": true, \"non_empty\": true}],"
    " \"mapping\": {\"period_code\": \"period_code\", \"company_code\": \"company_code\","
    "  \"data_source\": \"data_source\", \"business_line\": \"business_line\","
    "  \"budget_item_code\": \"budget_item_code\", \"account_code\": \"account_code\","
    "  \"project_code\": \"project_code\", \"category\": \"category\", \"amount\": \"amount\"}}";

static const char builtin_drivers[] =
    "{\"name\": \"drivers\","
    " \"description\": \"allocation driver values: driver, project_code, value\","
    " \"target\": \"allocation_driver\","
    " \"columns\": ["
    "  {\"name\": \"period_code\", \"type\": \"period\"},"
    "  {\"name\": \"driver\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"project_code\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"value\", \"type\": \"number\", \"scale\": 6, \"required\": true,"
    "   \"non_empty\": true, \"min\": 0}],"
    " \"mapping\": {\"period_code\": \"period_code\", \"driver\": \"driver\","
    "  \"project_code\": \"project_code\", \"value\": \"value\"},"
    " \"unique\": [[\"driver\", \"project_code\"]]}";

static const char builtin_projects[] =
    "{\"name\": \"projects\","
    " \"description\": \"projects: project_code, company_code, data_source, business_line, "
    "active\","
    " \"target\": \"project\","
    " \"columns\": ["
    "  {\"name\": \"project_code\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"company_code\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"data_source\", \"required\": true, \"non_empty\": true},"
    "  {\"name\": \"business_line\"},"
    "  {\"name\": \"active\"}],"
    " \"mapping\": {\"project_code\": \"project_code\", \"company_code\": \"company_code\","
    "  \"data_source\": \"data_source\", \"business_line\": \"business_line\", \"active\": "
    "\"active\"},"
    " \"unique\": [[\"project_code\"]]}";

/* ---- errors ------------------------------------------------------------------- */

typedef struct tpl_ctx {
    const char *origin;
    char *buf;
    size_t len, used;
    int errors;
} tpl_ctx;

static void terr(tpl_ctx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void terr(tpl_ctx *cx, const char *fmt, ...) {
    cx->errors++;
    if (!cx->buf || cx->used + 1 >= cx->len)
        return;
    int n = snprintf(cx->buf + cx->used, cx->len - cx->used, "%s%s: ", cx->used ? "\n" : "",
                     cx->origin);
    if (n > 0)
        cx->used = cx->used + (size_t)n < cx->len ? cx->used + (size_t)n : cx->len - 1;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(cx->buf + cx->used, cx->len - cx->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        cx->used = cx->used + (size_t)n < cx->len ? cx->used + (size_t)n : cx->len - 1;
}

/* Rejects keys outside `allowed` (keys starting with '_' are comments). */
static void check_keys(tpl_ctx *cx, json_t *obj, const char *where, const char *const *allowed) {
    void *it = NULL;
    for (const char *key; (key = import_json_unknown_key(obj, allowed, IMPORT_JSON_COMMENTS, &it));)
        terr(cx, "%s: unknown key \"%s\"", where, key);
}

/* A boolean member (0 when absent). */
static int get_bool(tpl_ctx *cx, json_t *obj, const char *key, const char *where) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        terr(cx, "%s: %s must be true or false", where, key);
        return 0;
    }
    return json_is_true(v);
}

/* A string member: NULL when absent (an error when required) or not a string. */
static const char *get_string(tpl_ctx *cx, json_t *obj, const char *key, const char *where,
                              int required) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            terr(cx, "%s: %s is required", where, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        terr(cx, "%s: %s must be a string", where, key);
        return NULL;
    }
    return json_string_value(v);
}

/* 1 when s is a decimal number: [+-]digits[.digits] (or .digits). */
static int is_decimal(const char *s) {
    if (*s == '+' || *s == '-')
        s++;
    int digits = 0;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits++;
        }
    }
    return digits > 0 && *s == '\0' && digits <= 40;
}

/* Decimals of a decimal number's text (after is_decimal), trailing zeros ignored. */
static int decimals_of(const char *s) {
    const char *dot = strchr(s, '.');
    if (!dot)
        return 0;
    int n = (int)strlen(dot + 1);
    while (n > 0 && dot[n] == '0')
        n--;
    return n;
}

/* A number given as a JSON number or as a decimal string, as decimal text
 * (malloc'd), or NULL with an error. */
static char *get_decimal(tpl_ctx *cx, json_t *v, const char *where, const char *key) {
    char buf[64];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
        if (!is_decimal(buf)) { /* an exponent: too large or too small to mean anything here */
            terr(cx, "%s: %s: %s is out of range", where, key, buf);
            return NULL;
        }
    } else if (json_is_string(v) && is_decimal(json_string_value(v))) {
        return util_strdup(json_string_value(v));
    } else {
        terr(cx, "%s: %s must be a number", where, key);
        return NULL;
    }
    return util_strdup(buf);
}

static int valid_sql_name(const char *s) {
    if (!(islower((unsigned char)*s) || *s == '_'))
        return 0;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
            return 0;
    return n <= 63;
}

static const char *type_name(import_type t) {
    switch (t) {
    case IMPORT_TYPE_AMOUNT:
        return "amount";
    case IMPORT_TYPE_NUMBER:
        return "number";
    case IMPORT_TYPE_INTEGER:
        return "integer";
    case IMPORT_TYPE_PERIOD:
        return "period";
    default:
        return "text";
    }
}

static int is_numeric_type(import_type t) {
    return t == IMPORT_TYPE_AMOUNT || t == IMPORT_TYPE_NUMBER || t == IMPORT_TYPE_INTEGER;
}

/* ---- :period ------------------------------------------------------------------ */

static int ident_char(int c) {
    return isalnum(c) || c == '_' || c >= 0x80;
}

char *import_sql_bind_period(const char *sql, int *uses_period, char *bad, size_t bad_len) {
    size_t n = strlen(sql);
    /* ":period" (7 bytes) becomes "$1::text" (8 bytes): at most n/7 more. */
    char *out = malloc(n + n / 7 + 2);
    if (!out)
        return NULL;
    size_t o = 0;
    *uses_period = 0;
    if (bad_len)
        bad[0] = '\0';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)sql[i];
        if (c == '\'' || c == '"') {
            /* A string literal (backslash escapes in E'...') or a quoted identifier. */
            int escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                          (i < 2 || !ident_char((unsigned char)sql[i - 2]));
            size_t j = i + 1;
            while (j < n) {
                if (escapes && sql[j] == '\\' && j + 1 < n) {
                    j += 2;
                    continue;
                }
                if ((unsigned char)sql[j] == c) {
                    if (j + 1 < n && (unsigned char)sql[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    j++;
                    break;
                }
                j++;
            }
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
            size_t j = i;
            while (j < n && sql[j] != '\n')
                j++;
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            size_t j = i + 2;
            int depth = 1;
            while (j < n && depth > 0) {
                if (sql[j] == '/' && j + 1 < n && sql[j + 1] == '*') {
                    depth++;
                    j += 2;
                } else if (sql[j] == '*' && j + 1 < n && sql[j + 1] == '/') {
                    depth--;
                    j += 2;
                } else {
                    j++;
                }
            }
            memcpy(out + o, sql + i, j - i);
            o += j - i;
            i = j;
        } else if (c == '$' && (i == 0 || !ident_char((unsigned char)sql[i - 1]))) {
            /* $n is not for templates; $tag$...$tag$ is a dollar-quoted string. */
            size_t j = i + 1;
            if (j < n && isdigit((unsigned char)sql[j])) {
                snprintf(bad, bad_len, "%.*s", (int)strspn(sql + i + 1, "0123456789") + 1, sql + i);
                free(out);
                return NULL;
            }
            while (j < n && ident_char((unsigned char)sql[j]))
                j++;
            if (j < n && sql[j] == '$') {
                size_t tag_len = j - i + 1;
                const char *end = NULL;
                for (size_t k = j + 1; k + tag_len <= n; k++)
                    if (!memcmp(sql + k, sql + i, tag_len)) {
                        end = sql + k + tag_len;
                        break;
                    }
                size_t stop = end ? (size_t)(end - sql) : n;
                memcpy(out + o, sql + i, stop - i);
                o += stop - i;
                i = stop;
            } else {
                out[o++] = sql[i++];
            }
        } else if (c == ':' && i + 1 < n && sql[i + 1] == ':') {
            out[o++] = ':';
            out[o++] = ':';
            i += 2;
        } else if (c == ':' && i + 1 < n &&
                   (isalpha((unsigned char)sql[i + 1]) || sql[i + 1] == '_')) {
            size_t j = i + 1;
            while (j < n && ident_char((unsigned char)sql[j]))
                j++;
            if (j - i - 1 == 6 && !strncmp(sql + i + 1, "period", 6)) {
                memcpy(out + o, "$1::text", 8);
                o += 8;
                *uses_period = 1;
                i = j;
            } else {
                snprintf(bad, bad_len, "%.*s", (int)(j - i), sql + i);
                free(out);
                return NULL;
            }
        } else {
            out[o++] = sql[i++];
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- parsing -------------------------------------------------------------------- */

static const char *const top_keys[] = {"name",          "description", "target",  "delimiter",
                                       "extra_columns", "columns",     "mapping", "unique",
                                       "pre_sql",       "post_sql",    NULL};
static const char *const column_keys[] = {
    "name",    "header", "type", "scale",      "required",    "non_empty", "allowed",
    "pattern", "min",    "max",  "max_length", "description", NULL};

static long find_column(const import_template *t, const char *name) {
    for (size_t i = 0; i < t->n_columns; i++)
        if (t->columns[i].name && !strcmp(t->columns[i].name, name))
            return (long)i;
    return -1;
}

static void parse_column(tpl_ctx *cx, json_t *obj, import_column *col, const char *where) {
    if (!json_is_object(obj)) {
        terr(cx, "%s: must be an object", where);
        return;
    }
    check_keys(cx, obj, where, column_keys);
    const char *name = get_string(cx, obj, "name", where, 1);
    if (name && !valid_sql_name(name))
        terr(cx, "%s: name \"%s\" must be a lower-case SQL name ([a-z_][a-z0-9_]*)", where, name);
    else if (name && !strcmp(name, "line_no"))
        terr(cx, "%s: name line_no is reserved (the staging table's line number)", where);
    col->name = util_strdup(name ? name : "");
    const char *header = get_string(cx, obj, "header", where, 0);
    if (header && !*header)
        terr(cx, "%s: header must not be empty", where);
    col->header = util_strdup(header ? header : col->name);
    get_string(cx, obj, "description", where, 0);

    const char *type = get_string(cx, obj, "type", where, 0);
    col->type = IMPORT_TYPE_TEXT;
    if (type) {
        if (!strcmp(type, "text"))
            col->type = IMPORT_TYPE_TEXT;
        else if (!strcmp(type, "amount"))
            col->type = IMPORT_TYPE_AMOUNT;
        else if (!strcmp(type, "number"))
            col->type = IMPORT_TYPE_NUMBER;
        else if (!strcmp(type, "integer"))
            col->type = IMPORT_TYPE_INTEGER;
        else if (!strcmp(type, "period"))
            col->type = IMPORT_TYPE_PERIOD;
        else
            terr(cx, "%s: type \"%s\" is not one of text, amount, number, integer, period", where,
                 type);
    }
    col->scale = col->type == IMPORT_TYPE_AMOUNT ? 2 : col->type == IMPORT_TYPE_NUMBER ? 6 : 0;
    json_t *scale = json_object_get(obj, "scale");
    if (scale) {
        if (col->type != IMPORT_TYPE_NUMBER)
            terr(cx, "%s: scale applies to type number only", where);
        else if (!json_is_integer(scale) || json_integer_value(scale) < 0 ||
                 json_integer_value(scale) > 12)
            terr(cx, "%s: scale must be an integer 0..12", where);
        else
            col->scale = (int)json_integer_value(scale);
    }
    col->required = get_bool(cx, obj, "required", where);
    col->non_empty = get_bool(cx, obj, "non_empty", where);

    json_t *allowed = json_object_get(obj, "allowed");
    if (allowed) {
        if (col->type != IMPORT_TYPE_TEXT) {
            terr(cx, "%s: allowed applies to type text only", where);
        } else if (!json_is_array(allowed) || json_array_size(allowed) == 0) {
            terr(cx, "%s: allowed must be a non-empty array of strings", where);
        } else {
            col->n_allowed = json_array_size(allowed);
            col->allowed = calloc(col->n_allowed, sizeof *col->allowed);
            for (size_t i = 0; col->allowed && i < col->n_allowed; i++) {
                json_t *v = json_array_get(allowed, i);
                if (!json_is_string(v))
                    terr(cx, "%s: allowed[%zu] must be a string", where, i);
                col->allowed[i] = util_strdup(json_is_string(v) ? json_string_value(v) : "");
            }
        }
    }
    const char *pattern = get_string(cx, obj, "pattern", where, 0);
    col->pattern = pattern ? util_strdup(pattern) : NULL;

    const char *bounds[] = {"min", "max"};
    for (int b = 0; b < 2; b++) {
        json_t *v = json_object_get(obj, bounds[b]);
        if (!v)
            continue;
        if (!is_numeric_type(col->type)) {
            terr(cx, "%s: %s applies to numeric types only (amount, number, integer)", where,
                 bounds[b]);
            continue;
        }
        char *d = get_decimal(cx, v, where, bounds[b]);
        if (b == 0)
            col->min = d;
        else
            col->max = d;
    }
    json_t *max_length = json_object_get(obj, "max_length");
    if (max_length) {
        if (!json_is_integer(max_length) || json_integer_value(max_length) < 1 ||
            json_integer_value(max_length) > 1000000)
            terr(cx, "%s: max_length must be an integer 1..1000000", where);
        else
            col->max_length = (long)json_integer_value(max_length);
    }
}

/* Whether a source column's values fit a target column's type. */
static int fits_target(const import_column *src, const import_target_column *tc) {
    switch (tc->type) {
    case IMPORT_TYPE_AMOUNT:
    case IMPORT_TYPE_NUMBER:
        return (src->type == IMPORT_TYPE_AMOUNT || src->type == IMPORT_TYPE_NUMBER ||
                src->type == IMPORT_TYPE_INTEGER) &&
               src->scale <= tc->scale;
    default:
        return 1;
    }
}

static void parse_mapping(tpl_ctx *cx, json_t *mapping, import_template *t) {
    size_t n_targets;
    const import_target_column *targets = import_target_columns(t->target, &n_targets);
    const char *table = import_target_table(t->target);
    if (!json_is_object(mapping)) {
        terr(cx, "mapping must be an object from %s columns to their sources", table);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(mapping, key, v) {
        if (key[0] == '_')
            continue;
        long ti = -1;
        for (size_t i = 0; i < n_targets; i++)
            if (!strcmp(targets[i].name, key))
                ti = (long)i;
        if (ti < 0) {
            terr(cx, "mapping: %s is not an importable column of %s", key, table);
            continue;
        }
        const import_target_column *tc = &targets[ti];
        import_mapping *m = &t->mapping[ti];
        const char *column = NULL;
        if (json_is_string(v)) {
            column = json_string_value(v);
        } else if (json_is_null(v)) {
            m->kind = IMPORT_MAP_CONST;
        } else if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "column")) {
            json_t *c = json_object_get(v, "column");
            if (!json_is_string(c))
                terr(cx, "mapping: %s: column must be a string", key);
            else
                column = json_string_value(c);
        } else if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "const")) {
            json_t *c = json_object_get(v, "const");
            m->kind = IMPORT_MAP_CONST;
            if (json_is_string(c)) {
                m->value = util_strdup(json_string_value(c));
            } else if (json_is_number(c)) {
                m->value = get_decimal(cx, c, "mapping", key);
            } else if (!json_is_null(c)) {
                terr(cx, "mapping: %s: const must be a string, a number or null", key);
            }
            if (m->value && tc->type != IMPORT_TYPE_TEXT &&
                (!is_decimal(m->value) || decimals_of(m->value) > tc->scale))
                terr(cx, "mapping: %s: const \"%s\" is not a number with at most %d decimals", key,
                     m->value, tc->scale);
        } else if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "sql")) {
            json_t *c = json_object_get(v, "sql");
            char bad[64];
            int uses;
            if (!json_is_string(c) || !*json_string_value(c)) {
                terr(cx, "mapping: %s: sql must be a non-empty string", key);
                continue;
            }
            m->kind = IMPORT_MAP_SQL;
            m->value = import_sql_bind_period(json_string_value(c), &uses, bad, sizeof bad);
            if (!m->value)
                terr(cx, "mapping: %s: sql: unknown parameter %s (only :period is known)", key,
                     bad);
        } else {
            terr(cx,
                 "mapping: %s: want a source column name, null, {\"column\": NAME}, "
                 "{\"const\": VALUE} or {\"sql\": EXPRESSION}",
                 key);
            continue;
        }
        if (column) {
            long ci = find_column(t, column);
            if (ci < 0) {
                terr(cx, "mapping: %s: \"%s\" is not a column of the template", key, column);
                continue;
            }
            m->kind = IMPORT_MAP_COLUMN;
            m->column = (size_t)ci;
            if (!fits_target(&t->columns[ci], tc))
                terr(cx,
                     "mapping: %s: column %s is of type %s; %s.%s needs amount, integer, or "
                     "number with at most %d decimals",
                     key, column, type_name(t->columns[ci].type), table, key, tc->scale);
        }
        if (m->kind == IMPORT_MAP_CONST && !m->value && tc->not_null &&
            strcmp(tc->name, "period_code") != 0)
            terr(cx, "mapping: %s: cannot be null (%s.%s is NOT NULL)", key, table, key);
    }
    for (size_t i = 0; i < n_targets; i++)
        if (targets[i].not_null && t->mapping[i].kind == IMPORT_MAP_NONE &&
            strcmp(targets[i].name, "period_code") != 0)
            terr(cx, "mapping: %s is required (%s.%s is NOT NULL)", targets[i].name, table,
                 targets[i].name);
}

/* pre_sql / post_sql: a string or an array of strings, one statement each. */
static void parse_sql_steps(tpl_ctx *cx, json_t *v, const char *key, import_sql **out, size_t *n) {
    if (!v)
        return;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    *out = calloc(count ? count : 1, sizeof **out);
    if (!*out)
        return;
    for (size_t i = 0; i < count; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s) || !*json_string_value(s)) {
            terr(cx, "%s[%zu]: must be a non-empty string (one SQL statement)", key, i);
            continue;
        }
        char bad[64];
        import_sql *step = &(*out)[(*n)++];
        step->sql =
            import_sql_bind_period(json_string_value(s), &step->uses_period, bad, sizeof bad);
        if (!step->sql)
            terr(cx, "%s[%zu]: unknown parameter %s (only :period is known)", key, i, bad);
    }
}

static void parse_unique(tpl_ctx *cx, json_t *v, import_template *t) {
    if (!v)
        return;
    if (!json_is_array(v)) {
        terr(cx, "unique must be an array of column-name arrays");
        return;
    }
    t->unique = calloc(json_array_size(v) + 1, sizeof *t->unique);
    if (!t->unique)
        return;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *key = json_array_get(v, i);
        if (!json_is_array(key) || json_array_size(key) == 0) {
            terr(cx, "unique[%zu]: must be a non-empty array of column names", i);
            continue;
        }
        import_unique *u = &t->unique[t->n_unique++];
        u->columns = calloc(json_array_size(key), sizeof *u->columns);
        for (size_t k = 0; u->columns && k < json_array_size(key); k++) {
            json_t *name = json_array_get(key, k);
            long ci = json_is_string(name) ? find_column(t, json_string_value(name)) : -1;
            if (ci < 0)
                terr(cx, "unique[%zu][%zu]: not a column of the template", i, k);
            else
                u->columns[u->n++] = (size_t)ci;
        }
    }
}

static import_template *parse_root(tpl_ctx *cx, json_t *root) {
    import_template *t = calloc(1, sizeof *t);
    if (!t) {
        terr(cx, "out of memory");
        return NULL;
    }
    t->origin = util_strdup(cx->origin);
    t->delimiter = ',';
    if (!json_is_object(root)) {
        terr(cx, "the template must be a JSON object");
        return t;
    }
    check_keys(cx, root, "template", top_keys);
    const char *name = get_string(cx, root, "name", "template", 1);
    t->name = util_strdup(name ? name : "");
    const char *description = get_string(cx, root, "description", "template", 0);
    t->description = util_strdup(description ? description : "");

    const char *target = get_string(cx, root, "target", "template", 0);
    if (target && !strcmp(target, "allocation_driver"))
        t->target = IMPORT_TARGET_DRIVERS;
    else if (target && !strcmp(target, "project") && !strcmp(cx->origin, "built-in"))
        t->target = IMPORT_TARGET_PROJECTS; /* `import --kind projects` only: it has no period */
    else if (target && strcmp(target, "ledger_entry") != 0)
        terr(cx, "target \"%s\" is not ledger_entry or allocation_driver", target);

    const char *delim = get_string(cx, root, "delimiter", "template", 0);
    if (delim) {
        if (strlen(delim) != 1 || strchr("\"\r\n", delim[0]))
            terr(cx, "delimiter must be one character other than a quote or a line end");
        else
            t->delimiter = delim[0];
    }
    const char *extra = get_string(cx, root, "extra_columns", "template", 0);
    if (extra && !strcmp(extra, "ignore"))
        t->ignore_extra_columns = 1;
    else if (extra && strcmp(extra, "error") != 0)
        terr(cx, "extra_columns must be \"error\" or \"ignore\"");

    json_t *columns = json_object_get(root, "columns");
    if (!json_is_array(columns) || json_array_size(columns) == 0) {
        terr(cx, "columns must be a non-empty array");
    } else {
        t->n_columns = json_array_size(columns);
        t->columns = calloc(t->n_columns, sizeof *t->columns);
        if (!t->columns) {
            t->n_columns = 0;
            terr(cx, "out of memory");
        }
        for (size_t i = 0; i < t->n_columns; i++) {
            char where[32];
            snprintf(where, sizeof where, "columns[%zu]", i);
            parse_column(cx, json_array_get(columns, i), &t->columns[i], where);
            for (size_t k = 0; k < i; k++) {
                if (!strcmp(t->columns[k].name, t->columns[i].name) && *t->columns[i].name)
                    terr(cx, "%s: name %s repeats columns[%zu]", where, t->columns[i].name, k);
                else if (!strcasecmp(t->columns[k].header, t->columns[i].header))
                    terr(cx, "%s: header \"%s\" repeats columns[%zu]", where, t->columns[i].header,
                         k);
            }
        }
    }
    parse_mapping(cx, json_object_get(root, "mapping"), t);
    parse_unique(cx, json_object_get(root, "unique"), t);
    parse_sql_steps(cx, json_object_get(root, "pre_sql"), "pre_sql", &t->pre_sql, &t->n_pre_sql);
    parse_sql_steps(cx, json_object_get(root, "post_sql"), "post_sql", &t->post_sql,
                    &t->n_post_sql);
    return t;
}

import_template *import_template_parse(const char *json, size_t len, const char *origin,
                                       char *errbuf, size_t errlen) {
    tpl_ctx cx = {origin, errbuf, errlen, 0, 0};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        terr(&cx, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    import_template *t = parse_root(&cx, root);
    json_decref(root);
    if (cx.errors) {
        import_template_free(t);
        return NULL;
    }
    return t;
}

import_template *import_template_load_file(const char *path, char *errbuf, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* A template is small; refuse anything that is clearly not one. */
    enum { MAX_TEMPLATE = 1 << 20 };
    char *buf = malloc(MAX_TEMPLATE + 1);
    size_t n = buf ? fread(buf, 1, MAX_TEMPLATE + 1, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    import_template *t = NULL;
    if (!buf)
        snprintf(errbuf, errlen, "%s: out of memory", path);
    else if (read_error)
        snprintf(errbuf, errlen, "%s: read error", path);
    else if (n > MAX_TEMPLATE)
        snprintf(errbuf, errlen, "%s: larger than %d bytes: not a template", path, MAX_TEMPLATE);
    else
        t = import_template_parse(buf, n, path, errbuf, errlen);
    free(buf);
    return t;
}

import_template *import_template_builtin(import_target target, char *errbuf, size_t errlen) {
    const char *json = target == IMPORT_TARGET_DRIVERS    ? builtin_drivers
                       : target == IMPORT_TARGET_PROJECTS ? builtin_projects
                                                          : builtin_ledger;
    import_template *t = import_template_parse(json, strlen(json), "built-in", errbuf, errlen);
    if (t) {
        free(t->origin);
        t->origin = util_strdup("built-in");
    }
    return t;
}

void import_template_free(import_template *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n_columns; i++) {
        import_column *c = &t->columns[i];
        free(c->name);
        free(c->header);
        for (size_t k = 0; k < c->n_allowed; k++)
            free(c->allowed ? c->allowed[k] : NULL);
        free(c->allowed);
        free(c->pattern);
        free(c->min);
        free(c->max);
    }
    free(t->columns);
    for (size_t i = 0; i < IMPORT_MAX_TARGET_COLUMNS; i++)
        free(t->mapping[i].value);
    for (size_t i = 0; i < t->n_unique; i++)
        free(t->unique[i].columns);
    free(t->unique);
    for (size_t i = 0; i < t->n_pre_sql; i++)
        free(t->pre_sql[i].sql);
    free(t->pre_sql);
    for (size_t i = 0; i < t->n_post_sql; i++)
        free(t->post_sql[i].sql);
    free(t->post_sql);
    free(t->name);
    free(t->description);
    free(t->origin);
    free(t);
}

/* ---- where templates live ----------------------------------------------------- */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int import_template_dir(char *buf, size_t len) {
    const char *env = getenv("ALLOC_TEMPLATE_DIR");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return is_dir(buf) ? 0 : -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const rel[] = {"/../schemas/templates", "/../../schemas/templates",
                                              "/../share/alloc/templates"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
                char path[PATH_MAX + 32], real[PATH_MAX];
                snprintf(path, sizeof path, "%s%s", exe, rel[i]);
                if (is_dir(path)) {
                    snprintf(buf, len, "%s", realpath(path, real) ? real : path);
                    return 0;
                }
            }
        }
    }
    snprintf(buf, len, "schemas/templates");
    return is_dir(buf) ? 0 : -1;
}
