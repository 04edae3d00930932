/* The export files: formatting chunks, csv.gz and xlsx writers (see export_write.h). */
#include "export_write.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

/* ---- the columns of the two tables --------------------------------------------- */

const export_shape export_report_shape = {
    "report_after",
    5,
    4,
    {"version", "data_source", "project_code", "item_code", "amount"},
    {1, 1, 1, 1},
    {EXPORT_CELL_TEXT, EXPORT_CELL_TEXT, EXPORT_CELL_TEXT, EXPORT_CELL_TEXT, EXPORT_CELL_AMOUNT},
    {9, 16, 16, 24, 18},
};

const export_shape export_detail_shape = {
    "alloc_detail",
    4,
    3,
    {"version", "entry_id", "project_code", "amount"},
    {1, 0, 1},
    {EXPORT_CELL_TEXT, EXPORT_CELL_INTEGER, EXPORT_CELL_TEXT, EXPORT_CELL_AMOUNT},
    {9, 14, 16, 16},
};

/* ---- formatting in the pool ------------------------------------------------- */

static void format_csv_chunk(export_chunk *ch) {
    const export_shape *s = ch->shape;
    strbuf text = {0};
    strbuf_reserve(&text, (size_t)ch->count * 64);
    for (int r = ch->first; r < ch->first + ch->count; r++) {
        for (int c = 0; c < s->ncols; c++) {
            if (c)
                strbuf_add(&text, ",", 1);
            if (!PQgetisnull(ch->res, r, c))
                export_fmt_csv_field(&text, PQgetvalue(ch->res, r, c),
                                     (size_t)PQgetlength(ch->res, r, c));
        }
        strbuf_add(&text, "\n", 1);
    }
    if (text.oom) {
        snprintf(ch->err, sizeof ch->err, "out of memory formatting %d rows", ch->count);
    } else {
        ch->text_len = text.len;
        export_fmt_deflate_chunk(text.data, text.len, EXPORT_GZIP_LEVEL, &ch->deflated, &ch->crc,
                                 ch->err, sizeof ch->err);
    }
    strbuf_free(&text);
}

static void format_xlsx_chunk(export_chunk *ch) {
    const export_shape *s = ch->shape;
    ch->numbers = malloc(sizeof *ch->numbers * (size_t)ch->count * (size_t)s->ncols);
    if (!ch->numbers) {
        snprintf(ch->err, sizeof ch->err, "out of memory formatting %d rows", ch->count);
        return;
    }
    for (int r = 0; r < ch->count; r++)
        for (int c = 0; c < s->ncols; c++) {
            double v = 0;
            if (s->kinds[c] != EXPORT_CELL_TEXT && !PQgetisnull(ch->res, ch->first + r, c)) {
                const char *text = PQgetvalue(ch->res, ch->first + r, c);
                char *end;
                v = strtod(text, &end);
                if (end == text || *end) {
                    snprintf(ch->err, sizeof ch->err, "column %s: '%s' is not a number", s->cols[c],
                             text);
                    return;
                }
            }
            ch->numbers[(size_t)r * (size_t)s->ncols + (size_t)c] = v;
        }
}

void export_write_format_chunk(void *arg) {
    export_chunk *ch = arg;
    if (ch->xlsx)
        format_xlsx_chunk(ch);
    else
        format_csv_chunk(ch);
}

void export_write_chunks_free(export_chunk *chunks, int n) {
    for (int i = 0; i < n; i++) {
        strbuf_free(&chunks[i].deflated);
        free(chunks[i].numbers);
    }
    free(chunks);
}

/* ---- the file ------------------------------------------------------------------ */

static int xlsx_fail(export_writer *w, const char *what, lxw_error e) {
    snprintf(w->err, sizeof w->err, "xlsx: %s: %s", what, lxw_strerror(e));
    return -1;
}

/* Starts a new sheet with the header row. */
static int xlsx_new_sheet(export_writer *w) {
    w->ws = workbook_add_worksheet(w->wb, NULL);
    if (!w->ws) {
        snprintf(w->err, sizeof w->err, "xlsx: cannot add sheet %d", w->sheets + 1);
        return -1;
    }
    w->sheets++;
    const export_shape *s = w->shape;
    for (int c = 0; c < s->ncols; c++) {
        lxw_error e = worksheet_set_column(w->ws, (lxw_col_t)c, (lxw_col_t)c, s->widths[c], NULL);
        if (e != LXW_NO_ERROR)
            return xlsx_fail(w, "column width", e);
    }
    worksheet_freeze_panes(w->ws, 1, 0);
    for (int c = 0; c < s->ncols; c++) {
        lxw_error e = worksheet_write_string(w->ws, 0, (lxw_col_t)c, s->cols[c], w->head_fmt);
        if (e != LXW_NO_ERROR)
            return xlsx_fail(w, "header", e);
    }
    w->sheet_row = 1;
    return 0;
}

