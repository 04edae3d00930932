/* Per-thread connections of the consumer's workers: one PostgreSQL and one
 * Redis connection per thread (neither handle is thread-safe), opened on first
 * use, reset when lost, closed by a thread-specific-key destructor when the
 * pool's threads end. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "consumer.h"

static pthread_key_t conns_key;
static pthread_once_t conns_once = PTHREAD_ONCE_INIT;

static void conns_destroy(void *p) {
    worker_conns *c = p;
    db_close(c->db);
    cache_close(c->cache);
    free(c);
}

static void conns_init(void) {
    pthread_key_create(&conns_key, conns_destroy);
}

/* Batch transactions must be durable before their deliveries are acked
 * (db_durable_commits): a lost commit whose message is already gone from the
 * queue means the run can never complete. Made again after every
 * (re)connection. On failure the connection is closed, to be opened afresh on
 * the next call. */
static int durable_commits(worker_conns *c, char *err, size_t errlen) {
    db_error e;
    if (db_durable_commits(c->db, &e) == 0)
        return 0;
    snprintf(err, errlen, "%s", e.msg);
    db_close(c->db);
    c->db = NULL;
    return -1;
}

worker_conns *worker_connect(const consumer_env *env, char *err, size_t errlen) {
    pthread_once(&conns_once, conns_init);
    worker_conns *c = pthread_getspecific(conns_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        pthread_setspecific(conns_key, c);
    }
    if (!c->db) {
        c->db = db_connect(env->cfg->pg_dsn, err, errlen);
        if (!c->db || durable_commits(c, err, errlen) != 0)
            return NULL;
    } else if (!db_ok(c->db)) {
        db_error e;
        if (db_reset(c->db, 2000, &e) != 0) {
            snprintf(err, errlen, "%s", e.msg);
            return NULL;
        }
        if (durable_commits(c, err, errlen) != 0)
            return NULL;
    }
    if (!c->cache) {
        c->cache = cache_connect(env->cfg->redis_url, err, errlen);
        if (!c->cache)
            return NULL;
    }
    return c;
}
