/* PostgreSQL COPY text rows for alloc-gen (tab-separated, \N for NULL,
 * backslash escapes), written into a strbuf. Pure, no I/O. */
#ifndef GEN_TEXT_H
#define GEN_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

typedef struct gen_text {
    strbuf text;  /* NUL-terminated; text.oom set when an allocation failed */
    int row_open; /* a COPY row has fields and no newline yet */
} gen_text;

/* Sets t to an empty buffer (no allocation yet). */
void gen_text_init(gen_text *t);
/* Releases the buffer; t may be NULL. */
void gen_text_free(gen_text *t);
/* Empties the buffer, keeping its memory. */
void gen_text_clear(gen_text *t);

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
