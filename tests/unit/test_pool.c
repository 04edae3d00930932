/* Unit tests of the thread pool: results of many tasks, FIFO order on one
 * thread, the queue bound, pool_wait semantics, draining on pool_free, and
 * the default thread count. Also run under `make SANITIZE=thread`. */
#include "harness.h"
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- many tasks, each writing its own result ---- */

typedef struct square_task {
    int64_t in, out;
} square_task;

static void square(void *arg) {
    square_task *t = arg;
    t->out = t->in * t->in;
}

static void run_many(int nthreads, size_t cap, int ntasks) {
    pool *p = pool_new(nthreads, cap);
    CHECK(p != NULL, "pool_new(%d, %zu) failed", nthreads, cap);
    if (!p)
        return;
    CHECK_EQ_LL(pool_size(p), nthreads);
    square_task *tasks = calloc((size_t)ntasks, sizeof *tasks);
    for (int round = 0; round < 3; round++) { /* the pool is reusable after pool_wait */
        int64_t want = 0;
        for (int i = 0; i < ntasks; i++) {
            tasks[i].in = i + round;
            tasks[i].out = -1;
            want += (int64_t)(i + round) * (i + round);
            CHECK(pool_submit(p, square, &tasks[i]) == 0, "submit %d failed", i);
        }
        pool_wait(p);
        int64_t got = 0;
        for (int i = 0; i < ntasks; i++)
            got += tasks[i].out;
        CHECK(got == want, "%d threads, round %d: sum %lld, want %lld", nthreads, round,
              (long long)got, (long long)want);
    }
    free(tasks);
    pool_free(p);
}

static void test_many_tasks_one_thread(void) {
    run_many(1, 4, 10000);
}

static void test_many_tasks_eight_threads(void) {
    run_many(8, 16, 30000);
}

static void test_many_tasks_queue_of_one(void) {
    run_many(8, 1, 5000);
}

/* ---- one thread runs tasks in submission order ---- */

typedef struct order_log {
    int seen[1000];
    int n; /* only the pool's single thread writes; read after pool_wait */
} order_log;

typedef struct order_task {
    order_log *log;
    int id;
} order_task;

static void record_order(void *arg) {
    order_task *t = arg;
    t->log->seen[t->log->n++] = t->id;
}

static void test_fifo_on_one_thread(void) {
    pool *p = pool_new(1, 8);
    static order_log log;
    static order_task tasks[1000];
    for (int i = 0; i < 1000; i++) {
        tasks[i] = (order_task){&log, i};
        pool_submit(p, record_order, &tasks[i]);
    }
    pool_wait(p);
    CHECK_EQ_LL(log.n, 1000);
    int in_order = 1;
    for (int i = 0; i < log.n; i++)
        in_order &= log.seen[i] == i;
    CHECK(in_order, "tasks ran out of submission order");
    pool_free(p);
}

/* ---- the queue bound: submitters block while it is full ---- */

typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t opened;
    int open;
    atomic_int started, finished;
} gate;

static void gated(void *arg) {
    gate *g = arg;
    atomic_fetch_add(&g->started, 1);
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->opened, &g->lock);
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_add(&g->finished, 1);
}

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->opened);
    pthread_mutex_unlock(&g->lock);
}

typedef struct submitter {
    pool *p;
    gate *g;
    int n;
    atomic_int submitted; /* submits that returned */
} submitter;

static void *submit_all(void *arg) {
    submitter *s = arg;
    for (int i = 0; i < s->n; i++) {
        pool_submit(s->p, gated, s->g);
        atomic_fetch_add(&s->submitted, 1);
    }
    return NULL;
}

static void test_queue_bound(void) {
    enum { THREADS = 2, CAP = 4, TASKS = 20 };
    pool *p = pool_new(THREADS, CAP);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    submitter s = {p, &g, TASKS, 0};
    pthread_t th;
    pthread_create(&th, NULL, submit_all, &s);
    /* both threads hold a task, CAP tasks wait, the next submit blocks */
    for (int i = 0; i < 200 && (atomic_load(&g.started) < THREADS ||
                                atomic_load(&s.submitted) < THREADS + CAP);
         i++)
        sleep_ms(5);
    sleep_ms(100); /* time for a submit that wrongly went through */
    CHECK_EQ_LL(atomic_load(&g.started), THREADS);
    CHECK_EQ_LL(atomic_load(&s.submitted), THREADS + CAP);
    CHECK_EQ_LL(atomic_load(&g.finished), 0);
    gate_open(&g);
    pthread_join(th, NULL);
    pool_wait(p);
    CHECK_EQ_LL(atomic_load(&g.finished), TASKS);
    CHECK_EQ_LL(atomic_load(&s.submitted), TASKS);
    pool_free(p);
}

