/* CSV fields and chunked gzip of the export files (see export_fmt.h). */
#include "export_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

void export_fmt_csv_field(strbuf *b, const char *s, size_t len) {
    if (!s)
        return;
    int quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        strbuf_add(b, s, len);
        return;
    }
    /* worst case: every byte a quote, plus the enclosing pair */
    if (len > (SIZE_MAX - 2) / 2 || strbuf_reserve(b, 2 * len + 2) < 0)
        return;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            *o++ = '"';
        *o++ = s[i];
    }
    *o++ = '"';
    strbuf_added(b, (size_t)(o - (b->data + b->len)));
}

void export_fmt_gzip_header(unsigned char out[EXPORT_FMT_GZIP_HEADER_LEN]) {
    /* magic, CM deflate, no flags, mtime 0, XFL 0, OS 3 (Unix) */
    static const unsigned char header[EXPORT_FMT_GZIP_HEADER_LEN] = {0x1f, 0x8b, 8, 0, 0,
                                                                     0,    0,    0, 0, 3};
    memcpy(out, header, sizeof header);
}

int export_fmt_deflate_chunk(const void *text, size_t len, int level, strbuf *out, uint32_t *crc,
                             char *err, size_t errlen) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits -15: raw deflate, the gzip framing is written by the caller */
    int rc = deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) {
        snprintf(err, errlen, "deflateInit2: %s", zError(rc));
        return -1;
    }
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *in = text;
    size_t left = len;
    int result = 0;
    do {
        /* feed at most 1 GiB at a time: avail_in is a 32-bit count */
        uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
        c = crc32(c, in, step);
        zs.next_in = (unsigned char *)in;
        zs.avail_in = step;
        in += step;
        left -= step;
        int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        do {
            size_t room = deflateBound(&zs, zs.avail_in) + 16;
            if (strbuf_reserve(out, room) < 0) {
                snprintf(err, errlen, "deflate: out of memory (%zu bytes)", out->len + room);
                result = -1;
                break;
            }
            size_t avail = strbuf_room(out);
            zs.next_out = (unsigned char *)out->data + out->len;
            zs.avail_out = avail > (1u << 30) ? (1u << 30) : (uInt)avail;
            uInt before = zs.avail_out;
            rc = deflate(&zs, flush);
            strbuf_added(out, before - zs.avail_out);
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                snprintf(err, errlen, "deflate: %s", zs.msg ? zs.msg : zError(rc));
                result = -1;
                break;
            }
            /* done with this input when it is consumed and the output had room to spare */
        } while (zs.avail_in > 0 || zs.avail_out == 0);
    } while (result == 0 && left > 0);
    deflateEnd(&zs);
    *crc = (uint32_t)c;
    return result;
}

void export_fmt_gzip_add(export_fmt_gzip *g, uint32_t chunk_crc, size_t chunk_len) {
    g->crc = (uint32_t)crc32_combine(g->crc, chunk_crc, (z_off_t)chunk_len);
    g->length += chunk_len;
}

void export_fmt_gzip_finish(const export_fmt_gzip *g,
                            unsigned char out[EXPORT_FMT_GZIP_FINISH_LEN]) {
    /* a final fixed-Huffman block holding only end-of-block: bits 1, 01, 0000000 */
    out[0] = 0x03;
    out[1] = 0x00;
    uint32_t size = (uint32_t)(g->length & 0xffffffffu);
    for (int i = 0; i < 4; i++) {
        out[2 + i] = (unsigned char)(g->crc >> (8 * i));
        out[6 + i] = (unsigned char)(size >> (8 * i));
    }
}
