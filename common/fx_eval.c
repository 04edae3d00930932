/* The formula evaluator: a stack machine over fx_value (double or NULL) with
 * the NULL, comparison, function and rounding rules of DESIGN.md 5.5, and the
 * program checker that both the compiler and the deserializer trust.
 * Built with the project flags: no fast-math, and x86-64 code without FMA, so
 * x * 10^n is rounded before round() sees it, as the contract's formula says. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fx_internal.h"

fx_value fx_number(double d) {
    fx_value r = {d, false};
    if (!isfinite(d))
        r = (fx_value){0.0, true};
    return r;
}

fx_value fx_null(void) {
    return (fx_value){0.0, true};
}

fx_value fx_from_cents(int64_t cents) {
    return fx_number((double)cents / 100.0);
}

bool fx_value_true(fx_value v) {
    return !v.null && v.v != 0.0;
}

fx_store_result fx_store_cents(fx_value v, int64_t *cents) {
    if (v.null || !isfinite(v.v))
        return FX_STORE_NULL;
    double r = round(v.v * 100.0);
    /* 9e18 < INT64_MAX: the conversion below is defined */
    if (!(fabs(r) < 9e18))
        return FX_STORE_RANGE;
    int64_t c = (int64_t)r; /* -0.0 converts to 0 */
    if (c > FX_MAX_CENTS || c < -FX_MAX_CENTS)
        return FX_STORE_RANGE;
    *cents = c;
    return FX_STORE_OK;
}

static const double pow10_table[7] = {1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0};

/* ------------------------------------------------------------ the checker */

int fx_program_check(fx_program *p, uint32_t n_slots, char *err, size_t errlen) {
    uint64_t depth = 0, max = 0;
    if (p->n_code == 0) {
        snprintf(err, errlen, "empty program");
        return -1;
    }
    for (uint32_t i = 0; i < p->n_code; i++) {
        const fx_insn *in = &p->code[i];
        uint64_t pops = 0, pushes = 1;
        if (in->aux != 0 && in->op != FX_OP_ROUND) {
            snprintf(err, errlen, "instruction %u: stray operand", i);
            return -1;
        }
        switch (in->op) {
        case FX_OP_CONST:
            if (in->arg >= p->n_consts || !isfinite(p->consts[in->arg])) {
                snprintf(err, errlen, "instruction %u: bad constant %u", i, in->arg);
                return -1;
            }
            pops = 0;
            break;
        case FX_OP_LOAD:
            if (in->arg >= n_slots) {
                snprintf(err, errlen, "instruction %u: slot %u out of range", i, in->arg);
                return -1;
            }
            pops = 0;
            break;
        case FX_OP_NEG:
        case FX_OP_NOT:
        case FX_OP_ABS:
            pops = 1;
            break;
        case FX_OP_ROUND:
            if (in->aux > 6) {
                snprintf(err, errlen, "instruction %u: ROUND digits %u", i, in->aux);
                return -1;
            }
            pops = 1;
            break;
        case FX_OP_ADD:
        case FX_OP_SUB:
        case FX_OP_MUL:
        case FX_OP_DIV:
        case FX_OP_EQ:
        case FX_OP_NE:
        case FX_OP_LT:
        case FX_OP_LE:
        case FX_OP_GT:
        case FX_OP_GE:
        case FX_OP_AND:
        case FX_OP_OR:
            pops = 2;
            break;
        case FX_OP_IF:
            pops = 3;
            break;
        case FX_OP_SUM:
        case FX_OP_MIN:
        case FX_OP_MAX:
        case FX_OP_COALESCE:
            if (in->op != FX_OP_SUM && in->arg == 0) {
                snprintf(err, errlen, "instruction %u: no arguments", i);
                return -1;
            }
            pops = in->arg;
            break;
        default:
            snprintf(err, errlen, "instruction %u: bad opcode %u", i, in->op);
            return -1;
        }
        bool uses_arg = in->op == FX_OP_CONST || in->op == FX_OP_LOAD || in->op == FX_OP_SUM ||
                        in->op == FX_OP_MIN || in->op == FX_OP_MAX || in->op == FX_OP_COALESCE;
        if (!uses_arg && in->arg != 0) {
            snprintf(err, errlen, "instruction %u: stray operand", i);
            return -1;
        }
        if (pops > depth) {
            snprintf(err, errlen, "instruction %u: stack underflow", i);
            return -1;
        }
        depth = depth - pops + pushes;
        if (depth > max)
            max = depth;
    }
    if (depth != 1) {
        snprintf(err, errlen, "program leaves %llu values", (unsigned long long)depth);
        return -1;
    }
    p->max_stack = (uint32_t)max; /* max <= n_code */
    return 0;
}

