/* alloc-consumer: a long-running worker. The main thread owns the AMQP
 * connection: it splits buckets itself (cheap) and hands batches to a thread
 * pool whose workers allocate and write them; finished jobs come back to the
 * main thread, which acks them and, for the batch that completed a stage,
 * notifies the producer. SIGTERM / SIGINT: finish the batches in hand, ack, exit 0. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "check.h"
#include "config.h"
#include "consumer.h"
#include "export.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "pool.h"

#define USAGE                                                                                      \
    "alloc-consumer [--role split|allocate|formula|export|all] [--threads N] [connection flags]"

/* lock-free atomic: written by the signal handler, read by every thread */
static atomic_int stop_requested;
static int export_role = 1; /* the export worker (consumer/export.c) runs */

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Jobs handed back by the workers, for the main thread. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static job *done_head;

typedef struct task {
    const consumer_env *env;
    job *j;
} task;

static void run_task(void *arg) {
    task *t = arg;
    if (!strcmp(t->j->delivery.queue, MQ_QUEUE_FORMULAS))
        formula_job(t->env, t->j);
    else
        allocate_job(t->env, t->j);
    pthread_mutex_lock(&done_lock);
    t->j->next = done_head;
    done_head = t->j;
    pthread_mutex_unlock(&done_lock);
    free(t);
}

/* Tells the producer of a run that a stage is complete. */
static void notify_producer(mq_conn *mq, const job *j) {
    msg_stage_done sd = {j->run_id, (msg_stage)j->stage, j->batch_count};
    char err[256], key[64];
    size_t len;
    char *body = msg_encode_stage_done(&sd, &len, err, sizeof err);
    if (!body) {
        log_error("encode stage_done: %s", err);
        return;
    }
    snprintf(key, sizeof key, "run.%" PRId64, j->run_id);
    if (mq_publish(mq, MQ_EXCHANGE_CONTROL, key, body, len, NULL, 0, err, sizeof err) != MQ_OK ||
        mq_flush(mq, 10000, err, sizeof err) != MQ_OK)
        /* the producer also watches the batch markers: a lost notice only delays it */
        log_warn("run %" PRId64 ": completion notice not delivered: %s", j->run_id, err);
    else
        log_info("run %" PRId64 ": %s stage complete (%" PRId64 " batches): producer notified",
                 j->run_id, msg_stage_name((msg_stage)j->stage), j->batch_count);
    free(body);
}

/* Acks (or requeues, or dead-letters) the jobs the workers finished. Returns
 * the number handled. */
static int drain_done(mq_conn *mq, uint64_t generation) {
    pthread_mutex_lock(&done_lock);
    job *list = done_head;
    done_head = NULL;
    pthread_mutex_unlock(&done_lock);
    int n = 0;
    char err[512];
    while (list) {
        job *j = list;
        list = j->next;
        n++;
        if (j->generation == generation) {
            int rc = MQ_OK;
            if (j->outcome == JOB_ACK) {
                if (j->notify)
                    notify_producer(mq, j);
                rc = mq_ack(mq, j->delivery.tag, err, sizeof err);
            } else if (j->outcome == JOB_REQUEUE) {
                rc = mq_reject(mq, j->delivery.tag, 1, err, sizeof err);
            } else {
                rc = mq_dead_letter(mq, &j->delivery, j->reason, err, sizeof err);
            }
            if (rc != MQ_OK)
                log_warn("settle delivery: %s", err);
        }
        /* a job of an older connection: the broker redelivers it; its writes are idempotent */
        mq_delivery_free(&j->delivery);
        free(j);
    }
    return n;
}

static int parse_args(int argc, char **argv, alloc_config *cfg, int *split, int *allocate,
                      int *formula, int *threads) {
    *split = *allocate = *formula = 1;
    *threads = pool_default_threads();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s\n\n"
                   "A worker of the alloc cluster; start any number, on any machine.\n"
                   "  --role R     split (re-batch buckets), allocate (allocate batches),\n"
                   "               formula (formula stage), export (export files),\n"
                   "               all (default: every role)\n"
                   "  --threads N  worker threads (default: 80%% of the cores, at least 1)\n\n"
                   "Runs until SIGTERM or SIGINT, then finishes the batches in hand, acks them\n"
                   "and exits; it reconnects by itself when a server goes away.\n\n"
                   "Exit status: 0 stopped by SIGTERM or SIGINT, 2 bad arguments, 1 any other\n"
                   "failure (e.g. the thread pool could not start).\n\n%s",
                   USAGE, config_flags_help());
            exit(ALLOC_EXIT_OK);
        }
        /* a stray argument may be a connection string (its flag forgotten) */
        char shown[256];
        config_mask_secret(a, shown, sizeof shown);
        if (i + 1 >= argc) {
            fprintf(stderr, "alloc-consumer: %s: missing value or unknown option\nusage: %s\n",
                    shown, USAGE);
            return -1;
        }
        const char *v = argv[++i];
        if (config_apply_flag(cfg, a, v))
            continue;
        if (!strcmp(a, "--role")) {
            *split = !strcmp(v, "split") || !strcmp(v, "all");
            *allocate = !strcmp(v, "allocate") || !strcmp(v, "all");
            *formula = !strcmp(v, "formula") || !strcmp(v, "all");
            export_role = !strcmp(v, "export") || !strcmp(v, "all");
            if (!*split && !*allocate && !*formula && !export_role) {
                fprintf(stderr,
                        "alloc-consumer: --role %s: expected split, allocate, formula, "
                        "export or all\nusage: %s\n",
                        v, USAGE);
                return -1;
            }
        } else if (!strcmp(a, "--threads")) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 1 || n > 256) {
                fprintf(stderr, "alloc-consumer: --threads %s: expected 1..256\nusage: %s\n", v,
                        USAGE);
                return -1;
            }
            *threads = (int)n;
        } else {
            fprintf(stderr, "alloc-consumer: unknown option %s\nusage: %s\n", shown, USAGE);
            return -1;
        }
    }
    return 0;
}

