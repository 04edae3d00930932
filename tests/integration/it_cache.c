/* Integration tests of cache (Redis) and counter against a real server:
 * ALLOC_REDIS_URL names a db the test may flush (t_cache.sh). When
 * ALLOC_TEST_REDIS_SERVER names a redis-server binary, a private server is also
 * started on a free port to test reconnection across a server restart. */
#include "../unit/harness.h"
#include "cache.h"
#include "counter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The local error buffer err holds exactly want. */
#define CHECK_ERR(want) CHECK(strcmp(err, (want)) == 0, "got \"%s\", want \"%s\"", err, (want))

static const char *redis_url(void) {
    const char *u = getenv("ALLOC_REDIS_URL");
    return u && *u ? u : "redis://127.0.0.1:25379/3";
}

static cache_conn *connect_or_fail(void) {
    char err[512];
    cache_conn *c = cache_connect(redis_url(), err, sizeof err);
    CHECK(c != NULL, "cannot connect to %s: %s", redis_url(), err);
    return c;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs a command that must return an integer; -999 on failure. */
static long long int_command(cache_conn *c, const char *fmt, const char *arg) {
    redisReply *r = cache_command(c, fmt, arg);
    CHECK(r != NULL, "%s %s: %s", fmt, arg, cache_error(c));
    if (!r)
        return -999;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -998;
    freeReplyObject(r);
    return v;
}

/* A free TCP port on the loopback interface. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- connection, get/set, errors ---- */

static void test_connect_and_select(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    cache_url u;
    cache_parse_url(redis_url(), &u, NULL, 0);
    redisReply *r = cache_command(c, "CLIENT INFO");
    CHECK(r && r->type == REDIS_REPLY_STRING, "CLIENT INFO: %s", cache_error(c));
    if (r && r->type == REDIS_REPLY_STRING) {
        char want[32];
        snprintf(want, sizeof want, " db=%d ", u.db);
        CHECK(strstr(r->str, want) != NULL, "not on db %d: %s", u.db, r->str);
    }
    if (r)
        freeReplyObject(r);
    CHECK(cache_error(c) == NULL, "error after success: %s", cache_error(c));
    cache_close(c);
    cache_close(NULL);

    char err[512];
    CHECK(cache_connect("redis://127.0.0.1:1/0x", err, sizeof err) == NULL, "bad URL accepted");
    CHECK_ERR("redis URL: bad db number \"0x\" (expected a number >= 0)");
    int port = free_port();
    char url[64], want[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    snprintf(want, sizeof want, "connect to redis 127.0.0.1:%d: ", port);
    CHECK(cache_connect(url, err, sizeof err) == NULL, "connected to a closed port");
    CHECK(strncmp(err, want, strlen(want)) == 0 && strstr(err, "refused"),
          "error without context: %s", err);
    snprintf(url, sizeof url, "%.*s/99999", (int)(strrchr(redis_url(), '/') - redis_url()),
             redis_url());
    CHECK(cache_connect(url, err, sizeof err) == NULL, "SELECT 99999 accepted");
    CHECK(strstr(err, "db 99999: SELECT: ERR") != NULL, "SELECT error: %s", err);
}

static void test_set_get_binary(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    unsigned char val[1000];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (unsigned char)(i * 37);
    val[0] = 0;
    val[500] = 0;
    CHECK(cache_set(c, "it:bin", val, sizeof val, 60) == 0, "set: %s", cache_error(c));
    size_t len = 0;
    char *got = cache_get(c, "it:bin", &len);
    CHECK(got != NULL, "get: %s", cache_error(c) ? cache_error(c) : "missing");
    CHECK_EQ_LL(len, sizeof val);
    CHECK(got && memcmp(got, val, sizeof val) == 0 && got[len] == '\0', "value differs");
    free(got);
    long long ttl = int_command(c, "TTL %s", "it:bin");
    CHECK(ttl > 0 && ttl <= 60, "TTL %lld, want 1..60", ttl);

    CHECK(cache_set(c, "it:forever", "x", 1, 0) == 0, "set: %s", cache_error(c));
    CHECK_EQ_LL(int_command(c, "TTL %s", "it:forever"), -1);
    CHECK(cache_set(c, "it:empty", NULL, 0, 0) == 0, "set empty: %s", cache_error(c));
    got = cache_get(c, "it:empty", &len);
    CHECK(got && len == 0 && got[0] == '\0', "empty value: %p %zu", (void *)got, len);
    free(got);

    got = cache_get(c, "it:missing", &len);
    CHECK(got == NULL && len == 0 && cache_error(c) == NULL, "missing key: %s",
          cache_error(c) ? cache_error(c) : "returned a value");
    free(got);

    redisReply *r = cache_command(c, "SADD %s %s", "it:set", "a");
    if (r)
        freeReplyObject(r);
    got = cache_get(c, "it:set", &len);
    CHECK(got == NULL && cache_error(c) && strstr(cache_error(c), "WRONGTYPE"), "GET of a set: %s",
          cache_error(c) ? cache_error(c) : "no error");
    free(got);

    r = cache_command(c, "NOSUCHCMD %s", "x");
    CHECK(r == NULL, "unknown command gave a reply");
    const char *e = cache_error(c);
    CHECK(e && strncmp(e, "redis NOSUCHCMD on ", 19) == 0 && strstr(e, "unknown command"),
          "error without context: %s", e ? e : "(none)");
    /* the connection is still fine after an error reply */
    r = cache_command(c, "PING");
    CHECK(r && r->type == REDIS_REPLY_STATUS && cache_error(c) == NULL, "PING after error");
    if (r)
        freeReplyObject(r);
    const char *argv[3] = {"SET", "it:argv", "v"};
    r = cache_command_argv(c, 3, argv, NULL);
    CHECK(r && r->type == REDIS_REPLY_STATUS, "argv SET: %s", cache_error(c));
    if (r)
        freeReplyObject(r);
    cache_close(c);
}

/* ---- scripts ---- */

static void test_script_evalsha_and_noscript(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    cache_script s;
    cache_script_init(&s, "redis.call('SET', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1], 7}");
    redisReply *r = cache_command(c, "SCRIPT LOAD %s", s.source);
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, s.sha1) == 0,
          "server digest %s, local %s", r && r->str ? r->str : "?", s.sha1);
    if (r)
        freeReplyObject(r);

    const char *keys[1] = {"it:script"};
    const char *args[1] = {"hello"};
    for (int round = 0; round < 2; round++) {
        if (round == 1) { /* forget the script: the NOSCRIPT path reloads it */
            r = cache_command(c, "SCRIPT FLUSH");
            if (r)
                freeReplyObject(r);
            CHECK_EQ_LL(int_command(c, "EXISTS %s", "it:script"), 1);
            redisReply *ex = cache_command(c, "SCRIPT EXISTS %s", s.sha1);
            CHECK(ex && ex->elements == 1 && ex->element[0]->integer == 0, "flush did not flush");
            if (ex)
                freeReplyObject(ex);
        }
        r = cache_eval(c, &s, 1, keys, 1, args);
        CHECK(r != NULL, "round %d: eval: %s", round, cache_error(c));
        if (r) {
            CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3, "round %d: reply shape", round);
            if (r->elements == 3) {
                CHECK_STR(r->element[0]->str, "it:script");
                CHECK_STR(r->element[1]->str, "hello");
                CHECK_EQ_LL(r->element[2]->integer, 7);
            }
            freeReplyObject(r);
        }
        CHECK(cache_error(c) == NULL, "round %d: stale error %s", round, cache_error(c));
    }
    redisReply *ex = cache_command(c, "SCRIPT EXISTS %s", s.sha1);
    CHECK(ex && ex->elements == 1 && ex->element[0]->integer == 1, "script not reloaded");
    if (ex)
        freeReplyObject(ex);

    cache_script bad;
    cache_script_init(&bad, "return redis.call('NOSUCHCMD')");
    r = cache_eval(c, &bad, 0, NULL, 0, NULL);
    CHECK(r == NULL, "failing script gave a reply");
    const char *e = cache_error(c);
    CHECK(e && strstr(e, "redis EVALSHA ") == e && strstr(e, "Unknown Redis command"),
          "script error: %s", e ? e : "(none)");
    cache_close(c);
}

