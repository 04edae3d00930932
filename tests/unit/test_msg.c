/* Unit tests of the message codec: round trips of every type, every validation
 * error with its exact text, and garbled, truncated, mistyped, deeply nested
 * and oversized inputs, which must be refused without crashing. */
#include "harness.h"
#include "msg.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- sample messages ---- */

static msg_row sample_rows[] = {
    {1, "C01", "ITEM_A", "gl", 12345},
    {2, "Zürich AG", "[odd item]", "salary", -999999999999999999},
    {9007199254740993, "C\"q\\", "I\n\t", "rent", 999999999999999999},
    {4, "C04", "ITEM_B", "gl", 0},
};
#define NSAMPLE (sizeof sample_rows / sizeof sample_rows[0])

static msg_bucket sample_bucket(void) {
    msg_bucket b = {42,          "2026-03", "std-2026", "2026-03-01T10:00:00.123456Z",     "BJ#1",
                    "BJ",        true,      5000,       "alloc:public:2026-03:std-2026:x", 17,
                    sample_rows, NSAMPLE};
    return b;
}

static msg_batch sample_batch(void) {
    msg_batch b = {42,    "2026-12",        "std", "s1",        "42:BJ:0007", "BJ",
                   false, "alloc:public:k", 0,     sample_rows, NSAMPLE};
    return b;
}

static msg_item_value items0[] = {{"REV", 100000}, {"COST", -2550}, {"[x y]", 0}};
static msg_vector sample_vectors[] = {
    {"M", "BJ", "P001", items0, 3},
    {"F", "#ALL", "#TOTAL", items0, 1},
    {"M", "SH", "#UNALLOCATED", NULL, 0},
};

static msg_formula sample_formula(void) {
    msg_formula f = {7, "2025-01",      "std", "s2", "7:formula:3", "alloc:fx:std:s2",
                     4, sample_vectors, 3};
    return f;
}

/* ---- helpers ---- */

static int str_eq(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

static int rows_equal(const msg_row *a, size_t na, const msg_row *b, size_t nb) {
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].entry_id != b[i].entry_id || !str_eq(a[i].company_code, b[i].company_code) ||
            !str_eq(a[i].item_code, b[i].item_code) || !str_eq(a[i].category, b[i].category) ||
            a[i].cents != b[i].cents)
            return 0;
    return 1;
}

/* Decodes buf and expects failure with exactly want as the message. */
static void expect_error_n(const char *buf, size_t len, const char *want, const char *what) {
    msg_any m;
    char err[512] = "(untouched)";
    int rc = msg_decode(buf, len, &m, err, sizeof err);
    CHECK(rc == -1, "%s: decoded although it should fail with: %s", what, want);
    CHECK(m.arena == NULL && m.type == 0, "%s: message not emptied on failure", what);
    if (want)
        CHECK(strcmp(err, want) == 0, "%s: error \"%s\", want \"%s\"", what, err, want);
    else
        CHECK(err[0] != '\0', "%s: empty error", what);
    msg_any_free(&m);
}

static void expect_error(const char *json, const char *want) {
    expect_error_n(json, strlen(json), want, json);
}

/* The error starts with want_prefix. */
static void expect_error_prefix(const char *json, size_t len, const char *want_prefix) {
    msg_any m;
    char err[512] = "";
    int rc = msg_decode(json, len, &m, err, sizeof err);
    CHECK(rc == -1, "decoded although it should fail with: %s...", want_prefix);
    CHECK(strncmp(err, want_prefix, strlen(want_prefix)) == 0, "error \"%s\", want \"%s...\"", err,
          want_prefix);
    msg_any_free(&m);
}

/* The local error buffer err holds exactly want. */
#define CHECK_ERR(want) CHECK(strcmp(err, (want)) == 0, "got \"%s\", want \"%s\"", err, (want))

#define EXPECT_PREFIX(lit, want) expect_error_prefix(lit, sizeof(lit) - 1, want)

/* A valid message of each type as JSON text, to mutate. */
#define ROW_OK "[5,\"C01\",\"I01\",\"gl\",100]"
static const char bucket_json[] =
    "{\"v\":1,\"type\":\"bucket\",\"run_id\":3,\"period\":\"2026-01\",\"ruleset\":\"std\","
    "\"stamp\":\"s\",\"bucket_id\":\"b\",\"data_source\":\"BJ\",\"detail\":false,"
    "\"batch_size\":100,\"public_key\":\"k\",\"expected\":0,\"rows\":[" ROW_OK "," ROW_OK "]}";
static const char batch_json[] =
    "{\"v\":1,\"type\":\"batch\",\"run_id\":3,\"period\":\"2026-01\",\"ruleset\":\"std\","
    "\"stamp\":\"s\",\"batch_id\":\"b\",\"data_source\":\"BJ\",\"detail\":true,"
    "\"public_key\":\"k\",\"expected\":0,\"rows\":[" ROW_OK "]}";
static const char stage_done_json[] =
    "{\"v\":1,\"type\":\"stage_done\",\"run_id\":3,\"stage\":\"allocate\",\"batch_count\":0}";
static const char formula_json[] =
    "{\"v\":1,\"type\":\"formula\",\"run_id\":3,\"period\":\"2026-01\",\"ruleset\":\"std\","
    "\"stamp\":\"s\",\"batch_id\":\"f1\",\"fx_key\":\"k\",\"expected\":2,\"vectors\":[{\"version\":"
    "\"M\",\"data_source\":\"BJ\","
    "\"project_code\":\"P1\",\"items\":[[\"A\",1],[\"B\",-2]]},{\"version\":\"F\","
    "\"data_source\":\"#ALL\",\"project_code\":\"#TOTAL\",\"items\":[]}]}";

