/* Report-item formulas and audit rules (DESIGN.md 5.5): the compiler (tokenizer,
 * recursive-descent parser, dependency order) and the evaluator. Pure, no I/O. */
#ifndef ALLOC_FX_H
#define ALLOC_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ values
 *
 * A formula value is a double or NULL. NULL is the flag, never a NaN: every
 * operation turns a non-finite result into NULL, so v is always finite when
 * null is false. */
typedef struct fx_value {
    double v;  /* meaningful only when !null */
    bool null; /* the SQL NULL of the contract */
} fx_value;

/* A number (a non-finite d gives NULL) and NULL. */
fx_value fx_number(double d);
fx_value fx_null(void);

/* A base item as it enters a formula: (double)cents / 100.0. */
fx_value fx_from_cents(int64_t cents);

/* Whether an audit rule passes: its value is non-NULL and nonzero (a rule whose
 * value is 0 or NULL produces a finding). */
bool fx_value_true(fx_value v);

/* Largest |amount| numeric(18,2) holds, in cents. */
#define FX_MAX_CENTS 999999999999999999LL

typedef enum {
    FX_STORE_OK = 0,    /* *cents holds the stored amount */
    FX_STORE_NULL = 1,  /* the value is NULL: store NULL */
    FX_STORE_RANGE = -1 /* outside numeric(18,2); *cents untouched */
} fx_store_result;

/* The stored value of a formula result: round(v * 100) with C round (half away
 * from zero), as integer cents; a negative zero becomes 0. Pure. */
fx_store_result fx_store_cents(fx_value v, int64_t *cents);

/* ---------------------------------------------------------------- rulesets
 *
 * A ruleset holds every report item of a ruleset (base or formula) and its
 * audit rules. Build it with fx_ruleset_add_item / fx_ruleset_add_audit, then
 * fx_ruleset_compile once; a compiled ruleset is read-only and may be evaluated
 * from many threads at once, each with its own fx_scratch.
 *
 * Every item gets a slot: its index in the order of fx_ruleset_add_item calls.
 * Formula items are evaluated in a topological order of their references; among
 * formulas whose references are all evaluated, the one added first goes first,
 * so adding items by (sort_order, item_code) makes the order deterministic.
 *
 * Language notes (where DESIGN.md 5.5 leaves a choice):
 * - An identifier followed by '(' (whitespace allowed between them) is a
 *   function call and must name one of the seven functions; any other
 *   identifier is an item reference, so an item called Sum is referenced as
 *   `Sum` or `[Sum]`. AND, OR and NOT (any case) are never items: write [AND].
 * - Arity: IF 3, ROUND 2, ABS 1, MIN / MAX / COALESCE at least 1, SUM any
 *   number including none (SUM() is 0, as "0 when none" says).
 * - ROUND's digits must be an integer literal token 0..6 (`2`, `02`; not `2.0`,
 *   `(2)`, `+2` or an item).
 * - Every argument of IF, SUM, ... is evaluated (values have no side effects).
 * - Comparisons do not chain: `A < B < C` is an error (the grammar allows one).
 * - Nesting (parentheses, calls, unary signs, NOT) is limited to
 *   FX_MAX_NESTING levels so that compiling never exhausts the stack.
 * - Lines and columns count from 1; a column counts characters (UTF-8 code
 *   points), a tab is one column.
 * - `=` compares doubles exactly: 0.1 + 0.2 = 0.3 is 0.
 *
 * Compile errors are one line each, "CODE L:C: what", CODE being the formula
 * item or audit rule:
 *   X 1:5: unexpected character '$'
 *   X 1:3: expected a digit after '.'
 *   X 1:1: '[' without a closing ']'
 *   X 1:1: empty item code '[]'
 *   X 1:1: number too large
 *   X 2:4: unexpected end of formula
 *   X 1:3: expected an operand, found ')'
 *   X 1:8: unexpected 'B' after expression
 *   X 1:9: expected ')' after expression
 *   X 1:17: expected ')' after argument list
 *   X 1:7: comparisons cannot be chained (use AND)
 *   X 1:1: unknown function FOO
 *   X 1:1: ROUND expects 2 arguments    (IF 3, ABS 1 argument,
 *                                        MIN/MAX/COALESCE at least 1 argument)
 *   X 1:10: ROUND digits must be an integer literal 0..6
 *   X 1:300: formula nested too deeply (more than 256 levels)
 *   X 1:5: unknown item FOO             (one line per distinct unknown code)
 *   A 1:1: cycle A -> B -> C -> A       (at A's reference to B)
 *   X: duplicate item code              (no position)
 *   R: duplicate audit rule code
 * A formula item with a NULL text is an empty formula ("unexpected end of
 * formula"). Codes are written as in a formula, both as the line's prefix and
 * inside messages: bare when an identifier other than AND/OR/NOT, else in
 * brackets ("[Net Sales] 1:5: unknown item [Gross Sales]"); a function name is
 * shown as the formula spells it, a token cut after 32 bytes.
 * A syntax error stops the parsing of that formula, but every formula and rule
 * is compiled, so one compile reports every broken one. A cycle is reported
 * once per group of mutually dependent formulas: the shortest cycle through
 * the group's first-added item, on that item. A formula that merely depends on
 * a cycle gets no error of its own. */

