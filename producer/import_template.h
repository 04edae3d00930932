/* Import templates (schemas/templates/README.md): what a CSV source looks like
 * (its columns, their types and constraints), how its rows map into a target
 * table (ledger_entry or allocation_driver), and the SQL steps around the load.
 * `import --kind ledger|drivers` runs built-in templates; `import --template`
 * runs one read from a JSON file. Loading is pure: no database access. */
#ifndef ALLOC_PRODUCER_IMPORT_TEMPLATE_H
#define ALLOC_PRODUCER_IMPORT_TEMPLATE_H

#include <stddef.h>

/* The type of a source column. Values are checked against it before anything
 * is cast, so a bad value is reported with its line, never a server error. */
typedef enum {
    IMPORT_TYPE_TEXT,
    IMPORT_TYPE_AMOUNT,  /* numeric(18,2): at most 2 decimals */
    IMPORT_TYPE_NUMBER,  /* numeric(18,scale), scale 0..12 (default 6) */
    IMPORT_TYPE_INTEGER, /* bigint */
    IMPORT_TYPE_PERIOD   /* YYYY-MM */
} import_type;

typedef struct import_column {
    char *name;   /* the SQL name of the column in mapping expressions: [a-z_][a-z0-9_]* */
    char *header; /* the header text in the file (matched case-insensitively); = name by default */
    import_type type;
    int scale;      /* decimals allowed: 2 for amount, the scale for number, 0 otherwise */
    int required;   /* the header must hold the column (else it is NULL on every row) */
    int non_empty;  /* every row needs a value */
    char **allowed; /* NULL, or the n_allowed values the column may take (text) */
    size_t n_allowed;
    char *pattern;   /* NULL, or a POSIX regular expression (PostgreSQL ~) the value matches */
    char *min, *max; /* NULL, or numeric bounds as decimal text (numeric types) */
    long max_length; /* 0, or the most characters a value may have */
} import_column;

/* The table an import fills. Projects (`import --kind projects`, built-in only)
 * belong to no period: they are upserted by project_code. */
typedef enum { IMPORT_TARGET_LEDGER, IMPORT_TARGET_DRIVERS, IMPORT_TARGET_PROJECTS } import_target;

/* Where a target column's value comes from. */
typedef enum {
    IMPORT_MAP_NONE,   /* not mapped: NULL (period_code: the --period) */
    IMPORT_MAP_COLUMN, /* a source column (index in columns) */
    IMPORT_MAP_CONST,  /* a constant (text, NULL when value is NULL) */
    IMPORT_MAP_SQL     /* an SQL expression over the typed source columns and $1 (the period) */
} import_map_kind;

typedef struct import_mapping {
    import_map_kind kind;
    size_t column;
    char *value; /* CONST: the constant; SQL: the expression with :period as $1::text */
} import_mapping;

/* The columns of a target table an import may fill. */
#define IMPORT_MAX_TARGET_COLUMNS 9

typedef struct import_target_column {
    const char *name;
    import_type type; /* TEXT, AMOUNT or NUMBER */
    int scale;
    int not_null;        /* the row needs a value (period_code: defaults to --period) */
    int project_ref;     /* the value (when not NULL) must be a project_code of project */
    int data_source_ref; /* the value (when not NULL) must be the data_source of a project */
} import_target_column;

/* A key over source columns that no two rows may share. */
typedef struct import_unique {
    size_t *columns; /* indexes into columns */
    size_t n;
} import_unique;

/* One SQL step with :period turned into $1. */
typedef struct import_sql {
    char *sql;
    int uses_period;
} import_sql;

typedef struct import_template {
    char *name;
    char *description;
    char *origin; /* the file it was read from, or "built-in" */
    import_target target;
    char delimiter;
    int ignore_extra_columns; /* "extra_columns": "ignore" (default: an error) */
    import_column *columns;
    size_t n_columns;
    import_mapping mapping[IMPORT_MAX_TARGET_COLUMNS]; /* by target column index */
    import_unique *unique;
    size_t n_unique;
    import_sql *pre_sql, *post_sql;
    size_t n_pre_sql, n_post_sql;
} import_template;

/* The target table's name and its importable columns (*n of them). */
const char *import_target_table(import_target t);
const import_target_column *import_target_columns(import_target t, size_t *n);

/* Parses a template from JSON text (origin names it in errors). Returns the
 * template, or NULL with one line per problem written to errbuf ("origin:
 * columns[2]: unknown key \"requred\""; lines separated by '\n'). Free with
 * import_template_free (accepts NULL). */
import_template *import_template_parse(const char *json, size_t len, const char *origin,
                                       char *errbuf, size_t errlen);

/* As import_template_parse, from a file. */
import_template *import_template_load_file(const char *path, char *errbuf, size_t errlen);

/* The built-in template of `import --kind ledger`, `--kind drivers` or `--kind projects`. */
import_template *import_template_builtin(import_target t, char *errbuf, size_t errlen);

void import_template_free(import_template *t);

/* Turns the template parameter :period into $1::text in sql, leaving string
 * literals, quoted identifiers, comments and :: casts alone. Returns a malloc'd
 * string (the caller frees) with *uses_period set, or NULL when sql names
 * another parameter (":name"; its name then in bad, bad_len bytes). */
char *import_sql_bind_period(const char *sql, int *uses_period, char *bad, size_t bad_len);

/* The directory templates are read from: $ALLOC_TEMPLATE_DIR, else the first of
 * schemas/templates next to the executable (up to two levels up),
 * ../share/alloc/templates next to it, and ./schemas/templates that exists.
 * Writes it to buf; returns 0, or -1 when none exists. */
int import_template_dir(char *buf, size_t len);

#endif
