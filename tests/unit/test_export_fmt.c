/* Unit tests of common/export_fmt: CSV quoting as COPY (FORMAT csv) does it,
 * and gzip files assembled from independently deflated chunks, which must
 * inflate (as gzip) to the whole text with a correct trailer. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "export_fmt.h"
#include "harness.h"

/* One field's CSV form as a NUL-terminated string (static storage). */
static const char *field(const char *s) {
    static char out[256];
    strbuf b = {0};
    export_fmt_csv_field(&b, s, s ? strlen(s) : 0);
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.data ? b.data : "");
    strbuf_free(&b);
    return out;
}

static void csv_fields_are_quoted_like_copy(void) {
    CHECK_STR(field("M"), "M");
    CHECK_STR(field("#TOTAL"), "#TOTAL");
    CHECK_STR(field("-12.50"), "-12.50");
    CHECK_STR(field("City 01"), "City 01"); /* spaces need no quotes in COPY csv */
    CHECK_STR(field(" lead"), " lead");
    CHECK_STR(field("a,b"), "\"a,b\"");
    CHECK_STR(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    CHECK_STR(field("two\nlines"), "\"two\nlines\"");
    CHECK_STR(field("cr\r"), "\"cr\r\"");
    CHECK_STR(field(""), "\"\""); /* empty string: quoted, unlike NULL */
    CHECK_STR(field(NULL), "");   /* SQL NULL: nothing */
    CHECK_STR(field("\""), "\"\"\"\"");
}

/* Inflates a gzip file (windowBits 16 + 15: gzip framing, trailer checked by
 * zlib). Returns the text (caller frees) and its length, or NULL when the
 * data is not one valid gzip member. */
static char *gunzip(const strbuf *gz, size_t *out_len) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + 15) != Z_OK)
        return NULL;
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    zs.next_in = (unsigned char *)gz->data;
    zs.avail_in = (uInt)gz->len;
    int rc;
    do {
        if (cap - len < 65536) {
            cap *= 2;
            out = realloc(out, cap);
        }
        zs.next_out = (unsigned char *)out + len;
        zs.avail_out = (uInt)(cap - len);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
    } while (rc == Z_OK);
    int whole = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    if (!whole) {
        free(out);
        return NULL;
    }
    *out_len = len;
    return out;
}

/* Builds a gzip file of text cut into chunks of the given sizes (the last
 * takes the rest). */
static void gzip_of_chunks(const char *text, size_t len, const size_t *sizes, size_t nsizes,
                           strbuf *gz) {
    unsigned char head[EXPORT_FMT_GZIP_HEADER_LEN], tail[EXPORT_FMT_GZIP_FINISH_LEN];
    export_fmt_gzip g = {0, 0};
    char err[128];
    export_fmt_gzip_header(head);
    strbuf_add(gz, head, sizeof head);
    size_t at = 0;
    for (size_t i = 0; i <= nsizes; i++) {
        size_t n = i < nsizes ? sizes[i] : len - at;
        strbuf chunk = {0};
        uint32_t crc = 0;
        CHECK(export_fmt_deflate_chunk(text + at, n, -1, &chunk, &crc, err, sizeof err) == 0,
              "chunk %zu deflates: %s", i, err);
        CHECK_EQ_LL(crc, crc32(crc32(0L, Z_NULL, 0), (const unsigned char *)text + at, (uInt)n));
        export_fmt_gzip_add(&g, crc, n);
        strbuf_add(gz, chunk.data, chunk.len);
        strbuf_free(&chunk);
        at += n;
    }
    export_fmt_gzip_finish(&g, tail);
    strbuf_add(gz, tail, sizeof tail);
}

static void chunked_gzip_inflates_to_the_text(void) {
    /* CSV-like text of about 2 MB */
    strbuf text = {0};
    char line[128];
    for (int i = 0; i < 40000; i++) {
        int n = snprintf(line, sizeof line, "M,City %02d,P%05d,item_%03d,%d.%02d\n", i % 30, i,
                         i % 450, i * 7 - 100000, i % 100);
        strbuf_add(&text, line, (size_t)n);
    }
    size_t sizes[] = {0, 1, 65536, 700000, 3};
    strbuf gz = {0};
    gzip_of_chunks(text.data, text.len, sizes, 5, &gz);
    CHECK(!gz.oom, "no allocation failure");
    CHECK(gz.len < text.len / 3, "compressed %zu bytes to %zu", text.len, gz.len);
    size_t got_len = 0;
    char *got = gunzip(&gz, &got_len);
    CHECK(got != NULL, "the file is one valid gzip member (CRC and length checked by zlib)");
    if (got) {
        CHECK_EQ_LL(got_len, text.len);
        CHECK(got_len == text.len && memcmp(got, text.data, text.len) == 0,
              "the inflated text equals the input");
    }
    free(got);
    strbuf_free(&gz);
    strbuf_free(&text);
}

static void empty_text_is_a_valid_gzip(void) {
    strbuf gz = {0};
    gzip_of_chunks("", 0, NULL, 0, &gz);
    size_t got_len = 99;
    char *got = gunzip(&gz, &got_len);
    CHECK(got != NULL, "an empty export is a valid gzip file");
    CHECK_EQ_LL(got_len, 0);
    free(got);
    strbuf_free(&gz);
}

static void equal_text_gives_equal_files(void) {
    const char *text = "version,data_source\nM,A\n";
    size_t sizes[] = {8};
    strbuf a = {0}, b = {0};
    gzip_of_chunks(text, strlen(text), sizes, 1, &a);
    gzip_of_chunks(text, strlen(text), sizes, 1, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
          "the header carries no time: equal input, equal bytes");
    strbuf_free(&a);
    strbuf_free(&b);
}

TEST_MAIN(TEST(csv_fields_are_quoted_like_copy), TEST(chunked_gzip_inflates_to_the_text),
          TEST(empty_text_is_a_valid_gzip), TEST(equal_text_gives_equal_files))
