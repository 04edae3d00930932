/* The world of alloc-gen: cities, companies, projects and the period's driver
 * values (see gen_model.h). */
#include "gen_model.h"
#include "gen_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const gen_driver_names[GEN_N_DRIVERS] = {"headcount", "area", "revenue", "contracts"};

/* The 30 data sources, largest first (Zipf rank = position + 1). */
static const char *const std_cities[] = {"SHA", "PEK", "SZX", "CAN", "CTU", "HGH", "CKG", "WUH",
                                         "NKG", "XIY", "TSN", "CSX", "SZV", "CGO", "TAO", "NGB",
                                         "SHE", "DLC", "XMN", "FOC", "KMG", "HFE", "TNA", "SJW",
                                         "HRB", "NNG", "KWE", "TYN", "LHW", "URC"};
#define STD_CITIES (sizeof std_cities / sizeof std_cities[0])

static const char *const std_companies[] = {"1100", "1200", "1300", "1400", "1500", "1600", "1700"};
#define STD_COMPANIES (sizeof std_companies / sizeof std_companies[0])

/* Zipf exponents: s = 1 gives the largest of 30 cities 25.0% of the rows;
 * s = 0.85 gives it 19.9% of the projects (~600 of 3,000). */
#define ROWS_ZIPF_S 1.0
#define PROJECTS_ZIPF_S 0.85
/* Rank (1-based) of the new city without revenue and of the winding-down city
 * without active projects. */
#define NO_REVENUE_RANK 15
#define NO_ACTIVE_RANK 30

/* The world does not depend on --seed: periods generated with different seeds
 * into one database share their projects. */
#define WORLD_SEED 0x616c6c6f63ULL /* "alloc" */

enum { STREAM_COMPANIES = 1, STREAM_PROJECTS, STREAM_PENDING_SHARE, STREAM_DRIVERS = 100 };

static const char *const business_lines[] = {"residential", "commercial", "office", "industrial"};
static const double business_line_weights[] = {35, 30, 20, 10, 5}; /* last: NULL */

static gen_world *world_alloc(size_t n_cities, size_t n_projects) {
    gen_world *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cities = calloc(n_cities, sizeof *w->cities);
    w->projects = calloc(n_projects, sizeof *w->projects);
    if (!w->cities || !w->projects) {
        gen_world_free(w);
        return NULL;
    }
    w->n_cities = n_cities;
    w->n_projects = n_projects;
    return w;
}

void gen_world_free(gen_world *w) {
    if (!w)
        return;
    free(w->cities);
    free(w->projects);
    free(w);
}

/* Gives each city 1-3 distinct companies (3 for the largest cities, 1-2 for the
 * small ones) and makes sure every company operates somewhere. */
static void assign_companies(gen_world *w, gen_rng *r) {
    int used[STD_COMPANIES] = {0};
    for (size_t c = 0; c < w->n_cities; c++) {
        gen_city *city = &w->cities[c];
        int n = c < 4 ? 3 : c < 12 ? 2 : 1 + (int)gen_rng_below(r, 2);
        size_t idx[STD_COMPANIES];
        for (size_t i = 0; i < STD_COMPANIES; i++)
            idx[i] = i;
        gen_rng_shuffle(r, idx, STD_COMPANIES);
        city->n_companies = n;
        for (int i = 0; i < n; i++) {
            city->companies[i] = (int)idx[i];
            used[idx[i]] = 1;
        }
    }
    for (size_t k = 0; k < STD_COMPANIES; k++) {
        if (used[k])
            continue;
        for (size_t c = w->n_cities; c-- > 0;) {
            if (w->cities[c].n_companies < GEN_MAX_CITY_COMPANIES) {
                w->cities[c].companies[w->cities[c].n_companies++] = (int)k;
                break;
            }
        }
    }
}

