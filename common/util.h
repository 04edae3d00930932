/* Small helpers every part of alloc needs and no module owns: the period code
 * check and a string copy. Pure; thread-safe. (Redis keeps its util.c.) */
#ifndef ALLOC_UTIL_H
#define ALLOC_UTIL_H

/* 1 when s is a period code YYYY-MM with a month 01..12, else 0 (also for NULL). */
int util_period_valid(const char *s);

/* A malloc'd copy of s; NULL is copied as "". The caller frees it. Returns
 * NULL only when out of memory. */
char *util_strdup(const char *s);

#endif
