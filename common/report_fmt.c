/* Formatting and checking helpers of the review commands (see report_fmt.h). */
#include "report_fmt.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "alloc.h"

int report_fmt_parse_id(const char *s, int64_t *out) {
    if (!s || !*s)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int report_fmt_amount(const char *text, char *buf, size_t buflen) {
    int64_t cents;
    if (!text || alloc_parse_scaled(text, 2, &cents) < 0 || buflen < 24)
        return -1;
    alloc_format_cents(cents, buf);
    return (int)strlen(buf);
}

int report_fmt_thousands(int64_t cents, char *buf, size_t buflen) {
    /* via unsigned so that INT64_MIN has a magnitude */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(mag / 100));
    char tmp[REPORT_FMT_AMOUNT_MAX];
    size_t len = 0;
    if (cents < 0)
        tmp[len++] = '-';
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            tmp[len++] = ',';
        tmp[len++] = digits[i];
    }
    len +=
        (size_t)snprintf(tmp + len, sizeof tmp - len, ".%02llu", (unsigned long long)(mag % 100));
    return snprintf(buf, buflen, "%s", tmp);
}

int report_fmt_thousands_text(const char *text, char *buf, size_t buflen) {
    int64_t cents;
    if (!text || alloc_parse_scaled(text, 2, &cents) < 0)
        return -1;
    return report_fmt_thousands(cents, buf, buflen);
}

void report_fmt_csv_field(FILE *out, const char *s) {
    if (!s)
        return;
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL || (n > 0 && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fwrite(s, 1, n, out);
        return;
    }
    putc('"', out);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            putc('"', out);
        putc(*p, out);
    }
    putc('"', out);
}

void report_fmt_json_string(FILE *out, const char *s) {
    putc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\b':
            fputs("\\b", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                putc(*p, out);
        }
    }
    putc('"', out);
}

/* Decodes the UTF-8 sequence at s (len bytes available); returns its length in
 * bytes (1 for an invalid byte, taken as one narrow character) and sets *cp. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned char c = s[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (n == 0 || n > len) {
        *cp = c;
        return 1;
    }
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = c;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return n;
}

/* Terminal columns of one code point: 2 for the East Asian wide ranges (CJK,
 * Hangul, full-width forms), 1 otherwise. */
static size_t cp_width(uint32_t cp) {
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

size_t report_fmt_display_width(const char *s) {
    size_t w = 0, len = s ? strlen(s) : 0;
    const unsigned char *p = (const unsigned char *)s;
    while (len > 0) {
        uint32_t cp;
        size_t n = utf8_decode(p, len, &cp);
        w += cp_width(cp);
        p += n;
        len -= n;
    }
    return w;
}

void report_fmt_pad(FILE *out, const char *s, size_t width, int right) {
    if (!s)
        s = "";
    size_t w = report_fmt_display_width(s);
    if (w > width) {
        if (width == 0)
            return;
        /* keep whole code points that fit in width - 1 columns, then "~" */
        const unsigned char *p = (const unsigned char *)s;
        size_t len = strlen(s), used = 0, bytes = 0;
        while (bytes < len) {
            uint32_t cp;
            size_t n = utf8_decode(p + bytes, len - bytes, &cp);
            if (used + cp_width(cp) + 1 > width)
                break;
            used += cp_width(cp);
            bytes += n;
        }
        if (right)
            for (size_t i = used + 1; i < width; i++)
                putc(' ', out);
        fwrite(s, 1, bytes, out);
        putc('~', out);
        if (!right)
            for (size_t i = used + 1; i < width; i++)
                putc(' ', out);
        return;
    }
    if (right)
        for (size_t i = w; i < width; i++)
            putc(' ', out);
    fputs(s, out);
    if (!right)
        for (size_t i = w; i < width; i++)
            putc(' ', out);
}

/* ---- SHA-256 -------------------------------------------------------------- */

struct report_fmt_sha256 {
    EVP_MD_CTX *ctx;
};

report_fmt_sha256 *report_fmt_sha256_new(void) {
    report_fmt_sha256 *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        report_fmt_sha256_free(h);
        return NULL;
    }
    return h;
}

void report_fmt_sha256_free(report_fmt_sha256 *h) {
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int report_fmt_sha256_update(report_fmt_sha256 *h, const void *data, size_t len) {
    return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -1;
}

int report_fmt_sha256_line(report_fmt_sha256 *h, const char *version, const char *data_source,
                           const char *project_code, const char *item_code, const char *amount) {
    char amt[REPORT_FMT_AMOUNT_MAX];
    if (amount) {
        if (report_fmt_amount(amount, amt, sizeof amt) < 0)
            return -1;
    } else {
        strcpy(amt, "NULL");
    }
    const char *fields[5] = {version, data_source, project_code, item_code, amt};
    for (int i = 0; i < 5; i++) {
        if (report_fmt_sha256_update(h, fields[i], strlen(fields[i])) < 0 ||
            report_fmt_sha256_update(h, i < 4 ? "|" : "\n", 1) < 0)
            return -1;
    }
    return 0;
}

int report_fmt_sha256_hex(report_fmt_sha256 *h, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
        return -1;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}
