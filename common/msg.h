/* The message codec: the JSON messages that travel between the producer and
 * the consumer stages (schemas/messages.schema.json), encoded and decoded with
 * every field validated. Pure: no I/O. */
#ifndef ALLOC_MSG_H
#define ALLOC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The "v" of every message this build writes and reads. */
#define MSG_VERSION 1

/* The largest |cents| of an amount (a row's, a vector item's). */
#define MSG_MAX_CENTS INT64_C(999999999999999999)

typedef enum msg_type {
    MSG_BUCKET = 1, /* producer -> split: the pending rows of one data source (or a part) */
    MSG_BATCH,      /* split -> allocate: a uniform batch of pending rows */
    MSG_STAGE_DONE, /* consumer -> producer: a stage has processed all its batches */
    MSG_FORMULA,    /* producer -> formula stage: base-item vectors to evaluate (older producers) */
    MSG_ASSEMBLE    /* producer -> formula stage: one unit of report rows to assemble */
} msg_type;

typedef enum msg_stage { MSG_STAGE_ALLOCATE = 1, MSG_STAGE_FORMULA } msg_stage;

/* A pending ledger row: [entry_id, company_code, item_code, category, cents]. */
typedef struct msg_row {
    int64_t entry_id;
    const char *company_code;
    const char *item_code;
    const char *category;
    int64_t cents;
} msg_row;

typedef struct msg_bucket {
    int64_t run_id;
    const char *period; /* YYYY-MM */
    const char *ruleset;
    const char *stamp;
    const char *bucket_id;
    const char *data_source;
    bool detail;
    int64_t batch_size;     /* rows per batch the split stage cuts */
    const char *public_key; /* Redis key of the run's public data (rules, projects, drivers) */
    int64_t expected;       /* batches of the run's allocation stage, for the completion counter */
    msg_row *rows;
    size_t nrows;
} msg_bucket;

typedef struct msg_batch {
    int64_t run_id;
    const char *period;
    const char *ruleset;
    const char *stamp;
    const char *batch_id;
    const char *data_source;
    bool detail;
    const char *public_key; /* as in the bucket */
    int64_t expected;       /* as in the bucket */
    msg_row *rows;
    size_t nrows;
} msg_batch;

typedef struct msg_stage_done {
    int64_t run_id;
    msg_stage stage;
    int64_t batch_count;
} msg_stage_done;

/* One base-item value of a vector: [item_code, cents]. */
typedef struct msg_item_value {
    const char *item_code;
    int64_t cents;
} msg_item_value;

/* The base values of one (version, data source, project). */
typedef struct msg_vector {
    const char *version;
    const char *data_source;
    const char *project_code;
    msg_item_value *items;
    size_t nitems;
} msg_vector;

typedef struct msg_formula {
    int64_t run_id;
    const char *period;
    const char *ruleset;
    const char *stamp;
    const char *batch_id;
    const char *fx_key; /* Redis key of the compiled formulas and audit rules */
    int64_t expected;   /* batches of the run's formula stage, for the completion counter */
    msg_vector *vectors;
    size_t nvectors;
} msg_formula;

/* One unit of the formula stage: the projects of data_source in the run's
 * run_unit row unit_id (their project range is kept there), whose base rows,
 * roll-up totals, formula rows and audit findings a consumer assembles. */
typedef struct msg_assemble {
    int64_t run_id;
    const char *period;
    const char *ruleset;
    const char *stamp;
    const char *batch_id; /* "u<unit_id>": the unit's batch marker */
    const char *fx_key;   /* Redis key of the compiled formulas and audit rules */
    int64_t expected;     /* units of the run's formula stage, for the completion counter */
    const char *data_source;
    int64_t unit_id;
} msg_assemble;

struct msg_arena;

/* A decoded message: type says which member is valid. All strings and arrays
 * live in one arena owned by the message, freed by msg_any_free. */
typedef struct msg_any {
    msg_type type;
    union {
        msg_bucket bucket;
        msg_batch batch;
        msg_stage_done stage_done;
        msg_formula formula;
        msg_assemble assemble;
    };
    struct msg_arena *arena;
} msg_any;

/* Decodes and validates the len bytes at buf (no NUL needed). On success fills
 * *out (free it with msg_any_free) and returns 0. On any defect - not JSON,
 * duplicate keys, a wrong "v", an unknown "type", a missing, extra or
 * ill-typed field, a value out of range - returns -1 with *out empty (safe to
 * msg_any_free) and a one-line reason naming the field in err, e.g.
 * `rows[3][4]: expected an integer, got a string`. Never crashes on any input.
 * Thread-safe. */
int msg_decode(const char *buf, size_t len, msg_any *out, char *err, size_t errlen);

/* Frees what a decoded message owns and empties it. Accepts NULL and an
 * emptied or never-filled (zeroed) message. */
void msg_any_free(msg_any *m);

/* Encodes m as compact JSON after checking it obeys the same rules as
 * msg_decode (a message this build sends always decodes). Returns a malloc'd
 * NUL-terminated string (the caller frees it) and its length in *len, or NULL
 * with the reason in err. Thread-safe. */
char *msg_encode(const msg_any *m, size_t *len, char *err, size_t errlen);
char *msg_encode_bucket(const msg_bucket *m, size_t *len, char *err, size_t errlen);
char *msg_encode_batch(const msg_batch *m, size_t *len, char *err, size_t errlen);
char *msg_encode_stage_done(const msg_stage_done *m, size_t *len, char *err, size_t errlen);
char *msg_encode_formula(const msg_formula *m, size_t *len, char *err, size_t errlen);
char *msg_encode_assemble(const msg_assemble *m, size_t *len, char *err, size_t errlen);

/* "bucket", "batch", "stage_done", "formula", "assemble"; "?" for anything else. */
const char *msg_type_name(msg_type type);

/* "allocate", "formula"; "?" for anything else. */
const char *msg_stage_name(msg_stage stage);

#endif