/* ---- pool_wait returns only when every task has finished ---- */

typedef struct slow_task {
    atomic_int *done;
    int ms;
} slow_task;

static void slow(void *arg) {
    slow_task *t = arg;
    sleep_ms(t->ms);
    atomic_fetch_add(t->done, 1);
}

static void test_wait_semantics(void) {
    pool *p = pool_new(4, 2);
    pool_wait(p); /* nothing submitted: returns at once */
    atomic_int done = 0;
    slow_task tasks[12];
    for (int i = 0; i < 12; i++) {
        tasks[i] = (slow_task){&done, 5 + (i % 3) * 10};
        pool_submit(p, slow, &tasks[i]);
    }
    pool_wait(p);
    CHECK_EQ_LL(atomic_load(&done), 12);
    pool_wait(p); /* again: still nothing to wait for */
    CHECK_EQ_LL(atomic_load(&done), 12);
    pool_free(p);
}

/* Tasks still queued when pool_free is called run before the threads stop. */
static void test_free_drains_queue(void) {
    pool *p = pool_new(2, 64);
    atomic_int done = 0;
    slow_task tasks[40];
    for (int i = 0; i < 40; i++) {
        tasks[i] = (slow_task){&done, 1};
        pool_submit(p, slow, &tasks[i]);
    }
    pool_free(p);
    CHECK_EQ_LL(atomic_load(&done), 40);
}

/* Several threads submit to one pool at once. */
typedef struct adder {
    pool *p;
    atomic_llong *sum;
} adder;

static atomic_llong shared_sum;

static void add_one(void *arg) {
    atomic_fetch_add(&shared_sum, (long long)(intptr_t)arg);
}

static void *submit_numbers(void *arg) {
    adder *a = arg;
    for (intptr_t i = 1; i <= 5000; i++)
        pool_submit(a->p, add_one, (void *)i);
    return NULL;
}

static void test_concurrent_submitters(void) {
    pool *p = pool_new(8, 8);
    atomic_store(&shared_sum, 0);
    adder a = {p, &shared_sum};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, submit_numbers, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pool_wait(p);
    CHECK_EQ_LL(atomic_load(&shared_sum), 4LL * 5000 * 5001 / 2);
    pool_free(p);
}

static void test_bad_arguments_and_defaults(void) {
    errno = 0;
    CHECK(pool_new(0, 4) == NULL && errno == EINVAL, "pool_new(0, 4) accepted");
    errno = 0;
    CHECK(pool_new(2, 0) == NULL && errno == EINVAL, "pool_new(2, 0) accepted");
    pool_free(NULL);
    CHECK_EQ_LL(pool_threads_for_cores(1), 1);
    CHECK_EQ_LL(pool_threads_for_cores(2), 1);
    CHECK_EQ_LL(pool_threads_for_cores(3), 2);
    CHECK_EQ_LL(pool_threads_for_cores(4), 3);
    CHECK_EQ_LL(pool_threads_for_cores(5), 4);
    CHECK_EQ_LL(pool_threads_for_cores(10), 8);
    CHECK_EQ_LL(pool_threads_for_cores(16), 12);
    CHECK_EQ_LL(pool_threads_for_cores(64), 51);
    CHECK_EQ_LL(pool_threads_for_cores(0), 1);
    CHECK_EQ_LL(pool_threads_for_cores(-1), 1);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ_LL(pool_default_threads(), pool_threads_for_cores(cores));
    CHECK(pool_default_threads() >= 1, "default below 1");
}

TEST_MAIN(TEST(test_many_tasks_one_thread), TEST(test_many_tasks_eight_threads),
          TEST(test_many_tasks_queue_of_one), TEST(test_fifo_on_one_thread), TEST(test_queue_bound),
          TEST(test_wait_semantics), TEST(test_free_drains_queue), TEST(test_concurrent_submitters),
          TEST(test_bad_arguments_and_defaults))
