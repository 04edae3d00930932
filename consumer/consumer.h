/* Internals of alloc-consumer shared by its files: the jobs worker threads run
 * and hand back to the main (AMQP) thread, and the stage handlers. */
#ifndef ALLOC_CONSUMER_H
#define ALLOC_CONSUMER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "mq.h"

typedef enum {
    JOB_ACK = 0,     /* done (or dropped on purpose): ack */
    JOB_REQUEUE = 1, /* could not be done now: put back for a later try */
    JOB_DEAD = 2     /* can never be done: dead-letter with the reason */
} job_outcome;

/* One batch delivery on its way through a worker thread. The main thread owns
 * the delivery's tag and acks it when the job comes back. */
typedef struct job {
    mq_delivery delivery;
    uint64_t generation; /* connection generation the delivery came on */
    job_outcome outcome;
    char reason[512];
    int notify; /* this batch completed its stage: tell the producer */
    int stage;  /* MSG_STAGE_ALLOCATE or MSG_STAGE_FORMULA, for the notice */
    int64_t run_id;
    int64_t batch_count;
    struct job *next;
} job;

typedef struct consumer_env {
    const alloc_config *cfg;
    char name[160];   /* host:pid, recorded on batch markers */
    atomic_int *stop; /* set by SIGTERM/SIGINT, read by every thread */
} consumer_env;

/* A worker thread's own connections (consumer/worker.c). */
typedef struct worker_conns {
    db_conn *db;
    cache_conn *cache;
} worker_conns;

/* The calling thread's connections, opened on first use and reset when lost;
 * closed when the thread ends. Returns NULL with err when a server cannot be
 * reached now (the caller retries with backoff). */
worker_conns *worker_connect(const consumer_env *env, char *err, size_t errlen);

/* Runs in a worker thread: evaluates the formulas and audit rules of the
 * vectors of j->delivery and writes the formula rows, findings and marker
 * (consumer/formula.c). Sets j->outcome; never exits. */
void formula_job(const consumer_env *env, job *j);

/* Runs in a worker thread: allocates the batch of j->delivery and writes its
 * results and marker (consumer/allocate.c). Sets j->outcome; never exits. */
void allocate_job(const consumer_env *env, job *j);

/* Runs in the main thread: splits a bucket delivery into batches, publishes
 * them with confirms and acks the bucket (consumer/split.c). Returns MQ_OK or
 * MQ_ERR_CONN when the connection was lost (the bucket is redelivered). */
int split_bucket(const consumer_env *env, mq_conn *mq, const mq_delivery *d);

#endif
