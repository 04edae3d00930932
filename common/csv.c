/* The streaming CSV reader (see csv.h): a byte-at-a-time state machine over an
 * input window, building one record at a time into a growable buffer. */
#include "csv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CSV_CHUNK 65536

typedef struct csv_span {
    size_t off, len;
    int quoted;
} csv_span;

struct csv_reader {
    csv_read_fn read;
    void *ud;
    char *inbuf;    /* owned input window (callback and file readers) */
    const char *in; /* the bytes being read: inbuf, or the caller's memory */
    size_t in_len, in_pos;
    int eof, io_error, started;

    char delim;
    size_t max_record, max_fields;

    char *rec; /* the current record's fields, each NUL-terminated */
    size_t rec_len, rec_cap;
    csv_span *fields;
    size_t nfields, fields_cap;

    int64_t line;     /* the physical line of the next byte */
    int64_t rec_line; /* the line the current record starts on */

    int failed;
    int64_t err_line;
    char err[200];
};

static csv_reader *reader_alloc(void) {
    csv_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->delim = ',';
    r->max_record = CSV_DEFAULT_MAX_RECORD_BYTES;
    r->max_fields = CSV_DEFAULT_MAX_FIELDS;
    r->line = 1;
    return r;
}

csv_reader *csv_new(csv_read_fn read, void *ud) {
    csv_reader *r = reader_alloc();
    if (!r)
        return NULL;
    r->inbuf = malloc(CSV_CHUNK);
    if (!r->inbuf) {
        free(r);
        return NULL;
    }
    r->in = r->inbuf;
    r->read = read;
    r->ud = ud;
    return r;
}

csv_reader *csv_new_mem(const char *data, size_t len) {
    csv_reader *r = reader_alloc();
    if (!r)
        return NULL;
    r->in = data ? data : "";
    r->in_len = data ? len : 0;
    r->eof = 1;
    return r;
}

static ptrdiff_t file_read(void *ud, char *buf, size_t cap) {
    FILE *f = ud;
    size_t n = fread(buf, 1, cap, f);
    if (n == 0 && ferror(f))
        return -1;
    return (ptrdiff_t)n;
}

csv_reader *csv_new_file(FILE *f) {
    return csv_new(file_read, f);
}

void csv_free(csv_reader *r) {
    if (!r)
        return;
    free(r->inbuf);
    free(r->rec);
    free(r->fields);
    free(r);
}

int csv_set_delimiter(csv_reader *r, char delim) {
    if (delim == '"' || delim == '\r' || delim == '\n' || delim == '\0')
        return -1;
    r->delim = delim;
    return 0;
}

void csv_set_limits(csv_reader *r, size_t max_record_bytes, size_t max_fields) {
    if (max_record_bytes)
        r->max_record = max_record_bytes;
    if (max_fields)
        r->max_fields = max_fields;
}

/* ---- input window ----------------------------------------------------------- */

/* Moves the unread bytes to the front of the window and reads more after them.
 * Returns the number of bytes added (0 at the end or on a read error, which sets
 * io_error). */
static size_t fill(csv_reader *r) {
    if (r->eof || !r->inbuf)
        return 0;
    size_t left = r->in_len - r->in_pos;
    memmove(r->inbuf, r->inbuf + r->in_pos, left);
    r->in_pos = 0;
    r->in_len = left;
    ptrdiff_t n = r->read(r->ud, r->inbuf + left, CSV_CHUNK - left);
    if (n < 0) {
        r->io_error = 1;
        r->eof = 1;
        return 0;
    }
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    if ((size_t)n > CSV_CHUNK - left) /* a callback that claims more than it was given */
        n = (ptrdiff_t)(CSV_CHUNK - left);
    r->in_len += (size_t)n;
    return (size_t)n;
}

/* The next byte (0..255) without consuming it, or -1 at the end of the input. */
static int peek(csv_reader *r) {
    while (r->in_pos == r->in_len)
        if (!fill(r))
            return -1;
    return (unsigned char)r->in[r->in_pos];
}

static int get(csv_reader *r) {
    int c = peek(r);
    if (c >= 0)
        r->in_pos++;
    return c;
}

