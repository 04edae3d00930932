/* PostgreSQL I/O: connections with reconnect, exact-status exec helpers with
 * SQLSTATE-carrying errors, buffered COPY in, and cursor-based streaming
 * reads whose memory stays bounded. A thin layer over libpq; no domain logic.
 *
 * Thread safety: a db_conn (and the streams and COPY opened on it) is used by one
 * thread at a time; distinct connections may be used from distinct threads. */
#ifndef ALLOC_DB_H
#define ALLOC_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct db_conn db_conn;
typedef struct db_stream db_stream;

/* SQLSTATEs callers branch on. DB_SQLSTATE_PERIOD_CLOSED is raised by the
 * ledger_entry triggers of schemas/001_init.sql. */
#define DB_SQLSTATE_UNIQUE_VIOLATION "23505"
#define DB_SQLSTATE_FOREIGN_KEY_VIOLATION "23503"
#define DB_SQLSTATE_SERIALIZATION_FAILURE "40001"
#define DB_SQLSTATE_DEADLOCK "40P01"
#define DB_SQLSTATE_QUERY_CANCELED "57014"
#define DB_SQLSTATE_UNDEFINED_TABLE "42P01"
#define DB_SQLSTATE_PERIOD_CLOSED "AL001"

#define DB_ERRMSG_MAX 512

/* What a failed call reports: the SQLSTATE when the server sent one ("" when
 * not, e.g. the connection dropped), whether the connection is gone (reconnect
 * with db_reset), and one line of text. Every function taking a db_error *
 * accepts NULL there. */
typedef struct db_error {
    char sqlstate[6];
    int conn_lost;
    char msg[DB_ERRMSG_MAX];
} db_error;

/* 1 when err carries this SQLSTATE. */
int db_error_is(const db_error *err, const char *sqlstate);

/* 1 when retrying the whole transaction may succeed: connection lost,
 * serialization failure or deadlock. */
int db_error_retryable(const db_error *err);

/* ---- connections ------------------------------------------------------- */

/* Opens a connection (dsn: a libpq connection string or URI). Returns NULL on
 * failure with the reason in err (one line). Free with db_close. */
db_conn *db_connect(const char *dsn, char *err, size_t errlen);

/* Closes the connection and frees everything it owns. Accepts NULL. */
void db_close(db_conn *c);

/* The libpq connection, for what this module does not wrap. Owned by c. */
PGconn *db_pg(db_conn *c);

/* 1 when the connection is usable (CONNECTION_OK), 0 when it was lost. */
int db_ok(const db_conn *c);

/* Re-establishes a lost connection with PQreset, retrying with backoff for up to
 * max_wait_ms. Session state (open transaction, cursors, COPY, advisory locks) is
 * gone afterwards. Returns 0 on success, -1 with err filled. */
int db_reset(db_conn *c, int max_wait_ms, db_error *err);

/* Makes the session's commits durable: SET synchronous_commit = on. A commit
 * the server acknowledged before flushing it (synchronous_commit = off, the
 * local cluster's default) is lost in a server crash, while what the commit
 * stood for (an acked delivery, a published stage) has already gone on. The
 * setting is per session: made after connecting and after every db_reset.
 * Returns 0, or -1 with err. */
int db_durable_commits(db_conn *c, db_error *err);

/* 1 when the key columns version, data_source, project_code and item_code of
 * the listed tables compare in byte order already: their collation is C or
 * POSIX, or the database default with a libc C or POSIX locale (to_jsonb reads
 * datlocprovider without failing on servers before 15, which have only libc).
 * Then ORDER BY and keyset comparisons can use the primary keys as they are.
 * 0 when not, or when the check fails: COLLATE "C" is always right, only slower.
 * tables are trusted names (they are pasted into the query). */
int db_keys_in_byte_order(db_conn *c, const char *const *tables, size_t ntables);

/* ---- statements ---------------------------------------------------------- */

/* Runs sql (no parameters; may hold several statements) and expects
 * PGRES_COMMAND_OK from it (the last statement's). Returns 0, or -1 with err. */
int db_exec(db_conn *c, const char *sql, db_error *err);

/* Runs one statement with text parameters ($1..$n; a NULL entry is SQL NULL)
 * and expects PGRES_COMMAND_OK. Returns the number of rows it affected
 * (0 for statements that report none), or -1 with err. */
int64_t db_exec_params(db_conn *c, const char *sql, int nparams, const char *const *params,
                       db_error *err);

/* Runs one statement with text parameters and expects the given status
 * (usually PGRES_TUPLES_OK). Returns the result, which the caller PQclears, or
 * NULL with err (the result is cleared here then). */