/* Company, business line, size and activity of the projects of each city. */
static int fill_projects(gen_world *w, gen_rng *r) {
    static const double company_share[GEN_MAX_CITY_COMPANIES] = {6, 3, 1};
    gen_picker line_picker;
    if (gen_picker_init(&line_picker, business_line_weights, 5))
        return -1;
    for (size_t c = 0; c < w->n_cities; c++) {
        gen_city *city = &w->cities[c];
        gen_picker company_picker;
        if (gen_picker_init(&company_picker, company_share, (size_t)city->n_companies)) {
            gen_picker_free(&line_picker);
            return -1;
        }
        size_t active = 0;
        for (size_t i = 0; i < city->n_projects; i++) {
            gen_project *p = &w->projects[city->first_project + i];
            snprintf(p->code, sizeof p->code, "%s-%04zu", city->code, i + 1);
            p->city = c;
            p->company = city->companies[gen_picker_pick(&company_picker, r)];
            size_t line = gen_picker_pick(&line_picker, r);
            p->business_line = line < 4 ? business_lines[line] : NULL;
            /* Most projects are small, a few are large. */
            p->size = 1 + (uint32_t)gen_rng_below(r, 20);
            if (gen_rng_chance(r, 100))
                p->size += 20 + (uint32_t)gen_rng_below(r, 80);
            p->active = !city->no_active && !gen_rng_chance(r, 20);
            active += p->active;
        }
        /* Keep at least one target in every city that is meant to have one. */
        if (!city->no_active && active == 0)
            w->projects[city->first_project].active = true;
        gen_picker_free(&company_picker);
    }
    gen_picker_free(&line_picker);
    return 0;
}

gen_world *gen_world_std(double scale) {
    size_t n_projects = (size_t)llround(GEN_SEED_PROJECTS * scale);
    if (n_projects < GEN_MIN_PROJECTS)
        n_projects = GEN_MIN_PROJECTS;
    gen_world *w = world_alloc(STD_CITIES, n_projects);
    if (!w)
        return NULL;
    w->companies = std_companies;
    w->n_companies = STD_COMPANIES;
    w->rows = llround(GEN_SEED_ROWS * scale);
    w->pending = llround(GEN_SEED_PENDING * scale);

    double row_w[STD_CITIES], proj_w[STD_CITIES], pend_w[STD_CITIES];
    int64_t rows[STD_CITIES], pending[STD_CITIES], projects[STD_CITIES];
    gen_zipf_weights(row_w, STD_CITIES, ROWS_ZIPF_S);
    gen_zipf_weights(proj_w, STD_CITIES, PROJECTS_ZIPF_S);
    gen_rng r;
    gen_rng_seed(&r, WORLD_SEED, STREAM_PENDING_SHARE);
    if (gen_apportion(w->rows, row_w, STD_CITIES, 1, rows) ||
        gen_apportion((int64_t)n_projects, proj_w, STD_CITIES, 1, projects)) {
        gen_world_free(w);
        return NULL;
    }
    /* Pending rows follow the row counts, each city's share varied by +-30%. */
    for (size_t c = 0; c < STD_CITIES; c++)
        pend_w[c] = (double)rows[c] * (0.7 + 0.6 * (double)gen_rng_below(&r, 1001) / 1000.0);
    if (gen_apportion(w->pending, pend_w, STD_CITIES, 0, pending)) {
        gen_world_free(w);
        return NULL;
    }
    /* A city cannot have more pending rows than rows: move the excess. */
    for (size_t c = 0; c < STD_CITIES; c++) {
        for (size_t d = 0; pending[c] > rows[c] && d < STD_CITIES; d++) {
            int64_t room = rows[d] - pending[d];
            int64_t move = pending[c] - rows[c];
            if (room <= 0)
                continue;
            if (move > room)
                move = room;
            pending[c] -= move;
            pending[d] += move;
        }
    }

    size_t first = 0;
    for (size_t c = 0; c < STD_CITIES; c++) {
        gen_city *city = &w->cities[c];
        city->code = std_cities[c];
        city->rows = rows[c];
        city->pending = pending[c];
        city->first_project = first;
        city->n_projects = (size_t)projects[c];
        city->no_revenue = c + 1 == NO_REVENUE_RANK;
        city->zero_revenue_driver = city->no_revenue;
        city->no_active = c + 1 == NO_ACTIVE_RANK;
        first += city->n_projects;
    }
    gen_rng_seed(&r, WORLD_SEED, STREAM_COMPANIES);
    assign_companies(w, &r);
    gen_rng_seed(&r, WORLD_SEED, STREAM_PROJECTS);
    if (fill_projects(w, &r)) {
        gen_world_free(w);
        return NULL;
    }
    return w;
}

