/* The in-memory model alloc-gen builds before loading: the world (cities,
 * companies, projects), the ruleset (report items, bindings, allocation and
 * audit rules) and the period's driver values. Building is pure and
 * deterministic: the world depends on the scale only, the ruleset on nothing
 * (so several periods and seeds share one ruleset), the drivers and the ledger
 * rows on (seed, scale, period). */
#ifndef GEN_MODEL_H
#define GEN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seed scale (DESIGN.md section 1); --scale multiplies rows, pending rows and projects. */
#define GEN_SEED_ROWS 2000000
#define GEN_SEED_PENDING 400000
#define GEN_SEED_PROJECTS 3000
#define GEN_MIN_PROJECTS 60
#define GEN_MAX_CITY_COMPANIES 3
#define GEN_N_DRIVERS 4 /* headcount, area, revenue, contracts; plus the 'equal' pseudo-driver */

extern const char *const gen_driver_names[GEN_N_DRIVERS];

/* ------------------------------------------------------------------ world */

typedef struct gen_city {
    const char *code; /* the data source */
    int n_companies;
    int companies[GEN_MAX_CITY_COMPANIES]; /* indexes into gen_world.companies */
    size_t first_project, n_projects;      /* its projects: projects[first .. first+n) */
    int64_t rows, pending;                 /* ledger rows of the period (pending included) */
    bool no_active;           /* every project inactive: city-scope allocations find no target */
    bool no_revenue;          /* a new city: no revenue rows */
    bool zero_revenue_driver; /* revenue driver 0 on every project: by-revenue allocation finds no
                                 weight */
} gen_city;

typedef struct gen_project {
    char code[32];
    size_t city;
    int company;
    const char *business_line; /* NULL allowed */
    bool active;
    uint32_t size; /* relative share of its city's direct rows, and driver magnitude */
} gen_project;

typedef struct gen_world {
    gen_city *cities;
    size_t n_cities;
    const char *const *companies;
    size_t n_companies;
    gen_project *projects;
    size_t n_projects;
    int64_t rows, pending; /* totals over the cities */
} gen_world;

/* The standard world at a scale (> 0): 30 cities with Zipf-skewed rows and
 * projects, round(2,000,000 * scale) rows of which round(400,000 * scale)
 * pending, max(60, round(3000 * scale)) projects. NULL when out of memory.
 * Free with gen_world_free. */
gen_world *gen_world_std(double scale);
/* The small readable demo world: 3 cities, 12 projects, 200 rows. */
gen_world *gen_world_demo(void);
void gen_world_free(gen_world *w);

/* ---------------------------------------------------------------- ruleset */

typedef enum { GEN_SIGN_POSITIVE, GEN_SIGN_MIXED } gen_sign;

/* A family of base items sharing a GL account root, a ledger category and an
 * amount profile; the std ruleset has 23 families, 450 base items. */
typedef struct gen_family {
    const char *prefix;     /* item code stem: RENT_INCOME -> RENT_INCOME_02 */
    const char *name;       /* human name stem */
    const char *lead_code;  /* legacy code of the first item (may hold spaces), or NULL */
    const char *total_code; /* formula item summing the family, or NULL */
    int count;              /* base items */
    int section;            /* report section: 0 revenue, 1 cost, 2 opex, 3 below the line */
    bool revenue;           /* revenue lines: never booked in a no_revenue city */
    const char *category;   /* default ledger category */
    const char *account;    /* GL account root */
    int direct_weight;      /* relative share of direct rows */
    int pending_weight;     /* relative share of pending rows */
    int magnitude;          /* typical amount: decade of cents (5 = 1,000.00-9,999.99) */
    gen_sign sign;
} gen_family;

#define GEN_MAX_BUDGET_CODES 3

typedef struct gen_item {
    char code[48];
    char name[96];
    bool formula;
    char *text; /* formula text (owned), NULL for base items */
    int sort_order;
    int family;   /* -1 for formula items */
    int n_budget; /* base: budget item codes bound to it */
    char budget[GEN_MAX_BUDGET_CODES][16];
    int account; /* base: index into gen_ruleset.accounts of its family's account for it */
} gen_item;

typedef struct gen_account {
    char code[16];
    size_t item; /* the base item the account is bound to */
} gen_account;

typedef struct gen_alloc_rule {
    const char *version;   /* M | F */
    const char *item_code; /* '*' = default of the version */
    const char *driver;    /* a driver name or 'equal' */
    const char *scope;     /* city | company */
} gen_alloc_rule;

typedef struct gen_audit_rule {
    const char *code, *expr, *message, *severity;
} gen_audit_rule;

typedef struct gen_ruleset {
    const gen_family *families;
    size_t n_families;
    int *family_first_account, *family_n_accounts; /* per family */
    gen_item *items;                               /* report order; sort_order = 10 * (index + 1) */
    size_t n_items, n_base, n_formula;
    gen_account *accounts;
    size_t n_accounts;
    gen_alloc_rule *rules; /* item codes point into items */
    size_t n_rules;
    const gen_audit_rule *audits;
    size_t n_audits;
    bool narrow_amounts; /* amounts within a decade of the family's magnitude (demo) */
} gen_ruleset;

/* The standard ruleset (450 base + 50 formula items, bindings by budget item
 * and account, M/F allocation rules, audit rules) and the demo ruleset (10
 * items). NULL when out of memory. Free with gen_ruleset_free. */
gen_ruleset *gen_ruleset_std(void);
gen_ruleset *gen_ruleset_demo(void);
void gen_ruleset_free(gen_ruleset *rs);

/* Index of the item with this code, or -1. */
long gen_ruleset_find(const gen_ruleset *rs, const char *code);

/* The allocation rule of (version, item) as the pipeline resolves it: the
 * item's own rule, else the version's '*' rule; NULL when neither exists. */
const gen_alloc_rule *gen_ruleset_rule_for(const gen_ruleset *rs, const char *version,
                                           const char *item_code);

/* ---------------------------------------------------------------- drivers */

/* Driver values of one period: value[d * n_projects + p] in millionths
 * (numeric(18,6) * 10^6) for driver d of gen_driver_names and project p. */
typedef struct gen_drivers {
    size_t n_projects;
    int64_t *value;
} gen_drivers;

/* Values for every driver and project of w, from (seed, period). Some are 0;
 * revenue is 0 for every project of a zero_revenue_driver city. NULL when out of memory. */
gen_drivers *gen_drivers_build(const gen_world *w, uint64_t seed, const char *period);
void gen_drivers_free(gen_drivers *d);

/* The seed stream of (seed, period, part): mixes the period code in. */
uint64_t gen_period_stream(const char *period, uint64_t part);

#endif
