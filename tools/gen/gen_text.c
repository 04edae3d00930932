/* Growable buffer and COPY text encoding of alloc-gen (see gen_text.h). */
#include "gen_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gen_text_init(gen_text *t) {
    memset(t, 0, sizeof *t);
}

void gen_text_free(gen_text *t) {
    if (!t)
        return;
    free(t->data);
    gen_text_init(t);
}

void gen_text_clear(gen_text *t) {
    t->len = 0;
    t->row_open = 0;
    if (t->data)
        t->data[0] = '\0';
}

char *gen_text_take(gen_text *t) {
    if (t->failed) {
        gen_text_free(t);
        return NULL;
    }
    if (!t->data)
        gen_text_put(t, "", 0);
    char *s = t->data;
    if (!t->failed)
        gen_text_init(t);
    return t->failed ? NULL : s;
}

/* Makes room for n more bytes plus the NUL; 0 on success. */
static int reserve(gen_text *t, size_t n) {
    if (t->failed)
        return -1;
    if (t->len + n + 1 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n + 1)
        cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) {
        t->failed = 1;
        return -1;
    }
    t->data = d;
    t->cap = cap;
    return 0;
}

void gen_text_put(gen_text *t, const char *s, size_t n) {
    if (reserve(t, n))
        return;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

void gen_text_puts(gen_text *t, const char *s) {
    gen_text_put(t, s, strlen(s));
}

void gen_text_printf(gen_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* The separator before a field: a tab unless the field opens the row. */
static void field_sep(gen_text *t) {
    if (t->row_open)
        gen_text_put(t, "\t", 1);
    t->row_open = 1;
}

void gen_copy_field(gen_text *t, const char *value) {
    field_sep(t);
    if (!value) {
        gen_text_put(t, "\\N", 2);
        return;
    }
    /* Fast path: most values need no escaping. */
    const char *p = value;
    while (*p && *p != '\\' && *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    if (!*p) {
        gen_text_put(t, value, (size_t)(p - value));
        return;
    }
    for (p = value; *p; p++) {
        switch (*p) {
        case '\\':
            gen_text_put(t, "\\\\", 2);
            break;
        case '\t':
            gen_text_put(t, "\\t", 2);
            break;
        case '\n':
            gen_text_put(t, "\\n", 2);
            break;
        case '\r':
            gen_text_put(t, "\\r", 2);
            break;
        default:
            gen_text_put(t, p, 1);
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
    gen_text_put(t, buf, gen_format_fixed(buf, units, scale));
}

void gen_copy_end_row(gen_text *t) {
    gen_text_put(t, "\n", 1);
    t->row_open = 0;
}