/* base with top-level field `field` set to the JSON value `value` (NULL: removed). */
static char *with_field(const char *base, const char *field, const char *value) {
    json_error_t je;
    json_t *root = json_loads(base, 0, &je);
    if (!root)
        return NULL;
    if (value) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v) {
            fprintf(stderr, "bad test value %s: %s\n", value, je.text);
            json_decref(root);
            return NULL;
        }
        json_object_set_new(root, field, v);
    } else {
        json_object_del(root, field);
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void expect_field_error(const char *base, const char *field, const char *value,
                               const char *want) {
    char *s = with_field(base, field, value);
    CHECK(s != NULL, "could not build the test message for %s", field);
    if (!s)
        return;
    expect_error(s, want);
    free(s);
}

/* ---- round trips ---- */

static void test_bucket_round_trip(void) {
    msg_bucket b = sample_bucket();
    size_t len = 0;
    char err[256];
    char *s = msg_encode_bucket(&b, &len, err, sizeof err);
    CHECK(s != NULL, "encode failed: %s", err);
    if (!s)
        return;
    CHECK_EQ_LL(len, strlen(s));
    CHECK(strncmp(s, "{\"v\":1,\"type\":\"bucket\",\"run_id\":42,", 35) == 0,
          "not compact or not v/type first: %.60s", s);
    CHECK(strchr(s, '\n') == NULL, "not compact: %s", s);
    msg_any m;
    int rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0, "decode failed: %s", err);
    if (rc == 0) {
        CHECK_EQ_LL(m.type, MSG_BUCKET);
        const msg_bucket *d = &m.bucket;
        CHECK_EQ_LL(d->run_id, 42);
        CHECK_STR(d->period, "2026-03");
        CHECK_STR(d->ruleset, "std-2026");
        CHECK_STR(d->stamp, "2026-03-01T10:00:00.123456Z");
        CHECK_STR(d->bucket_id, "BJ#1");
        CHECK_STR(d->data_source, "BJ");
        CHECK(d->detail == true, "detail lost");
        CHECK_EQ_LL(d->batch_size, 5000);
        CHECK(rows_equal(d->rows, d->nrows, sample_rows, NSAMPLE), "rows differ after round trip");
    }
    msg_any_free(&m);
    CHECK(m.arena == NULL && m.bucket.rows == NULL, "msg_any_free did not empty the message");
    msg_any_free(&m); /* twice is harmless */
    free(s);
}

static void test_batch_round_trip(void) {
    msg_batch b = sample_batch();
    size_t len;
    char err[256];
    char *s = msg_encode_batch(&b, &len, err, sizeof err);
    CHECK(s != NULL, "encode failed: %s", err);
    if (!s)
        return;
    msg_any m;
    int rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0, "decode failed: %s", err);
    if (rc == 0) {
        CHECK_EQ_LL(m.type, MSG_BATCH);
        CHECK_EQ_LL(m.batch.run_id, 42);
        CHECK_STR(m.batch.period, "2026-12");
        CHECK_STR(m.batch.ruleset, "std");
        CHECK_STR(m.batch.stamp, "s1");
        CHECK_STR(m.batch.batch_id, "42:BJ:0007");
        CHECK_STR(m.batch.data_source, "BJ");
        CHECK(m.batch.detail == false, "detail lost");
        CHECK(rows_equal(m.batch.rows, m.batch.nrows, sample_rows, NSAMPLE), "rows differ");
    }
    msg_any_free(&m);
    free(s);

    /* a batch without rows is legal and decodes to NULL, 0 */
    b.rows = NULL;
    b.nrows = 0;
    s = msg_encode_batch(&b, &len, err, sizeof err);
    CHECK(s != NULL, "encode of an empty batch failed: %s", err);
    if (!s)
        return;
    CHECK(strstr(s, "\"rows\":[]") != NULL, "empty rows not encoded as []: %s", s);
    rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0 && m.batch.nrows == 0 && m.batch.rows == NULL, "empty batch: %s", err);
    msg_any_free(&m);
    free(s);
}

static void test_stage_done_round_trip(void) {
    msg_stage_done sd = {9, MSG_STAGE_FORMULA, 123};
    size_t len;
    char err[256];
    char *s = msg_encode_stage_done(&sd, &len, err, sizeof err);
    CHECK(s != NULL, "encode failed: %s", err);
    if (!s)
        return;
    CHECK_STR(s, "{\"v\":1,\"type\":\"stage_done\",\"run_id\":9,\"stage\":\"formula\","
                 "\"batch_count\":123}");
    msg_any m;
    int rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0, "decode failed: %s", err);
    CHECK_EQ_LL(m.type, MSG_STAGE_DONE);
    CHECK_EQ_LL(m.stage_done.run_id, 9);
    CHECK_EQ_LL(m.stage_done.stage, MSG_STAGE_FORMULA);
    CHECK_EQ_LL(m.stage_done.batch_count, 123);
    msg_any_free(&m);
    free(s);

    msg_any a = {.type = MSG_STAGE_DONE, .stage_done = {1, MSG_STAGE_ALLOCATE, 0}};
    s = msg_encode(&a, &len, err, sizeof err);
    CHECK(s != NULL && strstr(s, "\"stage\":\"allocate\",\"batch_count\":0") != NULL,
          "generic encode: %s", s ? s : err);
    free(s);
    CHECK_STR(msg_type_name(MSG_FORMULA), "formula");
    CHECK_STR(msg_type_name((msg_type)99), "?");
    CHECK_STR(msg_stage_name(MSG_STAGE_ALLOCATE), "allocate");
    CHECK_STR(msg_stage_name((msg_stage)0), "?");
}

