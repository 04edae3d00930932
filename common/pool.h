/* A fixed-size thread pool with a bounded task queue: submitters block while the
 * queue is full, which carries backpressure to whoever produces the work. */
#ifndef ALLOC_POOL_H
#define ALLOC_POOL_H

#include <stddef.h>

typedef struct pool pool;

/* A task: runs on one of the pool's threads with the argument given to pool_submit. */
typedef void (*pool_fn)(void *arg);

/* Starts nthreads threads (>= 1) sharing a queue of at most queue_cap (>= 1)
 * waiting tasks. Returns NULL with errno set (EINVAL for bad arguments, or the
 * error of malloc / pthread_create). Free with pool_free. */
pool *pool_new(int nthreads, size_t queue_cap);

/* Queues fn(arg), blocking while the queue is full. Thread-safe; a task may not
 * submit to its own pool (with every thread blocked in pool_submit the queue
 * never drains). Returns 0, or -1 (errno EINVAL) once pool_free has begun. */
int pool_submit(pool *p, pool_fn fn, void *arg);

/* Blocks until every task submitted so far has finished (the queue is empty and
 * no thread is running a task). Thread-safe. */
void pool_wait(pool *p);

/* Runs the tasks still queued, then stops and joins the threads and frees p.
 * Accepts NULL. No other thread may use p once pool_free is called. */
void pool_free(pool *p);

/* The number of threads of p. */
int pool_size(const pool *p);

/* The default worker count (DESIGN.md section 4): 80% of the online cores,
 * rounded down, at least 1. */
int pool_default_threads(void);

/* pool_default_threads for a given core count. Pure. */
int pool_threads_for_cores(long cores);

#endif
