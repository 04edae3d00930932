/* The public data of a run that consumers allocate with: report versions and the
 * categories they include, allocation rules, active projects and driver weights.
 * The producer writes it as one JSON document (cached in Redis); this module
 * parses it and precomputes every target group. Pure (no I/O). A parsed
 * pubdata is read-only and may be shared by threads. */
#ifndef ALLOC_PUBDATA_H
#define ALLOC_PUBDATA_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

typedef struct pubdata pubdata;

#define PUBDATA_MAX_VERSIONS 8

typedef enum { PUBDATA_SCOPE_CITY = 0, PUBDATA_SCOPE_COMPANY = 1 } pubdata_scope;

/* The targets of one (driver, scope, scope key): active projects in ascending
 * project_code byte order with their integer weights (value x 10^6, or 1 for
 * 'equal') and the total weight. */
typedef struct pubdata_group {
    size_t n;
    const uint32_t *project; /* project indices (see pubdata_project_code) */
    const uint64_t *weight;
    alloc_u128 total_weight;
} pubdata_group;

/* The resolved rule of (version, item): the item's own rule, else the version's '*'. */
typedef struct pubdata_rule {
    const char *driver;
    pubdata_scope scope;
} pubdata_rule;

/* Parses the JSON document. Returns NULL with a message in err when it is not a
 * valid public-data document. Free with pubdata_free (accepts NULL).
 *
 * Document:
 *   {"versions": [["M", null], ["F", ["gl", "rent"]]],           -- null: all categories
 *    "rules":    [["M", "*", "headcount", "city"], ...],          -- version, item, driver, scope
 *    "projects": [["P001", "C01", "BJ"], ...],                    -- active projects: code,
 * company, data source "drivers":  [["headcount", "P001", "12.500000"], ...]}       -- driver,
 * project, value */
pubdata *pubdata_parse(const char *json, size_t len, char *err, size_t errlen);
void pubdata_free(pubdata *pd);

size_t pubdata_version_count(const pubdata *pd);
const char *pubdata_version_name(const pubdata *pd, size_t v);
/* 1 when version v includes ledger rows of this category. */
int pubdata_includes(const pubdata *pd, size_t v, const char *category);

/* The rule for (version v, item), or NULL when neither the item nor '*' has one. */
const pubdata_rule *pubdata_rule_for(const pubdata *pd, size_t v, const char *item_code);

/* The targets of a rule for a row of this data source and company. Never NULL:
 * a group without targets has n = 0. */
const pubdata_group *pubdata_targets(const pubdata *pd, const pubdata_rule *rule,
                                     const char *data_source, const char *company_code);

const char *pubdata_project_code(const pubdata *pd, uint32_t project);
const char *pubdata_project_source(const pubdata *pd, uint32_t project);
size_t pubdata_project_count(const pubdata *pd);

#endif