/* Skips a UTF-8 byte order mark at the very start of the input. */
static void skip_bom(csv_reader *r) {
    while (r->in_len - r->in_pos < 3 && fill(r))
        ;
    if (r->in_len - r->in_pos >= 3 && memcmp(r->in + r->in_pos, "\xEF\xBB\xBF", 3) == 0)
        r->in_pos += 3;
}

/* ---- the record being built --------------------------------------------------- */

static int fail(csv_reader *r, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(csv_reader *r, int64_t line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->failed = 1;
    r->err_line = line;
    return -1;
}

/* Makes room for need more bytes in the record; -1 (reader failed) beyond the
 * record limit or when out of memory. */
static int reserve(csv_reader *r, size_t need) {
    if (r->rec_len + need <= r->rec_cap)
        return 0;
    if (r->rec_len + need > r->max_record)
        return fail(r, r->rec_line, "record longer than %zu bytes (an unterminated quoted field?)",
                    r->max_record);
    size_t cap = r->rec_cap ? r->rec_cap : 256;
    while (cap < r->rec_len + need)
        cap *= 2;
    if (cap > r->max_record)
        cap = r->max_record;
    char *p = realloc(r->rec, cap);
    if (!p)
        return fail(r, r->rec_line, "out of memory");
    r->rec = p;
    r->rec_cap = cap;
    return 0;
}

/* Appends one byte to the current field. A NUL byte is refused: fields are C
 * strings, and a NUL in a text file means it is not UTF-8 text. */
static int put(csv_reader *r, int c) {
    if (c == 0)
        return fail(r, r->line, "field %zu: NUL byte (save the file as UTF-8 text)",
                    r->nfields + 1);
    if (reserve(r, 1) < 0)
        return -1;
    r->rec[r->rec_len++] = (char)c;
    return 0;
}

/* Starts a field at the current end of the record. */
static int field_begin(csv_reader *r, int quoted) {
    if (r->nfields == r->max_fields)
        return fail(r, r->rec_line, "more than %zu fields", r->max_fields);
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        csv_span *p = realloc(r->fields, cap * sizeof *p);
        if (!p)
            return fail(r, r->rec_line, "out of memory");
        r->fields = p;
        r->fields_cap = cap;
    }
    r->fields[r->nfields].off = r->rec_len;
    r->fields[r->nfields].len = 0;
    r->fields[r->nfields].quoted = quoted;
    return 0;
}

