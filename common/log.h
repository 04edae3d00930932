/* Logging to stderr: one line per event with time, level, program and the run and
 * batch the calling thread works on. Thread-safe. */
#ifndef ALLOC_LOG_H
#define ALLOC_LOG_H

#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the program name shown on every line and the minimum level; the level
 * is taken from ALLOC_LOG_LEVEL (debug|info|warn|error) when set. */
void log_init(const char *program);

/* The run and batch of the calling thread (0 / NULL = none); shown on its lines. */
void log_set_run(int64_t run_id);
void log_set_batch(const char *batch_id);

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
