/* A growable string buffer for text and bytes of any length: SQL built piece
 * by piece, CSV and deflated export chunks, error messages. As Redis's sds, it
 * is binary-safe (len counts the bytes) and its data is always followed by a
 * NUL, so it can be used as a C string. An allocation failure sets oom and
 * later appends do nothing, so a caller checks oom once at the end instead of
 * after every append. Pure; a strbuf is used by one thread at a time. */
#ifndef ALLOC_STRBUF_H
#define ALLOC_STRBUF_H

#include <stddef.h>

/* Zero-initialize it ({0}); data is NULL until the first append. */
typedef struct strbuf {
    char *data;
    size_t len, cap;
    int oom;
} strbuf;

/* Frees the buffer's memory and zeroes it (it may be used again). Accepts NULL. */
void strbuf_free(strbuf *b);

/* Empties the buffer, keeping its memory (and its oom flag). */
void strbuf_clear(strbuf *b);

/* Makes room for `more` bytes after len (and the NUL after them). Returns 0,
 * or -1 (and sets oom). */
int strbuf_reserve(strbuf *b, size_t more);

/* Bytes that can be written at data + len before the buffer must grow (the
 * NUL's place excluded); 0 while data is NULL. */
size_t strbuf_room(const strbuf *b);

/* Counts n bytes the caller wrote at data + len (within strbuf_room) and
 * writes the NUL after them. */
void strbuf_added(strbuf *b, size_t n);

/* Appends n bytes of p (sets oom when it cannot). */
void strbuf_add(strbuf *b, const void *p, size_t n);

/* Appends the string s. */
void strbuf_addstr(strbuf *b, const char *s);

/* Appends printf-formatted text (sets oom when it cannot). */
void strbuf_addf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the text over: returns data (never NULL: "" for an empty buffer) for
 * the caller to free, and leaves the buffer empty. Returns NULL, freeing the
 * buffer, when it is oom. */
char *strbuf_take(strbuf *b);

#endif