/* ----------------------------------------------------------- the machine */

/* A result: a non-finite double is NULL. */
static inline fx_value num(double d) {
    fx_value r;
    r.v = d;
    r.null = !isfinite(d);
    return r;
}

static inline fx_value null_value(void) {
    fx_value r = {0.0, true};
    return r;
}

static inline fx_value truth(bool b) {
    fx_value r = {b ? 1.0 : 0.0, false};
    return r;
}

/* Applies a binary operator; a and b are already popped, a the left one. */
static fx_value binary(uint8_t op, fx_value a, fx_value b) {
    if (a.null || b.null)
        return null_value();
    switch (op) {
    case FX_OP_ADD:
        return num(a.v + b.v);
    case FX_OP_SUB:
        return num(a.v - b.v);
    case FX_OP_MUL:
        return num(a.v * b.v);
    case FX_OP_DIV:
        return b.v == 0.0 ? null_value() : num(a.v / b.v);
    case FX_OP_EQ:
        return truth(a.v == b.v);
    case FX_OP_NE:
        return truth(a.v != b.v);
    case FX_OP_LT:
        return truth(a.v < b.v);
    case FX_OP_LE:
        return truth(a.v <= b.v);
    case FX_OP_GT:
        return truth(a.v > b.v);
    case FX_OP_GE:
        return truth(a.v >= b.v);
    case FX_OP_AND:
        return truth(a.v != 0.0 && b.v != 0.0);
    default: /* FX_OP_OR */
        return truth(a.v != 0.0 || b.v != 0.0);
    }
}

fx_value fx_program_run(const fx_program *p, const fx_value *slots, fx_value *st) {
    size_t sp = 0;
    for (uint32_t i = 0; i < p->n_code; i++) {
        const fx_insn *in = &p->code[i];
        switch (in->op) {
        case FX_OP_CONST:
            st[sp++] = num(p->consts[in->arg]);
            break;
        case FX_OP_LOAD: {
            fx_value v = slots[in->arg];
            st[sp++] = v.null ? null_value() : num(v.v);
            break;
        }
        case FX_OP_NEG:
            if (!st[sp - 1].null)
                st[sp - 1].v = -st[sp - 1].v;
            break;
        case FX_OP_NOT:
            if (!st[sp - 1].null)
                st[sp - 1] = truth(st[sp - 1].v == 0.0);
            break;
        case FX_OP_ABS:
            if (!st[sp - 1].null)
                st[sp - 1].v = fabs(st[sp - 1].v);
            break;
        case FX_OP_ROUND: {
            fx_value *x = &st[sp - 1];
            if (!x->null) {
                double scale = pow10_table[in->aux];
                double scaled = x->v * scale;
                *x = isfinite(scaled) ? num(round(scaled) / scale) : null_value();
            }
            break;
        }
        case FX_OP_IF: {
            fx_value c = st[sp - 3], a = st[sp - 2], b = st[sp - 1];
            sp -= 2;
            st[sp - 1] = (!c.null && c.v != 0.0) ? a : b;
            break;
        }
        case FX_OP_SUM: {
            /* non-NULL arguments left to right; once infinite a sum never
             * comes back to a finite value, so checking at the end is enough */
            double s = 0.0;
            for (size_t k = sp - in->arg; k < sp; k++)
                if (!st[k].null)
                    s += st[k].v;
            sp -= in->arg;
            st[sp++] = num(s);
            break;
        }
        case FX_OP_MIN:
        case FX_OP_MAX: {
            fx_value best = null_value();
            for (size_t k = sp - in->arg; k < sp; k++) {
                if (st[k].null)
                    continue;
                if (best.null || (in->op == FX_OP_MIN ? st[k].v < best.v : st[k].v > best.v))
                    best = st[k];
            }
            sp -= in->arg;
            st[sp++] = best;
            break;
        }
        case FX_OP_COALESCE: {
            fx_value first = null_value();
            for (size_t k = sp - in->arg; k < sp; k++)
                if (!st[k].null) {
                    first = st[k];
                    break;
                }
            sp -= in->arg;
            st[sp++] = first;
            break;
        }
        default: {
            fx_value b = st[--sp];
            st[sp - 1] = binary(in->op, st[sp - 1], b);
        }
        }
    }
    return st[0];
}
