/* Internals of the fx module shared by its files (fx_parse.c, fx_eval.c,
 * fx_ruleset.c, fx_serial.c): the compiled program form and the ruleset layout. */
#ifndef ALLOC_FX_INTERNAL_H
#define ALLOC_FX_INTERNAL_H

#include "fx.h"

/* Opcodes of the postfix program. The numbers are part of the serialized form:
 * append, never renumber. */
enum {
    FX_OP_CONST = 1, /* push consts[arg] */
    FX_OP_LOAD,      /* push slot arg (before resolution: reference arg) */
    FX_OP_NEG,       /* unary minus */
    FX_OP_ADD,
    FX_OP_SUB,
    FX_OP_MUL,
    FX_OP_DIV,
    FX_OP_EQ,
    FX_OP_NE,
    FX_OP_LT,
    FX_OP_LE,
    FX_OP_GT,
    FX_OP_GE,
    FX_OP_AND,
    FX_OP_OR,
    FX_OP_NOT,
    FX_OP_IF,       /* pops c, a, b */
    FX_OP_SUM,      /* pops arg values (arg >= 0) */
    FX_OP_MIN,      /* pops arg values (arg >= 1) */
    FX_OP_MAX,      /* pops arg values (arg >= 1) */
    FX_OP_COALESCE, /* pops arg values (arg >= 1) */
    FX_OP_ROUND,    /* pops x; aux = digits 0..6 */
    FX_OP_ABS,
    FX_OP_END_ /* one past the last opcode */
};

typedef struct fx_insn {
    uint8_t op;
    uint8_t aux;  /* ROUND digits, else 0 */
    uint32_t arg; /* constant index, slot, or argument count */
} fx_insn;

/* One compiled formula or audit rule: postfix code over a constant pool. */
typedef struct fx_program {
    fx_insn *code;
    uint32_t n_code;
    double *consts;
    uint32_t n_consts;
    uint32_t max_stack; /* set by fx_program_check */
} fx_program;

/* A distinct item reference of one formula, at its first occurrence. */
typedef struct fx_ref {
    char *code;
    int line, column;
} fx_ref;

/* What fx_parse gives: the program with LOAD args indexing refs, or an error. */
typedef struct fx_parsed {
    fx_program prog;
    fx_ref *refs;
    size_t n_refs;
    int line, column; /* of the error */
    char message[192];
} fx_parsed;

/* Parses text into out (zeroed by the call). Returns 0, 1 on a syntax error
 * (out->line/column/message say where and what), or -1 when out of memory.
 * fx_parsed_clear frees what out holds, whatever the result. */
int fx_parse(const char *text, fx_parsed *out);
void fx_parsed_clear(fx_parsed *p);

/* Checks a program against n_slots (opcodes, operands, stack effects, exactly
 * one result) and sets its max_stack. Returns 0, or -1 with the reason in err. */
int fx_program_check(fx_program *p, uint32_t n_slots, char *err, size_t errlen);

/* Runs a checked program; stack holds at least p->max_stack values. */
fx_value fx_program_run(const fx_program *p, const fx_value *slots, fx_value *stack);

void fx_program_clear(fx_program *p);

/* Writes code as a formula would: bare when an identifier other than
 * AND/OR/NOT, else in brackets. Truncates to len. */
void fx_code_display(const char *code, char *buf, size_t len);

typedef struct fx_item {
    char *code;
    char *text; /* formula items; NULL after deserialization */
    bool is_formula;
    fx_program prog; /* formula items, once compiled */
} fx_item;

typedef struct fx_audit {
    char *code;
    char *text;
    fx_program prog;
} fx_audit;

typedef struct fx_error_entry {
    fx_error pub;
    char *code, *message, *text;
} fx_error_entry;

struct fx_ruleset {
    fx_item *items;
    size_t n_items, cap_items;
    fx_audit *audits;
    size_t n_audits, cap_audits;
    bool compiled;   /* compiled without errors: evaluable */
    bool attempted;  /* fx_ruleset_compile was called */
    uint32_t *order; /* formula slots in evaluation order */
    size_t n_order;
    uint32_t max_stack; /* over all programs */
    uint32_t *index;    /* open addressing: slot + 1, 0 = empty */
    size_t index_cap;   /* power of two */
    fx_error_entry *errors;
    size_t n_errors, cap_errors;
};

/* Builds rs->index over the item codes; when a code repeats, the first slot
 * keeps it (so a slot whose fx_ruleset_slot differs is a duplicate). Returns 0,
 * or -1 when out of memory. */
int fx_ruleset_build_index(fx_ruleset *rs);

/* Marks dup[i] for every audit rule whose code an earlier rule already has.
 * Returns 0, or -1 when out of memory. */
int fx_audit_duplicates(const fx_ruleset *rs, bool *dup);

#endif
