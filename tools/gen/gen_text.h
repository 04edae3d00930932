/* A growable byte buffer for alloc-gen: formula texts and PostgreSQL COPY text
 * rows (tab-separated, \N for NULL, backslash escapes). Pure, no I/O. */
#ifndef GEN_TEXT_H
#define GEN_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct gen_text {
    char *data; /* NUL-terminated while ok */
    size_t len, cap;
    int failed;   /* set when an allocation failed; later appends do nothing */
    int row_open; /* a COPY row has fields and no newline yet */
} gen_text;

/* Sets t to an empty buffer (no allocation yet). */
void gen_text_init(gen_text *t);
/* Releases the buffer; t may be NULL. */
void gen_text_free(gen_text *t);
/* Empties the buffer, keeping its memory. */
void gen_text_clear(gen_text *t);
/* Hands the NUL-terminated contents to the caller (free() it) and empties t;
 * NULL when an allocation failed. */
char *gen_text_take(gen_text *t);

void gen_text_put(gen_text *t, const char *s, size_t n);
void gen_text_puts(gen_text *t, const char *s);
void gen_text_printf(gen_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* COPY text format: one field (escaped; NULL writes \N), a decimal integer
 * field, a fixed-point field of units/10^scale (cents with scale 2: -1234.56),
 * and the end of the row. */
void gen_copy_field(gen_text *t, const char *value);
void gen_copy_int(gen_text *t, int64_t v);
void gen_copy_fixed(gen_text *t, int64_t units, int scale);
void gen_copy_end_row(gen_text *t);

/* Writes units/10^scale as a decimal with exactly `scale` digits after the
 * point (none when scale is 0) into out (at least 32 bytes); returns the length. */
size_t gen_format_fixed(char *out, int64_t units, int scale);

#endif
