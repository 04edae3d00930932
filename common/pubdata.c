/* Parsing of a run's public data and precomputation of its target groups. */
#include "pubdata.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small string-keyed open-addressing map (keys owned by the caller) ---- */

typedef struct strmap {
    const char **keys;
    void **values;
    size_t cap; /* power of two */
    size_t len;
} strmap;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strmap_grow(strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    const char **keys = calloc(cap, sizeof *keys);
    void **values = calloc(cap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = str_hash(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        values[j] = m->values[i];
    }
    free(m->keys);
    free(m->values);
    m->keys = keys;
    m->values = values;
    m->cap = cap;
    return 0;
}

/* Sets key -> value unless key is present; returns the value now stored, NULL on OOM. */
static void *strmap_put(strmap *m, const char *key, void *value) {
    if ((m->len + 1) * 2 > m->cap && strmap_grow(m) != 0)
        return NULL;
    size_t j = str_hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key))
            return m->values[j];
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->values[j] = value;
    m->len++;
    return value;
}

static void *strmap_get(const strmap *m, const char *key) {
    if (!m->cap)
        return NULL;
    size_t j = str_hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key))
            return m->values[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

static void strmap_free(strmap *m) {
    free(m->keys);
    free(m->values);
}

/* ---- the document ---- */

typedef struct version_info {
    const char *name;
    int all_categories;
    const char **categories;
    size_t n_categories;
} version_info;

typedef struct project_info {
    const char *code, *company, *data_source;
} project_info;

typedef struct driver_info {
    const char *name;
    uint64_t *weight; /* per project index; 0 when missing */
} driver_info;

typedef struct group_entry {
    pubdata_group group;
    uint32_t *project;
    uint64_t *weight;
    char *key;
} group_entry;

struct pubdata {
    json_t *doc; /* owns every string the tables point to */
    version_info versions[PUBDATA_MAX_VERSIONS];
    size_t n_versions;
    project_info *projects;
    size_t n_projects;
    driver_info *drivers;
    size_t n_drivers;
    pubdata_rule *rules;
    char **rule_keys;
    size_t n_rules;
    strmap rule_map;    /* "v\x1fitem" -> pubdata_rule */
    strmap project_map; /* code -> index + 1 */
    strmap group_map;   /* "driver\x1fscope\x1fkey" -> group_entry */
    group_entry **groups;
    size_t n_groups;
};

static const pubdata_group empty_group = {0, NULL, NULL, 0};

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *str_at(json_t *arr, size_t i) {
    json_t *v = json_array_get(arr, i);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static int parse_versions(pubdata *pd, json_t *arr, char *err, size_t errlen) {
    if (!json_is_array(arr))
        return fail(err, errlen, "\"versions\": expected an array");
    if (json_array_size(arr) > PUBDATA_MAX_VERSIONS)
        return fail(err, errlen, "\"versions\": more than %d versions", PUBDATA_MAX_VERSIONS);
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        version_info *v = &pd->versions[i];
        json_t *cats = json_array_get(row, 1);
        v->name = str_at(row, 0);
        if (!json_is_array(row) || json_array_size(row) != 2 || !v->name ||
            !(json_is_null(cats) || json_is_array(cats)))
            return fail(err, errlen, "versions[%zu]: expected [name, null or [categories]]", i);
        v->all_categories = json_is_null(cats);
        if (!v->all_categories) {
            v->n_categories = json_array_size(cats);
            v->categories = calloc(v->n_categories + 1, sizeof *v->categories);
            if (!v->categories)
                return fail(err, errlen, "out of memory");
            for (size_t c = 0; c < v->n_categories; c++) {
                v->categories[c] = str_at(cats, c);
                if (!v->categories[c])
                    return fail(err, errlen, "versions[%zu] categories[%zu]: expected a string", i,
                                c);
            }
        }
    }
    pd->n_versions = json_array_size(arr);
    return 0;
}

static int parse_projects(pubdata *pd, json_t *arr, char *err, size_t errlen) {
    if (!json_is_array(arr))
        return fail(err, errlen, "\"projects\": expected an array");
    pd->n_projects = json_array_size(arr);
    pd->projects = calloc(pd->n_projects + 1, sizeof *pd->projects);
    if (!pd->projects)
        return fail(err, errlen, "out of memory");
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        project_info *p = &pd->projects[i];
        p->code = str_at(row, 0);
        p->company = str_at(row, 1);
        p->data_source = str_at(row, 2);
        if (!json_is_array(row) || json_array_size(row) != 3 || !p->code || !p->company ||
            !p->data_source)
            return fail(err, errlen, "projects[%zu]: expected [code, company, data source]", i);
        if (i > 0 && strcmp(pd->projects[i - 1].code, p->code) >= 0)
            return fail(err, errlen, "projects[%zu]: \"%s\" is not in ascending byte order", i,
                        p->code);
        if (!strmap_put(&pd->project_map, p->code, (void *)(uintptr_t)(i + 1)))
            return fail(err, errlen, "out of memory");
    }
    return 0;
}

