/* Unit tests of the CSV reader (common/csv.c): quoting, line ends, the byte order
 * mark, empty fields, line numbers, errors with their lines, limits, reads in
 * tiny chunks, and random garbage that must never crash it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "harness.h"

/* Reads all records of text into one string: records separated by "\n", fields
 * by "|", a quoted field marked with a leading "q:", each record prefixed with
 * its line ("3:"). On an error the string ends with "!LINE:message". */
static char *dump_reader(csv_reader *r) {
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (;;) {
        int rc = csv_next(r);
        char tmp[512];
        if (rc < 0) {
            snprintf(tmp, sizeof tmp, "!%lld:%s", (long long)csv_error_line(r), csv_error(r));
        } else if (rc == 0) {
            break;
        } else {
            size_t n = (size_t)snprintf(tmp, sizeof tmp, "%lld:", (long long)csv_line(r));
            for (size_t i = 0; i < csv_nfields(r) && n < sizeof tmp; i++)
                n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%s%s%s", i ? "|" : "",
                                      csv_field_quoted(r, i) ? "q:" : "", csv_field(r, i));
            if (n < sizeof tmp)
                snprintf(tmp + n, sizeof tmp - n, "\n");
        }
        size_t add = strlen(tmp);
        if (len + add + 1 > cap) {
            cap = (len + add + 1) * 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, tmp, add + 1);
        len += add;
        if (rc < 0)
            break;
    }
    return out;
}

static char *dump(const char *text) {
    csv_reader *r = csv_new_mem(text, strlen(text));
    char *out = dump_reader(r);
    csv_free(r);
    return out;
}

#define CHECK_DUMP(text, want)                                                                     \
    do {                                                                                           \
        char *got_ = dump(text);                                                                   \
        CHECK_STR(got_, want);                                                                     \
        free(got_);                                                                                \
    } while (0)

static void simple_records_and_line_numbers(void) {
    CHECK_DUMP("a,b,c\n1,2,3\n", "1:a|b|c\n2:1|2|3\n");
    CHECK_DUMP("a,b\n1,2", "1:a|b\n2:1|2\n"); /* no final line end */
    CHECK_DUMP("", "");
    CHECK_DUMP("x", "1:x\n");
}

static void quoted_fields_with_commas_newlines_and_quotes(void) {
    CHECK_DUMP("\"a,b\",c\n", "1:q:a,b|c\n");
    CHECK_DUMP("\"say \"\"hi\"\"\",x\n", "1:q:say \"hi\"|x\n");
    /* A line break inside quotes: the record starts on line 1, the next on 3. */
    CHECK_DUMP("\"two\nlines\",x\nnext,y\n", "1:q:two\nlines|x\n3:next|y\n");
    CHECK_DUMP("\"\"\"\"\n", "1:q:\"\n");
    CHECK_DUMP("\"\",\"\"\n", "1:q:|q:\n");
    /* Blanks around quotes are ignored; blanks in unquoted fields are kept. */
    CHECK_DUMP("  \"a\"  , b \n", "1:q:a| b \n");
}

static void crlf_and_lone_cr(void) {
    CHECK_DUMP("a,b\r\n1,2\r\n", "1:a|b\n2:1|2\n");
    CHECK_DUMP("a\rb\rc", "1:a\n2:b\n3:c\n");
    /* CRLF inside quotes is kept as it is and counts one line. */
    CHECK_DUMP("\"x\r\ny\",z\r\nn\r\n", "1:q:x\r\ny|z\n3:n\n");
}

static void byte_order_mark(void) {
    CHECK_DUMP("\xEF\xBB\xBF"
               "a,b\n1,2\n",
               "1:a|b\n2:1|2\n");
    /* Only at the very start: later it is part of the field. */
    CHECK_DUMP("a\n\xEF\xBB\xBF"
               "b\n",
               "1:a\n2:\xEF\xBB\xBF"
               "b\n");
    CHECK_DUMP("\xEF\xBB\xBF", "");
    CHECK_DUMP("\xEF\xBB", "!1:field 1: byte 0xEF is not UTF-8 (save the file as UTF-8)");
}

