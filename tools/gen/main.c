/* alloc-gen: generates a realistic accounting period (or the small demo) and
 * loads it into PostgreSQL. Same --seed and --scale: the same data. */
#include "check.h"
#include "config.h"
#include "gen_load.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE                                                                                      \
    "alloc-gen [--seed N] [--scale X] [--period YYYY-MM] [--ruleset NAME] [--demo] [--replace] "   \
    "[--pg-dsn DSN] [--help]"

static void print_help(FILE *out) {
    fprintf(out,
            "usage: " USAGE "\n\n"
            "Generates one accounting period and loads it in one transaction: report versions\n"
            "M and F, the ruleset (report items, bindings, allocation and audit rules) and the\n"
            "projects when missing, the period, its driver values and its ledger rows.\n\n"
            "  --seed N         random seed (default 1); same seed, scale and period: same data\n"
            "  --scale X        1.0 = seed scale: 2,000,000 ledger rows, 400,000 pending,\n"
            "                   30 cities, 3,000 projects; rows scale with X, projects too\n"
            "                   (at least 60); the ruleset is always full size (default 1)\n"
            "  --period P       period code YYYY-MM (default 2026-10)\n"
            "  --ruleset NAME   ruleset bound to the period (default std, demo with --demo);\n"
            "                   an existing ruleset of that name is kept as it is\n"
            "  --demo           a small readable period: 3 cities, 12 projects, 10 report\n"
            "                   items, 200 ledger rows\n"
            "  --replace        the period already has rows: delete its ledger rows and\n"
            "                   drivers first (otherwise refused with exit 4)\n"
            "  --pg-dsn DSN     PostgreSQL connection string (ALLOC_PG_DSN)\n"
            "                   default: " CONFIG_DEFAULT_PG_DSN "\n\n"
            "exit: 0 loaded, 1 failure (nothing changed), 2 usage, 3 the kept ruleset does not\n"
            "bind the rows, 4 refused (period closed, or already loaded without --replace)\n");
}

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("alloc-gen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs("usage: " USAGE "\n", stderr);
    return ALLOC_EXIT_USAGE;
}

static int parse_seed(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_scale(const char *s, double *out) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || !(v > 0) || v > 100)
        return -1;
    *out = v;
    return 0;
}

static int valid_name(const char *s) {
    if (!s || !*s || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 127)
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    log_init("gen");
    alloc_config cfg;
    config_load(&cfg);
    gen_load_options opt = {.seed = 1, .scale = 1.0, .period = "2026-10"};
    const char *ruleset = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(stdout);
            return ALLOC_EXIT_OK;
        } else if (!strcmp(a, "--demo")) {
            opt.demo = true;
        } else if (!strcmp(a, "--replace")) {
            opt.replace = true;
        } else if (!strcmp(a, "--seed")) {
            if (parse_seed(v, &opt.seed))
                return usage_error("--seed wants an unsigned integer");
            i++;
        } else if (!strcmp(a, "--scale")) {
            if (parse_scale(v, &opt.scale))
                return usage_error("--scale wants a number in (0, 100]");
            i++;
        } else if (!strcmp(a, "--period")) {
            if (!util_period_valid(v))
                return usage_error("--period wants YYYY-MM");
            opt.period = v;
            i++;
        } else if (!strcmp(a, "--ruleset")) {
            if (!valid_name(v))
                return usage_error("--ruleset wants a name (1-63 visible characters)");
            ruleset = v;
            i++;
        } else if (!strcmp(a, "--pg-dsn")) {
            if (!v)
                return usage_error("--pg-dsn wants a connection string");
            config_apply_flag(&cfg, a, v);
            i++;
        } else {
            char shown[256]; /* a stray DSN (its flag forgotten) is shown masked */
            config_mask_secret(a, shown, sizeof shown);
            return usage_error("unknown argument '%s'", shown);
        }
    }
    opt.ruleset = ruleset ? ruleset : opt.demo ? "demo" : "std";
    opt.pg_dsn = cfg.pg_dsn;
    return gen_load(&opt, stdout);
}
