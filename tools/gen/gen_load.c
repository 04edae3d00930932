/* The load transaction of alloc-gen (see gen_load.h). */
#include "gen_load.h"
#include "check.h"
#include "gen_ledger.h"
#include "gen_model.h"
#include "gen_pg.h"
#include "gen_text.h"
#include "log.h"
#include "reserved.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* COPY data goes to the server in chunks of about this size. */
#define COPY_CHUNK (256 * 1024)
/* Progress lines on stderr every this many ledger rows. */
#define PROGRESS_ROWS 250000
/* Serialises concurrent alloc-gen runs on one database ("alloc-gen"). */
#define GEN_LOCK_KEY "7021592818127429"

typedef struct load_ctx {
    const gen_load_options *opt;
    gen_pg *pg;
    const gen_world *world;
    const gen_ruleset *rs;
    gen_text buf;
    struct timespec t0;
} load_ctx;

static double elapsed(const load_ctx *c) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - c->t0.tv_sec) + (double)(t.tv_nsec - c->t0.tv_nsec) / 1e9;
}

/* Sends c->buf when it holds a chunk (or always when flush_all), then empties it. */
static int copy_flush(load_ctx *c, int flush_all) {
    if (c->buf.text.oom)
        return -1;
    if (!flush_all && c->buf.text.len < COPY_CHUNK)
        return 0;
    int rc = gen_pg_copy_put(c->pg, c->buf.text.data, c->buf.text.len);
    gen_text_clear(&c->buf);
    return rc;
}

