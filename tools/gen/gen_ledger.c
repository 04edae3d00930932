/* Ledger row generation of alloc-gen (see gen_ledger.h). */
#include "gen_ledger.h"
#include "gen_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_CITY = 1000 };

/* Shares in per mille. */
#define MGMT_DIFF_PER_MILLE 50     /* management adjustments, excluded from version F */
#define NULL_BUDGET_PER_MILLE 80   /* no budget item code: bound by account */
#define UNMATCHED_PER_MILLE 40     /* a budget item code with no binding: bound by account */
#define CROSS_SOURCE_PER_MILLE 2   /* direct row booked by another city's data source */
#define ZERO_PER_MILLE 2           /* amount 0.00 */
#define NEGATIVE_PER_MILLE 30      /* reversals and credit notes */
#define ROUND_FIGURE_PER_MILLE 150 /* round figures such as 12,000.00 */
#define PENDING_LINE_PER_MILLE 300 /* pending rows that carry a business line */

#define N_VERSIONS 2
static const char *const versions[N_VERSIONS] = {"M", "F"};

/* How one (version, item) pending row is allocated: driver index (-1 = equal), scope. */
typedef struct rule_ref {
    int driver;
    bool company_scope;
} rule_ref;

typedef struct city_state {
    gen_picker projects;  /* over the city's projects */
    gen_picker companies; /* over the city's companies, by project count */
    size_t n_active;
} city_state;

struct gen_ledger {
    const gen_world *w;
    const gen_ruleset *rs;
    char period[16];
    uint64_t seed;
    gen_picker direct_items, pending_items;             /* over base items */
    gen_picker direct_items_norev, pending_items_norev; /* the same without revenue lines */
    size_t *base_item;                                  /* picker index -> items index */
    city_state *cities;
    rule_ref *rules;                    /* [version * n_items + item] */
    size_t *company_active;             /* active projects per company */
    bool *city_weight, *company_weight; /* [driver * n + key]: total weight > 0 */
    /* position */
    size_t city;
    int64_t city_left, city_pending_left;
    gen_rng rng;
    int64_t done;
    gen_ledger_stats *city_stats;
    gen_ledger_work work;
};

void gen_ledger_free(gen_ledger *g) {
    if (!g)
        return;
    gen_picker_free(&g->direct_items);
    gen_picker_free(&g->pending_items);
    gen_picker_free(&g->direct_items_norev);
    gen_picker_free(&g->pending_items_norev);
    if (g->cities)
        for (size_t c = 0; c < g->w->n_cities; c++) {
            gen_picker_free(&g->cities[c].projects);
            gen_picker_free(&g->cities[c].companies);
        }
    free(g->cities);
    free(g->base_item);
    free(g->rules);
    free(g->company_active);
    free(g->city_weight);
    free(g->company_weight);
    free(g->city_stats);
    free(g);
}

/* Item pickers: a family's share of rows split over its items with a Zipf
 * tilt, so a few lines of each family carry most rows. */
static int init_item_pickers(gen_ledger *g) {
    const gen_ruleset *rs = g->rs;
    double *w[4];
    for (int k = 0; k < 4; k++)
        w[k] = calloc(rs->n_base, sizeof(double));
    g->base_item = calloc(rs->n_base, sizeof *g->base_item);
    int rc = -1;
    if (!w[0] || !w[1] || !w[2] || !w[3] || !g->base_item)
        goto out;
    size_t b = 0;
    for (size_t i = 0; i < rs->n_items; i++) {
        const gen_item *it = &rs->items[i];
        if (it->formula)
            continue;
        const gen_family *fam = &rs->families[it->family];
        long first = (long)i;
        while (first > 0 && !rs->items[first - 1].formula &&
               rs->items[first - 1].family == it->family)
            first--;
        double zsum = 0;
        for (int k = 0; k < fam->count; k++)
            zsum += pow(k + 1, -0.7);
        double share = pow((double)((long)i - first + 1), -0.7) / zsum;
        g->base_item[b] = i;
        w[0][b] = fam->direct_weight * share;
        w[1][b] = fam->pending_weight * share;
        w[2][b] = fam->revenue ? 0 : w[0][b];
        w[3][b] = fam->revenue ? 0 : w[1][b];
        b++;
    }
    if (gen_picker_init(&g->direct_items, w[0], b) || gen_picker_init(&g->pending_items, w[1], b) ||
        gen_picker_init(&g->direct_items_norev, w[2], b) ||
        gen_picker_init(&g->pending_items_norev, w[3], b))
        goto out;
    rc = 0;
out:
    for (int k = 0; k < 4; k++)
        free(w[k]);
    return rc;
}