static void test_formula_round_trip(void) {
    msg_formula f = sample_formula();
    size_t len;
    char err[256];
    char *s = msg_encode_formula(&f, &len, err, sizeof err);
    CHECK(s != NULL, "encode failed: %s", err);
    if (!s)
        return;
    msg_any m;
    int rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0, "decode failed: %s", err);
    if (rc == 0) {
        const msg_formula *d = &m.formula;
        CHECK_EQ_LL(m.type, MSG_FORMULA);
        CHECK_EQ_LL(d->run_id, 7);
        CHECK_STR(d->period, "2025-01");
        CHECK_STR(d->ruleset, "std");
        CHECK_STR(d->stamp, "s2");
        CHECK_STR(d->batch_id, "7:formula:3");
        CHECK_EQ_LL(d->nvectors, 3);
        for (size_t i = 0; i < d->nvectors && i < 3; i++) {
            const msg_vector *v = &d->vectors[i], *w = &sample_vectors[i];
            CHECK_STR(v->version, w->version);
            CHECK_STR(v->data_source, w->data_source);
            CHECK_STR(v->project_code, w->project_code);
            CHECK_EQ_LL(v->nitems, w->nitems);
            for (size_t k = 0; k < v->nitems && k < w->nitems; k++) {
                CHECK_STR(v->items[k].item_code, w->items[k].item_code);
                CHECK_EQ_LL(v->items[k].cents, w->items[k].cents);
            }
        }
    }
    msg_any_free(&m);
    free(s);
}

static void test_assemble_round_trip(void) {
    msg_assemble a = {12, "2026-10", "std", "s9", "u3", "alloc:fx:std:s9:00ff", 38, "SHA", 3};
    size_t len;
    char err[256];
    char *s = msg_encode_assemble(&a, &len, err, sizeof err);
    CHECK(s != NULL, "encode failed: %s", err);
    if (!s)
        return;
    msg_any m;
    int rc = msg_decode(s, len, &m, err, sizeof err);
    CHECK(rc == 0, "decode failed: %s", err);
    if (rc == 0) {
        CHECK_EQ_LL(m.type, MSG_ASSEMBLE);
        CHECK_EQ_LL(m.assemble.run_id, 12);
        CHECK_STR(m.assemble.batch_id, "u3");
        CHECK_STR(m.assemble.fx_key, "alloc:fx:std:s9:00ff");
        CHECK_EQ_LL(m.assemble.expected, 38);
        CHECK_STR(m.assemble.data_source, "SHA");
        CHECK_EQ_LL(m.assemble.unit_id, 3);
        CHECK_STR(msg_type_name(m.type), "assemble");
    }
    msg_any_free(&m);
    free(s);
    /* a unit needs its data source */
    const char *bad = "{\"v\":1,\"type\":\"assemble\",\"run_id\":1,\"period\":\"2026-10\","
                      "\"ruleset\":\"r\",\"stamp\":\"s\",\"batch_id\":\"u0\",\"fx_key\":\"k\","
                      "\"expected\":1,\"unit_id\":0}";
    rc = msg_decode(bad, strlen(bad), &m, err, sizeof err);
    CHECK(rc != 0, "an assemble message without data_source was accepted");
    CHECK(strstr(err, "data_source") != NULL, "the reason does not name data_source: %s", err);
    msg_any_free(&m);
}

/* The decoder accepts the hand-written samples (field order is free). */
static void test_decode_samples(void) {
    const char *samples[] = {bucket_json, batch_json, stage_done_json, formula_json};
    msg_type want[] = {MSG_BUCKET, MSG_BATCH, MSG_STAGE_DONE, MSG_FORMULA};
    for (int i = 0; i < 4; i++) {
        msg_any m;
        char err[256];
        int rc = msg_decode(samples[i], strlen(samples[i]), &m, err, sizeof err);
        CHECK(rc == 0, "sample %d: %s", i, err);
        CHECK_EQ_LL(m.type, want[i]);
        msg_any_free(&m);
    }
    const char *reordered = "{\"batch_count\":5,\"stage\":\"allocate\",\"run_id\":1,"
                            "\"type\":\"stage_done\",\"v\":1}";
    msg_any m;
    char err[256];
    CHECK(msg_decode(reordered, strlen(reordered), &m, err, sizeof err) == 0, "reordered: %s", err);
    CHECK_EQ_LL(m.stage_done.batch_count, 5);
    msg_any_free(&m);
    msg_any_free(NULL);
}

/* ---- validation errors, exact texts ---- */

