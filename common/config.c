/* Configuration from the environment and flags, and the masking of the
 * passwords in connection strings (URLs and libpq keyword/value DSNs). */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void config_load(alloc_config *cfg) {
    cfg->pg_dsn = env_or("ALLOC_PG_DSN", CONFIG_DEFAULT_PG_DSN);
    cfg->amqp_url = env_or("ALLOC_AMQP_URL", CONFIG_DEFAULT_AMQP_URL);
    cfg->redis_url = env_or("ALLOC_REDIS_URL", CONFIG_DEFAULT_REDIS_URL);
    cfg->file_store = env_or("ALLOC_FILE_STORE", CONFIG_DEFAULT_FILE_STORE);
}

int config_apply_flag(alloc_config *cfg, const char *flag, const char *value) {
    if (!strcmp(flag, "--pg-dsn"))
        cfg->pg_dsn = value;
    else if (!strcmp(flag, "--amqp-url"))
        cfg->amqp_url = value;
    else if (!strcmp(flag, "--redis-url"))
        cfg->redis_url = value;
    else if (!strcmp(flag, "--file-store"))
        cfg->file_store = value;
    else
        return 0;
    return 1;
}

/* The defaults are the local cluster's (a documented development password,
 * not a secret), shown so that `--help` says what an unset variable means. */
const char *config_flags_help(void) {
    return "connection flags (override the environment; defaults: the local cluster):\n"
           "  --pg-dsn DSN       PostgreSQL connection string (ALLOC_PG_DSN)\n"
           "                     default: " CONFIG_DEFAULT_PG_DSN "\n"
           "  --amqp-url URL     amqp://user:pass@host:port/vhost (ALLOC_AMQP_URL)\n"
           "                     default: " CONFIG_DEFAULT_AMQP_URL "\n"
           "  --redis-url URL    redis://[:pass@]host:port/db (ALLOC_REDIS_URL)\n"
           "                     default: " CONFIG_DEFAULT_REDIS_URL "\n"
           "  --file-store DIR   directory for exported files (ALLOC_FILE_STORE)\n"
           "                     default: " CONFIG_DEFAULT_FILE_STORE "\n";
}

/* ---- finding the passwords in a connection string (pure) ---------------- */

/* How a password's value is written: with %XX escapes (a URL), or with the
 * quotes and backslashes of a libpq keyword/value DSN. */
typedef enum { SECRET_URL, SECRET_DSN } secret_kind;

/* The passwords of one connection string: bytes [start, end) each, in the
 * order found. More than SECRETS_MAX (only an absurd string has them) sets
 * overflow_from, the start of the first one not kept: everything from there on
 * counts as secret. */
#define SECRETS_MAX 16
typedef struct secret_span {
    size_t start, end;
    secret_kind kind;
} secret_span;
typedef struct secret_list {
    secret_span span[SECRETS_MAX];
    size_t n;
    size_t overflow_from; /* SIZE_MAX when nothing overflowed */
} secret_list;

static void add_secret(secret_list *l, size_t start, size_t end, secret_kind kind) {
    if (end <= start)
        return;
    if (l->n < SECRETS_MAX)
        l->span[l->n++] = (secret_span){start, end, kind};
    else if (start < l->overflow_from)
        l->overflow_from = start;
}

/* The length of a URL scheme followed by "://" at the start of s, or 0. */
static size_t url_scheme_len(const char *s) {
    if (!isalpha((unsigned char)s[0]))
        return 0;
    size_t i = 1;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return strncmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The byte at s[*i] of a percent-encoded string of n bytes, decoded; *i moves
 * past an escape. */
static int url_byte(const char *s, size_t n, size_t *i) {
    if (s[*i] == '%' && *i + 2 < n && hex_value((unsigned char)s[*i + 1]) >= 0 &&
        hex_value((unsigned char)s[*i + 2]) >= 0) {
        int c = hex_value((unsigned char)s[*i + 1]) * 16 + hex_value((unsigned char)s[*i + 2]);
        *i += 2;
        return c;
    }
    return (unsigned char)s[*i];
}

/* Whether the n bytes at s, percent-decoded (libpq decodes URI query keys),
 * name a password: "password", and "sslpassword" (a client key's), in any
 * case (libpq's keywords are lower case, but masking more costs nothing). */
static int is_password_key(const char *s, size_t n) {
    char key[32];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 1 >= sizeof key)
            return 0; /* longer than any libpq keyword */
        key[k++] = (char)tolower(url_byte(s, n, &i));
    }
    key[k] = '\0';
    return !strcmp(key, "password") || !strcmp(key, "sslpassword");
}

