/* The completion counter: one Redis set per (run, stage) plus a key naming the
 * batch id that completed it, updated by one Lua script so that SADD, SCARD and
 * the completion test are atomic. */
#include "counter.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] the set, KEYS[2] the completer key; ARGV: batch id, expected, ttl.
 * Returns {added, card, completed, completer}. */
static const char bump_source[] =
    "local added = redis.call('SADD', KEYS[1], ARGV[1])\n"
    "local card = redis.call('SCARD', KEYS[1])\n"
    "local ttl = tonumber(ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[1], ttl)\n"
    "local completed = 0\n"
    "if added == 1 and card == tonumber(ARGV[2]) then\n"
    "  completed = 1\n"
    "  redis.call('SET', KEYS[2], ARGV[1], 'EX', ttl)\n"
    "end\n"
    "local completer = completed\n"
    "if completer == 0 and redis.call('GET', KEYS[2]) == ARGV[1] then completer = 1 end\n"
    "return {added, card, completed, completer}\n";

static cache_script bump_script;
static pthread_once_t bump_once = PTHREAD_ONCE_INIT;

static void bump_init(void) {
    cache_script_init(&bump_script, bump_source);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int counter_key(char *buf, size_t size, int64_t run_id, const char *stage) {
    if (!stage || !*stage)
        return -1;
    for (const char *p = stage; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return -1;
    int n = snprintf(buf, size, "alloc:run:%" PRId64 ":%s:done", run_id, stage);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Fills the set key and the completer key of (run_id, stage). */
static int keys_for(int64_t run_id, const char *stage, char set[160], char by[168], char *err,
                    size_t errlen) {
    if (counter_key(set, 160, run_id, stage) != 0)
        return fail(err, errlen, "counter of run %" PRId64 ": bad stage name \"%.40s\"", run_id,
                    stage ? stage : "(null)");
    snprintf(by, 168, "%s_by", set);
    return 0;
}

int counter_bump(cache_conn *conn, int64_t run_id, const char *stage, const char *batch_id,
                 int64_t expected, counter_result *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char set[160], by[168];
    if (keys_for(run_id, stage, set, by, err, errlen) != 0)
        return -1;
    if (!batch_id || !*batch_id)
        return fail(err, errlen, "bump counter %s: empty batch id", set);
    if (expected <= 0)
        return fail(err, errlen,
                    "bump counter %s for batch %s: expected count %" PRId64 " is not positive", set,
                    batch_id, expected);
    pthread_once(&bump_once, bump_init);

    char exp[24], ttl[16];
    snprintf(exp, sizeof exp, "%" PRId64, expected);
    snprintf(ttl, sizeof ttl, "%d", COUNTER_TTL_S);
    const char *keys[2] = {set, by};
    const char *args[3] = {batch_id, exp, ttl};
    redisReply *r = cache_eval(conn, &bump_script, 2, keys, 3, args);
    if (!r)
        return fail(err, errlen, "bump counter %s for batch %s: %s", set, batch_id,
                    cache_error(conn));
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 4;
    for (size_t i = 0; ok && i < 4; i++)
        ok = r->element[i]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        out->added = (int)r->element[0]->integer;
        out->count = r->element[1]->integer;
        out->completed = (int)r->element[2]->integer;
        out->completer = (int)r->element[3]->integer;
    }
    freeReplyObject(r);
    if (!ok)
        return fail(err, errlen, "bump counter %s for batch %s: unexpected script reply", set,
                    batch_id);
    return 0;
}

/* Ids per SADD when rebuilding, to keep each command small. */
#define REBUILD_CHUNK 1000

int counter_rebuild(cache_conn *conn, int64_t run_id, const char *stage,
                    const char *const *batch_ids, size_t n, int64_t *count, char *err,
                    size_t errlen) {
    char set[160], by[168];
    if (keys_for(run_id, stage, set, by, err, errlen) != 0)
        return -1;
    const char **argv = malloc((REBUILD_CHUNK + 2) * sizeof *argv);
    if (!argv)
        return fail(err, errlen, "rebuild counter %s: out of memory", set);
    argv[0] = "SADD";
    argv[1] = set;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < REBUILD_CHUNK ? n - done : REBUILD_CHUNK;
        for (size_t i = 0; i < k; i++)
            argv[2 + i] = batch_ids[done + i];
        redisReply *r = cache_command_argv(conn, (int)(k + 2), argv, NULL);
        if (!r) {
            free(argv);
            return fail(err, errlen, "rebuild counter %s (%zu ids): %s", set, n, cache_error(conn));
        }
        freeReplyObject(r);
        done += k;
    }
    free(argv);
    redisReply *r = cache_command(conn, "EXPIRE %s %d", set, COUNTER_TTL_S);
    if (!r)
        return fail(err, errlen, "rebuild counter %s: %s", set, cache_error(conn));
    freeReplyObject(r);
    if (count) {
        int64_t c = counter_count(conn, run_id, stage, err, errlen);
        if (c < 0)
            return -1;
        *count = c;
    }
    return 0;
}

int64_t counter_count(cache_conn *conn, int64_t run_id, const char *stage, char *err,
                      size_t errlen) {
    char set[160], by[168];
    if (keys_for(run_id, stage, set, by, err, errlen) != 0)
        return -1;
    redisReply *r = cache_command(conn, "SCARD %s", set);
    if (!r)
        return fail(err, errlen, "count counter %s: %s", set, cache_error(conn));
    int64_t c = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    if (c < 0)
        return fail(err, errlen, "count counter %s: unexpected reply", set);
    return c;
}

/* Does key end with suffix? */
static int ends_with(const char *key, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    return len >= n && memcmp(key + len - n, suffix, n) == 0;
}

int counter_clear(cache_conn *conn, int64_t run_id, char *err, size_t errlen) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "alloc:run:%" PRId64 ":*:done*", run_id);
    char cursor[32] = "0";
    do {
        redisReply *r = cache_command(conn, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r)
            return fail(err, errlen, "clear counters of run %" PRId64 ": %s", run_id,
                        cache_error(conn));
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return fail(err, errlen, "clear counters of run %" PRId64 ": unexpected SCAN reply",
                        run_id);
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING ||
                !(ends_with(k->str, k->len, ":done") || ends_with(k->str, k->len, ":done_by")))
                continue;
            redisReply *d = cache_command(conn, "DEL %b", k->str, k->len);
            if (!d) {
                fail(err, errlen, "clear counters of run %" PRId64 ": %s", run_id,
                     cache_error(conn));
                freeReplyObject(r);
                return -1;
            }
            freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}