static void empty_fields_and_missing_fields(void) {
    csv_reader *r = csv_new_mem("a,,c\na,b\na,b,\n,\n", 16);
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_nfields(r), 3);
    CHECK_STR(csv_field(r, 1), "");
    CHECK_EQ_LL(csv_field_len(r, 1), 0);
    CHECK_EQ_LL(csv_field_quoted(r, 1), 0);
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_nfields(r), 2); /* a missing field: the caller compares with the header */
    CHECK(csv_field(r, 2) == NULL, "out of range is NULL");
    CHECK_EQ_LL(csv_field_len(r, 5), 0);
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_nfields(r), 3); /* a trailing comma is an empty last field */
    CHECK_STR(csv_field(r, 2), "");
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_nfields(r), 2);
    CHECK_EQ_LL(csv_next(r), 0);
    CHECK_EQ_LL(csv_next(r), 0); /* the end stays the end */
    csv_free(r);
}

static void blank_lines_are_skipped_but_counted(void) {
    CHECK_DUMP("\n\na\n\r\n\nb\n\n", "3:a\n6:b\n");
    CHECK_DUMP(" \n", "1: \n"); /* a blank is content: one field */
}

static void unterminated_quote_names_its_line(void) {
    CHECK_DUMP("h1,h2\nok,1\nx,\"never\nclosed\n",
               "1:h1|h2\n2:ok|1\n!3:field 2: unterminated quoted field (the quote opened on line 3 "
               "is never closed)");
    csv_reader *r = csv_new_mem("\"open", 5);
    CHECK_EQ_LL(csv_next(r), -1);
    CHECK_EQ_LL(csv_error_line(r), 1);
    CHECK_EQ_LL(csv_next(r), -1); /* an error is final */
    csv_free(r);
}

static void malformed_quotes_are_errors(void) {
    CHECK_DUMP("a\nab\"c\n",
               "1:a\n!2:field 1: quote inside an unquoted field (quote the whole field "
               "and double the quote: \"a \"\"b\"\"\")");
    CHECK_DUMP("\"a\"x,b\n", "!1:field 1: unexpected character after the closing quote");
    CHECK_DUMP("x,\"a\" y\n", "!1:field 2: unexpected character after the closing quote");
}

static void bad_bytes_are_errors(void) {
    CHECK_DUMP("ok\nca\xE9\n", "1:ok\n!2:field 1: byte 0xE9 is not UTF-8 (save the file as UTF-8)");
    CHECK_DUMP("a,b\xC0\xAF\n", "!1:field 2: byte 0xC0 is not UTF-8 (save the file as UTF-8)");
    CHECK_DUMP("\xED\xA0\x80\n", "!1:field 1: byte 0xED is not UTF-8 (save the file as UTF-8)");
    CHECK_DUMP("caf\xC3\xA9,\xE4\xB8\xAD\xF0\x9F\x98\x80\n",
               "1:caf\xC3\xA9|\xE4\xB8\xAD\xF0\x9F\x98\x80\n");
    csv_reader *r = csv_new_mem("a\nb\0c\n", 6);
    char *got = dump_reader(r);
    CHECK_STR(got, "1:a\n!2:field 1: NUL byte (save the file as UTF-8 text)");
    free(got);
    csv_free(r);
}

static void limits(void) {
    csv_reader *r = csv_new_mem("abcdef,g\n\"unterminated and long", 31);
    csv_set_limits(r, 10, 0);
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_next(r), -1);
    CHECK_STR(csv_error(r), "record longer than 10 bytes (an unterminated quoted field?)");
    CHECK_EQ_LL(csv_error_line(r), 2);
    csv_free(r);

    r = csv_new_mem("a,b,c,d\n", 8);
    csv_set_limits(r, 0, 3);
    CHECK_EQ_LL(csv_next(r), -1);
    CHECK_STR(csv_error(r), "more than 3 fields");
    csv_free(r);
}

static void other_delimiter(void) {
    csv_reader *r = csv_new_mem("a;\"b;c\";d,e\n", 12);
    CHECK_EQ_LL(csv_set_delimiter(r, '"'), -1);
    CHECK_EQ_LL(csv_set_delimiter(r, ';'), 0);
    char *got = dump_reader(r);
    CHECK_STR(got, "1:a|q:b;c|d,e\n");
    free(got);
    csv_free(r);
}

/* A callback reader handing out at most `step` bytes per call. */
typedef struct chunked {
    const char *data;
    size_t len, pos, step;
} chunked;

static ptrdiff_t chunked_read(void *ud, char *buf, size_t cap) {
    chunked *c = ud;
    size_t n = c->len - c->pos;
    if (n > c->step)
        n = c->step;
    if (n > cap)
        n = cap;
    memcpy(buf, c->data + c->pos, n);
    c->pos += n;
    return (ptrdiff_t)n;
}