static void test_envelope_errors(void) {
    expect_error("x", "not JSON: '[' or '{' expected near 'x' at 1:1");
    expect_error("", "not JSON: '[' or '{' expected near end of file at 1:0");
    expect_error_n(NULL, 0, "not JSON: '[' or '{' expected near end of file at 1:0", "NULL buffer");
    expect_error("{\"v\":1,", "not JSON: string or '}' expected near end of file at 1:7");
    expect_error("{\"v\":1} x", "not JSON: end of file expected near 'x' at 1:9");
    expect_error("[1]", "expected a JSON object, got an array");
    expect_error("{}", "field \"v\": missing");
    expect_error("{\"v\":\"1\",\"type\":\"batch\"}",
                 "field \"v\": expected an integer, got a string");
    expect_error("{\"v\":1.0,\"type\":\"batch\"}",
                 "field \"v\": expected an integer, got a real number");
    expect_error("{\"v\":2,\"type\":\"batch\"}", "field \"v\": unsupported version 2, expected 1");
    expect_error("{\"v\":1}", "field \"type\": missing");
    expect_error("{\"v\":1,\"type\":7}", "field \"type\": expected a string, got an integer");
    expect_error("{\"v\":1,\"type\":\"hello\"}", "unknown message type \"hello\"");
    expect_error("{\"v\":1,\"type\":\"\"}", "unknown message type \"\"");
    expect_error("{\"v\":1,\"type\":\"a\\\"b\\n\"}", "unknown message type \"a?b?\"");
    expect_error("{\"v\":1,\"type\":\"batchbatchbatchbatchbatchbatchbatchbatchbatchbatch\"}",
                 "unknown message type \"batchbatchbatchbatchbatchbatchbatchbatch...\"");
    EXPECT_PREFIX("{\"v\":1,\"v\":1}", "not JSON: duplicate object key near '\"v\"'");
    expect_field_error(bucket_json, "foo", "1", "unexpected field \"foo\" in bucket message");
    expect_field_error(stage_done_json, "rows", "[]",
                       "unexpected field \"rows\" in stage_done message");
    /* a batch field in a bucket: caught as foreign */
    expect_field_error(bucket_json, "batch_id", "\"b\"",
                       "unexpected field \"batch_id\" in bucket message");
}

static void test_bucket_field_errors(void) {
    const char *b = bucket_json;
    expect_field_error(b, "run_id", NULL, "field \"run_id\": missing");
    expect_field_error(b, "run_id", "0", "field \"run_id\": expected an integer > 0, got 0");
    expect_field_error(b, "run_id", "-5", "field \"run_id\": expected an integer > 0, got -5");
    expect_field_error(b, "run_id", "\"7\"", "field \"run_id\": expected an integer, got a string");
    expect_field_error(b, "run_id", "7.0",
                       "field \"run_id\": expected an integer, got a real number");
    expect_field_error(b, "run_id", "true", "field \"run_id\": expected an integer, got a boolean");
    expect_field_error(b, "period", "\"2026-13\"",
                       "field \"period\": expected YYYY-MM, got \"2026-13\"");
    expect_field_error(b, "period", "\"2026-00\"",
                       "field \"period\": expected YYYY-MM, got \"2026-00\"");
    expect_field_error(b, "period", "\"2026-1\"",
                       "field \"period\": expected YYYY-MM, got \"2026-1\"");
    expect_field_error(b, "period", "\"2026/01\"",
                       "field \"period\": expected YYYY-MM, got \"2026/01\"");
    expect_field_error(b, "period", "\"2026-01 \"",
                       "field \"period\": expected YYYY-MM, got \"2026-01 \"");
    expect_field_error(b, "period", "\"20a6-01\"",
                       "field \"period\": expected YYYY-MM, got \"20a6-01\"");
    expect_field_error(b, "period", "202601",
                       "field \"period\": expected a string, got an integer");
    expect_field_error(b, "period", NULL, "field \"period\": missing");
    expect_field_error(b, "ruleset", "\"\"",
                       "field \"ruleset\": expected a non-empty string, got \"\"");
    expect_field_error(b, "ruleset", "null", "field \"ruleset\": expected a string, got null");
    expect_field_error(b, "stamp", "{}", "field \"stamp\": expected a string, got an object");
    expect_field_error(b, "stamp", NULL, "field \"stamp\": missing");
    expect_field_error(b, "bucket_id", "5",
                       "field \"bucket_id\": expected a string, got an integer");
    expect_field_error(b, "bucket_id", "\"\"",
                       "field \"bucket_id\": expected a non-empty string, got \"\"");
    expect_field_error(b, "data_source", "[]",
                       "field \"data_source\": expected a string, got an array");
    expect_field_error(b, "data_source", NULL, "field \"data_source\": missing");
    expect_field_error(b, "detail", "\"true\"",
                       "field \"detail\": expected true or false, got a string");
    expect_field_error(b, "detail", "1",
                       "field \"detail\": expected true or false, got an integer");
    expect_field_error(b, "detail", NULL, "field \"detail\": missing");
    expect_field_error(b, "batch_size", "0",
                       "field \"batch_size\": expected an integer > 0, got 0");
    expect_field_error(b, "batch_size", NULL, "field \"batch_size\": missing");
    expect_field_error(b, "rows", NULL, "field \"rows\": missing");
    expect_field_error(b, "rows", "{}", "field \"rows\": expected an array, got an object");
}