/* ---- the completion counter ---- */

enum { RUN = 910001, N = 400, THREADS = 4 };

typedef struct bump_thread {
    int t;
    int added, not_added, completed, completer, errors;
    char err[512];
} bump_thread;

static void *bump_worker(void *arg) {
    bump_thread *b = arg;
    cache_conn *c = cache_connect(redis_url(), b->err, sizeof b->err);
    if (!c) {
        b->errors++;
        return NULL;
    }
    for (int j = 0; j < N; j++) {
        /* each id twice, from two different threads: its own, and its neighbour's */
        int mine = j % THREADS == b->t, dup = (j + 1) % THREADS == b->t;
        for (int k = 0; k < mine + dup; k++) {
            char id[32];
            snprintf(id, sizeof id, "b%04d", j);
            counter_result r;
            if (counter_bump(c, RUN, "allocate", id, N, &r, b->err, sizeof b->err) != 0) {
                b->errors++;
                continue;
            }
            b->added += r.added;
            b->not_added += !r.added;
            b->completed += r.completed;
            b->completer += r.completer;
        }
    }
    cache_close(c);
    return NULL;
}

static void test_counter_exactly_once(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    char err[512];
    CHECK(counter_clear(c, RUN, err, sizeof err) == 0, "clear: %s", err);
    pthread_t th[THREADS];
    bump_thread b[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&b[t], 0, sizeof b[t]);
        b[t].t = t;
        pthread_create(&th[t], NULL, bump_worker, &b[t]);
    }
    int added = 0, not_added = 0, completed = 0, completer = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK(b[t].errors == 0, "thread %d: %d errors, last: %s", t, b[t].errors, b[t].err);
        added += b[t].added;
        not_added += b[t].not_added;
        completed += b[t].completed;
        completer += b[t].completer;
    }
    CHECK_EQ_LL(completed, 1);
    CHECK_EQ_LL(added, N);
    CHECK_EQ_LL(not_added, N); /* every duplicate reported added = 0 */
    CHECK(completer >= 1 && completer <= 2, "completer seen %d times", completer);
    CHECK_EQ_LL(counter_count(c, RUN, "allocate", err, sizeof err), N);

    /* after completion: repeats never complete again; the completer is recognised */
    int which = -1;
    for (int j = 0; j < N; j++) {
        char id[32];
        snprintf(id, sizeof id, "b%04d", j);
        counter_result r;
        CHECK(counter_bump(c, RUN, "allocate", id, N, &r, err, sizeof err) == 0, "bump: %s", err);
        CHECK(r.added == 0 && r.completed == 0 && r.count == N, "repeat of %s: %d %d %lld", id,
              r.added, r.completed, (long long)r.count);
        if (r.completer) {
            CHECK(which < 0, "two completers: b%04d and %s", which, id);
            which = j;
        }
    }
    CHECK(which >= 0, "no completer recorded");

    /* keys carry the TTL */
    char key[160];
    counter_key(key, sizeof key, RUN, "allocate");
    CHECK(strcmp(key, "alloc:run:910001:allocate:done") == 0, "key %s", key);
    long long ttl = int_command(c, "TTL %s", key);
    CHECK(ttl > COUNTER_TTL_S - 60 && ttl <= COUNTER_TTL_S, "TTL %lld", ttl);
    char by[170];
    snprintf(by, sizeof by, "%s_by", key);
    ttl = int_command(c, "TTL %s", by);
    CHECK(ttl > COUNTER_TTL_S - 60 && ttl <= COUNTER_TTL_S, "completer TTL %lld", ttl);

    /* a single-batch stage completes on its first bump */
    counter_result r;
    CHECK(counter_bump(c, RUN, "formula", "only", 1, &r, err, sizeof err) == 0, "bump: %s", err);
    CHECK(r.added == 1 && r.count == 1 && r.completed == 1 && r.completer == 1,
          "single batch: %d %lld %d %d", r.added, (long long)r.count, r.completed, r.completer);

    /* bad arguments */
    CHECK(counter_bump(c, RUN, "Bad Stage", "x", 1, &r, err, sizeof err) == -1, "bad stage");
    CHECK_ERR("counter of run 910001: bad stage name \"Bad Stage\"");
    CHECK(counter_bump(c, RUN, "allocate", "", 1, &r, err, sizeof err) == -1, "empty id");
    CHECK_ERR("bump counter alloc:run:910001:allocate:done: empty batch id");
    CHECK(counter_bump(c, RUN, "allocate", "x", 0, &r, err, sizeof err) == -1, "expected 0");
    CHECK_ERR("bump counter alloc:run:910001:allocate:done for batch x: expected count 0 "
              "is not positive");
    cache_close(c);
}