static char *dump_chunked(const char *data, size_t len, size_t step) {
    chunked c = {data, len, 0, step};
    csv_reader *r = csv_new(chunked_read, &c);
    char *out = dump_reader(r);
    csv_free(r);
    return out;
}

static void tiny_reads_give_the_same_records(void) {
    const char *text = "\xEF\xBB\xBF"
                       "h1,\"h 2\"\r\n\"a\r\nb\",\"x\"\"y\"\r\n\r\nlast,\"\"\r";
    char *whole = dump(text);
    for (size_t step = 1; step <= 7; step++) {
        char *got = dump_chunked(text, strlen(text), step);
        CHECK(strcmp(got, whole) == 0, "step %zu: got \"%s\", want \"%s\"", step, got, whole);
        free(got);
    }
    CHECK_STR(whole, "1:h1|q:h 2\n2:q:a\r\nb|q:x\"y\n5:last|q:\n");
    free(whole);
}

static ptrdiff_t failing_read(void *ud, char *buf, size_t cap) {
    int *calls = ud;
    if ((*calls)++ == 0 && cap >= 4) {
        memcpy(buf, "a,b\n", 4);
        return 4;
    }
    return -1;
}

static void read_errors_are_reported(void) {
    int calls = 0;
    csv_reader *r = csv_new(failing_read, &calls);
    CHECK_EQ_LL(csv_next(r), 1);
    CHECK_EQ_LL(csv_next(r), -1);
    CHECK_STR(csv_error(r), "read error");
    csv_free(r);
}

static void file_reader(void) {
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (!f)
        return;
    fputs("a,b\n\"1\n2\",3\n", f);
    rewind(f);
    csv_reader *r = csv_new_file(f);
    char *got = dump_reader(r);
    CHECK_STR(got, "1:a|b\n2:q:1\n2|3\n");
    free(got);
    csv_free(r);
    fclose(f);
}

/* Random bytes drawn mostly from the characters that matter to the parser:
 * whatever comes, the reader returns records or an error, every field is within
 * the record, and chunked reading agrees with reading from memory. */
static void garbage_never_crashes(void) {
    static const char alphabet[] = {'"',        ',',        '\n',       '\r',       'a',
                                    ' ',        '\t',       ';',        '\0',       (char)0xC3,
                                    (char)0xA9, (char)0xFF, (char)0xEF, (char)0xBB, (char)0xBF};
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    char buf[256];
    int disagreements = 0;
    for (int iter = 0; iter < 20000; iter++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        size_t len = (size_t)(seed % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf[i] = (seed >> 40) % 4 == 0 ? (char)(seed >> 16)
                                           : alphabet[(seed >> 24) % sizeof alphabet];
        }
        csv_reader *r = csv_new_mem(buf, len);
        csv_set_limits(r, 64, 8);
        int rc;
        int64_t last_line = 0;
        while ((rc = csv_next(r)) == 1) {
            CHECK(csv_nfields(r) >= 1, "a record has a field");
            CHECK(csv_line(r) > last_line, "lines grow");
            last_line = csv_line(r);
            for (size_t i = 0; i < csv_nfields(r); i++)
                CHECK(strlen(csv_field(r, i)) == csv_field_len(r, i), "fields hold no NUL");
        }
        CHECK(rc == 0 || (rc == -1 && csv_error(r)[0] && csv_error_line(r) >= 1),
              "an error has a message and a line");
        csv_free(r);

        if (iter % 10 == 0) {
            csv_reader *m = csv_new_mem(buf, len);
            char *a = dump_reader(m);
            char *b = dump_chunked(buf, len, 1 + (size_t)(iter % 5));
            if (strcmp(a, b) != 0)
                disagreements++;
            free(a);
            free(b);
            csv_free(m);
        }
    }
    CHECK_EQ_LL(disagreements, 0);
}

TEST_MAIN(TEST(simple_records_and_line_numbers),
          TEST(quoted_fields_with_commas_newlines_and_quotes), TEST(crlf_and_lone_cr),
          TEST(byte_order_mark), TEST(empty_fields_and_missing_fields),
          TEST(blank_lines_are_skipped_but_counted), TEST(unterminated_quote_names_its_line),
          TEST(malformed_quotes_are_errors), TEST(bad_bytes_are_errors), TEST(limits),
          TEST(other_delimiter), TEST(tiny_reads_give_the_same_records),
          TEST(read_errors_are_reported), TEST(file_reader), TEST(garbage_never_crashes))
