/* What the modules of the consumer's export role share: the shape of what is
 * exported, a claimed task and how a task ends. The modules:
 *   export.c        the task's state machine and the export thread (export.h)
 *   export_sql.c    the export_task rows and the segment queries (export_sql.h)
 *   export_write.c  formatting the rows and writing the file (export_write.h)
 * Not an interface outside consumer/. */
#ifndef ALLOC_CONSUMER_EXPORT_INTERNAL_H
#define ALLOC_CONSUMER_EXPORT_INTERNAL_H

#include <stdint.h>

#define EXPORT_ERR_MAX 512

/* How a column goes into an xlsx cell. */
typedef enum { EXPORT_CELL_TEXT, EXPORT_CELL_INTEGER, EXPORT_CELL_AMOUNT } export_cell_kind;

/* The rows of one table: the selected columns (the key columns first, in key
 * order), their header names and cell kinds. */
typedef struct export_shape {
    const char *table;
    int ncols, nkeys;
    const char *cols[5];
    const int key_is_text[4];
    const export_cell_kind kinds[5];
    const double widths[5]; /* xlsx column widths */
} export_shape;

/* report_after (the report) and alloc_detail (--detail). */
extern const export_shape export_report_shape, export_detail_shape;

/* A claimed task. */
typedef struct export_task {
    int64_t task_id, run_id; /* run_id 0: none recorded */
    int attempt;             /* the claim's token */
    char period[16];
    char version[256]; /* "" = every version */
    int detail, xlsx;
    char id_text[24], attempt_text[16], run_text[24];
} export_task;

/* How a task ended. */
typedef enum {
    EXPORT_OUTCOME_DONE,   /* file stored, task recorded done */
    EXPORT_OUTCOME_FAILED, /* cannot be done: record failed with the reason */
    EXPORT_OUTCOME_RETRY,  /* stop asked or a connection lost: back to the queue */
    EXPORT_OUTCOME_LOST    /* another worker owns the task now: touch nothing */
} export_outcome;

#endif
