/* The export files (DESIGN.md 5.7): a segment's rows formatted in chunks by
 * the formatting pool (CSV text deflated, or xlsx numbers parsed), then
 * written in order into a csv.gz file through stdio or an xlsx workbook
 * through libxlsxwriter; and the file-system steps around them. No database
 * access: the rows come as a PGresult the export thread owns. */
#ifndef ALLOC_CONSUMER_EXPORT_WRITE_H
#define ALLOC_CONSUMER_EXPORT_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>
#include <xlsxwriter.h>

#include "export_fmt.h"
#include "export_internal.h"

/* The gzip level of csv.gz files. */
#define EXPORT_GZIP_LEVEL 6

/* Rows [first, first + count) of a segment, formatted by one pool task. */
typedef struct export_chunk {
    const PGresult *res; /* read-only while the pool runs; owned by the export thread */
    const export_shape *shape;
    int first, count;
    int xlsx;
    /* csv.gz: the rows as CSV text, deflated */
    strbuf deflated;
    uint32_t crc;
    size_t text_len;
    /* xlsx: the numeric columns parsed, numbers[row * ncols + col] */
    double *numbers;
    char err[256]; /* non-empty: the chunk failed */
} export_chunk;

/* A pool task (arg: an export_chunk): formats the chunk's rows, or sets its err. */
void export_write_format_chunk(void *arg);

/* Frees n chunks and their buffers. */
void export_write_chunks_free(export_chunk *chunks, int n);

/* The file being written: csv.gz through stdio, xlsx through libxlsxwriter. */
typedef struct export_writer {
    const export_shape *shape;
    int xlsx;
    long sheet_rows;
    FILE *f;
    export_fmt_gzip gz;
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *head_fmt, *amount_fmt, *int_fmt;
    long sheet_row; /* next row of the current sheet */
    int sheets;
    char err[EXPORT_ERR_MAX];
} export_writer;

/* Creates the file at path (set shape, xlsx and sheet_rows of a zeroed writer
 * first; temporary files of libxlsxwriter go to tmpdir) and writes the header.
 * Returns 0, or -1 with w->err. */
int export_write_open(export_writer *w, const char *path, const char *tmpdir);

/* Writes a segment's formatted chunks in order. Returns 0, or -1 with w->err
 * (also when a chunk failed). */
int export_write_chunks(export_writer *w, export_chunk *chunks, int nchunks);

/* Ends the file: the gzip trailer, flushed and synced; or the xlsx package.
 * Returns 0, or -1 with w->err. The writer holds nothing afterwards. */
int export_write_close(export_writer *w);

/* mkdir -p: creates dir and its missing parents (mode 0755). Returns 0, or -1
 * with errno. */
int export_write_make_dirs(const char *dir);

/* fsyncs a directory, so a rename in it survives a crash. */
void export_write_sync_dir(const char *dir);

/* The lowercase hex SHA-256 of the file at path into hex. Returns 0, or -1
 * with the reason in err. */
int export_write_sha256(const char *path, char hex[65], char *err, size_t errlen);

#endif
