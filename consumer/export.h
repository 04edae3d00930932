/* The export role of alloc-consumer (DESIGN.md 5.7): a dedicated thread that
 * claims export tasks and writes their files (consumer/export.c). */
#ifndef ALLOC_CONSUMER_EXPORT_H
#define ALLOC_CONSUMER_EXPORT_H

#include "consumer.h"

/* Starts the export thread: it polls export_task every second on its own
 * PostgreSQL connections, claims one queued task at a time (FOR UPDATE SKIP
 * LOCKED, so concurrent consumers never share a task) and writes its file with
 * a formatting pool of `threads` threads. It runs until *env->stop is set; env
 * must outlive export_stop. Returns 0, or -1 (logged) when the thread cannot
 * start. Call at most once. */
int export_start(const consumer_env *env, int threads);

/* Waits for the export thread to end (it ends after the segment in hand once
 * *env->stop is set, putting an unfinished task back in the queue). Returns at
 * once when export_start was not called or failed. */
void export_stop(void);

#endif