/* Ends a COPY begun with the rows already in c->buf; logs the failure. */
static int copy_finish(load_ctx *c, int64_t *rows) {
    int rc = copy_flush(c, 1);
    if (gen_pg_copy_end(c->pg, rows) || rc) {
        if (c->buf.text.oom)
            log_error("out of memory while formatting COPY data");
        else
            log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    return 0;
}

static int command(load_ctx *c, const char *what, const char *sql, int n, const char *const *params,
                   int64_t *affected) {
    if (gen_pg_command(c->pg, what, sql, n, params, affected)) {
        log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    return 0;
}

static int value(load_ctx *c, const char *what, const char *sql, int n, const char *const *params,
                 char *out, size_t outlen, int *found) {
    if (gen_pg_value(c->pg, what, sql, n, params, out, outlen, found)) {
        log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    return 0;
}

/* M includes every category; F everything but the management adjustments. */
static int load_versions(load_ctx *c) {
    return command(c, "insert report versions",
                   "INSERT INTO report_version (version, name, include_categories) VALUES "
                   "('M', 'Management view', NULL), "
                   "('F', 'Finance view', ARRAY['gl','rent','salary','marketing','function']) "
                   "ON CONFLICT (version) DO NOTHING",
                   0, NULL, NULL);
}

/* Loads the ruleset unless one of that name exists; *kept tells which. */
static int load_ruleset(load_ctx *c, bool *kept) {
    const char *name = c->opt->ruleset;
    const gen_ruleset *rs = c->rs;
    int found;
    char n[32];
    if (value(c, "look up the ruleset",
              "SELECT count(*) FROM report_item WHERE ruleset = $1 HAVING count(*) > 0", 1, &name,
              n, sizeof n, &found))
        return -1;
    *kept = found;
    if (found) {
        log_info("ruleset %s: present (%s report items), kept as it is", name, n);
        return 0;
    }
    int64_t items = 0, bindings = 0, rules = 0, audits = 0;
    gen_text *b = &c->buf;

    if (gen_pg_copy_begin(
            c->pg, "load report items",
            "COPY report_item (ruleset, item_code, name, kind, formula, sort_order) FROM STDIN"))
        goto fail;
    for (size_t i = 0; i < rs->n_items; i++) {
        const gen_item *it = &rs->items[i];
        gen_copy_field(b, name);
        gen_copy_field(b, it->code);
        gen_copy_field(b, it->name);
        gen_copy_field(b, it->formula ? "formula" : "base");
        gen_copy_field(b, it->text);
        gen_copy_int(b, it->sort_order);
        gen_copy_end_row(b);
    }
    if (copy_finish(c, &items))
        return -1;

    if (gen_pg_copy_begin(
            c->pg, "load binding rules",
            "COPY binding_rule (ruleset, match_kind, match_code, item_code) FROM STDIN"))
        goto fail;
    for (size_t i = 0; i < rs->n_items; i++) {
        const gen_item *it = &rs->items[i];
        for (int k = 0; k < it->n_budget && !it->formula; k++) {
            gen_copy_field(b, name);
            gen_copy_field(b, "budget_item");
            gen_copy_field(b, it->budget[k]);
            gen_copy_field(b, it->code);
            gen_copy_end_row(b);
        }
    }
    for (size_t a = 0; a < rs->n_accounts; a++) {
        gen_copy_field(b, name);
        gen_copy_field(b, "account");
        gen_copy_field(b, rs->accounts[a].code);
        gen_copy_field(b, rs->items[rs->accounts[a].item].code);
        gen_copy_end_row(b);
    }
    if (copy_finish(c, &bindings))
        return -1;

    if (gen_pg_copy_begin(
            c->pg, "load allocation rules",
            "COPY allocation_rule (ruleset, version, item_code, driver, scope) FROM STDIN"))
        goto fail;
    for (size_t r = 0; r < rs->n_rules; r++) {
        gen_copy_field(b, name);
        gen_copy_field(b, rs->rules[r].version);
        gen_copy_field(b, rs->rules[r].item_code);
        gen_copy_field(b, rs->rules[r].driver);
        gen_copy_field(b, rs->rules[r].scope);
        gen_copy_end_row(b);
    }
    if (copy_finish(c, &rules))
        return -1;

    if (gen_pg_copy_begin(
            c->pg, "load audit rules",
            "COPY audit_rule (ruleset, rule_code, expr, message, severity) FROM STDIN"))
        goto fail;
    for (size_t a = 0; a < rs->n_audits; a++) {
        gen_copy_field(b, name);
        gen_copy_field(b, rs->audits[a].code);
        gen_copy_field(b, rs->audits[a].expr);
        gen_copy_field(b, rs->audits[a].message);
        gen_copy_field(b, rs->audits[a].severity);
        gen_copy_end_row(b);
    }
    if (copy_finish(c, &audits))
        return -1;
    log_info("ruleset %s: created %" PRId64 " report items (%zu base, %zu formula), %" PRId64
             " bindings, %" PRId64 " allocation rules, %" PRId64 " audit rules",
             name, items, rs->n_base, rs->n_formula, bindings, rules, audits);
    return 0;
fail:
    log_error("%s", gen_pg_error(c->pg));
    return -1;
}

/* Adds the projects that do not exist yet; existing ones are left as they are. */
static int load_projects(load_ctx *c) {
    const gen_world *w = c->world;
    if (command(c, "create the project staging table",
                "CREATE TEMP TABLE gen_project (LIKE project INCLUDING DEFAULTS) ON COMMIT DROP", 0,
                NULL, NULL))
        return -1;
    if (gen_pg_copy_begin(
            c->pg, "load projects",
            "COPY gen_project (project_code, company_code, data_source, business_line, "
            "active) FROM STDIN")) {
        log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    for (size_t p = 0; p < w->n_projects; p++) {
        const gen_project *pr = &w->projects[p];
        gen_copy_field(&c->buf, pr->code);
        gen_copy_field(&c->buf, w->companies[pr->company]);
        gen_copy_field(&c->buf, w->cities[pr->city].code);
        gen_copy_field(&c->buf, pr->business_line);
        gen_copy_field(&c->buf, pr->active ? "t" : "f");
        gen_copy_end_row(&c->buf);
        if (copy_flush(c, 0))
            break;
    }
    if (copy_finish(c, NULL))
        return -1;
    int64_t added = 0;
    if (command(
            c, "insert projects",
            "INSERT INTO project (project_code, company_code, data_source, business_line, active) "
            "SELECT project_code, company_code, data_source, business_line, active "
            "FROM gen_project ORDER BY project_code ON CONFLICT (project_code) DO NOTHING",
            0, NULL, &added))
        return -1;
    log_info("projects: %zu generated, %" PRId64 " added, %" PRId64 " already present",
             w->n_projects, added, (int64_t)w->n_projects - added);
    return 0;
}

/* Creates the period or checks that it may be (re)loaded. Returns an exit code. */
static int prepare_period(load_ctx *c) {
    const gen_load_options *o = c->opt;
    const char *p1[] = {o->period};
    const char *p2[] = {o->period, o->ruleset};
    char ruleset[256], status[32], n[32];
    int found;
    if (value(c, "look up the period",
              "SELECT ruleset FROM period WHERE period_code = $1 FOR UPDATE", 1, p1, ruleset,
              sizeof ruleset, &found))
        return ALLOC_EXIT_RUNTIME;
    if (!found) {
        if (command(c, "insert the period",
                    "INSERT INTO period (period_code, ruleset, status) VALUES ($1, $2, 'open')", 2,
                    p2, NULL))
            return ALLOC_EXIT_RUNTIME;
        log_info("period %s: created, bound to ruleset %s", o->period, o->ruleset);
        return ALLOC_EXIT_OK;
    }
    if (value(c, "look up the period status", "SELECT status FROM period WHERE period_code = $1", 1,
              p1, status, sizeof status, &found))
        return ALLOC_EXIT_RUNTIME;
    if (strcmp(status, "open")) {
        log_error("period %s is %s: its ledger cannot change", o->period, status);
        return ALLOC_EXIT_REFUSED;
    }
    int64_t rows = 0, drivers = 0;
    if (value(c, "count the period's ledger rows",
              "SELECT count(*) FROM ledger_entry WHERE period_code = $1", 1, p1, n, sizeof n,
              &found))
        return ALLOC_EXIT_RUNTIME;
    rows = strtoll(n, NULL, 10);
    if (value(c, "count the period's drivers",
              "SELECT count(*) FROM allocation_driver WHERE period_code = $1", 1, p1, n, sizeof n,
              &found))
        return ALLOC_EXIT_RUNTIME;
    drivers = strtoll(n, NULL, 10);
    if (!o->replace) {
        if (rows || drivers) {
            log_error("period %s already has %" PRId64 " ledger rows and %" PRId64
                      " driver values; use --replace to load it again",
                      o->period, rows, drivers);
            return ALLOC_EXIT_REFUSED;
        }
        if (strcmp(ruleset, o->ruleset)) {
            log_error("period %s is bound to ruleset %s, not %s; use --replace to rebind it",
                      o->period, ruleset, o->ruleset);
            return ALLOC_EXIT_REFUSED;
        }
        log_info("period %s: present and empty, loading it", o->period);
        return ALLOC_EXIT_OK;
    }
    int64_t deleted_rows = 0, deleted_drivers = 0;
    if (command(c, "delete the period's ledger rows",
                "DELETE FROM ledger_entry WHERE period_code = $1", 1, p1, &deleted_rows) ||
        command(c, "delete the period's drivers",
                "DELETE FROM allocation_driver WHERE period_code = $1", 1, p1, &deleted_drivers) ||
        command(c, "rebind the period", "UPDATE period SET ruleset = $2 WHERE period_code = $1", 2,
                p2, NULL))
        return ALLOC_EXIT_RUNTIME;
    log_info("period %s: replaced %" PRId64 " ledger rows and %" PRId64
             " driver values, ruleset %s",
             o->period, deleted_rows, deleted_drivers, o->ruleset);
    return ALLOC_EXIT_OK;
}

static int load_drivers(load_ctx *c, const gen_drivers *d) {
    const gen_world *w = c->world;
    if (gen_pg_copy_begin(
            c->pg, "load driver values",
            "COPY allocation_driver (period_code, driver, project_code, value) FROM STDIN")) {
        log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    for (int k = 0; k < GEN_N_DRIVERS; k++)
        for (size_t p = 0; p < w->n_projects; p++) {
            gen_copy_field(&c->buf, c->opt->period);
            gen_copy_field(&c->buf, gen_driver_names[k]);
            gen_copy_field(&c->buf, w->projects[p].code);
            gen_copy_fixed(&c->buf, d->value[(size_t)k * w->n_projects + p], 6);
            gen_copy_end_row(&c->buf);
            if (copy_flush(c, 0))
                goto done;
        }
done:;
    int64_t rows = 0;
    if (copy_finish(c, &rows))
        return -1;
    log_info("drivers: %" PRId64 " values (%d drivers x %zu projects)", rows, GEN_N_DRIVERS,
             w->n_projects);
    return 0;
}

static int load_ledger(load_ctx *c, gen_ledger *g) {
    if (gen_pg_copy_begin(c->pg, "load ledger rows",
                          "COPY ledger_entry (" GEN_LEDGER_COLUMNS ") FROM STDIN")) {
        log_error("%s", gen_pg_error(c->pg));
        return -1;
    }
    int64_t next_progress = PROGRESS_ROWS;
    int more;
    do {
        more = gen_ledger_fill(g, &c->buf, COPY_CHUNK);
        if (more < 0 || copy_flush(c, 1))
            break;
        if (gen_ledger_done(g) >= next_progress) {
            log_info("ledger: %" PRId64 " of %" PRId64 " rows sent (%.0f%%), %.1f s",
                     gen_ledger_done(g), c->world->rows,
                     100.0 * (double)gen_ledger_done(g) / (double)c->world->rows, elapsed(c));
            next_progress += PROGRESS_ROWS;
        }
    } while (more > 0);
    int64_t rows = 0;
    if (copy_finish(c, &rows))
        return -1;
    log_info("ledger: %" PRId64 " rows stored, %.1f s", rows, elapsed(c));
    return 0;
}

/* When the ruleset was kept, it may not be the one the rows were generated
 * for: every row must still be bound to a base item. */
static int check_binding(load_ctx *c) {
    const char *p[] = {c->opt->period, c->opt->ruleset};
    char n[32];
    int found;
    if (value(c, "check the binding of the ledger rows",
              "SELECT count(*) FROM ledger_entry e "
              "LEFT JOIN binding_rule bb ON bb.ruleset = $2 AND bb.match_kind = 'budget_item' "
              "  AND bb.match_code = e.budget_item_code "
              "LEFT JOIN binding_rule ba ON ba.ruleset = $2 AND ba.match_kind = 'account' "
              "  AND ba.match_code = e.account_code "
              "LEFT JOIN report_item ri ON ri.ruleset = $2 "
              "  AND ri.item_code = coalesce(bb.item_code, ba.item_code) AND ri.kind = 'base' "
              "WHERE e.period_code = $1 AND ri.item_code IS NULL",
              2, p, n, sizeof n, &found))
        return ALLOC_EXIT_RUNTIME;
    if (strtoll(n, NULL, 10) > 0) {
        log_error(
            "ruleset %s (kept as it was) leaves %s generated ledger rows without a base item; "
            "load into a new ruleset name with --ruleset",
            c->opt->ruleset, n);
        return ALLOC_EXIT_VALIDATION;
    }
    return ALLOC_EXIT_OK;
}

static void print_summary(load_ctx *c, const gen_ledger *g, FILE *out, double seconds) {
    const gen_world *w = c->world;
    const gen_load_options *o = c->opt;
    fprintf(out, "alloc-gen: period %s, ruleset %s, %s, seed %" PRIu64 ", scale %g\n", o->period,
            o->ruleset, o->demo ? "demo data" : "standard data", o->seed, o->scale);
    fprintf(out, "%-12s %9s %9s %9s %9s %7s\n", "data_source", "projects", "rows", "pending",
            "direct", "share");
    for (size_t i = 0; i < w->n_cities; i++) {
        const gen_ledger_stats *s = gen_ledger_city_stats(g, i);
        const gen_city *city = &w->cities[i];
        fprintf(out, "%-12s %9zu %9" PRId64 " %9" PRId64 " %9" PRId64 " %6.2f%%%s\n", city->code,
                city->n_projects, s->rows, s->pending, s->direct,
                w->rows ? 100.0 * (double)s->rows / (double)w->rows : 0.0,
                city->no_active             ? "  (no active project)"
                : city->no_revenue          ? "  (new: no revenue, revenue driver 0)"
                : city->zero_revenue_driver ? "  (revenue driver 0)"
                                            : "");
    }
    gen_ledger_stats t;
    gen_ledger_total_stats(g, &t);
    const gen_ledger_work *wk = gen_ledger_work_stats(g);
    fprintf(out, "%-12s %9zu %9" PRId64 " %9" PRId64 " %9" PRId64 "\n", "total", w->n_projects,
            t.rows, t.pending, t.direct);
    fprintf(out,
            "report items %zu (%zu base, %zu formula), %zu allocation rules, %zu audit rules\n",
            c->rs->n_items, c->rs->n_base, c->rs->n_formula, c->rs->n_rules, c->rs->n_audits);
    fprintf(out,
            "rows: %" PRId64 " mgmt_diff, %" PRId64 " bound by account, %" PRId64
            " booked by another data source, %" PRId64 " negative, %" PRId64 " zero\n",
            t.mgmt_diff, t.via_account, t.cross_source, t.negative, t.zero);
    fprintf(out,
            "allocation work (generated projects): %" PRId64
            " (pending row, version) pairs, %" PRId64 " row x target steps, %" PRId64
            " pairs to " RESERVED_UNALLOCATED "\n",
            wk->pairs, wk->steps, wk->unallocated_pairs);
    fprintf(out, "loaded in %.1f s\n", seconds);
}

int gen_load(const gen_load_options *opt, FILE *summary) {
    load_ctx c = {.opt = opt};
    clock_gettime(CLOCK_MONOTONIC, &c.t0);
    gen_text_init(&c.buf);
    int rc = ALLOC_EXIT_RUNTIME;
    gen_world *world = opt->demo ? gen_world_demo() : gen_world_std(opt->scale);
    gen_ruleset *rs = opt->demo ? gen_ruleset_demo() : gen_ruleset_std();
    gen_drivers *drivers = world ? gen_drivers_build(world, opt->seed, opt->period) : NULL;
    gen_ledger *ledger =
        world && rs && drivers ? gen_ledger_new(world, rs, drivers, opt->period, opt->seed) : NULL;
    char err[1024];
    if (!ledger) {
        log_error("out of memory building the generated data");
        goto out;
    }
    c.world = world;
    c.rs = rs;
    c.pg = gen_pg_connect(opt->pg_dsn, err, sizeof err);
    if (!c.pg) {
        log_error("%s", err);
        goto out;
    }
    log_info("generating period %s (ruleset %s, seed %" PRIu64 ", scale %g%s): %" PRId64
             " ledger rows, %" PRId64 " pending, %zu cities, %zu projects",
             opt->period, opt->ruleset, opt->seed, opt->scale, opt->demo ? ", demo" : "",
             world->rows, world->pending, world->n_cities, world->n_projects);

    bool kept = false;
    const char *lock[] = {GEN_LOCK_KEY};
    if (command(&c, "begin", "BEGIN", 0, NULL, NULL) ||
        command(&c, "take the generator lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock,
                NULL) ||
        load_versions(&c) || load_ruleset(&c, &kept) || load_projects(&c))
        goto out;
    if ((rc = prepare_period(&c)) != ALLOC_EXIT_OK)
        goto out;
    rc = ALLOC_EXIT_RUNTIME;
    if (load_drivers(&c, drivers) || load_ledger(&c, ledger))
        goto out;
    if (kept && (rc = check_binding(&c)) != ALLOC_EXIT_OK)
        goto out;
    rc = ALLOC_EXIT_RUNTIME;
    if (command(&c, "commit", "COMMIT", 0, NULL, NULL))
        goto out;
    rc = ALLOC_EXIT_OK;
    log_info("committed period %s in %.1f s", opt->period, elapsed(&c));
    /* Fresh statistics, so the first queries on the new rows get sensible
     * plans without waiting for autovacuum (~0.5 s at seed scale). A failure
     * here costs nothing but the statistics. */
    if (gen_pg_command(c.pg, "analyze the loaded tables",
                       "ANALYZE ledger_entry, allocation_driver, project", 0, NULL, NULL))
        log_warn("%s", gen_pg_error(c.pg));
    print_summary(&c, ledger, summary, elapsed(&c));
out:
    /* Leaving without COMMIT: closing the connection rolls everything back. */
    gen_pg_free(c.pg);
    gen_text_free(&c.buf);
    gen_ledger_free(ledger);
    gen_drivers_free(drivers);
    gen_ruleset_free(rs);
    gen_world_free(world);
    return rc;
}
