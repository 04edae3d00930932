/* A ruleset's formulas and audit rules compiled together: item slots, reference
 * resolution, the dependency graph with its deterministic topological order and
 * cycle paths, and evaluation of one vector. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx_internal.h"
#include "strbuf.h"
#include "util.h"

struct fx_scratch {
    fx_value *stack;
    size_t cap;
};

/* ------------------------------------------------------------ life cycle */

fx_ruleset *fx_ruleset_new(void) {
    return calloc(1, sizeof(fx_ruleset));
}

void fx_ruleset_free(fx_ruleset *rs) {
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n_items; i++) {
        free(rs->items[i].code);
        free(rs->items[i].text);
        fx_program_clear(&rs->items[i].prog);
    }
    free(rs->items);
    for (size_t i = 0; i < rs->n_audits; i++) {
        free(rs->audits[i].code);
        free(rs->audits[i].text);
        fx_program_clear(&rs->audits[i].prog);
    }
    free(rs->audits);
    for (size_t i = 0; i < rs->n_errors; i++) {
        free(rs->errors[i].code);
        free(rs->errors[i].message);
        free(rs->errors[i].text);
    }
    free(rs->errors);
    free(rs->order);
    free(rs->index);
    free(rs);
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

int fx_ruleset_add_item(fx_ruleset *rs, const char *code, bool is_formula, const char *text) {
    if (!rs || !code || rs->attempted || rs->n_items >= UINT32_MAX - 1)
        return -1;
    if (!grow((void **)&rs->items, &rs->cap_items, rs->n_items + 1, sizeof *rs->items))
        return -1;
    fx_item it = {.code = util_strdup(code), .is_formula = is_formula};
    if (is_formula)
        it.text = util_strdup(text ? text : "");
    if (!it.code || (is_formula && !it.text)) {
        free(it.code);
        free(it.text);
        return -1;
    }
    rs->items[rs->n_items++] = it;
    return 0;
}

int fx_ruleset_add_audit(fx_ruleset *rs, const char *code, const char *expr) {
    if (!rs || !code || rs->attempted || rs->n_audits >= UINT32_MAX - 1)
        return -1;
    if (!grow((void **)&rs->audits, &rs->cap_audits, rs->n_audits + 1, sizeof *rs->audits))
        return -1;
    fx_audit a = {.code = util_strdup(code), .text = util_strdup(expr ? expr : "")};
    if (!a.code || !a.text) {
        free(a.code);
        free(a.text);
        return -1;
    }
    rs->audits[rs->n_audits++] = a;
    return 0;
}

/* ------------------------------------------------------------ code index */

static uint64_t hash_code(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int fx_ruleset_build_index(fx_ruleset *rs) {
    size_t cap = 8;
    while (cap < rs->n_items * 2)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    for (size_t i = 0; i < rs->n_items; i++) {
        size_t h = (size_t)hash_code(rs->items[i].code) & (cap - 1);
        while (idx[h] && strcmp(rs->items[idx[h] - 1].code, rs->items[i].code))
            h = (h + 1) & (cap - 1);
        if (!idx[h])
            idx[h] = (uint32_t)i + 1;
    }
    free(rs->index);
    rs->index = idx;
    rs->index_cap = cap;
    return 0;
}

long fx_ruleset_slot(const fx_ruleset *rs, const char *code) {
    if (!rs->index) {
        for (size_t i = 0; i < rs->n_items; i++)
            if (!strcmp(rs->items[i].code, code))
                return (long)i;
        return -1;
    }
    size_t h = (size_t)hash_code(code) & (rs->index_cap - 1);
    while (rs->index[h]) {
        if (!strcmp(rs->items[rs->index[h] - 1].code, code))
            return (long)rs->index[h] - 1;
        h = (h + 1) & (rs->index_cap - 1);
    }
    return -1;
}

int fx_audit_duplicates(const fx_ruleset *rs, bool *dup) {
    size_t cap = 8;
    while (cap < rs->n_audits * 2)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof *idx); /* audit index + 1, 0 = empty */
    if (!idx)
        return -1;
    for (size_t i = 0; i < rs->n_audits; i++) {
        size_t h = (size_t)hash_code(rs->audits[i].code) & (cap - 1);
        while (idx[h] && strcmp(rs->audits[idx[h] - 1].code, rs->audits[i].code))
            h = (h + 1) & (cap - 1);
        dup[i] = idx[h] != 0;
        if (!idx[h])
            idx[h] = (uint32_t)i + 1;
    }
    free(idx);
    return 0;
}