/* Ends the field begun last: terminates it and counts it. */
static int field_end(csv_reader *r) {
    csv_span *f = &r->fields[r->nfields];
    f->len = r->rec_len - f->off;
    if (reserve(r, 1) < 0)
        return -1;
    r->rec[r->rec_len++] = '\0';
    r->nfields++;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Checks every field of the finished record is UTF-8. */
static int check_utf8(csv_reader *r) {
    for (size_t i = 0; i < r->nfields; i++) {
        const unsigned char *s = (const unsigned char *)r->rec + r->fields[i].off;
        size_t n = r->fields[i].len;
        int64_t line = r->rec_line;
        for (size_t k = 0; k < n;) {
            size_t len = utf8_seq(s + k, n - k);
            if (!len)
                return fail(r, line, "field %zu: byte 0x%02X is not UTF-8 (save the file as UTF-8)",
                            i + 1, s[k]);
            if (s[k] == '\n')
                line++;
            k += len;
        }
    }
    return 0;
}

/* ---- the state machine ------------------------------------------------------- */

enum { ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_SEEN, ST_AFTER_QUOTE };

/* Consumes the end of a line after c (CR or LF) was read: CRLF counts once. */
static void end_line(csv_reader *r, int c) {
    if (c == '\r' && peek(r) == '\n')
        r->in_pos++;
    r->line++;
}

int csv_next(csv_reader *r) {
    if (r->failed)
        return -1;
    if (!r->started) {
        r->started = 1;
        skip_bom(r);
    }
    r->rec_len = 0;
    r->nfields = 0;

    /* Empty physical lines are no records. */
    for (;;) {
        int c = peek(r);
        if (c < 0) {
            if (r->io_error)
                return fail(r, r->line, "read error");
            return 0;
        }
        if (c != '\n' && c != '\r')
            break;
        r->in_pos++;
        end_line(r, c);
    }

    r->rec_line = r->line;
    int state = ST_FIELD_START;
    int64_t quote_line = 0;
    for (;;) {
        int c = get(r);
        int is_end = c < 0 || c == '\n' || c == '\r';
        switch (state) {
        case ST_FIELD_START:
            if (c == '"') {
                if (field_begin(r, 1) < 0)
                    return -1;
                quote_line = r->line;
                state = ST_QUOTED;
            } else {
                if (field_begin(r, 0) < 0)
                    return -1;
                if (c == r->delim) {
                    if (field_end(r) < 0)
                        return -1;
                } else if (is_end) {
                    goto record_end;
                } else {
                    if (put(r, c) < 0)
                        return -1;
                    state = ST_UNQUOTED;
                }
            }
            break;
        case ST_UNQUOTED:
            if (c == r->delim) {
                if (field_end(r) < 0)
                    return -1;
                state = ST_FIELD_START;
            } else if (is_end) {
                goto record_end;
            } else if (c == '"') {
                /* Blanks before an opening quote are dropped; a quote after
                 * anything else is a malformed field. */
                csv_span *f = &r->fields[r->nfields];
                for (size_t k = f->off; k < r->rec_len; k++)
                    if (r->rec[k] != ' ' && r->rec[k] != '\t')
                        return fail(r, r->line,
                                    "field %zu: quote inside an unquoted field (quote the whole "
                                    "field and double the quote: \"a \"\"b\"\"\")",
                                    r->nfields + 1);
                r->rec_len = f->off;
                f->quoted = 1;
                quote_line = r->line;
                state = ST_QUOTED;
            } else if (put(r, c) < 0) {
                return -1;
            }
            break;
        case ST_QUOTED:
            if (c < 0) {
                if (r->io_error)
                    return fail(r, r->line, "read error");
                return fail(r, quote_line,
                            "field %zu: unterminated quoted field (the quote opened on line %lld "
                            "is never closed)",
                            r->nfields + 1, (long long)quote_line);
            }
            if (c == '"') {
                state = ST_QUOTE_SEEN;
                break;
            }
            if (put(r, c) < 0)
                return -1;
            if (c == '\n' || (c == '\r' && peek(r) != '\n'))
                r->line++;
            break;
        case ST_QUOTE_SEEN:
        case ST_AFTER_QUOTE:
            if (c == '"' && state == ST_QUOTE_SEEN) {
                if (put(r, '"') < 0)
                    return -1;
                state = ST_QUOTED;
            } else if (c == r->delim) {
                if (field_end(r) < 0)
                    return -1;
                state = ST_FIELD_START;
            } else if (is_end) {
                goto record_end;
            } else if (c == ' ' || c == '\t') {
                state = ST_AFTER_QUOTE;
            } else {
                return fail(r, r->line, "field %zu: unexpected character after the closing quote",
                            r->nfields + 1);
            }
            break;
        }
        continue;

    record_end:
        if (field_end(r) < 0)
            return -1;
        if (c < 0 && r->io_error)
            return fail(r, r->line, "read error");
        if (c >= 0)
            end_line(r, c);
        if (check_utf8(r) < 0)
            return -1;
        return 1;
    }
}

/* ---- accessors -------------------------------------------------------------- */

size_t csv_nfields(const csv_reader *r) {
    return r->nfields;
}

const char *csv_field(const csv_reader *r, size_t i) {
    return i < r->nfields ? r->rec + r->fields[i].off : NULL;
}

size_t csv_field_len(const csv_reader *r, size_t i) {
    return i < r->nfields ? r->fields[i].len : 0;
}

int csv_field_quoted(const csv_reader *r, size_t i) {
    return i < r->nfields ? r->fields[i].quoted : 0;
}

int64_t csv_line(const csv_reader *r) {
    return r->rec_line;
}

const char *csv_error(const csv_reader *r) {
    return r->failed ? r->err : "";
}

int64_t csv_error_line(const csv_reader *r) {
    return r->failed ? r->err_line : 0;
}