static int init_cities(gen_ledger *g) {
    const gen_world *w = g->w;
    g->cities = calloc(w->n_cities, sizeof *g->cities);
    g->city_stats = calloc(w->n_cities, sizeof *g->city_stats);
    if (!g->cities || !g->city_stats)
        return -1;
    for (size_t c = 0; c < w->n_cities; c++) {
        const gen_city *city = &w->cities[c];
        city_state *cs = &g->cities[c];
        double *pw = calloc(city->n_projects, sizeof *pw);
        double cw[GEN_MAX_CITY_COMPANIES] = {0};
        if (!pw)
            return -1;
        for (size_t i = 0; i < city->n_projects; i++) {
            const gen_project *p = &w->projects[city->first_project + i];
            pw[i] = p->size * (p->active ? 1.0 : 0.3);
            cs->n_active += p->active;
            for (int k = 0; k < city->n_companies; k++)
                if (city->companies[k] == p->company)
                    cw[k] += 1;
        }
        for (int k = 0; k < city->n_companies; k++)
            if (cw[k] == 0)
                cw[k] = 0.5; /* a company with only public costs in the city */
        int rc = gen_picker_init(&cs->projects, pw, city->n_projects) ||
                 gen_picker_init(&cs->companies, cw, (size_t)city->n_companies);
        free(pw);
        if (rc)
            return -1;
    }
    return 0;
}

static int driver_index(const char *name) {
    for (int d = 0; d < GEN_N_DRIVERS; d++)
        if (!strcmp(gen_driver_names[d], name))
            return d;
    return -1; /* equal */
}

/* Resolved rules and the target counts and positive-weight flags of every
 * (driver, city) and (driver, company), for the work estimate. */
static int init_work_model(gen_ledger *g, const gen_drivers *d) {
    const gen_world *w = g->w;
    const gen_ruleset *rs = g->rs;
    g->rules = calloc(N_VERSIONS * rs->n_items, sizeof *g->rules);
    g->company_active = calloc(w->n_companies, sizeof *g->company_active);
    g->city_weight = calloc(GEN_N_DRIVERS * w->n_cities, sizeof(bool));
    g->company_weight = calloc(GEN_N_DRIVERS * w->n_companies, sizeof(bool));
    if (!g->rules || !g->company_active || !g->city_weight || !g->company_weight)
        return -1;
    for (int v = 0; v < N_VERSIONS; v++)
        for (size_t i = 0; i < rs->n_items; i++) {
            const gen_alloc_rule *r = gen_ruleset_rule_for(rs, versions[v], rs->items[i].code);
            rule_ref *ref = &g->rules[(size_t)v * rs->n_items + i];
            ref->driver = r ? driver_index(r->driver) : -1;
            ref->company_scope = r && !strcmp(r->scope, "company");
        }
    for (size_t p = 0; p < w->n_projects; p++) {
        const gen_project *proj = &w->projects[p];
        if (!proj->active)
            continue;
        g->company_active[proj->company]++;
        for (int k = 0; k < GEN_N_DRIVERS; k++) {
            if (d->value[(size_t)k * w->n_projects + p] <= 0)
                continue;
            g->city_weight[(size_t)k * w->n_cities + proj->city] = true;
            g->company_weight[(size_t)k * w->n_companies + (size_t)proj->company] = true;
        }
    }
    return 0;
}

static void start_city(gen_ledger *g, size_t c) {
    g->city = c;
    if (c >= g->w->n_cities)
        return;
    g->city_left = g->w->cities[c].rows;
    g->city_pending_left = g->w->cities[c].pending;
    gen_rng_seed(&g->rng, g->seed, gen_period_stream(g->period, STREAM_CITY + c));
}

