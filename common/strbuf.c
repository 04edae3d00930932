/* A growable string buffer (see strbuf.h). */
#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: small texts never grow, large ones double from here. */
#define STRBUF_MIN_CAP 256

void strbuf_free(strbuf *b) {
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

void strbuf_clear(strbuf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int strbuf_reserve(strbuf *b, size_t more) {
    if (b->oom)
        return -1;
    if (b->cap > b->len && more < b->cap - b->len)
        return 0;
    if (more > SIZE_MAX - 1 - b->len) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + more + 1, cap = b->cap ? b->cap : STRBUF_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        b->oom = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

size_t strbuf_room(const strbuf *b) {
    return b->cap > b->len ? b->cap - b->len - 1 : 0;
}

void strbuf_added(strbuf *b, size_t n) {
    b->len += n;
    b->data[b->len] = '\0';
}

void strbuf_add(strbuf *b, const void *p, size_t n) {
    if (strbuf_reserve(b, n) < 0)
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    strbuf_added(b, n);
}

void strbuf_addstr(strbuf *b, const char *s) {
    strbuf_add(b, s, strlen(s));
}

void strbuf_addf(strbuf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (strbuf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *strbuf_take(strbuf *b) {
    if (!b->oom && !b->data)
        strbuf_reserve(b, 0);
    if (b->oom) {
        strbuf_free(b);
        return NULL;
    }
    b->data[b->len] = '\0';
    char *s = b->data;
    memset(b, 0, sizeof *b);
    return s;
}