/* ---------------------------------------------------------------- errors */

/* Appends an error; message is taken over. Returns false when out of memory. */
static bool add_error(fx_ruleset *rs, fx_error_source src, const char *code, int line, int column,
                      char *message) {
    if (!message)
        return false;
    char shown[256];
    fx_code_display(code, shown, sizeof shown);
    size_t n = strlen(shown) + strlen(message) + 48;
    char *text = malloc(n);
    char *c = util_strdup(code);
    if (!text || !c ||
        !grow((void **)&rs->errors, &rs->cap_errors, rs->n_errors + 1, sizeof *rs->errors)) {
        free(text);
        free(c);
        free(message);
        return false;
    }
    if (line > 0)
        snprintf(text, n, "%s %d:%d: %s", shown, line, column, message);
    else
        snprintf(text, n, "%s: %s", shown, message);
    fx_error_entry *e = &rs->errors[rs->n_errors++];
    e->code = c;
    e->message = message;
    e->text = text;
    e->pub = (fx_error){src, c, line, column, message, text};
    return true;
}

static char *fmt_message(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

size_t fx_ruleset_error_count(const fx_ruleset *rs) {
    return rs ? rs->n_errors : 0;
}

const fx_error *fx_ruleset_error(const fx_ruleset *rs, size_t i) {
    return rs && i < rs->n_errors ? &rs->errors[i].pub : NULL;
}

/* --------------------------------------------------------------- compile */

/* The formula dependency graph: edge e goes from formula from[e] to the formula
 * it references, to[e]; a node's edges are contiguous (CSR by start[]) in the
 * order its references first appear, with the reference's position. */
typedef struct graph {
    size_t n;      /* nodes: all slots (base items have no edges) */
    size_t *start; /* n + 1 */
    uint32_t *to;
    int *line, *column;
    size_t n_edges, cap_edges;
} graph;

static void graph_free(graph *g) {
    free(g->start);
    free(g->to);
    free(g->line);
    free(g->column);
}

static bool graph_add(graph *g, uint32_t to, int line, int column) {
    size_t need = g->n_edges + 1, cap = g->cap_edges;
    if (need > cap) {
        size_t c = cap;
        if (!grow((void **)&g->to, &c, need, sizeof *g->to))
            return false;
        c = cap;
        if (!grow((void **)&g->line, &c, need, sizeof *g->line))
            return false;
        c = cap;
        if (!grow((void **)&g->column, &c, need, sizeof *g->column))
            return false;
        g->cap_edges = c;
    }
    g->to[g->n_edges] = to;
    g->line[g->n_edges] = line;
    g->column[g->n_edges] = column;
    g->n_edges++;
    return true;
}

/* Compiles one formula or rule text: parses it and resolves its references to
 * slots. Adds its errors; on success stores the program in *prog. For a formula
 * item (graph not NULL) its edges to formula items are added even when another
 * reference is unknown, so cycles are still found. Returns false when out of
 * memory. */
static bool compile_text(fx_ruleset *rs, fx_error_source src, const char *code, const char *text,
                         fx_program *prog, graph *g) {
    fx_parsed pr;
    int r = fx_parse(text, &pr);
    if (r < 0) {
        fx_parsed_clear(&pr);
        return false;
    }
    if (r == 1) {
        bool ok = add_error(rs, src, code, pr.line, pr.column, fmt_message("%s", pr.message));
        fx_parsed_clear(&pr);
        return ok;
    }
    uint32_t *slot_of = malloc((pr.n_refs ? pr.n_refs : 1) * sizeof *slot_of);
    if (!slot_of) {
        fx_parsed_clear(&pr);
        return false;
    }
    bool resolved = true;
    for (size_t k = 0; k < pr.n_refs; k++) {
        long s = fx_ruleset_slot(rs, pr.refs[k].code);
        if (s < 0) {
            char shown[256];
            fx_code_display(pr.refs[k].code, shown, sizeof shown);
            if (!add_error(rs, src, code, pr.refs[k].line, pr.refs[k].column,
                           fmt_message("unknown item %s", shown)))
                goto oom;
            resolved = false;
            continue;
        }
        slot_of[k] = (uint32_t)s;
        if (g && rs->items[s].is_formula &&
            !graph_add(g, (uint32_t)s, pr.refs[k].line, pr.refs[k].column))
            goto oom;
    }
    if (resolved) {
        for (uint32_t i = 0; i < pr.prog.n_code; i++)
            if (pr.prog.code[i].op == FX_OP_LOAD)
                pr.prog.code[i].arg = slot_of[pr.prog.code[i].arg];
        char why[96];
        /* the parser's output always checks; a failure here is a bug */
        if (fx_program_check(&pr.prog, (uint32_t)rs->n_items, why, sizeof why) != 0) {
            if (!add_error(rs, src, code, 0, 0, fmt_message("internal error: %s", why)))
                goto oom;
        } else {
            *prog = pr.prog;
            memset(&pr.prog, 0, sizeof pr.prog);
        }
    }
    free(slot_of);
    fx_parsed_clear(&pr);
    return true;
oom:
    free(slot_of);
    fx_parsed_clear(&pr);
    return false;
}

/* Tarjan's strongly connected components, iteratively (a chain of thousands
 * of formulas must not exhaust the stack). comp[v] gets the component id. */
static bool components(const graph *g, uint32_t *comp) {
    size_t n = g->n;
    uint32_t *index = malloc(n * sizeof *index), *low = malloc(n * sizeof *low);
    uint32_t *stack = malloc(n * sizeof *stack), *call = malloc(n * sizeof *call);
    size_t *edge = malloc(n * sizeof *edge);
    bool *on = calloc(n, sizeof *on);
    bool ok = index && low && stack && call && edge && on;
    if (ok) {
        const uint32_t unset = UINT32_MAX;
        uint32_t next_index = 0, n_comp = 0;
        size_t sp = 0, cp = 0;
        for (size_t v = 0; v < n; v++)
            index[v] = unset;
        for (size_t root = 0; root < n; root++) {
            if (index[root] != unset)
                continue;
            index[root] = low[root] = next_index++;
            stack[sp++] = (uint32_t)root;
            on[root] = true;
            call[cp] = (uint32_t)root;
            edge[cp++] = g->start[root];
            while (cp) {
                uint32_t u = call[cp - 1];
                if (edge[cp - 1] < g->start[u + 1]) {
                    uint32_t w = g->to[edge[cp - 1]++];
                    if (index[w] == unset) {
                        index[w] = low[w] = next_index++;
                        stack[sp++] = w;
                        on[w] = true;
                        call[cp] = w;
                        edge[cp++] = g->start[w];
                    } else if (on[w] && index[w] < low[u]) {
                        low[u] = index[w];
                    }
                    continue;
                }
                cp--;
                if (cp && low[u] < low[call[cp - 1]])
                    low[call[cp - 1]] = low[u];
                if (low[u] == index[u]) {
                    uint32_t w;
                    do {
                        w = stack[--sp];
                        on[w] = false;
                        comp[w] = n_comp;
                    } while (w != u);
                    n_comp++;
                }
            }
        }
    }
    free(index);
    free(low);
    free(stack);
    free(call);
    free(edge);
    free(on);
    return ok;
}

/* Reports every cycle: per strongly connected component with a cycle, the
 * shortest cycle through its first-added item s, found breadth-first, at s's
 * reference to the next item. Returns false when out of memory. */
static bool report_cycles(fx_ruleset *rs, const graph *g) {
    size_t n = g->n, m = n ? n : 1;
    uint32_t *comp = malloc(m * sizeof *comp);
    uint32_t *parent = malloc(m * sizeof *parent);
    size_t *via = malloc(m * sizeof *via); /* the edge that reached a node */
    uint32_t *queue = malloc(m * sizeof *queue), *path = malloc(m * sizeof *path);
    bool *reported = calloc(m, sizeof *reported); /* by component id */
    bool ok = comp && parent && via && queue && path && reported && components(g, comp);
    for (size_t v = 0; ok && v < n; v++)
        parent[v] = UINT32_MAX;
    for (size_t s = 0; ok && s < n; s++) {
        if (reported[comp[s]] || g->start[s] == g->start[s + 1])
            continue;
        /* s is the first slot of its component: search the way back to s,
         * breadth-first inside the component */
        size_t head = 0, tail = 0, back = SIZE_MAX; /* back: the edge into s */
        uint32_t last = 0;
        queue[tail++] = (uint32_t)s;
        parent[s] = (uint32_t)s;
        while (head < tail && back == SIZE_MAX) {
            uint32_t u = queue[head++];
            for (size_t e = g->start[u]; e < g->start[u + 1]; e++) {
                uint32_t w = g->to[e];
                if (comp[w] != comp[s])
                    continue;
                if (w == s) {
                    back = e;
                    last = u;
                    break;
                }
                if (parent[w] != UINT32_MAX)
                    continue;
                parent[w] = u;
                via[w] = e;
                queue[tail++] = w;
            }
        }
        /* the path s -> ... -> last -> s, collected backwards */
        size_t len = 0;
        if (back != SIZE_MAX)
            for (uint32_t v = last; v != s; v = parent[v])
                path[len++] = v;
        for (size_t k = 0; k < tail; k++)
            parent[queue[k]] = UINT32_MAX;
        reported[comp[s]] = true; /* the first slot of a component decides */
        if (back == SIZE_MAX)
            continue; /* a single item without a self reference */
        strbuf b = {0};
        char shown[256];
        fx_code_display(rs->items[s].code, shown, sizeof shown);
        strbuf_addstr(&b, "cycle ");
        strbuf_addstr(&b, shown);
        for (size_t k = len; k-- > 0;) {
            fx_code_display(rs->items[path[k]].code, shown, sizeof shown);
            strbuf_addstr(&b, " -> ");
            strbuf_addstr(&b, shown);
        }
        fx_code_display(rs->items[s].code, shown, sizeof shown);
        strbuf_addstr(&b, " -> ");
        strbuf_addstr(&b, shown);
        /* the position of s's reference to the next item on the path */
        size_t first_edge = len ? via[path[len - 1]] : back;
        if (b.oom || !add_error(rs, FX_ERROR_ITEM, rs->items[s].code, g->line[first_edge],
                                g->column[first_edge], b.data)) {
            if (b.oom)
                strbuf_free(&b);
            ok = false;
        }
    }
    free(comp);
    free(parent);
    free(via);
    free(queue);
    free(path);
    free(reported);
    return ok;
}

/* A binary min-heap of slots: the ready formulas, first-added first. */
static void heap_push(uint32_t *h, size_t *n, uint32_t v) {
    size_t i = (*n)++;
    while (i && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint32_t heap_pop(uint32_t *h, size_t *n) {
    uint32_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = v;
    return top;
}

/* Kahn's topological sort of an acyclic graph, the smallest ready slot first.
 * Fills rs->order. Returns false when out of memory. */
static bool order_formulas(fx_ruleset *rs, const graph *g) {
    size_t n = g->n;
    size_t *indeg = calloc(n + 1, sizeof *indeg);
    size_t *ustart = calloc(n + 2, sizeof *ustart); /* users of each node (reverse CSR) */
    uint32_t *users = malloc((g->n_edges ? g->n_edges : 1) * sizeof *users);
    uint32_t *heap = malloc((n ? n : 1) * sizeof *heap);
    size_t n_formulas = 0;
    for (size_t i = 0; i < n; i++)
        n_formulas += rs->items[i].is_formula;
    rs->order = malloc((n_formulas ? n_formulas : 1) * sizeof *rs->order);
    bool ok = indeg && ustart && users && heap && rs->order;
    if (ok) {
        for (size_t v = 0; v < n; v++) {
            indeg[v] = g->start[v + 1] - g->start[v];
            for (size_t e = g->start[v]; e < g->start[v + 1]; e++)
                ustart[g->to[e] + 2]++;
        }
        for (size_t v = 0; v < n; v++)
            ustart[v + 2] += ustart[v + 1];
        for (size_t v = 0; v < n; v++)
            for (size_t e = g->start[v]; e < g->start[v + 1]; e++)
                users[ustart[g->to[e] + 1]++] = (uint32_t)v;
        size_t hn = 0;
        rs->n_order = 0;
        for (size_t v = 0; v < n; v++)
            if (rs->items[v].is_formula && indeg[v] == 0)
                heap_push(heap, &hn, (uint32_t)v);
        while (hn) {
            uint32_t v = heap_pop(heap, &hn);
            rs->order[rs->n_order++] = v;
            for (size_t k = ustart[v]; k < ustart[v + 1]; k++)
                if (--indeg[users[k]] == 0)
                    heap_push(heap, &hn, users[k]);
        }
    }
    free(indeg);
    free(ustart);
    free(users);
    free(heap);
    return ok;
}

int fx_ruleset_compile(fx_ruleset *rs, char *err, size_t errlen) {
    if (err && errlen)
        err[0] = '\0';
    if (!rs || rs->attempted) {
        if (err)
            snprintf(err, errlen, "ruleset already compiled");
        return -1;
    }
    rs->attempted = true;
    graph g = {.n = rs->n_items};
    bool *dup = NULL;
    bool ok = fx_ruleset_build_index(rs) == 0 &&
              (g.start = calloc(rs->n_items + 1, sizeof *g.start)) != NULL &&
              (dup = calloc(rs->n_audits + 1, sizeof *dup)) != NULL &&
              fx_audit_duplicates(rs, dup) == 0;
    for (size_t i = 0; ok && i < rs->n_items; i++)
        if (fx_ruleset_slot(rs, rs->items[i].code) != (long)i)
            ok = add_error(rs, FX_ERROR_ITEM, rs->items[i].code, 0, 0,
                           fmt_message("duplicate item code"));
    for (size_t i = 0; ok && i < rs->n_audits; i++)
        if (dup[i])
            ok = add_error(rs, FX_ERROR_AUDIT, rs->audits[i].code, 0, 0,
                           fmt_message("duplicate audit rule code"));
    for (size_t i = 0; ok && i < rs->n_items; i++) {
        fx_item *it = &rs->items[i];
        g.start[i] = g.n_edges;
        if (it->is_formula)
            ok = compile_text(rs, FX_ERROR_ITEM, it->code, it->text, &it->prog, &g);
    }
    if (ok)
        g.start[rs->n_items] = g.n_edges;
    ok = ok && report_cycles(rs, &g);
    for (size_t i = 0; ok && i < rs->n_audits; i++)
        ok = compile_text(rs, FX_ERROR_AUDIT, rs->audits[i].code, rs->audits[i].text,
                          &rs->audits[i].prog, NULL);
    if (ok && rs->n_errors == 0)
        ok = order_formulas(rs, &g);
    graph_free(&g);
    free(dup);
    if (!ok) {
        if (err)
            snprintf(err, errlen, "compile ruleset: out of memory");
        return -1;
    }
    if (rs->n_errors) {
        if (err)
            snprintf(err, errlen, "%s", rs->errors[0].text);
        return (int)(rs->n_errors > INT32_MAX ? INT32_MAX : rs->n_errors);
    }
    rs->max_stack = 0;
    for (size_t i = 0; i < rs->n_items; i++)
        if (rs->items[i].prog.max_stack > rs->max_stack)
            rs->max_stack = rs->items[i].prog.max_stack;
    for (size_t i = 0; i < rs->n_audits; i++)
        if (rs->audits[i].prog.max_stack > rs->max_stack)
            rs->max_stack = rs->audits[i].prog.max_stack;
    rs->compiled = true;
    return 0;
}

/* ------------------------------------------------------------- accessors */

size_t fx_ruleset_slot_count(const fx_ruleset *rs) {
    return rs->n_items;
}

const char *fx_ruleset_slot_code(const fx_ruleset *rs, size_t slot) {
    return slot < rs->n_items ? rs->items[slot].code : NULL;
}

bool fx_ruleset_slot_is_formula(const fx_ruleset *rs, size_t slot) {
    return slot < rs->n_items && rs->items[slot].is_formula;
}

const char *fx_ruleset_slot_text(const fx_ruleset *rs, size_t slot) {
    return slot < rs->n_items ? rs->items[slot].text : NULL;
}

size_t fx_ruleset_formula_count(const fx_ruleset *rs) {
    if (rs->compiled)
        return rs->n_order; /* every formula is in the order */
    size_t n = 0;
    for (size_t i = 0; i < rs->n_items; i++)
        n += rs->items[i].is_formula;
    return n;
}

size_t fx_ruleset_order(const fx_ruleset *rs, size_t i) {
    return i < rs->n_order ? rs->order[i] : (size_t)-1;
}

size_t fx_ruleset_audit_count(const fx_ruleset *rs) {
    return rs->n_audits;
}

const char *fx_ruleset_audit_code(const fx_ruleset *rs, size_t i) {
    return i < rs->n_audits ? rs->audits[i].code : NULL;
}

/* ------------------------------------------------------------ evaluation */

fx_scratch *fx_scratch_new(void) {
    return calloc(1, sizeof(fx_scratch));
}

void fx_scratch_free(fx_scratch *s) {
    if (!s)
        return;
    free(s->stack);
    free(s);
}

int fx_ruleset_eval(const fx_ruleset *rs, fx_value *values, fx_value *audits, fx_scratch *scratch) {
    if (!rs || !rs->compiled || (!values && rs->n_items))
        return -1;
    fx_value local[64], *stack = local, *heap = NULL;
    size_t need = rs->max_stack ? rs->max_stack : 1;
    if (scratch) {
        if (scratch->cap < need) {
            fx_value *p = realloc(scratch->stack, need * sizeof *p);
            if (!p)
                return -1;
            scratch->stack = p;
            scratch->cap = need;
        }
        stack = scratch->stack;
    } else if (need > sizeof local / sizeof local[0]) {
        if (!(heap = malloc(need * sizeof *heap)))
            return -1;
        stack = heap;
    }
    for (size_t i = 0; i < rs->n_order; i++) {
        uint32_t slot = rs->order[i];
        values[slot] = fx_program_run(&rs->items[slot].prog, values, stack);
    }
    if (audits)
        for (size_t i = 0; i < rs->n_audits; i++)
            audits[i] = fx_program_run(&rs->audits[i].prog, values, stack);
    free(heap);
    return 0;
}
