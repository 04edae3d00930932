/* alloc-producer import: the command line of every import. Ledger rows, driver
 * values and the files of an import template go through the generic CSV
 * importer (import_engine.c); --kind ruleset goes to import_ruleset
 * (cmd_import_ruleset.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "import_engine.h"
#include "import_template.h"
#include "review.h"
#include "util.h"

static const char import_usage[] =
    "alloc-producer import --period P --kind ledger|drivers --file F.csv [--dry-run]\n"
    "       alloc-producer import --period P --template NAME|--template-file PATH --file F.csv "
    "[--dry-run]\n"
    "       alloc-producer import --kind projects --file F.csv [--dry-run]\n"
    "       alloc-producer import --kind ruleset --file R.json\n"
    "       alloc-producer import --list-templates";

static void print_help(void) {
    char dir[4096];
    int have_dir = import_template_dir(dir, sizeof dir) == 0;
    printf("usage: %s\n\n"
           "Loads a file into the database, all-or-nothing: every row is checked first and\n"
           "any error leaves everything as it was.\n\n"
           "  --kind ledger    CSV of ledger rows into ledger_entry of period P. Header: the\n"
           "                   ledger_entry column names company_code, data_source (the\n"
           "                   data source of some project), budget_item_code, account_code,\n"
           "                   project_code (empty: pending allocation), category, amount (at\n"
           "                   most 2 decimals); optional business_line and period_code (must\n"
           "                   be P when given). Template rows are checked the same way.\n"
           "  --kind drivers   CSV of driver values (driver, project_code, value >= 0, at most\n"
           "                   6 decimals) for period P. Every driver named in the file gets\n"
           "                   exactly the file's values: its earlier values in P are deleted.\n"
           "  --kind projects  CSV of projects, upserted by project_code (no --period):\n"
           "                   project_code, company_code, data_source (required; codes\n"
           "                   starting with # are reserved), business_line and active\n"
           "                   (true/false, yes/no, 1/0) optional: a column the header\n"
           "                   lacks, or an empty active, keeps an existing project's\n"
           "                   value (a new project is active). A project's data source\n"
           "                   and company change only while every period it has ledger\n"
           "                   rows or driver values in is open.\n"
           "  --kind ruleset   a ruleset JSON file (schemas/ruleset.schema.json): validated and\n"
           "                   compiled, then it replaces the ruleset's rows. No --period.\n"
           "  --template NAME  a CSV laid out as template NAME says (a file NAME.json in the\n"
           "                   template directory: column types and constraints, the mapping\n"
           "                   into ledger_entry, pre_sql and post_sql steps).\n"
           "  --template-file PATH   the same with a template file anywhere.\n"
           "  --file F         the file to load ('-' reads standard input)\n"
           "  --period P       the period, YYYY-MM; it must exist and be open\n"
           "  --dry-run        check everything, run the template steps, then roll back\n"
           "  --list-templates list the templates of the template directory\n\n"
           "CSV: RFC 4180 (quotes, doubled quotes, line breaks inside quotes), UTF-8 with or\n"
           "without a byte order mark, LF or CRLF line ends, a header line first. Fields are\n"
           "trimmed of surrounding blanks; an empty field is NULL; lines with only empty\n"
           "fields are skipped. Errors go to stderr, one line each, naming the file line and\n"
           "the column: F.csv:17: column amount: \"12.345\" has more than 2 decimals\n\n"
           "Template directory: %s\n"
           "(ALLOC_TEMPLATE_DIR overrides it; see schemas/templates/README.md.)\n\n"
           "Exit status: 0 imported, 2 bad arguments (a file that cannot be opened among\n"
           "them), 3 the file, a row or the template was refused (nothing changed), 4\n"
           "unknown or closed period, 1 any other failure.\n\n%s",
           import_usage, have_dir ? dir : "(none found)", config_flags_help());
}

/* 1 when name is a template name: [a-z0-9_-]+, so it cannot leave the directory. */
static int valid_template_name(const char *name) {
    if (!*name || strlen(name) > 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The template names (files NAME.json) of dir, sorted; *n of them. The caller
 * frees each and the array. NULL when the directory cannot be read. */
static char **template_names(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char *name = malloc(len - 4);
        if (!name)
            break;
        memcpy(name, e->d_name, len - 5);
        name[len - 5] = '\0';
        if (!valid_template_name(name)) {
            free(name);
            continue;
        }
        if (*n == cap) {
            char **p = realloc(names, 2 * cap * sizeof *names);
            if (!p) {
                free(name);
                break;
            }
            names = p;
            cap *= 2;
        }
        names[(*n)++] = name;
    }
    closedir(d);
    if (names)
        qsort(names, *n, sizeof *names, name_cmp);
    return names;
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* Prints a template's problems: one line each ("PATH: columns[2]: ..."). */
static void print_template_errors(const char *text) {
    fprintf(stderr, "%s\n", text);
}

static int list_templates(void) {
    char dir[4096];
    if (import_template_dir(dir, sizeof dir) < 0) {
        fprintf(stderr,
                "alloc-producer: import: no template directory (%s; set "
                "ALLOC_TEMPLATE_DIR)\n",
                dir);
        return ALLOC_EXIT_RUNTIME;
    }
    size_t n;
    char **names = template_names(dir, &n);
    if (!names) {
        fprintf(stderr, "alloc-producer: import: %s: %s\n", dir, strerror(errno));
        return ALLOC_EXIT_RUNTIME;
    }
    printf("templates in %s:\n", dir);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200], errbuf[4096];
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        import_template *t = import_template_load_file(path, errbuf, sizeof errbuf);
        if (t) {
            printf("  %-16s %s\n", names[i], t->description);
        } else {
            printf("  %-16s (invalid: see stderr)\n", names[i]);
            print_template_errors(errbuf);
            bad = 1;
        }
        import_template_free(t);
    }
    free_names(names, n);
    return bad ? ALLOC_EXIT_VALIDATION : ALLOC_EXIT_OK;
}

