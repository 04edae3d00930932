/* Logging to stderr with level, program, run and batch ids. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *log_program = "alloc";
static log_level log_min = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int64_t log_run;
static _Thread_local char log_batch[96];

void log_init(const char *program) {
    log_program = program;
    const char *lv = getenv("ALLOC_LOG_LEVEL");
    if (lv) {
        if (!strcasecmp(lv, "debug"))
            log_min = LOG_DEBUG;
        else if (!strcasecmp(lv, "info"))
            log_min = LOG_INFO;
        else if (!strcasecmp(lv, "warn"))
            log_min = LOG_WARN;
        else if (!strcasecmp(lv, "error"))
            log_min = LOG_ERROR;
    }
}

void log_set_run(int64_t run_id) {
    log_run = run_id;
}

void log_set_batch(const char *batch_id) {
    if (batch_id)
        snprintf(log_batch, sizeof log_batch, "%s", batch_id);
    else
        log_batch[0] = '\0';
}

void log_write(log_level level, const char *fmt, ...) {
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < log_min)
        return;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    char ctx[160] = "";
    size_t n = 0;
    if (log_run)
        n += (size_t)snprintf(ctx + n, sizeof ctx - n, " run=%lld", (long long)log_run);
    if (log_batch[0] && n < sizeof ctx)
        snprintf(ctx + n, sizeof ctx - n, " batch=%s", log_batch);

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ldZ %-5s [%s%s] %s\n", when, ts.tv_nsec / 1000000, names[level],
            log_program, ctx, msg);
    pthread_mutex_unlock(&log_lock);
}