int export_write_open(export_writer *w, const char *path, const char *tmpdir) {
    const export_shape *s = w->shape;
    if (!w->xlsx) {
        w->f = fopen(path, "wb");
        if (!w->f) {
            snprintf(w->err, sizeof w->err, "creating %.300s: %s", path, strerror(errno));
            return -1;
        }
        unsigned char head[EXPORT_FMT_GZIP_HEADER_LEN];
        export_fmt_gzip_header(head);
        strbuf header = {0};
        for (int c = 0; c < s->ncols; c++) {
            if (c)
                strbuf_add(&header, ",", 1);
            export_fmt_csv_field(&header, s->cols[c], strlen(s->cols[c]));
        }
        strbuf_add(&header, "\n", 1);
        strbuf deflated = {0};
        uint32_t crc = 0;
        int rc = header.oom ? -1
                            : export_fmt_deflate_chunk(header.data, header.len, EXPORT_GZIP_LEVEL,
                                                       &deflated, &crc, w->err, sizeof w->err);
        if (rc == 0) {
            export_fmt_gzip_add(&w->gz, crc, header.len);
            if (fwrite(head, 1, sizeof head, w->f) != sizeof head ||
                fwrite(deflated.data, 1, deflated.len, w->f) != deflated.len) {
                snprintf(w->err, sizeof w->err, "writing %.300s: %s", path, strerror(errno));
                rc = -1;
            }
        } else if (header.oom) {
            snprintf(w->err, sizeof w->err, "out of memory");
        }
        strbuf_free(&header);
        strbuf_free(&deflated);
        return rc;
    }
    lxw_workbook_options opt = {
        .constant_memory = LXW_TRUE, .tmpdir = (char *)tmpdir, .use_zip64 = LXW_FALSE};
    w->wb = workbook_new_opt(path, &opt);
    if (!w->wb) {
        snprintf(w->err, sizeof w->err, "xlsx: cannot create workbook %.300s", path);
        return -1;
    }
    w->head_fmt = workbook_add_format(w->wb);
    w->amount_fmt = workbook_add_format(w->wb);
    w->int_fmt = workbook_add_format(w->wb);
    if (!w->head_fmt || !w->amount_fmt || !w->int_fmt) {
        snprintf(w->err, sizeof w->err, "xlsx: out of memory");
        return -1;
    }
    format_set_bold(w->head_fmt);
    format_set_num_format(w->amount_fmt, "#,##0.00");
    format_set_num_format(w->int_fmt, "0");
    return xlsx_new_sheet(w);
}

int export_write_chunks(export_writer *w, export_chunk *chunks, int nchunks) {
    const export_shape *s = w->shape;
    for (int i = 0; i < nchunks; i++) {
        export_chunk *ch = &chunks[i];
        if (ch->err[0]) {
            snprintf(w->err, sizeof w->err, "%s", ch->err);
            return -1;
        }
        if (!w->xlsx) {
            export_fmt_gzip_add(&w->gz, ch->crc, ch->text_len);
            if (fwrite(ch->deflated.data, 1, ch->deflated.len, w->f) != ch->deflated.len) {
                snprintf(w->err, sizeof w->err, "writing the file: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        for (int r = 0; r < ch->count; r++) {
            if (w->sheet_row >= w->sheet_rows && xlsx_new_sheet(w) < 0)
                return -1;
            lxw_row_t row = (lxw_row_t)w->sheet_row++;
            for (int c = 0; c < s->ncols; c++) {
                if (PQgetisnull(ch->res, ch->first + r, c))
                    continue; /* a NULL amount: an empty cell */
                lxw_error e;
                if (s->kinds[c] == EXPORT_CELL_TEXT)
                    e = worksheet_write_string(w->ws, row, (lxw_col_t)c,
                                               PQgetvalue(ch->res, ch->first + r, c), NULL);
                else
                    e = worksheet_write_number(
                        w->ws, row, (lxw_col_t)c,
                        ch->numbers[(size_t)r * (size_t)s->ncols + (size_t)c],
                        s->kinds[c] == EXPORT_CELL_AMOUNT ? w->amount_fmt : w->int_fmt);
                if (e != LXW_NO_ERROR)
                    return xlsx_fail(w, "writing a cell", e);
            }
        }
    }
    return 0;
}

int export_write_close(export_writer *w) {
    int rc = 0;
    if (w->f) {
        unsigned char tail[EXPORT_FMT_GZIP_FINISH_LEN];
        export_fmt_gzip_finish(&w->gz, tail);
        if (fwrite(tail, 1, sizeof tail, w->f) != sizeof tail || fflush(w->f) != 0 ||
            fsync(fileno(w->f)) != 0) {
            snprintf(w->err, sizeof w->err, "writing the file: %s", strerror(errno));
            rc = -1;
        }
        if (fclose(w->f) != 0 && rc == 0) {
            snprintf(w->err, sizeof w->err, "closing the file: %s", strerror(errno));
            rc = -1;
        }
        w->f = NULL;
    }
    if (w->wb) {
        lxw_error e = workbook_close(w->wb); /* frees the workbook whatever happens */
        w->wb = NULL;
        if (e != LXW_NO_ERROR && rc == 0)
            rc = xlsx_fail(w, "writing the package", e);
    }
    return rc;
}

/* ---- the file system ------------------------------------------------------------ */

int export_write_make_dirs(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

void export_write_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int export_write_sha256(const char *path, char hex[65], char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "reading %.300s for its SHA-256: %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        static const size_t block = 1 << 20;
        unsigned char *buf = malloc(block);
        size_t n;
        int ok = buf != NULL;
        while (ok && (n = fread(buf, 1, block, f)) > 0)
            ok = EVP_DigestUpdate(ctx, buf, n) == 1;
        unsigned char md[32];
        unsigned int mdlen = 0;
        if (ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32) {
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            rc = 0;
        }
        free(buf);
    }
    if (rc < 0)
        snprintf(err, errlen, "SHA-256 of %.300s failed%s%s", path, ferror(f) ? ": " : "",
                 ferror(f) ? strerror(errno) : "");
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}