/* Finds template NAME in the template directory; writes its path. Returns 0, or
 * ALLOC_EXIT_USAGE after saying which templates there are. */
static int find_template(const char *name, char *path, size_t len) {
    char dir[4096];
    if (!valid_template_name(name))
        return usage_error(import_usage,
                           "import: bad template name '%s' (want letters a-z, digits, _ or -; "
                           "use --template-file for a path)",
                           name);
    if (import_template_dir(dir, sizeof dir) < 0)
        return usage_error(import_usage,
                           "import: no template directory (%s); set ALLOC_TEMPLATE_DIR or use "
                           "--template-file",
                           dir);
    snprintf(path, len, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return 0;
    }
    size_t n;
    char **names = template_names(dir, &n);
    char known[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", names[i]);
    free_names(names, n);
    return usage_error(import_usage, "import: no template '%s' in %s (templates: %s)", name, dir,
                       n ? known : "none");
}

int cmd_import(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    const char *period = NULL, *kind = NULL, *tpl_name = NULL, *tpl_file = NULL, *file = NULL;
    int dry_run = 0, list = 0;
    static const char *const value_flags[] = {"--period", "--kind", "--template", "--template-file",
                                              "--file"};
    const char **values[] = {&period, &kind, &tpl_name, &tpl_file, &file};
    for (int i = 0; i < argc; i++) {
        int matched = 0;
        for (size_t f = 0; f < sizeof value_flags / sizeof value_flags[0] && !matched; f++) {
            const char *v = NULL;
            int got = review_arg(argc, argv, &i, value_flags[f], &v);
            if (got < 0)
                return usage_error(import_usage, "import: %s needs a value", value_flags[f]);
            if (got) {
                if (*values[f])
                    return usage_error(import_usage, "import: %s given twice", value_flags[f]);
                *values[f] = v;
                matched = 1;
            }
        }
        if (matched)
            continue;
        if (!strcmp(argv[i], "--dry-run")) {
            dry_run = 1;
            continue;
        }
        if (!strcmp(argv[i], "--list-templates")) {
            list = 1;
            continue;
        }
        return usage_error(import_usage, "import: unknown argument '%s'", argv[i]);
    }

    if (list) {
        if (period || kind || tpl_name || tpl_file || file || dry_run)
            return usage_error(import_usage, "import: --list-templates takes no other option");
        return list_templates();
    }
    int sources = (kind != NULL) + (tpl_name != NULL) + (tpl_file != NULL);
    if (sources != 1)
        return usage_error(import_usage, sources ? "import: give only one of --kind, --template, "
                                                   "--template-file"
                                                 : "import: one of --kind, --template or "
                                                   "--template-file is required");
    if (!file)
        return usage_error(import_usage, "import: --file is required");

    /* an input file that is not there is a bad argument (exit 2), not a bad file */
    struct stat st;
    if (strcmp(file, "-") != 0 && (stat(file, &st) != 0 || access(file, R_OK) != 0))
        return usage_error(import_usage, "import: cannot open %s: %s", file, strerror(errno));
    if (strcmp(file, "-") != 0 && S_ISDIR(st.st_mode))
        return usage_error(import_usage, "import: cannot open %s: %s", file, strerror(EISDIR));

    if (kind && !strcmp(kind, "ruleset")) {
        if (period)
            return usage_error(import_usage,
                               "import: --period does not apply to --kind ruleset (a ruleset "
                               "belongs to no period)");
        if (dry_run)
            return usage_error(import_usage, "import: --dry-run does not apply to --kind ruleset");
        return import_ruleset(cfg, file);
    }
    int projects = kind && !strcmp(kind, "projects");
    if (kind && !projects && strcmp(kind, "ledger") != 0 && strcmp(kind, "drivers") != 0)
        return usage_error(import_usage,
                           "import: unknown kind '%s' (want ledger, drivers, projects or ruleset)",
                           kind);
    if (projects && period)
        return usage_error(import_usage, "import: --period does not apply to --kind projects "
                                         "(projects belong to no period)");
    if (!projects && !period)
        return usage_error(import_usage, "import: --period is required");
    if (period && !util_period_valid(period))
        return usage_error(import_usage, "import: bad period '%s' (want YYYY-MM)", period);

    char path[4200];
    if (tpl_name) {
        int rc = find_template(tpl_name, path, sizeof path);
        if (rc != 0)
            return rc;
        tpl_file = path;
    }
    char errbuf[8192];
    import_template *t;
    if (tpl_file && access(tpl_file, R_OK) != 0)
        return usage_error(import_usage, "import: cannot open the template %s: %s", tpl_file,
                           strerror(errno));
    if (kind)
        t = import_template_builtin(projects                       ? IMPORT_TARGET_PROJECTS
                                    : strcmp(kind, "drivers") == 0 ? IMPORT_TARGET_DRIVERS
                                                                   : IMPORT_TARGET_LEDGER,
                                    errbuf, sizeof errbuf);
    else
        t = import_template_load_file(tpl_file, errbuf, sizeof errbuf);
    if (!t) {
        print_template_errors(errbuf);
        fprintf(stderr, "alloc-producer: import: the template is not valid; nothing imported\n");
        return ALLOC_EXIT_VALIDATION;
    }

    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        /* a file that is not there is a bad argument, not a bad file (exit 2) */
        int saved = errno;
        import_template_free(t);
        return usage_error(import_usage, "import: cannot open %s: %s", file, strerror(saved));
    }
    int rc = ALLOC_EXIT_RUNTIME;
    db_conn *c = cli_connect_db(cfg, "import");
    if (c) {
        import_request req = {f, strcmp(file, "-") == 0 ? "<stdin>" : file, period, dry_run};
        rc = import_run(c, t, &req);
        db_close(c);
    }
    if (f != stdin)
        fclose(f);
    import_template_free(t);
    return rc;
}
