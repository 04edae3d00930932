/* Redis on hiredis: URL parsing, connections that reconnect with backoff,
 * binary-safe get/set, and EVALSHA with a NOSCRIPT fallback. */
#include "cache.h"

#include "backoff.h"
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct cache_conn {
    redisContext *ctx; /* NULL while disconnected */
    cache_url url;
    int deadline_ms;
    int failed;    /* the last call failed: err holds why */
    char err[512]; /* the last error */
};

/* ---- URL parsing (pure) ---- */

static int url_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int url_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        int n = snprintf(err, errlen, "redis URL: ");
        if (n > 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies the n bytes at s into out (size outlen) decoding %XX escapes.
 * Returns 0, or -1 when an escape is malformed or the result does not fit. */
static int percent_decode(const char *s, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hex_digit((unsigned char)s[i + 1]), l = hex_digit((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses the digits at s[0..n) as a decimal in [lo, hi]. Returns 0 or -1. */
static int parse_decimal(const char *s, size_t n, long lo, long hi, int *out) {
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cache_parse_url(const char *url, cache_url *out, char *err, size_t errlen) {
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url)
        return url_error(err, errlen, "missing");
    if (strncasecmp(url, "rediss://", 9) == 0)
        return url_error(err, errlen, "TLS (rediss://) is not supported");
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
        return url_error(err, errlen, "expected redis://host:port/db");
    const char *p = url + sizeof scheme - 1;
    for (const char *q = p; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= ' ' || c == 0x7f)
            return url_error(err, errlen, "space or control character at offset %d",
                             (int)(q - url));
        if (c == '?' || c == '#')
            return url_error(err, errlen, "query or fragment ('%c') is not supported", c);
    }
    const char *slash = strchr(p, '/');
    const char *auth_end = slash ? slash : p + strlen(p);

    /* user:password@ (the last '@' before the path, so passwords may hold '@' as %40) */
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return url_error(err, errlen, "expected user:password or :password before '@'");
        if (percent_decode(p, (size_t)(colon - p), out->user, sizeof out->user) != 0)
            return url_error(err, errlen, "bad user name");
        if (percent_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                           sizeof out->password) != 0)
            return url_error(err, errlen, "bad password");
        if (!out->password[0])
            return url_error(err, errlen, "empty password");
        p = at + 1;
    }

    /* host, [v6] or name */
    const char *host_end;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close)
            return url_error(err, errlen, "missing ']' after IPv6 host");
        if (close == p + 1)
            return url_error(err, errlen, "missing host");
        if ((size_t)(close - p - 1) >= sizeof out->host)
            return url_error(err, errlen, "host too long");
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        host_end = close + 1;
        if (host_end < auth_end && *host_end != ':')
            return url_error(err, errlen, "unexpected '%c' after IPv6 host", *host_end);
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (!host_end)
            host_end = auth_end;
        if (host_end == p)
            return url_error(err, errlen, "missing host");
        if ((size_t)(host_end - p) >= sizeof out->host)
            return url_error(err, errlen, "host too long");
        for (const char *q = p; q < host_end; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
                return url_error(err, errlen, "bad character '%c' in host", *q);
        memcpy(out->host, p, (size_t)(host_end - p));
    }

    if (host_end < auth_end) { /* ':' port */
        const char *ps = host_end + 1;
        size_t n = (size_t)(auth_end - ps);
        if (parse_decimal(ps, n, 1, 65535, &out->port) != 0)
            return url_error(err, errlen, "bad port \"%.*s\" (expected 1..65535)",
                             (int)(n > 20 ? 20 : n), ps);
    }

    if (slash) {
        const char *ds = slash + 1;
        size_t n = strlen(ds);
        if (n > 0 && parse_decimal(ds, n, 0, INT_MAX, &out->db) != 0)
            return url_error(err, errlen, "bad db number \"%.*s\" (expected a number >= 0)",
                             (int)(n > 20 ? 20 : n), ds);
    }
    return 0;
}