static void test_counter_rebuild(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    char err[512], key[160];
    enum { M = 2500 }; /* more than one SADD chunk */
    const int64_t run = RUN + 1;
    counter_key(key, sizeof key, run, "allocate");
    static char ids[M][16];
    static const char *idp[M];
    for (int i = 0; i < M; i++) {
        snprintf(ids[i], sizeof ids[i], "r%05d", i);
        idp[i] = ids[i];
    }
    counter_result r;
    for (int i = 0; i < 10; i++)
        CHECK(counter_bump(c, run, "allocate", idp[i], M, &r, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_LL(counter_count(c, run, "allocate", err, sizeof err), 10);

    /* Redis loses the set; the markers are re-added */
    CHECK_EQ_LL(int_command(c, "DEL %s", key), 1);
    CHECK_EQ_LL(counter_count(c, run, "allocate", err, sizeof err), 0);
    int64_t count = -1;
    CHECK(counter_rebuild(c, run, "allocate", idp, M - 1, &count, err, sizeof err) == 0,
          "rebuild: %s", err);
    CHECK_EQ_LL(count, M - 1);
    CHECK_EQ_LL(counter_count(c, run, "allocate", err, sizeof err), M - 1);
    long long ttl = int_command(c, "TTL %s", key);
    CHECK(ttl > COUNTER_TTL_S - 60, "TTL after rebuild %lld", ttl);
    /* rebuilding again changes nothing */
    CHECK(counter_rebuild(c, run, "allocate", idp, 100, &count, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_LL(count, M - 1);
    CHECK(counter_rebuild(c, run, "allocate", idp, 0, NULL, err, sizeof err) == 0, "%s", err);
    /* a marked batch redelivered: not counted again; the last one completes */
    CHECK(counter_bump(c, run, "allocate", idp[5], M, &r, err, sizeof err) == 0, "%s", err);
    CHECK(r.added == 0 && r.completed == 0, "redelivered marked batch counted");
    CHECK(counter_bump(c, run, "allocate", idp[M - 1], M, &r, err, sizeof err) == 0, "%s", err);
    CHECK(r.added == 1 && r.completed == 1 && r.count == M, "last batch: %d %d %lld", r.added,
          r.completed, (long long)r.count);
    cache_close(c);
}

static void test_counter_clear(void) {
    cache_conn *c = connect_or_fail();
    if (!c)
        return;
    char err[512];
    counter_result r;
    /* run * 10 shares the digits of run: its keys must survive */
    const int64_t run = RUN + 2, other = RUN + 20;
    CHECK(counter_bump(c, run, "allocate", "a", 1, &r, err, sizeof err) == 0, "%s", err);
    CHECK(counter_bump(c, run, "formula", "f", 2, &r, err, sizeof err) == 0, "%s", err);
    CHECK(counter_bump(c, other, "allocate", "a", 2, &r, err, sizeof err) == 0, "%s", err);
    CHECK(counter_bump(c, run * 10, "allocate", "a", 2, &r, err, sizeof err) == 0, "%s", err);
    redisReply *x = cache_command(c, "SET alloc:run:%lld:formulas x", (long long)run);
    if (x)
        freeReplyObject(x);
    CHECK(counter_clear(c, run, err, sizeof err) == 0, "clear: %s", err);
    CHECK_EQ_LL(counter_count(c, run, "allocate", err, sizeof err), 0);
    CHECK_EQ_LL(counter_count(c, run, "formula", err, sizeof err), 0);
    CHECK_EQ_LL(int_command(c, "EXISTS %s", "alloc:run:910003:allocate:done_by"), 0);
    CHECK_EQ_LL(counter_count(c, other, "allocate", err, sizeof err), 1);
    CHECK_EQ_LL(counter_count(c, run * 10, "allocate", err, sizeof err), 1);
    CHECK_EQ_LL(int_command(c, "EXISTS %s", "alloc:run:910003:formulas"), 1);
    CHECK(counter_clear(c, run, err, sizeof err) == 0, "clear of nothing: %s", err);
    cache_close(c);
}

/* ---- reconnection ---- */

static void test_reconnect_after_kill(void) {
    cache_conn *a = connect_or_fail(), *b = connect_or_fail();
    if (!a || !b) {
        cache_close(a);
        cache_close(b);
        return;
    }
    for (int round = 0; round < 3; round++) {
        redisReply *r = cache_command(a, "CLIENT ID");
        long long id = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r)
            freeReplyObject(r);
        /* only this client: other tests share the server */
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", id);
        CHECK_EQ_LL(int_command(b, "CLIENT KILL ID %s", ids), 1);
        r = cache_command(a, "CLIENT ID");
        CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer != id,
              "round %d: command after CLIENT KILL: %s", round,
              cache_error(a) ? cache_error(a) : "same client id");
        if (r)
            freeReplyObject(r);
    }
    /* still on the right db after reconnecting */
    cache_url u;
    cache_parse_url(redis_url(), &u, NULL, 0);
    redisReply *r = cache_command(a, "CLIENT INFO");
    char want[32];
    snprintf(want, sizeof want, " db=%d ", u.db);
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, want), "db lost on reconnect");
    if (r)
        freeReplyObject(r);
    /* the counter script survives a kill between bumps */
    char err[512];
    counter_result cr;
    CHECK(counter_bump(a, RUN + 3, "allocate", "k1", 2, &cr, err, sizeof err) == 0, "%s", err);
    r = cache_command(a, "CLIENT ID");
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", r ? r->integer : -1);
    if (r)
        freeReplyObject(r);
    CHECK_EQ_LL(int_command(b, "CLIENT KILL ID %s", ids), 1);
    CHECK(counter_bump(a, RUN + 3, "allocate", "k2", 2, &cr, err, sizeof err) == 0, "%s", err);
    CHECK(cr.completed == 1, "completion lost across a reconnect");
    cache_close(a);
    cache_close(b);
}