/* The password= parameters of the URL query starting at query ('?'; NULL: none). */
static void query_secrets(const char *s, const char *query, secret_list *l) {
    if (!query)
        return;
    for (const char *param = query + 1; *param;) {
        size_t len = strcspn(param, "&");
        const char *eq = memchr(param, '=', len);
        if (eq && is_password_key(param, (size_t)(eq - param)))
            add_secret(l, (size_t)(eq + 1 - s), (size_t)(param + len - s), SECRET_URL);
        param += len;
        if (*param == '&')
            param++;
    }
}

/* URL: the password of the userinfo, and every password= query parameter.
 * The userinfo ends at the last '@' of the authority. With no '@' there but
 * one further on, the string is ambiguous (a password holding an unencoded
 * '/', '?' or '#', or an '@' in the path or query): both readings are kept,
 * so that the doubt masks too much, never too little. */
static void url_secrets(const char *s, size_t scheme_len, secret_list *l) {
    const char *p = s + scheme_len;
    size_t auth_len = strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < p + auth_len; q++)
        if (*q == '@')
            at = q;
    if (!at)
        at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon)
            add_secret(l, (size_t)(colon + 1 - s), (size_t)(at - s), SECRET_URL);
    }
    /* the query of each reading: after the authority, and after the '@' */
    const char *query = strchr(p, '?');
    query_secrets(s, query, l);
    if (at && strchr(at + 1, '?') != query)
        query_secrets(s, strchr(at + 1, '?'), l);
}

/* The end of a DSN value starting at v: a quoted value runs to its closing
 * quote (or the end of the string), an unquoted one to white space; a
 * backslash escapes the next byte in both, as in libpq. */
static const char *dsn_value_end(const char *v) {
    int quoted = *v == '\'';
    const char *q = quoted ? v + 1 : v;
    while (*q) {
        if (*q == '\\' && q[1]) {
            q += 2;
            continue;
        }
        if (quoted ? *q == '\'' : isspace((unsigned char)*q) != 0)
            break;
        q++;
    }
    return quoted && *q == '\'' ? q + 1 : q;
}

/* libpq keyword/value: key = value pairs separated by white space, spaces
 * allowed around '='. A "password" keyword missing its '=' (which libpq
 * refuses) still has the next word masked. */
static void dsn_secrets(const char *s, secret_list *l) {
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return;
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        int secret = is_password_key(key, (size_t)(p - key));
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '=') {
            p++;
            while (isspace((unsigned char)*p))
                p++;
        } else if (!secret) {
            continue; /* not a pair: the next word is read as a keyword */
        }
        const char *end = dsn_value_end(p);
        if (secret)
            add_secret(l, (size_t)(p - s), (size_t)(end - s), SECRET_DSN);
        p = end;
    }
}

static void find_secrets(const char *s, secret_list *l) {
    l->n = 0;
    l->overflow_from = SIZE_MAX;
    size_t scheme = url_scheme_len(s);
    if (scheme)
        url_secrets(s, scheme, l);
    else
        dsn_secrets(s, l);
}

/* ---- masking ----------------------------------------------------------- */

typedef struct mask_out {
    char *out;
    size_t cap, len; /* cap excludes the NUL */
} mask_out;

static void put_byte(mask_out *m, int c) {
    if (m->len < m->cap)
        m->out[m->len++] = (char)c;
}