static driver_info *driver_named(pubdata *pd, const char *name) {
    for (size_t d = 0; d < pd->n_drivers; d++)
        if (!strcmp(pd->drivers[d].name, name))
            return &pd->drivers[d];
    driver_info *grown = realloc(pd->drivers, (pd->n_drivers + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    pd->drivers = grown;
    driver_info *d = &pd->drivers[pd->n_drivers];
    d->name = name;
    d->weight = calloc(pd->n_projects + 1, sizeof *d->weight);
    if (!d->weight)
        return NULL;
    pd->n_drivers++;
    return d;
}

static int parse_drivers(pubdata *pd, json_t *arr, char *err, size_t errlen) {
    if (!json_is_array(arr))
        return fail(err, errlen, "\"drivers\": expected an array");
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        const char *name = str_at(row, 0), *code = str_at(row, 1), *value = str_at(row, 2);
        if (!json_is_array(row) || json_array_size(row) != 3 || !name || !code || !value)
            return fail(err, errlen, "drivers[%zu]: expected [driver, project, value]", i);
        int64_t w;
        if (alloc_parse_scaled(value, 6, &w) != 0 || w < 0)
            return fail(err, errlen, "drivers[%zu]: bad value \"%s\"", i, value);
        uintptr_t p = (uintptr_t)strmap_get(&pd->project_map, code);
        if (!p)
            continue; /* an inactive project is never a target */
        driver_info *d = driver_named(pd, name);
        if (!d)
            return fail(err, errlen, "out of memory");
        d->weight[p - 1] = (uint64_t)w;
    }
    return 0;
}

static int parse_rules(pubdata *pd, json_t *arr, char *err, size_t errlen) {
    if (!json_is_array(arr))
        return fail(err, errlen, "\"rules\": expected an array");
    pd->n_rules = json_array_size(arr);
    pd->rules = calloc(pd->n_rules + 1, sizeof *pd->rules);
    pd->rule_keys = calloc(pd->n_rules + 1, sizeof *pd->rule_keys);
    if (!pd->rules || !pd->rule_keys)
        return fail(err, errlen, "out of memory");
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        const char *version = str_at(row, 0), *item = str_at(row, 1), *driver = str_at(row, 2),
                   *scope = str_at(row, 3);
        if (!json_is_array(row) || json_array_size(row) != 4 || !version || !item || !driver ||
            !scope)
            return fail(err, errlen, "rules[%zu]: expected [version, item, driver, scope]", i);
        size_t v = 0;
        while (v < pd->n_versions && strcmp(pd->versions[v].name, version))
            v++;
        if (v == pd->n_versions)
            continue; /* a rule of a version not in report_version */
        pubdata_rule *r = &pd->rules[i];
        r->driver = driver;
        if (!strcmp(scope, "city"))
            r->scope = PUBDATA_SCOPE_CITY;
        else if (!strcmp(scope, "company"))
            r->scope = PUBDATA_SCOPE_COMPANY;
        else
            return fail(err, errlen, "rules[%zu]: unknown scope \"%s\"", i, scope);
        size_t klen = strlen(item) + 8;
        pd->rule_keys[i] = malloc(klen);
        if (!pd->rule_keys[i])
            return fail(err, errlen, "out of memory");
        snprintf(pd->rule_keys[i], klen, "%zu\x1f%s", v, item);
        if (!strmap_put(&pd->rule_map, pd->rule_keys[i], r))
            return fail(err, errlen, "out of memory");
    }
    return 0;
}