/* A private redis-server, restarted under a live cache_conn. */
typedef struct private_server {
    const char *binary;
    int port;
    pid_t pid;
    char dir[64];
} private_server;

static pid_t server_start(private_server *s) {
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(s->binary, s->binary, "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", s->dir, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    return pid;
}

static void server_kill(private_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static void *restart_later(void *arg) {
    private_server *s = arg;
    sleep_ms(400);
    server_start(s);
    return NULL;
}

static void test_server_restart(void) {
    const char *bin = getenv("ALLOC_TEST_REDIS_SERVER");
    if (!bin || !*bin) {
        printf("# ALLOC_TEST_REDIS_SERVER not set: server restart not tested\n");
        return;
    }
    private_server s = {bin, free_port(), 0, "/tmp/it_cache.XXXXXX"};
    CHECK(mkdtemp(s.dir) != NULL, "mkdtemp: %s", strerror(errno));
    server_start(&s);
    char url[64], err[512];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", s.port);
    cache_conn *c = NULL;
    for (int i = 0; i < 100 && !c; i++) {
        c = cache_connect(url, err, sizeof err);
        if (!c)
            sleep_ms(50);
    }
    CHECK(c != NULL, "private server did not start: %s", err);
    if (!c) {
        server_kill(&s);
        return;
    }
    cache_set_deadline_ms(c, 10000);
    counter_result r;
    CHECK(counter_bump(c, 5, "allocate", "x1", 3, &r, err, sizeof err) == 0, "bump: %s", err);

    /* the server dies and comes back 400 ms later: the next calls wait for it */
    server_kill(&s);
    pthread_t th;
    pthread_create(&th, NULL, restart_later, &s);
    int64_t t0 = now_ms();
    redisReply *rr = cache_command(c, "SET %s %s", "after", "restart");
    int64_t waited = now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(rr != NULL, "command across a restart: %s", cache_error(c));
    if (rr)
        freeReplyObject(rr);
    CHECK(waited >= 300, "returned after %lld ms, before the server was back", (long long)waited);
    /* a fresh server knows no scripts and lost the set (no persistence) */
    CHECK(counter_bump(c, 5, "allocate", "x2", 3, &r, err, sizeof err) == 0, "bump: %s", err);
    CHECK(r.added == 1 && r.count == 1, "after restart: added %d count %lld", r.added,
          (long long)r.count);
    size_t len;
    char *v = cache_get(c, "after", &len);
    CHECK(v && strcmp(v, "restart") == 0, "value after restart: %s", v ? v : cache_error(c));
    free(v);

    /* the server stays down: the call gives up at the deadline, saying why */
    server_kill(&s);
    cache_set_deadline_ms(c, 300);
    t0 = now_ms();
    rr = cache_command(c, "GET %s", "after");
    waited = now_ms() - t0;
    CHECK(rr == NULL, "reply from a dead server");
    if (rr)
        freeReplyObject(rr);
    char want[80];
    snprintf(want, sizeof want, "connect to redis 127.0.0.1:%d: ", s.port);
    const char *e = cache_error(c);
    CHECK(e && strstr(e, want) == e && strstr(e, "refused") && strstr(e, "(gave up after 300 ms)"),
          "error: %s", e ? e : "(none)");
    CHECK(waited >= 250 && waited < 2000, "gave up after %lld ms", (long long)waited);
    cache_close(c);
    rmdir(s.dir);
}

TEST_MAIN(TEST(test_connect_and_select), TEST(test_set_get_binary),
          TEST(test_script_evalsha_and_noscript), TEST(test_counter_exactly_once),
          TEST(test_counter_rebuild), TEST(test_counter_clear), TEST(test_reconnect_after_kill),
          TEST(test_server_restart))
