/* The few PostgreSQL operations alloc-gen needs, on libpq: commands with
 * parameters, one-value queries, and COPY FROM STDIN fed in large chunks.
 * Every failure keeps a one-line message naming what failed. One connection,
 * one thread. */
#ifndef GEN_PG_H
#define GEN_PG_H

#include <stddef.h>
#include <stdint.h>

typedef struct gen_pg gen_pg;

/* Connects to dsn. NULL on failure, with the reason in err. Free with gen_pg_free. */
gen_pg *gen_pg_connect(const char *dsn, char *err, size_t errlen);
void gen_pg_free(gen_pg *pg);

/* The message of the last failure ("what: server message"). */
const char *gen_pg_error(const gen_pg *pg);

/* Runs one command (parameters as text, NULL = SQL NULL); 0 when it returned
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK, -1 otherwise. When affected is not NULL
 * it receives the affected row count. */
int gen_pg_command(gen_pg *pg, const char *what, const char *sql, int nparams,
                   const char *const *params, int64_t *affected);

/* Runs a query returning at most one row; copies its first column into out
 * (at most outlen - 1 bytes). *found is 0 when no row came (or the value was
 * NULL), 1 otherwise. 0 on success, -1 on failure. */
int gen_pg_value(gen_pg *pg, const char *what, const char *sql, int nparams,
                 const char *const *params, char *out, size_t outlen, int *found);

/* COPY ... FROM STDIN: begin, put any number of text chunks, end. copy_end
 * reports the rows the server stored in *rows (may be NULL). After a failed
 * put, call copy_end anyway to finish the protocol; it then fails too. */
int gen_pg_copy_begin(gen_pg *pg, const char *what, const char *copy_sql);
int gen_pg_copy_put(gen_pg *pg, const char *data, size_t len);
int gen_pg_copy_end(gen_pg *pg, int64_t *rows);

#endif