static char *group_key(const char *driver, pubdata_scope scope, const char *key) {
    size_t len = strlen(driver) + strlen(key) + 5;
    char *k = malloc(len);
    if (k)
        snprintf(k, len, "%s\x1f%d\x1f%s", driver, (int)scope, key);
    return k;
}

/* Builds the group of (driver, scope, key) unless it exists. */
static int add_group(pubdata *pd, const char *driver, pubdata_scope scope, const char *key) {
    char *k = group_key(driver, scope, key);
    if (!k)
        return -1;
    if (strmap_get(&pd->group_map, k)) {
        free(k);
        return 0;
    }
    group_entry *g = calloc(1, sizeof *g);
    group_entry **grown = realloc(pd->groups, (pd->n_groups + 1) * sizeof *grown);
    if (!g || !grown) {
        free(g);
        free(k);
        return -1;
    }
    pd->groups = grown;
    pd->groups[pd->n_groups++] = g;
    g->key = k;
    int equal = !strcmp(driver, "equal");
    const driver_info *d = NULL;
    for (size_t i = 0; i < pd->n_drivers; i++)
        if (!strcmp(pd->drivers[i].name, driver))
            d = &pd->drivers[i];
    size_t n = 0;
    for (size_t p = 0; p < pd->n_projects; p++) {
        const char *pk =
            scope == PUBDATA_SCOPE_CITY ? pd->projects[p].data_source : pd->projects[p].company;
        if (!strcmp(pk, key))
            n++;
    }
    g->project = calloc(n + 1, sizeof *g->project);
    g->weight = calloc(n + 1, sizeof *g->weight);
    if (!g->project || !g->weight)
        return -1;
    n = 0;
    for (size_t p = 0; p < pd->n_projects; p++) {
        const char *pk =
            scope == PUBDATA_SCOPE_CITY ? pd->projects[p].data_source : pd->projects[p].company;
        if (strcmp(pk, key))
            continue;
        g->project[n] = (uint32_t)p;
        g->weight[n] = equal ? 1 : d ? d->weight[p] : 0;
        g->group.total_weight += g->weight[n];
        n++;
    }
    g->group.n = n;
    g->group.project = g->project;
    g->group.weight = g->weight;
    return strmap_put(&pd->group_map, g->key, g) ? 0 : -1;
}

/* Builds every group a rule can ask for: each distinct (driver, scope) of the
 * rules over each data source or company that has an active project. */
static int build_groups(pubdata *pd) {
    for (size_t r = 0; r < pd->n_rules; r++) {
        if (!pd->rule_keys[r])
            continue;
        const pubdata_rule *rule = &pd->rules[r];
        int seen = 0;
        for (size_t e = 0; e < r && !seen; e++)
            seen = pd->rule_keys[e] && pd->rules[e].scope == rule->scope &&
                   !strcmp(pd->rules[e].driver, rule->driver);
        if (seen)
            continue;
        for (size_t p = 0; p < pd->n_projects; p++) {
            const char *key = rule->scope == PUBDATA_SCOPE_CITY ? pd->projects[p].data_source
                                                                : pd->projects[p].company;
            if (add_group(pd, rule->driver, rule->scope, key) != 0)
                return -1;
        }
    }
    return 0;
}