static void test_row_errors(void) {
    const char *b = batch_json;
    static const char shape[] = "[entry_id, company_code, item_code, category, cents]";
    char want[256];
    snprintf(want, sizeof want, "rows[0]: expected an array %s, got an integer", shape);
    expect_field_error(b, "rows", "[1]", want);
    snprintf(want, sizeof want, "rows[1]: expected 5 elements %s, got 4", shape);
    expect_field_error(b, "rows", "[" ROW_OK ",[1,\"C\",\"I\",\"gl\"]]", want);
    snprintf(want, sizeof want, "rows[0]: expected 5 elements %s, got 6", shape);
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",\"gl\",1,2]]", want);
    expect_field_error(b, "rows",
                       "[" ROW_OK "," ROW_OK "," ROW_OK ",[1,\"C\",\"I\",\"gl\",\"12\"]]",
                       "rows[3][4]: expected an integer (cents), got a string");
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",\"gl\",1.5]]",
                       "rows[0][4]: expected an integer (cents), got a real number");
    expect_field_error(b, "rows", "[[0,\"C\",\"I\",\"gl\",1]]",
                       "rows[0][0]: expected an integer > 0, got 0");
    expect_field_error(b, "rows", "[[\"1\",\"C\",\"I\",\"gl\",1]]",
                       "rows[0][0]: expected an integer, got a string");
    expect_field_error(b, "rows", "[[1,\"\",\"I\",\"gl\",1]]",
                       "rows[0][1]: expected a non-empty string, got \"\"");
    expect_field_error(b, "rows", "[[1,\"C\",null,\"gl\",1]]",
                       "rows[0][2]: expected a string, got null");
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",[],1]]",
                       "rows[0][3]: expected a string, got an array");
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",\"gl\",1000000000000000000]]",
                       "rows[0][4]: amount 1000000000000000000 cents out of range "
                       "(|cents| <= 999999999999999999)");
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",\"gl\",-1000000000000000000]]",
                       "rows[0][4]: amount -1000000000000000000 cents out of range "
                       "(|cents| <= 999999999999999999)");
    expect_field_error(b, "rows", "[[1,\"C\",\"I\",\"gl\",-9223372036854775808]]",
                       "rows[0][4]: amount -9223372036854775808 cents out of range "
                       "(|cents| <= 999999999999999999)");
    /* the limits themselves are fine */
    char *s = with_field(b, "rows",
                         "[[1,\"C\",\"I\",\"gl\",-999999999999999999],"
                         "[9223372036854775807,\"C\",\"I\",\"gl\",999999999999999999]]");
    msg_any m;
    char err[256];
    CHECK(s && msg_decode(s, strlen(s), &m, err, sizeof err) == 0, "limits refused: %s", err);
    CHECK_EQ_LL(m.batch.rows[1].entry_id, INT64_MAX);
    CHECK_EQ_LL(m.batch.rows[0].cents, -MSG_MAX_CENTS);
    msg_any_free(&m);
    free(s);
}

static void test_batch_and_stage_done_errors(void) {
    expect_field_error(batch_json, "batch_id", NULL, "field \"batch_id\": missing");
    expect_field_error(batch_json, "batch_id", "\"\"",
                       "field \"batch_id\": expected a non-empty string, got \"\"");
    expect_field_error(batch_json, "batch_size", "5",
                       "unexpected field \"batch_size\" in batch message");
    expect_field_error(batch_json, "detail", "null",
                       "field \"detail\": expected true or false, got null");
    const char *sd = stage_done_json;
    expect_field_error(sd, "stage", "\"split\"",
                       "field \"stage\": expected \"allocate\" or \"formula\", got \"split\"");
    expect_field_error(sd, "stage", "\"Allocate\"",
                       "field \"stage\": expected \"allocate\" or \"formula\", got \"Allocate\"");
    expect_field_error(sd, "stage", "1", "field \"stage\": expected a string, got an integer");
    expect_field_error(sd, "stage", NULL, "field \"stage\": missing");
    expect_field_error(sd, "batch_count", "-1",
                       "field \"batch_count\": expected an integer >= 0, got -1");
    expect_field_error(sd, "batch_count", "1e3",
                       "field \"batch_count\": expected an integer, got a real number");
    expect_field_error(sd, "batch_count", NULL, "field \"batch_count\": missing");
    expect_field_error(sd, "run_id", "0", "field \"run_id\": expected an integer > 0, got 0");
}

static void test_formula_errors(void) {
    const char *f = formula_json;
    const char *vec =
        "{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\",\"items\":[]}";
    char v[512];
    expect_field_error(f, "vectors", NULL, "field \"vectors\": missing");
    expect_field_error(f, "vectors", "{}", "field \"vectors\": expected an array, got an object");
    snprintf(v, sizeof v, "[%s,[]]", vec);
    expect_field_error(f, "vectors", v, "vectors[1]: expected an object, got an array");
    expect_field_error(f, "vectors",
                       "[{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\"}]",
                       "vectors[0].items: missing");
    expect_field_error(
        f, "vectors",
        "[{\"version\":\"\",\"data_source\":\"BJ\",\"project_code\":\"P1\",\"items\":[]}]",
        "vectors[0].version: expected a non-empty string, got \"\"");
    expect_field_error(
        f, "vectors",
        "[{\"version\":\"M\",\"data_source\":1,\"project_code\":\"P1\",\"items\":[]}]",
        "vectors[0].data_source: expected a string, got an integer");
    expect_field_error(f, "vectors", "[{\"version\":\"M\",\"data_source\":\"BJ\",\"items\":[]}]",
                       "vectors[0].project_code: missing");
    expect_field_error(
        f, "vectors",
        "[{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\",\"items\":[],"
        "\"x\":1}]",
        "vectors[0]: unexpected field \"x\"");
    snprintf(v, sizeof v,
             "[%s,{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\","
             "\"items\":[[\"A\",1],[\"B\",\"2\"]]}]",
             vec);
    expect_field_error(f, "vectors", v,
                       "vectors[1].items[1][1]: expected an integer (cents), got a string");
    expect_field_error(f, "vectors",
                       "[{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\","
                       "\"items\":[[\"A\"]]}]",
                       "vectors[0].items[0]: expected 2 elements [item_code, cents], got 1");
    expect_field_error(f, "vectors",
                       "[{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\","
                       "\"items\":[[\"\",1]]}]",
                       "vectors[0].items[0][0]: expected a non-empty string, got \"\"");
    expect_field_error(f, "vectors",
                       "[{\"version\":\"M\",\"data_source\":\"BJ\",\"project_code\":\"P1\","
                       "\"items\":{}}]",
                       "vectors[0].items: expected an array, got an object");
    expect_field_error(f, "detail", "true", "unexpected field \"detail\" in formula message");
}