gen_ledger *gen_ledger_new(const gen_world *w, const gen_ruleset *rs, const gen_drivers *d,
                           const char *period, uint64_t seed) {
    gen_ledger *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->w = w;
    g->rs = rs;
    g->seed = seed;
    snprintf(g->period, sizeof g->period, "%s", period);
    if (init_item_pickers(g) || init_cities(g) || init_work_model(g, d)) {
        gen_ledger_free(g);
        return NULL;
    }
    start_city(g, 0);
    return g;
}

/* An amount in cents for a row of the family: log-spread magnitudes around
 * the family's decade (within one decade when narrow), some round figures, a
 * few reversals and zeros. */
static int64_t amount_cents(gen_rng *r, const gen_family *fam, bool mixed_sign, bool narrow) {
    static const unsigned wide_cum[] = {3, 13, 38, 68, 88, 97, 100}; /* offsets -3..+3, % */
    static const unsigned narrow_cum[] = {0, 0, 25, 75, 100, 100, 100};
    const unsigned *offset_cum = narrow ? narrow_cum : wide_cum;
    if (gen_rng_chance(r, ZERO_PER_MILLE))
        return 0;
    unsigned x = (unsigned)gen_rng_below(r, 100);
    int off = 0;
    while (x >= offset_cum[off])
        off++;
    int decade = fam->magnitude + off - 3;
    if (decade < 1)
        decade = 1;
    if (decade > 10)
        decade = 10;
    int64_t lo = 1;
    for (int i = 0; i < decade; i++)
        lo *= 10;
    int64_t v = lo + (int64_t)gen_rng_below(r, (uint64_t)(9 * lo));
    if (decade >= 4 && gen_rng_chance(r, ROUND_FIGURE_PER_MILLE)) {
        int64_t unit = lo / 100;
        v = v / unit * unit;
    }
    bool negative =
        mixed_sign ? gen_rng_below(r, 2) != 0 : gen_rng_chance(r, NEGATIVE_PER_MILLE) != 0;
    return negative ? -v : v;
}

/* Adds the allocation work of one pending row of item (items index) in city c
 * with the given company and category. */
static void count_work(gen_ledger *g, size_t c, size_t item, int company, bool mgmt_diff) {
    for (int v = 0; v < N_VERSIONS; v++) {
        if (mgmt_diff && !strcmp(versions[v], "F"))
            continue;
        const rule_ref *ref = &g->rules[(size_t)v * g->rs->n_items + item];
        size_t targets = ref->company_scope ? g->company_active[company] : g->cities[c].n_active;
        bool weight;
        if (ref->driver < 0)
            weight = targets > 0;
        else if (ref->company_scope)
            weight = g->company_weight[(size_t)ref->driver * g->w->n_companies + (size_t)company];
        else
            weight = g->city_weight[(size_t)ref->driver * g->w->n_cities + c];
        if (weight) {
            g->work.pairs++;
            g->work.steps += (int64_t)targets;
        } else {
            g->work.unallocated_pairs++;
        }
    }
}