#define FX_MAX_NESTING 256

typedef struct fx_ruleset fx_ruleset;

/* Per-thread working memory of fx_ruleset_eval. */
typedef struct fx_scratch fx_scratch;

typedef enum { FX_ERROR_ITEM = 0, FX_ERROR_AUDIT = 1 } fx_error_source;

/* One compile error. Owned by the ruleset, valid until it is freed. */
typedef struct fx_error {
    fx_error_source source; /* a formula item or an audit rule */
    const char *code;       /* its code */
    int line, column;       /* 0 when the error has no position (duplicates) */
    const char *message;    /* what is wrong, without the code and position */
    const char *text;       /* the whole line: "CODE L:C: message" */
} fx_error;

/* A new empty ruleset, or NULL when out of memory. Free with fx_ruleset_free,
 * which accepts NULL. */
fx_ruleset *fx_ruleset_new(void);
void fx_ruleset_free(fx_ruleset *rs);

/* Adds an item (slot = number of items added before). text is the formula of a
 * formula item and is ignored for a base item. Copies code and text. Returns 0,
 * or -1 when out of memory or rs is already compiled. Not thread-safe. */
int fx_ruleset_add_item(fx_ruleset *rs, const char *code, bool is_formula, const char *text);

/* Adds an audit rule (index = number of rules added before). Copies both
 * strings. Returns 0, or -1 when out of memory or rs is already compiled. */
int fx_ruleset_add_audit(fx_ruleset *rs, const char *code, const char *expr);

/* Compiles every formula and audit rule, resolves references, orders the
 * formulas and finds cycles. Returns 0 on success; the number of compile errors
 * (> 0), all of them listed by fx_ruleset_error, the first also copied into err;
 * or -1 when out of memory or called twice (err says which). err may be NULL. */
int fx_ruleset_compile(fx_ruleset *rs, char *err, size_t errlen);

/* The compile errors of the last fx_ruleset_compile, in order: duplicates, then
 * each formula item in slot order, cycles, then each audit rule. */
size_t fx_ruleset_error_count(const fx_ruleset *rs);
const fx_error *fx_ruleset_error(const fx_ruleset *rs, size_t i);

/* Shape of a compiled (or deserialized) ruleset. Read-only, thread-safe. */
size_t fx_ruleset_slot_count(const fx_ruleset *rs);
long fx_ruleset_slot(const fx_ruleset *rs, const char *code); /* -1 when unknown */
const char *fx_ruleset_slot_code(const fx_ruleset *rs, size_t slot);
bool fx_ruleset_slot_is_formula(const fx_ruleset *rs, size_t slot);
size_t fx_ruleset_formula_count(const fx_ruleset *rs);
/* The slot of the i-th formula in evaluation order, i < fx_ruleset_formula_count. */
size_t fx_ruleset_order(const fx_ruleset *rs, size_t i);
size_t fx_ruleset_audit_count(const fx_ruleset *rs);
const char *fx_ruleset_audit_code(const fx_ruleset *rs, size_t i);

/* Scratch for fx_ruleset_eval: one per thread, reusable across rulesets. NULL
 * when out of memory; fx_scratch_free accepts NULL. */
fx_scratch *fx_scratch_new(void);
void fx_scratch_free(fx_scratch *s);

/* Evaluates a compiled ruleset on one vector: values has fx_ruleset_slot_count
 * entries; the caller fills the base slots (fx_from_cents, or 0 for a base item
 * with no row) and the formula slots are written in evaluation order, each
 * formula seeing the unrounded results of those before it. Then audit rule i's
 * value goes to audits[i] (audits may be NULL when there are no rules).
 * scratch may be NULL (then memory is allocated per call). Returns 0, or -1
 * when rs is not compiled or out of memory. Thread-safe for distinct scratch. */
int fx_ruleset_eval(const fx_ruleset *rs, fx_value *values, fx_value *audits, fx_scratch *scratch);

/* Serializes a compiled ruleset (codes, kinds, programs, order, audit rules; not
 * the formula texts) into a compact little-endian binary form. *buf is
 * malloc'ed, the caller frees it. Returns 0, or -1 when not compiled or out of
 * memory. The same ruleset always gives the same bytes. */
int fx_ruleset_serialize(const fx_ruleset *rs, unsigned char **buf, size_t *len);

/* Rebuilds a compiled ruleset from fx_ruleset_serialize bytes, validating all
 * of it (bounds, opcodes, stack depths, references, evaluation order, unique
 * codes): garbage gives NULL with the reason in err, never a crash. The result
 * is freed with fx_ruleset_free; its formula texts are NULL. */
fx_ruleset *fx_ruleset_deserialize(const void *buf, size_t len, char *err, size_t errlen);

/* The formula text of a slot (NULL for base items and deserialized rulesets). */
const char *fx_ruleset_slot_text(const fx_ruleset *rs, size_t slot);

#endif