/* ---- SHA1 (FIPS 180-1), for EVALSHA digests ---- */

static uint32_t rol32(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol32(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/* Writes the lowercase hex SHA1 of the n bytes at data to hex (41 bytes). */
static void sha1_hex(const void *data, size_t n, char hex[41]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const unsigned char *p = data;
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64)
        sha1_block(h, p);
    unsigned char tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tail_len = left + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tail_len == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++)
        snprintf(hex + 8 * i, 9, "%08x", h[i]);
}

void cache_script_init(cache_script *script, const char *source) {
    script->source = source;
    sha1_hex(source, strlen(source), script->sha1);
}

/* ---- connections ---- */

static void conn_error(cache_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the error of the current call on conn. */
static void conn_error(cache_conn *conn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conn->err, sizeof conn->err, fmt, ap);
    va_end(ap);
    conn->failed = 1;
}

static struct timeval ms_to_tv(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ignore_sigpipe_once(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* Sends argv on ctx and checks for a status reply (AUTH, SELECT). Returns 0, or
 * -1 with the reason in buf. */
static int setup_command(redisContext *ctx, int argc, const char **argv, char *buf, size_t len) {
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        snprintf(buf, len, "%s: %s", argv[0], ctx->errstr);
        return -1;
    }
    int ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(buf, len, "%s: %s", argv[0],
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* One connection attempt: connect, AUTH, SELECT. On success conn->ctx is set
 * and 0 returned; otherwise conn->err says why and -1 is returned. */
static int conn_open(cache_conn *conn) {
    const cache_url *u = &conn->url;
    redisContext *ctx =
        redisConnectWithTimeout(u->host, u->port, ms_to_tv(CACHE_CONNECT_TIMEOUT_MS));
    if (!ctx) {
        conn_error(conn, "connect to redis %s:%d: out of memory", u->host, u->port);
        return -1;
    }
    if (ctx->err) {
        conn_error(conn, "connect to redis %s:%d: %s", u->host, u->port, ctx->errstr);
        redisFree(ctx);
        return -1;
    }
    char why[300];
    if (redisSetTimeout(ctx, ms_to_tv(CACHE_COMMAND_TIMEOUT_MS)) != REDIS_OK) {
        conn_error(conn, "connect to redis %s:%d: set timeout: %s", u->host, u->port, ctx->errstr);
        redisFree(ctx);
        return -1;
    }
    redisEnableKeepAlive(ctx);
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user, u->password};
        int rc = u->user[0] ? setup_command(ctx, 3, argv, why, sizeof why)
                            : setup_command(ctx, 2, (const char *[]){"AUTH", u->password}, why,
                                            sizeof why);
        if (rc != 0) {
            /* the reply to AUTH comes from whatever listens there: never echo the password */
            config_scrub_password(u->password, why, sizeof why);
            conn_error(conn, "connect to redis %s:%d: %s", u->host, u->port, why);
            redisFree(ctx);
            return -1;
        }
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        if (setup_command(ctx, 2, (const char *[]){"SELECT", db}, why, sizeof why) != 0) {
            conn_error(conn, "connect to redis %s:%d: db %d: %s", u->host, u->port, u->db, why);
            redisFree(ctx);
            return -1;
        }
    }
    conn->ctx = ctx;
    return 0;
}

cache_conn *cache_connect(const char *url, char *err, size_t errlen) {
    static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;
    pthread_once(&sigpipe_once, ignore_sigpipe_once);

    cache_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        if (err && errlen)
            snprintf(err, errlen, "connect to redis: out of memory");
        return NULL;
    }
    conn->deadline_ms = CACHE_DEFAULT_DEADLINE_MS;
    if (cache_parse_url(url, &conn->url, err, errlen) != 0 || conn_open(conn) != 0) {
        if (conn->failed && err && errlen)
            snprintf(err, errlen, "%s", conn->err);
        free(conn);
        return NULL;
    }
    return conn;
}