/* Writes one row of city c to out. */
static void emit_row(gen_ledger *g, size_t c, bool pending, gen_text *out) {
    static const char *const lines[] = {"residential", "commercial", "office", "industrial"};
    const gen_world *w = g->w;
    const gen_ruleset *rs = g->rs;
    const gen_city *city = &w->cities[c];
    city_state *cs = &g->cities[c];
    gen_rng *r = &g->rng;
    gen_ledger_stats *st = &g->city_stats[c];

    const gen_project *proj = NULL;
    int company;
    const char *line;
    bool cross = false;
    if (pending) {
        company = city->companies[gen_picker_pick(&cs->companies, r)];
        line = gen_rng_chance(r, PENDING_LINE_PER_MILLE) ? lines[gen_rng_below(r, 4)] : NULL;
    } else {
        proj = &w->projects[city->first_project + gen_picker_pick(&cs->projects, r)];
        if (w->n_cities > 1 && gen_rng_chance(r, CROSS_SOURCE_PER_MILLE)) {
            do {
                proj = &w->projects[gen_rng_below(r, w->n_projects)];
            } while (proj->city == c);
            cross = true;
        }
        company = proj->company;
        line = proj->business_line;
    }

    /* A new city books no revenue: not on its pool, not on its projects (even
     * from another data source). */
    const gen_picker *items =
        pending ? (city->no_revenue ? &g->pending_items_norev : &g->pending_items)
                : (w->cities[proj->city].no_revenue ? &g->direct_items_norev : &g->direct_items);
    size_t item = g->base_item[gen_picker_pick(items, r)];
    const gen_family *fam = &rs->families[rs->items[item].family];
    bool mgmt_diff = gen_rng_chance(r, MGMT_DIFF_PER_MILLE);

    /* Binding: by budget item code, or by account code when the budget item
     * code is missing or unknown (then the account decides the item). */
    char budget[16];
    const char *budget_code, *account_code;
    unsigned mode = mgmt_diff ? 0 : (unsigned)gen_rng_below(r, 1000);
    if (mode < 1000 - NULL_BUDGET_PER_MILLE - UNMATCHED_PER_MILLE) {
        const gen_item *it = &rs->items[item];
        budget_code = it->budget[gen_rng_below(r, (uint64_t)it->n_budget)];
        int first = rs->family_first_account[it->family];
        int n = rs->family_n_accounts[it->family];
        /* Management adjustments are not GL postings: no account. */
        account_code =
            mgmt_diff ? NULL : rs->accounts[first + (int)gen_rng_below(r, (uint64_t)n)].code;
    } else {
        const gen_account *acc = &rs->accounts[rs->items[item].account];
        item = acc->item;
        account_code = acc->code;
        if (mode < 1000 - UNMATCHED_PER_MILLE) {
            budget_code = NULL;
        } else {
            snprintf(budget, sizeof budget, "BI9%04u", (unsigned)gen_rng_below(r, 10000));
            budget_code = budget;
        }
        st->via_account++;
    }
    int64_t cents =
        amount_cents(r, fam, mgmt_diff || fam->sign == GEN_SIGN_MIXED, rs->narrow_amounts);

    gen_copy_field(out, g->period);
    gen_copy_field(out, w->companies[company]);
    gen_copy_field(out, city->code);
    gen_copy_field(out, line);
    gen_copy_field(out, budget_code);
    gen_copy_field(out, account_code);
    gen_copy_field(out, proj ? proj->code : NULL);
    gen_copy_field(out, mgmt_diff ? "mgmt_diff" : fam->category);
    gen_copy_fixed(out, cents, 2);
    gen_copy_end_row(out);

    st->rows++;
    if (pending) {
        st->pending++;
        count_work(g, c, item, company, mgmt_diff);
    } else {
        st->direct++;
    }
    st->cross_source += cross;
    st->mgmt_diff += mgmt_diff;
    st->negative += cents < 0;
    st->zero += cents == 0;
}

int gen_ledger_fill(gen_ledger *g, gen_text *out, size_t min_bytes) {
    while (g->city < g->w->n_cities) {
        if (g->city_left == 0) {
            start_city(g, g->city + 1);
            continue;
        }
        if (out->text.len >= min_bytes)
            return 1;
        /* Selection sampling: exactly `pending` of the city's rows are pending,
         * spread evenly through its rows. */
        bool pending =
            (int64_t)gen_rng_below(&g->rng, (uint64_t)g->city_left) < g->city_pending_left;
        emit_row(g, g->city, pending, out);
        if (out->text.oom)
            return -1;
        g->city_left--;
        g->city_pending_left -= pending;
        g->done++;
    }
    return 0;
}

int64_t gen_ledger_done(const gen_ledger *g) {
    return g->done;
}

const gen_ledger_stats *gen_ledger_city_stats(const gen_ledger *g, size_t c) {
    return &g->city_stats[c];
}

void gen_ledger_total_stats(const gen_ledger *g, gen_ledger_stats *total) {
    memset(total, 0, sizeof *total);
    for (size_t c = 0; c < g->w->n_cities; c++) {
        const gen_ledger_stats *s = &g->city_stats[c];
        total->rows += s->rows;
        total->pending += s->pending;
        total->direct += s->direct;
        total->cross_source += s->cross_source;
        total->mgmt_diff += s->mgmt_diff;
        total->via_account += s->via_account;
        total->negative += s->negative;
        total->zero += s->zero;
    }
}

const gen_ledger_work *gen_ledger_work_stats(const gen_ledger *g) {
    return &g->work;
}
