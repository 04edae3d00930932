/* The schema migrations compiled into the binaries (generated from schemas/NNN_name.sql). */
#ifndef ALLOC_MIGRATIONS_H
#define ALLOC_MIGRATIONS_H

typedef struct migration {
    int version;      /* NNN of the file name */
    const char *name; /* file name without .sql */
    const char *sql;  /* the whole file */
} migration;

extern const migration migrations[];
extern const int migrations_count;

#endif
