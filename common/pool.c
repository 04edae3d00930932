/* Thread pool: a ring buffer of tasks guarded by one mutex, with condition
 * variables for "a task is queued", "a slot is free" and "all work is done". */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct pool_task {
    pool_fn fn;
    void *arg;
} pool_task;

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t queued; /* a task was queued, or the pool is stopping */
    pthread_cond_t freed;  /* a queue slot became free */
    pthread_cond_t idle;   /* the last running task finished with the queue empty */
    pool_task *ring;
    size_t cap, head, count; /* the queue: count tasks from ring[head], wrapping at cap */
    size_t running;          /* tasks being run right now */
    int stopping;
    int nthreads;
    pthread_t *threads;
};

/* A worker: takes tasks until the pool stops and the queue is drained. */
static void *pool_worker(void *argp) {
    pool *p = argp;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->queued, &p->lock);
        if (p->count == 0)
            break; /* stopping and nothing left */
        pool_task t = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->running++;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->lock);

        t.fn(t.arg);

        pthread_mutex_lock(&p->lock);
        p->running--;
        if (p->running == 0 && p->count == 0)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Stops and joins the first n threads of p and frees it. */
static void pool_destroy(pool *p, int n) {
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->queued);
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->freed);
    pthread_cond_destroy(&p->queued);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p->ring);
    free(p);
}

pool *pool_new(int nthreads, size_t queue_cap) {
    if (nthreads < 1 || queue_cap < 1) {
        errno = EINVAL;
        return NULL;
    }
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ring = calloc(queue_cap, sizeof *p->ring);
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->ring || !p->threads) {
        free(p->ring);
        free(p->threads);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->cap = queue_cap;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->queued, NULL);
    pthread_cond_init(&p->freed, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, pool_worker, p);
        if (rc != 0) {
            pool_destroy(p, i);
            errno = rc;
            return NULL;
        }
    }
    p->nthreads = nthreads;
    return p;
}

int pool_submit(pool *p, pool_fn fn, void *arg) {
    pthread_mutex_lock(&p->lock);
    while (p->count == p->cap && !p->stopping)
        pthread_cond_wait(&p->freed, &p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        errno = EINVAL;
        return -1;
    }
    p->ring[(p->head + p->count) % p->cap] = (pool_task){fn, arg};
    p->count++;
    pthread_cond_signal(&p->queued);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void pool_wait(pool *p) {
    pthread_mutex_lock(&p->lock);
    while (p->count > 0 || p->running > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void pool_free(pool *p) {
    if (!p)
        return;
    pool_destroy(p, p->nthreads);
}

int pool_size(const pool *p) {
    return p->nthreads;
}

int pool_threads_for_cores(long cores) {
    if (cores < 1)
        cores = 1;
    long n = cores * 8 / 10;
    if (n > 4096)
        n = 4096;
    return n < 1 ? 1 : (int)n;
}

int pool_default_threads(void) {
    return pool_threads_for_cores(sysconf(_SC_NPROCESSORS_ONLN));
}