/* Logs the servers this worker uses, passwords masked. */
static void log_servers(const alloc_config *cfg) {
    char pg[512], amqp[512], redis[512];
    config_mask_secret(cfg->pg_dsn, pg, sizeof pg);
    config_mask_secret(cfg->amqp_url, amqp, sizeof amqp);
    config_mask_secret(cfg->redis_url, redis, sizeof redis);
    log_info("servers: PostgreSQL \"%s\", RabbitMQ %s, Redis %s", pg, amqp, redis);
}

/* Connects (retrying with backoff until it works or a stop is asked for),
 * declares the topology and starts the consumers of the roles. */
static mq_conn *connect_broker(const alloc_config *cfg, int split, int allocate, int formula,
                               int threads) {
    backoff bo = BACKOFF_INIT;
    char err[512];
    while (!stop_requested) {
        mq_conn *mq = mq_connect(cfg->amqp_url, 30, err, sizeof err);
        if (mq && mq_declare_topology(mq, err, sizeof err) == MQ_OK &&
            (!split || mq_consume(mq, MQ_QUEUE_BUCKETS, 1, err, sizeof err) == MQ_OK) &&
            (!allocate ||
             mq_consume(mq, MQ_QUEUE_BATCHES, 2 * threads, err, sizeof err) == MQ_OK) &&
            (!formula || mq_consume(mq, MQ_QUEUE_FORMULAS, threads, err, sizeof err) == MQ_OK))
            return mq;
        mq_close(mq);
        log_warn("broker not available: %s; retrying", err);
        backoff_sleep(&bo);
    }
    return NULL;
}

int main(int argc, char **argv) {
    log_init("consumer");
    alloc_config cfg;
    config_load(&cfg);
    int split, allocate, formula, threads;
    if (parse_args(argc, argv, &cfg, &split, &allocate, &formula, &threads) != 0)
        return ALLOC_EXIT_USAGE;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    consumer_env env;
    memset(&env, 0, sizeof env);
    env.cfg = &cfg;
    env.stop = &stop_requested;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(env.name, sizeof env.name, "%s:%d", host, (int)getpid());

    log_info("%s starting: roles%s%s%s, %d thread(s)", env.name, split ? " split" : "",
             allocate ? " allocate" : "", formula ? " formula" : "", threads);
    log_servers(&cfg);
    mq_conn *mq = connect_broker(&cfg, split, allocate, formula, threads);
    if (!mq)
        return ALLOC_EXIT_OK; /* stopped before the broker came */
    pool *workers = pool_new(threads, (size_t)(3 * threads + 1)); /* >= every prefetch */
    if (!workers) {
        log_error("cannot start %d threads: %s", threads, strerror(errno));
        mq_close(mq);
        return ALLOC_EXIT_RUNTIME;
    }
    if (export_role)
        export_start(&env, threads); /* its own thread; a failure is logged */

    uint64_t generation = 1;
    int in_hand = 0;
    char err[512];
    while (!stop_requested) {
        in_hand -= drain_done(mq, generation);
        mq_delivery d;
        int rc = mq_next(mq, in_hand > 0 ? 20 : 200, &d, err, sizeof err);
        if (rc == MQ_OK) {
            if (!strcmp(d.queue, MQ_QUEUE_BUCKETS)) {
                rc = split_bucket(&env, mq, &d);
                mq_delivery_free(&d);
            } else if (!strcmp(d.queue, MQ_QUEUE_BATCHES) || !strcmp(d.queue, MQ_QUEUE_FORMULAS)) {
                job *j = calloc(1, sizeof *j);
                task *t = calloc(1, sizeof *t);
                if (!j || !t) {
                    free(j);
                    free(t);
                    mq_reject(mq, d.tag, 1, err, sizeof err);
                    mq_delivery_free(&d);
                    continue;
                }
                j->delivery = d;
                j->generation = generation;
                t->env = &env;
                t->j = j;
                in_hand++;
                pool_submit(workers, run_task, t);
            } else {
                char reason[256];
                snprintf(reason, sizeof reason, "unexpected delivery from queue %s", d.queue);
                rc = mq_dead_letter(mq, &d, reason, err, sizeof err);
                mq_delivery_free(&d);
            }
        }
        if (rc == MQ_ERR_CONN) {
            log_warn("broker connection lost: %s; reconnecting", err);
            generation++;
            backoff bo = BACKOFF_INIT;
            while (!stop_requested && mq_reconnect(mq, 1, err, sizeof err) != MQ_OK) {
                log_warn("reconnect: %s", err);
                backoff_sleep(&bo);
            }
        } else if (rc == MQ_ERR) {
            log_warn("broker: %s", err);
        }
    }

    log_info("stopping: finishing %d batch(es) in hand", in_hand);
    pool_wait(workers);
    drain_done(mq, generation);
    pool_free(workers); /* the threads close their connections as they end */
    export_stop();      /* the export thread ends after its segment in hand */
    mq_close(mq);
    log_info("stopped");
    return ALLOC_EXIT_OK;
}