pubdata *pubdata_parse(const char *json, size_t len, char *err, size_t errlen) {
    pubdata *pd = calloc(1, sizeof *pd);
    if (!pd) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    json_error_t jerr;
    pd->doc = json_loadb(json, len, 0, &jerr);
    if (!pd->doc) {
        fail(err, errlen, "public data is not JSON: %s at %d:%d", jerr.text, jerr.line,
             jerr.column);
        goto bad;
    }
    if (!json_is_object(pd->doc)) {
        fail(err, errlen, "public data: expected an object");
        goto bad;
    }
    if (parse_versions(pd, json_object_get(pd->doc, "versions"), err, errlen) ||
        parse_projects(pd, json_object_get(pd->doc, "projects"), err, errlen) ||
        parse_drivers(pd, json_object_get(pd->doc, "drivers"), err, errlen) ||
        parse_rules(pd, json_object_get(pd->doc, "rules"), err, errlen))
        goto bad;
    if (build_groups(pd) != 0) {
        fail(err, errlen, "out of memory");
        goto bad;
    }
    return pd;
bad:
    pubdata_free(pd);
    return NULL;
}

void pubdata_free(pubdata *pd) {
    if (!pd)
        return;
    for (size_t v = 0; v < pd->n_versions; v++)
        free(pd->versions[v].categories);
    for (size_t d = 0; d < pd->n_drivers; d++)
        free(pd->drivers[d].weight);
    free(pd->drivers);
    for (size_t r = 0; r < pd->n_rules; r++)
        free(pd->rule_keys[r]);
    free(pd->rule_keys);
    free(pd->rules);
    for (size_t g = 0; g < pd->n_groups; g++) {
        free(pd->groups[g]->project);
        free(pd->groups[g]->weight);
        free(pd->groups[g]->key);
        free(pd->groups[g]);
    }
    free(pd->groups);
    free(pd->projects);
    strmap_free(&pd->rule_map);
    strmap_free(&pd->project_map);
    strmap_free(&pd->group_map);
    json_decref(pd->doc);
    free(pd);
}

size_t pubdata_version_count(const pubdata *pd) {
    return pd->n_versions;
}

const char *pubdata_version_name(const pubdata *pd, size_t v) {
    return pd->versions[v].name;
}

int pubdata_includes(const pubdata *pd, size_t v, const char *category) {
    const version_info *vi = &pd->versions[v];
    if (vi->all_categories)
        return 1;
    for (size_t c = 0; c < vi->n_categories; c++)
        if (!strcmp(vi->categories[c], category))
            return 1;
    return 0;
}

const pubdata_rule *pubdata_rule_for(const pubdata *pd, size_t v, const char *item_code) {
    char key[512];
    if ((size_t)snprintf(key, sizeof key, "%zu\x1f%s", v, item_code) < sizeof key) {
        const pubdata_rule *r = strmap_get(&pd->rule_map, key);
        if (r)
            return r;
    }
    snprintf(key, sizeof key, "%zu\x1f*", v);
    return strmap_get(&pd->rule_map, key);
}

const pubdata_group *pubdata_targets(const pubdata *pd, const pubdata_rule *rule,
                                     const char *data_source, const char *company_code) {
    const char *scope_key = rule->scope == PUBDATA_SCOPE_CITY ? data_source : company_code;
    char key[512];
    if ((size_t)snprintf(key, sizeof key, "%s\x1f%d\x1f%s", rule->driver, (int)rule->scope,
                         scope_key) >= sizeof key)
        return &empty_group;
    const group_entry *g = strmap_get(&pd->group_map, key);
    return g ? &g->group : &empty_group;
}

const char *pubdata_project_code(const pubdata *pd, uint32_t project) {
    return pd->projects[project].code;
}

const char *pubdata_project_source(const pubdata *pd, uint32_t project) {
    return pd->projects[project].data_source;
}

size_t pubdata_project_count(const pubdata *pd) {
    return pd->n_projects;
}
