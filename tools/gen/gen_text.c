/* COPY text encoding of alloc-gen (see gen_text.h). */
#include "gen_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gen_text_init(gen_text *t) {
    memset(t, 0, sizeof *t);
}

void gen_text_free(gen_text *t) {
    if (!t)
        return;
    strbuf_free(&t->text);
    gen_text_init(t);
}

void gen_text_clear(gen_text *t) {
    strbuf_clear(&t->text);
    t->row_open = 0;
}

/* The separator before a field: a tab unless the field opens the row. */
static void field_sep(gen_text *t) {
    if (t->row_open)
        strbuf_add(&t->text, "\t", 1);
    t->row_open = 1;
}

void gen_copy_field(gen_text *t, const char *value) {
    field_sep(t);
    if (!value) {
        strbuf_add(&t->text, "\\N", 2);
        return;
    }
    /* Fast path: most values need no escaping. */
    const char *p = value;
    while (*p && *p != '\\' && *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    if (!*p) {
        strbuf_add(&t->text, value, (size_t)(p - value));
        return;
    }
    for (p = value; *p; p++) {
        switch (*p) {
        case '\\':
            strbuf_add(&t->text, "\\\\", 2);
            break;
        case '\t':
            strbuf_add(&t->text, "\\t", 2);
            break;
        case '\n':
            strbuf_add(&t->text, "\\n", 2);
            break;
        case '\r':
            strbuf_add(&t->text, "\\r", 2);
            break;
        default:
            strbuf_add(&t->text, p, 1);
        }
    }
}

size_t gen_format_fixed(char *out, int64_t units, int scale) {
    char digits[24];
    int n = 0;
    /* Work on the magnitude as unsigned so INT64_MIN is safe. */
    uint64_t mag = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    do {
        digits[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag || n <= scale);
    size_t len = 0;
    if (units < 0)
        out[len++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[len++] = digits[i];
        if (i == scale && scale > 0)
            out[len++] = '.';
    }
    out[len] = '\0';
    return len;
}

void gen_copy_int(gen_text *t, int64_t v) {
    gen_copy_fixed(t, v, 0);
}

void gen_copy_fixed(gen_text *t, int64_t units, int scale) {
    char buf[32];
    field_sep(t);
    strbuf_add(&t->text, buf, gen_format_fixed(buf, units, scale));
}

void gen_copy_end_row(gen_text *t) {
    strbuf_add(&t->text, "\n", 1);
    t->row_open = 0;
}