/* The encoder refuses what the decoder would refuse, with the same words. */
static void test_encode_errors(void) {
    size_t len = 99;
    char err[256];
    msg_bucket b = sample_bucket();
    b.period = "2026-13";
    CHECK(msg_encode_bucket(&b, &len, err, sizeof err) == NULL, "bad period encoded");
    CHECK_ERR("encode bucket: field \"period\": expected YYYY-MM, got \"2026-13\"");
    CHECK_EQ_LL(len, 0);
    b = sample_bucket();
    b.ruleset = NULL;
    CHECK(msg_encode_bucket(&b, &len, err, sizeof err) == NULL, "NULL ruleset encoded");
    CHECK_ERR("encode bucket: field \"ruleset\": expected a string, got null");
    b = sample_bucket();
    b.batch_size = 0;
    CHECK(msg_encode_bucket(&b, &len, err, sizeof err) == NULL, "batch_size 0 encoded");
    CHECK_ERR("encode bucket: field \"batch_size\": expected an integer > 0, got 0");

    msg_row bad[2] = {{1, "C", "I", "gl", 1}, {2, "C", "I\xff", "gl", 1}};
    msg_batch bt = sample_batch();
    bt.rows = bad;
    bt.nrows = 2;
    CHECK(msg_encode_batch(&bt, &len, err, sizeof err) == NULL, "invalid UTF-8 encoded");
    CHECK_ERR("encode batch: rows[1]: not valid UTF-8 (or out of memory)");
    bad[1].item_code = NULL;
    CHECK(msg_encode_batch(&bt, &len, err, sizeof err) == NULL, "NULL item encoded");
    CHECK_ERR("encode batch: rows[1][2]: expected a string, got null");
    bad[1].item_code = "I";
    bad[1].cents = MSG_MAX_CENTS + 1;
    CHECK(msg_encode_batch(&bt, &len, err, sizeof err) == NULL, "huge cents encoded");
    CHECK_ERR("encode batch: rows[1][4]: amount 1000000000000000000 cents out of range "
              "(|cents| <= 999999999999999999)");
    bt.rows = NULL;
    bt.nrows = 3;
    CHECK(msg_encode_batch(&bt, &len, err, sizeof err) == NULL, "NULL rows encoded");
    CHECK_ERR("encode batch: field \"rows\": NULL with 3 elements");

    msg_stage_done sd = {1, (msg_stage)0, 1};
    CHECK(msg_encode_stage_done(&sd, &len, err, sizeof err) == NULL, "bad stage encoded");
    CHECK_ERR(
        "encode stage_done: field \"stage\": expected \"allocate\" or \"formula\", got \"?\"");

    msg_formula f = sample_formula();
    msg_vector vecs[2] = {sample_vectors[0], {"M", "BJ", "", NULL, 0}};
    f.vectors = vecs;
    f.nvectors = 2;
    CHECK(msg_encode_formula(&f, &len, err, sizeof err) == NULL, "empty project encoded");
    CHECK_ERR("encode formula: vectors[1].project_code: expected a non-empty string, got \"\"");

    msg_any a = {.type = (msg_type)77};
    CHECK(msg_encode(&a, &len, err, sizeof err) == NULL, "unknown type encoded");
    CHECK_ERR("encode: unknown message type 77");
}

/* ---- hostile input ---- */

static void test_truncated_inputs(void) {
    const char *samples[] = {bucket_json, batch_json, stage_done_json, formula_json};
    for (int k = 0; k < 4; k++) {
        size_t n = strlen(samples[k]);
        for (size_t cut = 0; cut < n; cut++) {
            char what[64];
            snprintf(what, sizeof what, "sample %d cut at %zu", k, cut);
            /* a private copy so that ASan sees any read past the cut */
            char *copy = malloc(cut ? cut : 1);
            memcpy(copy, samples[k], cut);
            expect_error_n(copy, cut, NULL, what);
            free(copy);
        }
    }
}

/* Every byte position replaced by a set of troublesome bytes, and deleted: the
 * decoder answers (success or a non-empty error) and never crashes. */
static void test_garbled_bytes(void) {
    const unsigned char subst[] = {0,   '"', '{', '}',  '[', ']',  ',',  ':',  '9',
                                   '-', '.', 'e', '\\', 'x', 0x80, 0xc3, 0xff, ' '};
    const char *samples[] = {bucket_json, batch_json, stage_done_json, formula_json};
    long decoded = 0, refused = 0;
    for (int k = 0; k < 4; k++) {
        size_t n = strlen(samples[k]);
        char *buf = malloc(n);
        for (size_t pos = 0; pos < n; pos++) {
            for (size_t s = 0; s <= sizeof subst; s++) {
                memcpy(buf, samples[k], n);
                size_t len = n;
                if (s < sizeof subst)
                    buf[pos] = (char)subst[s];
                else
                    memmove(buf + pos, buf + pos + 1, --len - pos); /* delete the byte */
                msg_any m;
                char err[256] = "";
                if (msg_decode(buf, len, &m, err, sizeof err) == 0) {
                    decoded++;
                    CHECK(m.type >= MSG_BUCKET && m.type <= MSG_FORMULA, "bad type %d", m.type);
                } else {
                    refused++;
                    CHECK(err[0] != '\0', "empty error for sample %d pos %zu", k, pos);
                }
                msg_any_free(&m);
            }
        }
        free(buf);
    }
    CHECK(refused > 0 && decoded > 0, "decoded %ld, refused %ld", decoded, refused);
}