/* Copies input bytes, printable: control characters would let a connection
 * string forge log lines. */
static void put_printable(mask_out *m, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        put_byte(m, c == '\t' || c == '\n' || c == '\r' ? ' ' : c < 0x20 || c == 0x7f ? '?' : c);
    }
}

/* Whether byte i of the string is inside a password of l. */
static int in_secret(const secret_list *l, size_t i) {
    if (i >= l->overflow_from)
        return 1;
    for (size_t k = 0; k < l->n; k++)
        if (i >= l->span[k].start && i < l->span[k].end)
            return 1;
    return 0;
}

/* Copies s with each run of password bytes (overlapping readings merged)
 * written as one "***". */
void config_mask_secret(const char *url_or_dsn, char *out, size_t outlen) {
    if (!out || !outlen)
        return;
    mask_out m = {out, outlen - 1, 0};
    if (url_or_dsn) {
        secret_list l;
        find_secrets(url_or_dsn, &l);
        size_t n = strlen(url_or_dsn);
        for (size_t i = 0; i < n;) {
            if (!in_secret(&l, i)) {
                put_printable(&m, url_or_dsn + i, 1);
                i++;
                continue;
            }
            while (i < n && in_secret(&l, i))
                i++;
            put_printable(&m, "***", 3);
        }
    }
    out[m.len] = '\0';
}

/* ---- scrubbing messages ------------------------------------------------ */

void config_scrub_password(const char *password, char *text, size_t textlen) {
    if (!password || !*password || !text || !textlen)
        return;
    size_t plen = strlen(password);
    if (!strstr(text, password))
        return;
    char *copy = strdup(text);
    if (!copy) { /* no room to rewrite: blank the password where it stands */
        for (char *hit = strstr(text, password); hit; hit = strstr(hit + plen, password))
            memset(hit, '*', plen);
        return;
    }
    size_t o = 0;
    for (const char *p = copy; *p && o + 1 < textlen;) {
        if (strncmp(p, password, plen) == 0) {
            for (int i = 0; i < 3 && o + 1 < textlen; i++)
                text[o++] = '*';
            p += plen;
        } else {
            text[o++] = *p++;
        }
    }
    text[o] = '\0';
    free(copy);
}

/* Decodes a password as the client library sees it: %XX escapes of a URL; the
 * quotes and backslashes of a DSN value. Returns a malloc'd string or NULL. */
static char *decode_secret(const char *s, size_t n, secret_kind kind) {
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    if (kind == SECRET_URL) {
        for (size_t i = 0; i < n; i++)
            out[o++] = (char)url_byte(s, n, &i);
    } else {
        size_t i = 0;
        if (s[0] == '\'') {
            i = 1;
            if (n > 1 && s[n - 1] == '\'')
                n--;
        }
        for (; i < n; i++) {
            if (s[i] == '\\' && i + 1 < n)
                i++;
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void withhold(char *text, size_t textlen) {
    snprintf(text, textlen, "(message withheld: it may show a password)");
}

/* Each password is scrubbed as written and as decoded: a library echoes
 * either (libpq shows the URI it could not parse, or the decoded token). */
void config_scrub_secret(const char *url_or_dsn, char *text, size_t textlen) {
    if (!url_or_dsn || !text || !textlen)
        return;
    secret_list l;
    find_secrets(url_or_dsn, &l);
    if (l.overflow_from != SIZE_MAX) {
        withhold(text, textlen);
        return;
    }
    for (size_t k = 0; k < l.n; k++) {
        const secret_span *sp = &l.span[k];
        size_t n = sp->end - sp->start;
        char *raw = strndup(url_or_dsn + sp->start, n);
        char *decoded = decode_secret(url_or_dsn + sp->start, n, sp->kind);
        if (raw && decoded) {
            config_scrub_password(raw, text, textlen);
            config_scrub_password(decoded, text, textlen);
        } else {
            withhold(text, textlen);
        }
        free(raw);
        free(decoded);
    }
}
