/* alloc-producer: the CLI and run coordinator. Dispatches to the commands of DESIGN.md section 4.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "log.h"

static const struct {
    const char *name;
    command_fn fn;
    const char *summary;
} commands[] = {
    {"migrate", cmd_migrate, "create or upgrade the schema (idempotent)"},
    {"run", cmd_run, "generate the report of a period (waits, shows progress)"},
    {"resume", cmd_resume, "finish an interrupted run"},
    {"abort", cmd_abort, "abort a running run"},
    {"status", cmd_status, "list runs: progress, control totals, staleness, findings"},
    {"report", cmd_report, "print a period's report (table, csv, json, html) or its checksum"},
    {"findings", cmd_findings, "list a run's audit findings (table, csv, json)"},
    {"publish", cmd_publish, "publish a succeeded run as the period's report"},
    {"period", cmd_period, "open a period (bound to a ruleset) or list the periods"},
    {"import", cmd_import, "load a CSV (ledger, drivers, projects, template) or a ruleset"},
    {"close-period", cmd_close_period, "close a period: its ledger rows can no longer change"},
    {"export", cmd_export, "file an export of a run's rows (csv.gz, xlsx) or show one"},
};

static void print_help(FILE *out) {
    fprintf(out,
            "usage: alloc-producer COMMAND [options]   (alloc-producer COMMAND --help for more)\n\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nExit status (every command; its --help says which apply):\n"
                 "  0 success\n"
                 "  1 runtime failure (a server, the network, the schema missing)\n"
                 "  2 usage error (bad arguments, a missing input file)\n"
                 "  3 validation failed: nothing changed (bad import rows, unbound items,\n"
                 "    unknown projects, formula errors)\n"
                 "  4 refused by state (period closed or unknown, a run already in progress,\n"
                 "    unknown run, publish blocked by error findings)\n"
                 "  5 timed out waiting (the run stays resumable)\n");
    fprintf(out, "\n%s", config_flags_help());
}

int usage_error(const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_usage_error(usage, fmt, ap);
    va_end(ap);
    return rc;
}

int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    log_init("producer");
    alloc_config cfg;
    config_load(&cfg);

    /* Connection flags may stand anywhere; take them out before the command sees argv. */
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && config_apply_flag(&cfg, argv[i], argv[i + 1])) {
            i++;
            continue;
        }
        argv[++n] = argv[i];
    }
    argc = n + 1;

    if (argc < 2) {
        print_help(stderr);
        return ALLOC_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(stdout);
        return ALLOC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(&cfg, argc - 2, argv + 2);

    fprintf(stderr, "alloc-producer: unknown command '%s'\n", argv[1]);
    fprintf(
        stderr,
        "usage: alloc-producer COMMAND [options]   (alloc-producer --help lists the commands)\n");
    return ALLOC_EXIT_USAGE;
}
