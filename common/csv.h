/* A streaming CSV reader (RFC 4180): quoted fields with doubled quotes, commas
 * and line breaks inside quotes, LF, CRLF or lone-CR line ends, a UTF-8 byte
 * order mark skipped, physical line numbers for every record, and an error (never
 * a crash) on malformed input. Pure logic: the bytes come from a callback, a
 * memory buffer or a FILE the caller opened. Memory stays bounded by the limits.
 *
 * Rules beyond RFC 4180, so that hand-made spreadsheet exports read well:
 *  - an empty physical line is skipped (it is no record) but still counted;
 *  - spaces or tabs before an opening quote or after a closing quote are ignored;
 *  - a quote inside an unquoted field is an error, as is any other character
 *    after a closing quote, an unterminated quoted field, a NUL byte, and bytes
 *    that are not UTF-8 (the reader names the field and the line).
 *
 * Thread safety: a reader is used by one thread at a time. */
#ifndef ALLOC_CSV_H
#define ALLOC_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct csv_reader csv_reader;

/* Reads up to cap bytes into buf: returns the number read, 0 at the end of the
 * input, -1 on a read error. */
typedef ptrdiff_t (*csv_read_fn)(void *ud, char *buf, size_t cap);

/* Default limits: a record (all its field bytes) and the number of fields. A
 * record beyond them is an error, which also stops an unterminated quote from
 * swallowing a whole file into memory. */
#define CSV_DEFAULT_MAX_RECORD_BYTES ((size_t)1 << 20)
#define CSV_DEFAULT_MAX_FIELDS 4096

/* Readers over a callback, over len bytes at data (not copied: they must
 * outlive the reader), or over an open FILE (not closed by csv_free). Each
 * returns NULL when out of memory. Free with csv_free (accepts NULL). */
csv_reader *csv_new(csv_read_fn read, void *ud);
csv_reader *csv_new_mem(const char *data, size_t len);
csv_reader *csv_new_file(FILE *f);
void csv_free(csv_reader *r);

/* The field separator (default ','). Returns 0, or -1 (unchanged) when delim is
 * a quote, CR, LF or NUL. Set it before the first csv_next. */
int csv_set_delimiter(csv_reader *r, char delim);

/* Changes the limits (0 keeps a limit as it is). */
void csv_set_limits(csv_reader *r, size_t max_record_bytes, size_t max_fields);

/* Reads the next record: 1 when there is one, 0 at the end of the input, -1 on
 * an error (csv_error, csv_error_line). An error is final: every later call
 * returns -1 again. */
int csv_next(csv_reader *r);

/* The current record: its number of fields (at least 1), field i as a
 * NUL-terminated string (NULL when i is out of range; valid until the next
 * csv_next), its length in bytes, whether it was quoted (so "" can be told from
 * an empty unquoted field), and the physical line (1-based) the record starts on. */
size_t csv_nfields(const csv_reader *r);
const char *csv_field(const csv_reader *r, size_t i);
size_t csv_field_len(const csv_reader *r, size_t i);
int csv_field_quoted(const csv_reader *r, size_t i);
int64_t csv_line(const csv_reader *r);

/* After csv_next returned -1: what went wrong, one line without the line number
 * ("field 3: unterminated quoted field"), and the physical line it names (where
 * the quote opened, for an unterminated one). "" and 0 when there was no error. */
const char *csv_error(const csv_reader *r);
int64_t csv_error_line(const csv_reader *r);

#endif