/* Random multi-byte damage from a fixed seed. */
static void test_random_damage(void) {
    const char *samples[] = {bucket_json, batch_json, stage_done_json, formula_json};
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 20000; round++) {
        const char *src = samples[round % 4];
        size_t n = strlen(src);
        char *buf = malloc(n);
        memcpy(buf, src, n);
        int hits = 1 + round % 5;
        for (int h = 0; h < hits; h++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            buf[(seed >> 33) % n] = (char)(seed >> 17);
        }
        size_t len = n - (size_t)(round % 3 == 0 ? (seed >> 40) % n : 0);
        msg_any m;
        char err[256] = "";
        if (msg_decode(buf, len, &m, err, sizeof err) != 0)
            CHECK(err[0] != '\0', "empty error in round %d", round);
        msg_any_free(&m);
        free(buf);
    }
}

/* Replaces every value at every depth by values of each JSON type, removes
 * every object member and adds a stray one: values that no field accepts
 * (null, a real, an empty object), removals and additions must be refused. */
static long mutations_tried;

static void try_tree(json_t *root, const char *what, int must_fail) {
    char *s = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return;
    msg_any m;
    char err[256] = "";
    int rc = msg_decode(s, strlen(s), &m, err, sizeof err);
    mutations_tried++;
    if (must_fail)
        CHECK(rc == -1, "%s: accepted %s", what, s);
    if (rc != 0)
        CHECK(err[0] != '\0', "%s: empty error", what);
    msg_any_free(&m);
    free(s);
}

static void mutate_all(json_t *root, json_t *node, int depth) {
    const char *subst[] = {"null",
                           "1.5",
                           "{}",
                           "true",
                           "0",
                           "-1",
                           "\"\"",
                           "\"x\"",
                           "[]",
                           "[[]]",
                           "9223372036854775807",
                           "\"2026-01\"",
                           "\"allocate\""};
    const int fatal = 3; /* the first three fit no field */
    if (json_is_object(node)) {
        /* the keys first: deleting and re-adding a member moves it to the end */
        size_t nkeys = json_object_size(node), i = 0;
        char **keys = calloc(nkeys, sizeof *keys);
        const char *key;
        json_t *val;
        json_object_foreach(node, key, val) keys[i++] = strdup(key);
        for (i = 0; i < nkeys; i++) {
            const char *k = keys[i];
            val = json_incref(json_object_get(node, k));
            for (size_t s = 0; s < sizeof subst / sizeof subst[0]; s++) {
                json_object_set_new(node, k, json_loads(subst[s], JSON_DECODE_ANY, NULL));
                try_tree(root, k, (int)s < fatal);
            }
            json_object_del(node, k);
            try_tree(root, k, 1);
            json_object_set(node, k, val);
            mutate_all(root, val, depth + 1);
            json_decref(val);
            free(keys[i]);
        }
        free(keys);
        json_object_set_new(node, "stray", json_integer(1));
        try_tree(root, "stray field", 1);
        json_object_del(node, "stray");
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *val = json_incref(json_array_get(node, i));
            for (size_t s = 0; s < sizeof subst / sizeof subst[0]; s++) {
                json_array_set_new(node, i, json_loads(subst[s], JSON_DECODE_ANY, NULL));
                /* an empty object in place of a vector fails too; only rows of
                   rows may shrink, which the decoder must then notice */
                try_tree(root, "array element", (int)s < fatal);
            }
            json_array_set(node, i, val);
            mutate_all(root, val, depth + 1);
            json_decref(val);
        }
        /* one element more: fine in a list of rows or vectors, fatal in a tuple */
        json_array_append_new(node, json_null());
        try_tree(root, "appended null", 1);
        json_array_remove(node, json_array_size(node) - 1);
    }
}

static void test_wrong_types_everywhere(void) {
    const char *samples[] = {bucket_json, batch_json, stage_done_json, formula_json};
    for (int k = 0; k < 4; k++) {
        json_t *root = json_loads(samples[k], 0, NULL);
        CHECK(root != NULL, "sample %d does not parse", k);
        if (!root)
            continue;
        mutate_all(root, root, 0);
        /* the tree is restored after mutation */
        char *s = json_dumps(root, JSON_COMPACT);
        msg_any m;
        char err[256];
        CHECK(s && msg_decode(s, strlen(s), &m, err, sizeof err) == 0, "restored sample %d: %s", k,
              err);
        msg_any_free(&m);
        free(s);
        json_decref(root);
    }
    CHECK(mutations_tried > 500, "only %ld mutations", mutations_tried);
}

