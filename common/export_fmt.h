/* Pure pieces of the export files (DESIGN.md 5.7): CSV fields quoted exactly
 * as PostgreSQL's COPY ... (FORMAT csv) quotes them, and a gzip file assembled
 * from chunks deflated independently, so that the chunks of a segment can be
 * compressed in parallel and still form one ordinary gzip member (the pigz
 * layout). The bytes go into a strbuf. No I/O; thread-safe (no shared state). */
#ifndef ALLOC_EXPORT_FMT_H
#define ALLOC_EXPORT_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Appends one CSV field: s[0..len) as is, or quoted with its quotes doubled
 * when it holds a comma, a quote, CR or LF, or is empty (an empty string is
 * "" so that it differs from SQL NULL); s NULL (SQL NULL) appends nothing.
 * These are the rules of COPY ... (FORMAT csv), so an export equals a COPY of
 * the same query byte for byte. */
void export_fmt_csv_field(strbuf *b, const char *s, size_t len);

/* ---- gzip from independently deflated chunks ------------------------------
 * File layout: export_fmt_gzip_header, then each chunk's bytes from
 * export_fmt_deflate_chunk in text order, then export_fmt_gzip_finish. Every
 * chunk is raw deflate ending in a sync flush (byte-aligned, not final), so the
 * chunks concatenate into one deflate stream; the finish writes an empty final
 * block and the trailer (CRC-32 and length of the whole text, combined from the
 * chunks' with export_fmt_gzip_add). */

#define EXPORT_FMT_GZIP_HEADER_LEN 10
#define EXPORT_FMT_GZIP_FINISH_LEN 10

/* The whole text's CRC-32 and length so far. Start from {0, 0}. */
typedef struct export_fmt_gzip {
    uint32_t crc;
    uint64_t length;
} export_fmt_gzip;

/* Writes the 10-byte gzip header (no name, mtime 0, so that equal text gives
 * equal files). */
void export_fmt_gzip_header(unsigned char out[EXPORT_FMT_GZIP_HEADER_LEN]);

/* Deflates text[0..len) at level (0..9 or -1 for zlib's default) as raw
 * deflate ending in a sync flush, appending the bytes to out, and sets *crc to
 * the text's CRC-32. Returns 0, or -1 with the reason in err (zlib failure or
 * out of memory). */
int export_fmt_deflate_chunk(const void *text, size_t len, int level, strbuf *out, uint32_t *crc,
                             char *err, size_t errlen);

/* Adds a chunk (its text's CRC-32 and length) after those added so far. */
void export_fmt_gzip_add(export_fmt_gzip *g, uint32_t chunk_crc, size_t chunk_len);

/* Writes the end of the file: an empty final deflate block and the gzip
 * trailer (CRC-32, length mod 2^32, little-endian). */
void export_fmt_gzip_finish(const export_fmt_gzip *g,
                            unsigned char out[EXPORT_FMT_GZIP_FINISH_LEN]);

#endif