void cache_close(cache_conn *conn) {
    if (!conn)
        return;
    if (conn->ctx)
        redisFree(conn->ctx);
    free(conn);
}

void cache_set_deadline_ms(cache_conn *conn, int deadline_ms) {
    conn->deadline_ms = deadline_ms < 0 ? 0 : deadline_ms;
}

const char *cache_error(const cache_conn *conn) {
    return conn->failed ? conn->err : NULL;
}

/* Is r an error reply that starts with the given code ("NOSCRIPT", "LOADING")? */
static int reply_is_error(const redisReply *r, const char *code) {
    size_t n = strlen(code);
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= n &&
           strncmp(r->str, code, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* Sends the formatted command cmd (len bytes; what names it in errors) and
 * reads its reply, reconnecting with backoff until conn's deadline when the
 * connection is down or breaks, and waiting while the server is still loading
 * its data set. Returns the raw reply, error replies included, or NULL when the
 * deadline passed (conn->err says why). */
static redisReply *send_formatted(cache_conn *conn, const char *cmd, size_t len, const char *what) {
    const cache_url *u = &conn->url;
    int64_t deadline = now_ms() + conn->deadline_ms;
    backoff bo = BACKOFF_INIT;
    int down = 0;        /* the connection broke or was refused during this call */
    int retried_now = 0; /* the one immediate reconnection after a break was used */
    for (;;) {
        int was_connected = conn->ctx != NULL;
        if (conn->ctx || conn_open(conn) == 0) {
            if (down) {
                log_info("redis %s:%d/%d: reconnected", u->host, u->port, u->db);
                down = 0;
            }
            void *reply = NULL;
            if (redisAppendFormattedCommand(conn->ctx, cmd, len) == REDIS_OK &&
                redisGetReply(conn->ctx, &reply) == REDIS_OK) {
                redisReply *r = reply;
                if (!reply_is_error(r, "LOADING")) {
                    conn->failed = 0; /* errors met on the way were overcome */
                    return r;
                }
                conn_error(conn, "redis %s on %s:%d/%d: %s", what, u->host, u->port, u->db, r->str);
                freeReplyObject(r);
            } else {
                conn_error(conn, "redis %s on %s:%d/%d: %s", what, u->host, u->port, u->db,
                           conn->ctx->errstr);
                log_warn("%s; reconnecting", conn->err);
                redisFree(conn->ctx);
                conn->ctx = NULL;
                down = 1;
                /* a connection the server closed is usually back at once: no wait */
                if (was_connected && !retried_now) {
                    retried_now = 1;
                    continue;
                }
            }
        } else {
            down = 1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            size_t n = strlen(conn->err);
            if (conn->deadline_ms > 0 && n + 40 < sizeof conn->err)
                snprintf(conn->err + n, sizeof conn->err - n, " (gave up after %d ms)",
                         conn->deadline_ms);
            return NULL;
        }
        int ms = backoff_next_ms(&bo);
        if (ms > left)
            ms = (int)left;
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The first word of a command format, for error messages. */
static void command_name(const char *fmt, size_t n, char *out, size_t outlen) {
    size_t i = 0;
    while (i < n && i + 1 < outlen && fmt[i] && fmt[i] != ' ') {
        out[i] = fmt[i];
        i++;
    }
    out[i] = '\0';
}

/* Turns an error reply into NULL plus conn->err; passes other replies through. */
static redisReply *check_reply(cache_conn *conn, redisReply *r, const char *what) {
    if (r && r->type == REDIS_REPLY_ERROR) {
        const cache_url *u = &conn->url;
        conn_error(conn, "redis %s on %s:%d/%d: %s", what, u->host, u->port, u->db, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *cache_command(cache_conn *conn, const char *fmt, ...) {
    conn->failed = 0;
    char what[32];
    command_name(fmt, strlen(fmt), what, sizeof what);
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        conn_error(conn, "redis %s: cannot format the command (bad format or out of memory)", what);
        return NULL;
    }
    redisReply *r = send_formatted(conn, cmd, (size_t)len, what);
    free(cmd);
    return check_reply(conn, r, what);
}

/* cache_command_argv without the error-reply check (cache_eval needs NOSCRIPT). */
static redisReply *send_argv(cache_conn *conn, int argc, const char **argv, const size_t *argvlen,
                             char *what, size_t whatlen) {
    command_name(argv[0], argvlen ? argvlen[0] : strlen(argv[0]), what, whatlen);
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        conn_error(conn, "redis %s: cannot format the command: out of memory", what);
        return NULL;
    }
    redisReply *r = send_formatted(conn, cmd, (size_t)len, what);
    free(cmd);
    return r;
}

redisReply *cache_command_argv(cache_conn *conn, int argc, const char **argv,
                               const size_t *argvlen) {
    conn->failed = 0;
    if (argc < 1) {
        conn_error(conn, "redis: empty command");
        return NULL;
    }
    char what[32];
    redisReply *r = send_argv(conn, argc, argv, argvlen, what, sizeof what);
    return check_reply(conn, r, what);
}

int cache_set(cache_conn *conn, const char *key, const void *val, size_t len, int ttl_s) {
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[5] = {"SET", key, val ? val : "", "EX", ttl};
    size_t argvlen[5] = {3, strlen(key), val ? len : 0, 2, strlen(ttl)};
    redisReply *r = cache_command_argv(conn, ttl_s > 0 ? 5 : 3, argv, argvlen);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

char *cache_get(cache_conn *conn, const char *key, size_t *len) {
    *len = 0;
    const char *argv[2] = {"GET", key};
    redisReply *r = cache_command_argv(conn, 2, argv, NULL);
    if (!r)
        return NULL;
    char *val = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        val = malloc(r->len + 1);
        if (val) {
            memcpy(val, r->str, r->len);
            val[r->len] = '\0';
            *len = r->len;
        } else {
            conn_error(conn, "redis GET %s: out of memory for %zu bytes", key, r->len);
        }
    } else if (r->type != REDIS_REPLY_NIL) {
        conn_error(conn, "redis GET %s: unexpected reply type %d", key, r->type);
    }
    freeReplyObject(r);
    return val;
}

redisReply *cache_eval(cache_conn *conn, const cache_script *script, int nkeys,
                       const char *const *keys, int nargs, const char *const *args) {
    conn->failed = 0;
    if (nkeys < 0 || nargs < 0) {
        conn_error(conn, "redis EVALSHA %.12s: negative key or argument count", script->sha1);
        return NULL;
    }
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    if (!argv) {
        conn_error(conn, "redis EVALSHA %.12s: out of memory", script->sha1);
        return NULL;
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha1;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];

    char what[32];
    redisReply *r = send_argv(conn, argc, argv, NULL, what, sizeof what);
    if (reply_is_error(r, "NOSCRIPT")) {
        /* the server forgot the script (restart, SCRIPT FLUSH): load it and run again */
        freeReplyObject(r);
        r = NULL;
        const char *load[3] = {"SCRIPT", "LOAD", script->source};
        redisReply *lr = send_argv(conn, 3, load, NULL, what, sizeof what);
        lr = check_reply(conn, lr, "SCRIPT LOAD");
        if (lr) {
            if (lr->type == REDIS_REPLY_STRING && lr->len == 40 &&
                memcmp(lr->str, script->sha1, 40) == 0) {
                log_info("redis: loaded script %.12s", script->sha1);
                r = send_argv(conn, argc, argv, NULL, what, sizeof what);
            } else {
                conn_error(conn, "redis SCRIPT LOAD: server digest %.40s differs from %s",
                           lr->type == REDIS_REPLY_STRING ? lr->str : "?", script->sha1);
            }
            freeReplyObject(lr);
        }
    }
    free(argv);
    if (!r)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR) {
        const cache_url *u = &conn->url;
        conn_error(conn, "redis EVALSHA %.12s on %s:%d/%d: %s", script->sha1, u->host, u->port,
                   u->db, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}