PGresult *db_query(db_conn *c, const char *sql, int nparams, const char *const *params,
                   ExecStatusType expected, db_error *err);

/* Runs a query expected to return at most one row whose first column is an
 * integer (or NULL). Returns 1 and sets *out when a non-NULL value came back,
 * 0 when no row or NULL (*out untouched), -1 with err on failure. */
int db_query_int64(db_conn *c, const char *sql, int nparams, const char *const *params,
                   int64_t *out, db_error *err);

/* Transactions. isolation is NULL (the server default) or a level such as
 * "REPEATABLE READ", optionally followed by " READ ONLY"; only upper-case
 * letters and spaces are accepted. db_rollback is a no-op outside a transaction
 * and also ends a failed one. Each returns 0, or -1 with err. */
int db_begin(db_conn *c, const char *isolation, db_error *err);
int db_commit(db_conn *c, db_error *err);
int db_rollback(db_conn *c, db_error *err);

/* ---- COPY ... FROM STDIN (text format) ------------------------------------
 * db_copy_in_begin, then rows (db_copy_field_* ... db_copy_row_end), then
 * db_copy_in_end. Data is buffered (256 KiB) and
 * sent as the buffer fills, so memory stays bounded. A server-side error (bad
 * row, constraint) surfaces at db_copy_in_end. After a failed put, call
 * db_copy_in_abort. Nothing else may run on c while a COPY is open. */

/* Starts "COPY t (cols) FROM STDIN". Returns 0, or -1 with err. */
int db_copy_in_begin(db_conn *c, const char *copy_sql, db_error *err);

/* Fields of the current row, in column order. text NULL means SQL NULL. */
void db_copy_field_text(db_conn *c, const char *text);
void db_copy_field_textn(db_conn *c, const char *text, size_t len);
void db_copy_field_null(db_conn *c);
void db_copy_field_int64(db_conn *c, int64_t v);
/* An integer number of cents as a numeric with two decimals ("-12.05"). */
void db_copy_field_cents(db_conn *c, int64_t cents);

/* Ends the current row; sends the buffer when full. Returns 0, or -1 with err. */
int db_copy_row_end(db_conn *c, db_error *err);

/* Sends the rest and ends the COPY; the server's final status must be
 * PGRES_COMMAND_OK. Returns the number of rows copied, or -1 with err. */
int64_t db_copy_in_end(db_conn *c, db_error *err);

/* Abandons an open COPY IN (the server discards it; an enclosing transaction is
 * then failed and must be rolled back). Safe to call when no COPY is open. */
void db_copy_in_abort(db_conn *c, const char *reason);

/* Pure helpers of the COPY text format, exported for tests.
 * db_copy_escape writes src[0..len) escaped (\\ \t \n \r) to dst, which must
 * hold 2*len bytes; returns the bytes written (no terminator).
 * db_format_cents writes cents as "[-]N.NN" (never "-0.00") to buf (at least
 * 24 bytes); returns the length. */
size_t db_copy_escape(char *dst, const char *src, size_t len);
int db_format_cents(int64_t cents, char *buf, size_t buflen);

/* ---- streaming reads ------------------------------------------------------
 * A server-side cursor fetched in chunks (DB_STREAM_FETCH_ROWS rows), so memory
 * stays bounded whatever the result size. Inside an open transaction the cursor
 * reads that transaction's snapshot (a REPEATABLE READ run snapshot); outside
 * one, db_stream_open begins a transaction that db_stream_close commits.
 * Nothing but this stream's calls may run on c between open and close, except
 * inside an open transaction, where other statements may be interleaved. */

#define DB_STREAM_FETCH_ROWS 10000

/* Opens a stream over a SELECT with text parameters. Returns the stream (free
 * with db_stream_close) or NULL with err. */
db_stream *db_stream_open(db_conn *c, const char *sql, int nparams, const char *const *params,
                          db_error *err);

/* Rows fetched per round trip from now on (at least 1). */
void db_stream_set_fetch_rows(db_stream *s, int rows);

/* Advances to the next row: 1 when there is one, 0 at the end, -1 with err. */
int db_stream_next(db_stream *s, db_error *err);

/* The current row: a column's text (NULL for SQL NULL) and length. Valid
 * until the next db_stream_next or db_stream_close. */
const char *db_stream_get(const db_stream *s, int col);
int db_stream_getlen(const db_stream *s, int col);

/* Closes the cursor (and commits the transaction the stream began; rolls it
 * back when it failed) and frees the stream. Accepts NULL. */
void db_stream_close(db_stream *s);

#endif
