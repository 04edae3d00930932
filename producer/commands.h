/* The alloc-producer commands. Each takes the configuration and the arguments
 * after the command name (connection flags already removed), prints its own
 * --help, and returns a DESIGN.md exit code (ALLOC_EXIT_*). */
#ifndef ALLOC_PRODUCER_COMMANDS_H
#define ALLOC_PRODUCER_COMMANDS_H

#include "config.h"

typedef int (*command_fn)(const alloc_config *cfg, int argc, char **argv);

int cmd_migrate(const alloc_config *cfg, int argc, char **argv);
int cmd_report(const alloc_config *cfg, int argc, char **argv);
int cmd_status(const alloc_config *cfg, int argc, char **argv);
int cmd_publish(const alloc_config *cfg, int argc, char **argv);
int cmd_close_period(const alloc_config *cfg, int argc, char **argv);
int cmd_run(const alloc_config *cfg, int argc, char **argv);
int cmd_resume(const alloc_config *cfg, int argc, char **argv);
int cmd_abort(const alloc_config *cfg, int argc, char **argv);
int cmd_import(const alloc_config *cfg, int argc, char **argv);
int cmd_export(const alloc_config *cfg, int argc, char **argv);
int cmd_period(const alloc_config *cfg, int argc, char **argv);
int cmd_findings(const alloc_config *cfg, int argc, char **argv);

/* import --kind ruleset --file F (cmd_import_ruleset.c; cmd_import dispatches to
 * it): validates and compiles the whole file, then replaces the ruleset's rows in
 * one transaction. Prints the errors or a summary; returns ALLOC_EXIT_OK, _VALIDATION
 * (bad or unreadable file, nothing changed) or _RUNTIME. */
int import_ruleset(const alloc_config *cfg, const char *file);

/* Prints "alloc-producer: <msg>" and the command's usage line to stderr; returns ALLOC_EXIT_USAGE.
 */
int usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 when argv holds -h or --help. */
int wants_help(int argc, char **argv);

#endif
