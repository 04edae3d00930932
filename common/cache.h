/* Redis access on hiredis: connect from a redis:// URL, run commands with
 * transparent reconnection (backoff.h), binary-safe get/set, and Lua scripts run
 * by SHA1 that reload themselves after the server forgot them. */
#ifndef ALLOC_CACHE_H
#define ALLOC_CACHE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* Timeouts of one connection. The retry deadline bounds how long one call keeps
 * reconnecting before it gives up; change it with cache_set_deadline_ms. */
#define CACHE_CONNECT_TIMEOUT_MS 2000
#define CACHE_COMMAND_TIMEOUT_MS 10000
#define CACHE_DEFAULT_DEADLINE_MS 30000

/* A parsed redis://[[user]:password@]host[:port][/db] URL. Port defaults to
 * 6379 and db to 0; an IPv6 host is written in brackets. */
typedef struct cache_url {
    char host[256];
    int port;
    int db;
    char user[128];     /* empty: no user (AUTH with the password only) */
    char password[256]; /* empty: no AUTH */
} cache_url;

/* Parses url into *out. Pure. Returns 0, or -1 with a message naming what is
 * wrong (scheme, host, port, db, stray characters) in err (when err != NULL). */
int cache_parse_url(const char *url, cache_url *out, char *err, size_t errlen);

/* One Redis connection. Not thread-safe: use one cache_conn per thread. */
typedef struct cache_conn cache_conn;

/* Connects to url (timeout CACHE_CONNECT_TIMEOUT_MS), authenticates when the URL
 * has a password, and SELECTs its db. One attempt: returns NULL with the reason
 * in err when the URL is malformed or the server cannot be reached. Free with
 * cache_close. Because hiredis writes with write(2), a server that closes the
 * connection would raise SIGPIPE: the first cache_connect sets SIGPIPE to
 * ignored when it still has its default action. */
cache_conn *cache_connect(const char *url, char *err, size_t errlen);

/* Closes the connection and frees conn. Accepts NULL. */
void cache_close(cache_conn *conn);

/* How long one call keeps reconnecting (with backoff) before it fails; 0 means
 * no waiting (a connection that broke is still reopened once at once).
 * Default CACHE_DEFAULT_DEADLINE_MS. */
void cache_set_deadline_ms(cache_conn *conn, int deadline_ms);

/* The error of the last call on conn, or NULL when it succeeded. The text names
 * the command and the server and carries hiredis's errstr or the server's error
 * reply. Valid until the next call on conn. */
const char *cache_error(const cache_conn *conn);

/* Runs a command (hiredis format: %s string, %b binary with a size_t length).
 * When the connection breaks, reconnects with backoff and sends the command
 * again, until the deadline: the command may then run twice on the server, so
 * send only idempotent commands (SET, GET, SADD, DEL, scripts that are safe to
 * repeat). Returns the reply (the caller frees it with freeReplyObject), or NULL
 * when the server stayed unreachable or answered with an error reply (see
 * cache_error). A reply of type nil is a success. */
redisReply *cache_command(cache_conn *conn, const char *fmt, ...);

/* cache_command with an argument vector (argvlen NULL: NUL-terminated strings). */
redisReply *cache_command_argv(cache_conn *conn, int argc, const char **argv,
                               const size_t *argvlen);

/* SET key to the len bytes at val, expiring after ttl_s seconds (0: never).
 * Returns 0, or -1 (see cache_error). */
int cache_set(cache_conn *conn, const char *key, const void *val, size_t len, int ttl_s);

/* GET key. Returns a malloc'd copy of the value (the caller frees it; a NUL is
 * added after the len bytes, not counted in *len), or NULL when the key does not
 * exist (cache_error(conn) is then NULL) or on failure (cache_error says why). */
char *cache_get(cache_conn *conn, const char *key, size_t *len);

/* A Lua script and the hex SHA1 that EVALSHA knows it by. Read-only once
 * initialised, so one cache_script may be shared by all threads. */
typedef struct cache_script {
    const char *source; /* by pointer: usually a string literal */
    char sha1[41];
} cache_script;

/* Sets script->source (kept by pointer, not copied) and computes its SHA1
 * locally (the same digest as SCRIPT LOAD). Pure. */
void cache_script_init(cache_script *script, const char *source);

/* Runs script with EVALSHA on nkeys keys and nargs arguments (NUL-terminated
 * strings). When the server does not know the script (NOSCRIPT: after a restart
 * or SCRIPT FLUSH) it is loaded with SCRIPT LOAD and run again. Same retry rule
 * as cache_command: the script may run twice if the connection breaks, so it
 * must be safe to repeat. Returns the reply (freeReplyObject), or NULL on
 * failure, including a script error (see cache_error). */
redisReply *cache_eval(cache_conn *conn, const cache_script *script, int nkeys,
                       const char *const *keys, int nargs, const char *const *args);

#endif