gen_world *gen_world_demo(void) {
    static const char *const demo_companies[] = {"D100", "D200"};
    static const struct {
        const char *code;
        int n_companies, companies[2];
        size_t n_projects;
        int64_t rows, pending;
    } cities[] = {
        {"HKG", 1, {0, 0}, 5, 90, 18},
        {"MFM", 2, {0, 1}, 4, 65, 13},
        {"TPE", 1, {1, 0}, 3, 45, 9},
    };
    gen_world *w = world_alloc(3, 12);
    if (!w)
        return NULL;
    w->companies = demo_companies;
    w->n_companies = 2;
    size_t first = 0;
    for (size_t c = 0; c < 3; c++) {
        gen_city *city = &w->cities[c];
        city->code = cities[c].code;
        city->n_companies = cities[c].n_companies;
        city->companies[0] = cities[c].companies[0];
        city->companies[1] = cities[c].companies[1];
        city->first_project = first;
        city->n_projects = cities[c].n_projects;
        city->rows = cities[c].rows;
        city->pending = cities[c].pending;
        /* TPE's revenue driver file came in all zeros: marketing pooled there by
         * revenue (version M) goes to #UNALLOCATED. */
        city->zero_revenue_driver = c == 2;
        w->rows += city->rows;
        w->pending += city->pending;
        for (size_t i = 0; i < city->n_projects; i++) {
            gen_project *p = &w->projects[first + i];
            snprintf(p->code, sizeof p->code, "%s-%02zu", city->code, i + 1);
            p->city = c;
            p->company = city->companies[i % (size_t)city->n_companies];
            p->business_line = business_lines[i % 3];
            p->active = !(c == 0 && i == 4); /* HKG-05 is closed */
            p->size = (uint32_t)(3 + (i * 7 + c * 5) % 10);
        }
        first += city->n_projects;
    }
    return w;
}

uint64_t gen_period_stream(const char *period, uint64_t part) {
    return gen_hash_str(period) ^ (part * 0x9e3779b97f4a7c15ULL);
}

/* One driver value in millionths for a project of the given size. */
static int64_t driver_value(gen_rng *r, int driver, uint32_t size) {
    switch (driver) {
    case 0: /* headcount: whole people */
        if (gen_rng_chance(r, 50))
            return 0;
        return (int64_t)(1 + gen_rng_below(r, 3 * (uint64_t)size + 5)) * 1000000;
    case 1: /* area: square metres with 2 decimals */
        if (gen_rng_chance(r, 30))
            return 0;
        return ((int64_t)size * 20000 +
                (int64_t)gen_rng_below(r, (uint64_t)size * 40000 + 200000)) *
               10000;
    case 2: /* revenue: millions with 6 decimals */
        if (gen_rng_chance(r, 80))
            return 0;
        return (int64_t)size * (50000 + (int64_t)gen_rng_below(r, 400000));
    default: /* contracts: whole contracts */
        if (gen_rng_chance(r, 60))
            return 0;
        return (int64_t)(1 + gen_rng_below(r, 4 * (uint64_t)size + 3)) * 1000000;
    }
}

gen_drivers *gen_drivers_build(const gen_world *w, uint64_t seed, const char *period) {
    gen_drivers *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->n_projects = w->n_projects;
    d->value = calloc(GEN_N_DRIVERS * w->n_projects, sizeof *d->value);
    if (!d->value) {
        gen_drivers_free(d);
        return NULL;
    }
    for (int k = 0; k < GEN_N_DRIVERS; k++) {
        gen_rng r;
        gen_rng_seed(&r, seed, gen_period_stream(period, STREAM_DRIVERS + (uint64_t)k));
        for (size_t p = 0; p < w->n_projects; p++) {
            const gen_project *proj = &w->projects[p];
            int64_t v = driver_value(&r, k, proj->size);
            if (k == 2 && w->cities[proj->city].zero_revenue_driver)
                v = 0;
            d->value[(size_t)k * w->n_projects + p] = v;
        }
    }
    return d;
}

void gen_drivers_free(gen_drivers *d) {
    if (!d)
        return;
    free(d->value);
    free(d);
}