static void test_deep_nesting_and_huge_values(void) {
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"v\":1,\"type\":\"batch\",\"rows\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    expect_error_prefix(deep, n, "not JSON: maximum parsing depth reached");
    free(deep);

    /* deep but within the parser's limit: refused by the row check */
    char *s = with_field(batch_json, "rows", "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]");
    expect_error(s, "rows[0]: expected 5 elements [entry_id, company_code, item_code, category, "
                    "cents], got 1");
    free(s);

    EXPECT_PREFIX("{\"v\":1,\"type\":\"batch\",\"run_id\":99999999999999999999}",
                  "not JSON: too big integer near '99999999999999999999'");
    EXPECT_PREFIX("{\"v\":1,\"type\":\"batch\",\"run_id\":1e400}",
                  "not JSON: real number overflow near '1e400'");
    s = with_field(batch_json, "run_id", "9223372036854775807");
    msg_any m;
    char err[256];
    CHECK(msg_decode(s, strlen(s), &m, err, sizeof err) == 0, "max run_id refused: %s", err);
    msg_any_free(&m);
    free(s);

    /* a megabyte string is copied whole */
    size_t big = 1 << 20;
    static const char head[] = "{\"v\":1,\"type\":\"batch\",\"run_id\":1,\"period\":\"2026-01\","
                               "\"ruleset\":\"";
    char *huge = malloc(big + 256);
    if (!huge)
        return;
    memcpy(huge, head, sizeof head - 1);
    n = sizeof head - 1;
    memset(huge + n, 'r', big);
    n += big;
    n += (size_t)sprintf(huge + n,
                         "\",\"stamp\":\"s\",\"batch_id\":\"b\",\"data_source\":\"d\","
                         "\"detail\":true,\"public_key\":\"k\",\"expected\":0,\"rows\":[]}");
    CHECK(msg_decode(huge, n, &m, err, sizeof err) == 0, "huge ruleset refused: %s", err);
    CHECK(m.batch.ruleset && strlen(m.batch.ruleset) == big, "huge ruleset truncated");
    msg_any_free(&m);
    free(huge);
}

static void test_embedded_nul(void) {
    /* \u0000 inside a string: refused by jansson without JSON_ALLOW_NUL */
    EXPECT_PREFIX("{\"v\":1,\"type\":\"ba\\u0000tch\"}", "not JSON: ");
    char *s = with_field(batch_json, "batch_id", "\"ok\"");
    /* a raw NUL byte in the middle of the text */
    size_t n = strlen(s);
    char *p = strstr(s, "\"ok\"");
    p[2] = '\0';
    expect_error_prefix(s, n, "not JSON: ");
    free(s);
    /* a NUL right after a complete message: trailing garbage */
    char buf[sizeof stage_done_json + 1];
    memcpy(buf, stage_done_json, sizeof stage_done_json); /* copies the NUL too */
    expect_error_prefix(buf, sizeof stage_done_json, "not JSON: ");
    /* a key with \u0000 */
    EXPECT_PREFIX("{\"v\":1,\"type\":\"stage_done\",\"a\\u0000b\":1}", "not JSON: ");
    /* invalid UTF-8 */
    EXPECT_PREFIX("{\"v\":1,\"type\":\"\xff\"}", "not JSON: ");
}

/* A 5,000-row batch decodes quickly and with few allocations. */
static void test_large_batch_speed(void) {
    enum { N = 5000 };
    msg_row *rows = malloc(N * sizeof *rows);
    char(*codes)[3][24] = malloc(N * sizeof *codes);
    for (int i = 0; i < N; i++) {
        snprintf(codes[i][0], 24, "C%03d", i % 40);
        snprintf(codes[i][1], 24, "ITEM_%04d", i % 450);
        snprintf(codes[i][2], 24, "%s", i % 3 ? "gl" : "salary");
        rows[i] = (msg_row){1000000 + i, codes[i][0], codes[i][1], codes[i][2],
                            (int64_t)(i * 7919 % 1000003) - 500000};
    }
    msg_batch b = sample_batch();
    b.rows = rows;
    b.nrows = N;
    size_t len;
    char err[256];
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *s = msg_encode_batch(&b, &len, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(s != NULL, "encode: %s", err);
    if (!s)
        goto out;
    enum { REPS = 20 };
    int ok = 1;
    for (int r = 0; r < REPS; r++) {
        msg_any m;
        if (msg_decode(s, len, &m, err, sizeof err) != 0)
            ok = 0;
        else if (r == 0)
            CHECK(rows_equal(m.batch.rows, m.batch.nrows, rows, N), "rows differ");
        msg_any_free(&m);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    CHECK(ok, "decode: %s", err);
    double enc_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    double dec_ms =
        ((double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6) / REPS;
    printf("# 5000-row batch: %zu bytes, encode %.2f ms, decode %.2f ms\n", len, enc_ms, dec_ms);
    /* generous: sanitizer builds are several times slower */
    CHECK(dec_ms < 500, "decode of 5000 rows took %.1f ms", dec_ms);
    free(s);
out:
    free(codes);
    free(rows);
}

TEST_MAIN(TEST(test_bucket_round_trip), TEST(test_batch_round_trip),
          TEST(test_stage_done_round_trip), TEST(test_formula_round_trip),
          TEST(test_assemble_round_trip), TEST(test_decode_samples), TEST(test_envelope_errors),
          TEST(test_bucket_field_errors), TEST(test_row_errors),
          TEST(test_batch_and_stage_done_errors), TEST(test_formula_errors),
          TEST(test_encode_errors), TEST(test_truncated_inputs), TEST(test_garbled_bytes),
          TEST(test_random_damage), TEST(test_wrong_types_everywhere),
          TEST(test_deep_nesting_and_huge_values), TEST(test_embedded_nul),
          TEST(test_large_batch_speed))
