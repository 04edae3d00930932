/* Pure helpers of the review commands (report, status, publish, close-period):
 * argument checks, amount formatting, CSV and JSON quoting, display widths and
 * the streamed SHA-256 of `report --checksum`. No database I/O; thread-safe. */
#ifndef ALLOC_REPORT_FMT_H
#define ALLOC_REPORT_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Room for any amount report_fmt_* writes, with a sign and separators. */
#define REPORT_FMT_AMOUNT_MAX 40

/* Parses a run id: decimal digits only, no sign, 1..INT64_MAX. Returns 0 and
 * sets *out, or -1 when s is not such a number. */
int report_fmt_parse_id(const char *s, int64_t *out);

/* Normalizes a stored numeric's text to the checksum form: exactly two
 * decimals, "-" only when not zero ("-0.00" -> "0.00", "5" -> "5.00").
 * Writes to buf (at least REPORT_FMT_AMOUNT_MAX bytes). Returns the length, or
 * -1 when text is not a numeric with at most two decimals that fits 64-bit cents. */
int report_fmt_amount(const char *text, char *buf, size_t buflen);

/* Writes cents with thousands separators and two decimals ("-1,234,567.05")
 * to buf (at least REPORT_FMT_AMOUNT_MAX bytes). Returns the length. */
int report_fmt_thousands(int64_t cents, char *buf, size_t buflen);

/* As report_fmt_thousands for a stored numeric's text; -1 when it does not parse. */
int report_fmt_thousands_text(const char *text, char *buf, size_t buflen);

/* Writes s as one CSV field (RFC 4180): quoted, with quotes doubled, when it
 * holds a comma, a quote, CR or LF, or starts or ends with a space; as is
 * otherwise. NULL writes nothing (an empty field). */
void report_fmt_csv_field(FILE *out, const char *s);

/* Writes s as a JSON string literal (with its quotes; control characters as
 * \uXXXX or the short escapes). Bytes >= 0x80 pass through (UTF-8 assumed). */
void report_fmt_json_string(FILE *out, const char *s);

/* The number of terminal columns s takes: UTF-8 code points, East Asian wide
 * ones counting 2, continuation bytes 0. */
size_t report_fmt_display_width(const char *s);

/* Writes s to out padded with spaces to `width` columns, right-aligned when
 * right != 0. When s is wider than width, it is cut at a code point boundary
 * and ends in "~" so that it fits. */
void report_fmt_pad(FILE *out, const char *s, size_t width, int right);

/* ---- SHA-256 over a stream of bytes (OpenSSL EVP) ------------------------ */

typedef struct report_fmt_sha256 report_fmt_sha256;

/* Returns a fresh hash, or NULL when out of memory. Free with
 * report_fmt_sha256_free (accepts NULL). */
report_fmt_sha256 *report_fmt_sha256_new(void);
void report_fmt_sha256_free(report_fmt_sha256 *h);

/* Adds len bytes. Returns 0, or -1 when OpenSSL failed. */
int report_fmt_sha256_update(report_fmt_sha256 *h, const void *data, size_t len);

/* Adds one checksum line "version|data_source|project_code|item_code|amount\n"
 * (DESIGN.md section 4). amount is the stored numeric's text, or NULL for SQL
 * NULL (written "NULL"); it is normalized by report_fmt_amount. Returns 0, or
 * -1 when the amount does not parse or OpenSSL failed. */
int report_fmt_sha256_line(report_fmt_sha256 *h, const char *version, const char *data_source,
                           const char *project_code, const char *item_code, const char *amount);

/* Finishes the hash and writes its lowercase hex (64 characters and a NUL) to
 * hex. The hash cannot be updated afterwards. Returns 0, or -1 on failure. */
int report_fmt_sha256_hex(report_fmt_sha256 *h, char hex[65]);

#endif
