/* The producer's error lines: every command prints its errors as
 * "alloc-producer: <what>" on stderr, one line each (DESIGN.md 4), and a run
 * keeps the first of them as the cause it records on a failed run. Also the
 * commands' PostgreSQL connection and the error lines of its failures. */
#ifndef ALLOC_PRODUCER_CLI_H
#define ALLOC_PRODUCER_CLI_H

#include <stdarg.h>

#include "config.h"
#include "db.h"

/* Prints "alloc-producer: " and the formatted message (no newline in fmt) as
 * one line on stderr, and remembers it when it is the first line printed by
 * this process. Not thread-safe: the producer prints from its main thread. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first message cli_error printed (without the "alloc-producer: "
 * prefix), or NULL when none was. Static storage: valid until exit. */
const char *cli_first_error(void);

/* Prints a usage error (the formatted message, then "usage: USAGE") with
 * every connection-string-like word masked; returns ALLOC_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, va_list ap);

/* Connects to PostgreSQL and checks the schema is there (cli_check_schema);
 * on failure prints "alloc-producer: CMD: why" and returns NULL. Free with
 * db_close. */
db_conn *cli_connect_db(const alloc_config *cfg, const char *cmd);

/* The same without the schema check: for migrate, which makes the schema. */
db_conn *cli_connect_db_unchecked(const alloc_config *cfg, const char *cmd);

/* Prints "alloc-producer: <formatted what>: <err's message>" ("unknown error"
 * when err is NULL); returns ALLOC_EXIT_RUNTIME. E.g. cli_fail_db(&err,
 * "publish: committing"). */
int cli_fail_db(const db_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "alloc-producer: <formatted message>" (a refusal by state, e.g.
 * "publish: period 2026-10 is closed: ..."); returns ALLOC_EXIT_REFUSED. */
int cli_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What every command says on a database that was never migrated. */
#define CLI_NO_SCHEMA "the schema is not there: run alloc-producer migrate"

/* Checks, on a fresh connection, that the database holds this program's
 * schema: schema_migration exists and has every migration the program carries.
 * Returns ALLOC_EXIT_OK, or ALLOC_EXIT_RUNTIME after printing "alloc-producer:
 * CMD: the schema is not there: run alloc-producer migrate" (or which version
 * it is at). cli_connect_db calls it; migrate, which makes the schema, does not. */
int cli_check_schema(db_conn *c, const char *cmd);

/* 1 when err is PostgreSQL's undefined_table (42P01): a table of the schema is
 * missing, so the error line says to run migrate instead of the raw SQL. */
int cli_is_no_schema(const db_error *err);

#endif
