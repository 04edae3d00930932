/* The formula tokenizer and recursive-descent parser of DESIGN.md 5.5. The
 * parser emits postfix code as it goes (the program is the syntax tree in
 * post-order), so a long chain like 1+1+...+1 never recurses; only nesting
 * does, and nesting is capped at FX_MAX_NESTING. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx_internal.h"

typedef enum {
    TK_NUM,
    TK_IDENT,
    TK_BRACKET,
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_AND,
    TK_OR,
    TK_NOT,
    TK_EOF,
    TK_ERROR /* the tokenizer's error: always the last token */
} tok_kind;

typedef struct token {
    tok_kind kind;
    size_t start, len; /* the token's bytes in the text */
    int line, column;
    double num;   /* TK_NUM */
    bool integer; /* TK_NUM without a '.' */
} token;

typedef struct parser {
    const char *text;
    token *toks;
    size_t n_toks, cap_toks, pos;
    char tok_message[96]; /* the message of the TK_ERROR token */
    fx_parsed *out;
    size_t cap_code, cap_consts, cap_refs;
    int depth;
    int status; /* 0, 1 syntax error, -1 out of memory */
} parser;

/* ---------------------------------------------------------------- helpers */

static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > ((size_t)-1 / 2) / elem)
            return false;
        n *= 2;
    }
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
static bool is_ident_start(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static bool is_ident_char(unsigned char c) {
    return is_ident_start(c) || is_digit(c);
}

/* ASCII case-insensitive comparison of n bytes of s with the upper-case word. */
static bool word_eq(const char *s, size_t n, const char *word) {
    if (strlen(word) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (c != (unsigned char)word[i])
            return false;
    }
    return true;
}

static bool is_keyword(const char *s, size_t n) {
    return word_eq(s, n, "AND") || word_eq(s, n, "OR") || word_eq(s, n, "NOT");
}

/* Length of the UTF-8 sequence starting at s when it is well formed, else 0. */
static size_t utf8_len(const unsigned char *s) {
    size_t n;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Copies n bytes of s for a one-line message: at most limit bytes (cut at a
 * character boundary, then "..."), control characters as spaces. */
static void display_text(const char *s, size_t n, size_t limit, char *buf, size_t len) {
    size_t o = 0, i = 0;
    if (len == 0)
        return;
    while (i < n) {
        if (i >= limit) {
            if (o + 3 < len)
                memcpy(buf + o, "...", 3), o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        size_t k = 1;
        if (c >= 0x80) {
            k = utf8_len((const unsigned char *)s + i);
            if (k == 0 || i + k > n)
                k = 1;
        }
        if (o + k >= len)
            break;
        if (k == 1 && (c < 0x20 || c >= 0x7f))
            buf[o++] = c >= 0x80 ? '?' : ' ';
        else
            memcpy(buf + o, s + i, k), o += k;
        i += k;
    }
    buf[o] = '\0';
}

void fx_code_display(const char *code, char *buf, size_t len) {
    size_t n = strlen(code);
    bool bare = n > 0 && is_ident_start((unsigned char)code[0]) && !is_keyword(code, n);
    for (size_t i = 0; bare && i < n; i++)
        if (!is_ident_char((unsigned char)code[i]))
            bare = false;
    char inner[256];
    display_text(code, n, 200, inner, sizeof inner);
    snprintf(buf, len, bare ? "%s" : "[%s]", inner);
}

/* -------------------------------------------------------------- tokenizer */

typedef struct cursor {
    const char *s;
    size_t i;
    int line, column;
} cursor;

/* Moves past n bytes, counting lines and characters (UTF-8 lead bytes). */
static void advance(cursor *c, size_t n) {
    for (size_t k = 0; k < n; k++) {
        unsigned char b = (unsigned char)c->s[c->i++];
        if (b == '\n') {
            c->line++;
            c->column = 1;
        } else if ((b & 0xC0) != 0x80) {
            c->column++;
        }
    }
}

static bool push_token(parser *ps, const token *t) {
    if (!grow((void **)&ps->toks, &ps->cap_toks, ps->n_toks + 1, sizeof *t))
        return false;
    ps->toks[ps->n_toks++] = *t;
    return true;
}

/* The value of a NUMBER token, exactly rounded by strtod: its digits without
 * the '.' and an exponent ("12.50" -> "1250e-2") keep the conversion free of
 * the locale's decimal point. Returns false when out of memory. */
static bool number_value(const char *s, size_t n, double *out) {
    char small[64], *buf = small;
    if (n + 24 > sizeof small && !(buf = malloc(n + 24)))
        return false;
    size_t o = 0, frac = 0;
    bool after_dot = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            after_dot = true;
            continue;
        }
        buf[o++] = s[i];
        if (after_dot)
            frac++;
    }
    snprintf(buf + o, 24, "e-%zu", frac);
    *out = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return true;
}

/* Splits the text into tokens, ending with TK_EOF or, at the first character
 * that starts no token, TK_ERROR. Returns false when out of memory. */
static bool tokenize(parser *ps) {
    cursor c = {ps->text, 0, 1, 1};
    for (;;) {
        while (is_space((unsigned char)c.s[c.i]))
            advance(&c, 1);
        token t = {.start = c.i, .line = c.line, .column = c.column};
        const char *p = c.s + c.i;
        unsigned char ch = (unsigned char)p[0];
        size_t n = 1;
        if (ch == '\0') {
            t.kind = TK_EOF;
            t.len = 0;
            return push_token(ps, &t);
        } else if (is_digit(ch) || ch == '.') {
            n = 0;
            while (is_digit((unsigned char)p[n]))
                n++;
            t.integer = true;
            if (p[n] == '.') {
                if (!is_digit((unsigned char)p[n + 1])) {
                    advance(&c, n);
                    t.line = c.line;
                    t.column = c.column;
                    t.start = c.i;
                    snprintf(ps->tok_message, sizeof ps->tok_message, "expected a digit after '.'");
                    t.kind = TK_ERROR;
                    return push_token(ps, &t);
                }
                t.integer = false;
                n++;
                while (is_digit((unsigned char)p[n]))
                    n++;
            }
            t.kind = TK_NUM;
            if (!number_value(p, n, &t.num))
                return false;
            if (!isfinite(t.num)) {
                snprintf(ps->tok_message, sizeof ps->tok_message, "number too large");
                t.kind = TK_ERROR;
                return push_token(ps, &t);
            }
        } else if (is_ident_start(ch)) {
            n = 0;
            while (is_ident_char((unsigned char)p[n]))
                n++;
            t.kind = TK_IDENT;
            if (word_eq(p, n, "AND"))
                t.kind = TK_AND;
            else if (word_eq(p, n, "OR"))
                t.kind = TK_OR;
            else if (word_eq(p, n, "NOT"))
                t.kind = TK_NOT;
        } else if (ch == '[') {
            const char *close = strchr(p + 1, ']');
            if (!close || close == p + 1) {
                snprintf(ps->tok_message, sizeof ps->tok_message,
                         close ? "empty item code '[]'" : "'[' without a closing ']'");
                t.kind = TK_ERROR;
                return push_token(ps, &t);
            }
            n = (size_t)(close - p) + 1;
            t.kind = TK_BRACKET;
        } else if (ch == '<' && p[1] == '=') {
            t.kind = TK_LE, n = 2;
        } else if (ch == '<' && p[1] == '>') {
            t.kind = TK_NE, n = 2;
        } else if (ch == '>' && p[1] == '=') {
            t.kind = TK_GE, n = 2;
        } else {
            switch (ch) {
            case '(':
                t.kind = TK_LPAREN;
                break;
            case ')':
                t.kind = TK_RPAREN;
                break;
            case ',':
                t.kind = TK_COMMA;
                break;
            case '+':
                t.kind = TK_PLUS;
                break;
            case '-':
                t.kind = TK_MINUS;
                break;
            case '*':
                t.kind = TK_STAR;
                break;
            case '/':
                t.kind = TK_SLASH;
                break;
            case '=':
                t.kind = TK_EQ;
                break;
            case '<':
                t.kind = TK_LT;
                break;
            case '>':
                t.kind = TK_GT;
                break;
            default: {
                size_t k = ch >= 0x80 ? utf8_len((const unsigned char *)p) : 0;
                if (k)
                    snprintf(ps->tok_message, sizeof ps->tok_message, "unexpected character '%.*s'",
                             (int)k, p);
                else if (ch < 0x20 || ch >= 0x7f)
                    snprintf(ps->tok_message, sizeof ps->tok_message,
                             "unexpected character '\\x%02x'", ch);
                else
                    snprintf(ps->tok_message, sizeof ps->tok_message, "unexpected character '%c'",
                             ch);
                t.kind = TK_ERROR;
                return push_token(ps, &t);
            }
            }
        }
        t.len = n;
        if (!push_token(ps, &t))
            return false;
        advance(&c, n);
    }
}

/* ----------------------------------------------------------------- parser */

static token *cur(parser *ps) {
    return &ps->toks[ps->pos];
}

/* The token after the current one, or NULL at the end. */
static token *peek(parser *ps) {
    return ps->pos + 1 < ps->n_toks ? &ps->toks[ps->pos + 1] : NULL;
}

/* Records a syntax error at t and returns false. At the tokenizer's error
 * token its own message wins: that character is what went wrong. */
static bool fail(parser *ps, const token *t, const char *fmt, ...) {
    fx_parsed *o = ps->out;
    o->line = t->line;
    o->column = t->column;
    if (t->kind == TK_ERROR) {
        snprintf(o->message, sizeof o->message, "%s", ps->tok_message);
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->message, sizeof o->message, fmt, ap);
        va_end(ap);
    }
    ps->status = 1;
    return false;
}

static bool oom(parser *ps) {
    ps->status = -1;
    return false;
}

/* The token's text for a message ("found ')'"). */
static const char *tok_text(parser *ps, const token *t, char *buf, size_t len) {
    if (t->kind == TK_EOF)
        return "end of formula";
    display_text(ps->text + t->start, t->len, 32, buf, len);
    return buf;
}

static bool emit(parser *ps, uint8_t op, uint8_t aux, uint32_t arg) {
    fx_program *p = &ps->out->prog;
    if (!grow((void **)&p->code, &ps->cap_code, (size_t)p->n_code + 1, sizeof *p->code))
        return oom(ps);
    p->code[p->n_code++] = (fx_insn){op, aux, arg};
    return true;
}

static bool emit_const(parser *ps, double v) {
    fx_program *p = &ps->out->prog;
    if (!grow((void **)&p->consts, &ps->cap_consts, (size_t)p->n_consts + 1, sizeof *p->consts))
        return oom(ps);
    p->consts[p->n_consts] = v;
    return emit(ps, FX_OP_CONST, 0, p->n_consts++);
}

/* Emits a load of the item named by t (an identifier or a bracketed code). */
static bool emit_ref(parser *ps, const token *t) {
    const char *s = ps->text + t->start;
    size_t n = t->len;
    if (t->kind == TK_BRACKET)
        s++, n -= 2;
    fx_parsed *o = ps->out;
    size_t r = 0;
    while (r < o->n_refs && !(strlen(o->refs[r].code) == n && !memcmp(o->refs[r].code, s, n)))
        r++;
    if (r == o->n_refs) {
        if (!grow((void **)&o->refs, &ps->cap_refs, o->n_refs + 1, sizeof *o->refs))
            return oom(ps);
        char *code = malloc(n + 1);
        if (!code)
            return oom(ps);
        memcpy(code, s, n);
        code[n] = '\0';
        o->refs[o->n_refs++] = (fx_ref){code, t->line, t->column};
    }
    return emit(ps, FX_OP_LOAD, 0, (uint32_t)r);
}

/* Enters one nesting level at t (a '(', a call, a sign, a NOT). */
static bool enter(parser *ps, const token *t) {
    if (++ps->depth > FX_MAX_NESTING)
        return fail(ps, t, "formula nested too deeply (more than %d levels)", FX_MAX_NESTING);
    return true;
}

typedef struct fx_func {
    const char *name;
    uint8_t op;
    int min_args, max_args; /* max -1: no limit */
} fx_func;

static const fx_func funcs[] = {
    {"SUM", FX_OP_SUM, 0, -1},           {"IF", FX_OP_IF, 3, 3},
    {"ROUND", FX_OP_ROUND, 2, 2},        {"ABS", FX_OP_ABS, 1, 1},
    {"MIN", FX_OP_MIN, 1, -1},           {"MAX", FX_OP_MAX, 1, -1},
    {"COALESCE", FX_OP_COALESCE, 1, -1},
};

static bool p_expr(parser *ps);

/* FUNC '(' [expr (',' expr)*] ')', the current token being the name. */
static bool p_call(parser *ps) {
    token *name = cur(ps);
    const char *s = ps->text + name->start;
    const fx_func *f = NULL;
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        if (word_eq(s, name->len, funcs[i].name))
            f = &funcs[i];
    if (!f) {
        char buf[64];
        return fail(ps, name, "unknown function %s", tok_text(ps, name, buf, sizeof buf));
    }
    if (!enter(ps, name))
        return false;
    ps->pos += 2;
    uint32_t argc = 0;
    int digits = -1;
    token *digits_tok = NULL;
    if (cur(ps)->kind != TK_RPAREN) {
        for (;;) {
            token *t = cur(ps), *next = peek(ps);
            if (f->op == FX_OP_ROUND && argc == 1) {
                /* the digits: a lone integer literal, compiled into the opcode */
                digits_tok = t;
                if (t->kind == TK_NUM && t->integer && next &&
                    (next->kind == TK_RPAREN || next->kind == TK_COMMA)) {
                    digits = t->num <= 6 ? (int)t->num : 7;
                    ps->pos++;
                    argc++;
                    goto after_arg;
                }
            }
            if (!p_expr(ps))
                return false;
            argc++;
        after_arg:
            if (cur(ps)->kind != TK_COMMA)
                break;
            ps->pos++;
        }
    }
    if (cur(ps)->kind != TK_RPAREN)
        return fail(ps, cur(ps), "expected ')' after argument list");
    ps->pos++;
    if (f->min_args == f->max_args && (int64_t)argc != f->min_args)
        return fail(ps, name, "%s expects %d argument%s", f->name, f->min_args,
                    f->min_args == 1 ? "" : "s");
    if ((int64_t)argc < f->min_args)
        return fail(ps, name, "%s expects at least %d argument%s", f->name, f->min_args,
                    f->min_args == 1 ? "" : "s");
    ps->depth--;
    if (f->op == FX_OP_ROUND) {
        if (digits < 0 || digits > 6)
            return fail(ps, digits_tok, "ROUND digits must be an integer literal 0..6");
        return emit(ps, FX_OP_ROUND, (uint8_t)digits, 0);
    }
    return emit(ps, f->op, 0, f->op == FX_OP_IF || f->op == FX_OP_ABS ? 0 : argc);
}

/* primary := NUMBER | ITEM | FUNC '(' args ')' | '(' expr ')' */
static bool p_primary(parser *ps) {
    token *t = cur(ps);
    char buf[64];
    switch (t->kind) {
    case TK_NUM:
        ps->pos++;
        return emit_const(ps, t->num);
    case TK_BRACKET:
        ps->pos++;
        return emit_ref(ps, t);
    case TK_IDENT: {
        token *next = peek(ps);
        if (next && next->kind == TK_LPAREN)
            return p_call(ps);
        ps->pos++;
        return emit_ref(ps, t);
    }
    case TK_LPAREN:
        if (!enter(ps, t))
            return false;
        ps->pos++;
        if (!p_expr(ps))
            return false;
        if (cur(ps)->kind != TK_RPAREN)
            return fail(ps, cur(ps), "expected ')' after expression");
        ps->pos++;
        ps->depth--;
        return true;
    case TK_EOF:
        return fail(ps, t, "unexpected end of formula");
    default:
        return fail(ps, t, "expected an operand, found '%s'", tok_text(ps, t, buf, sizeof buf));
    }
}

/* unary := ('-' | '+') unary | primary */
static bool p_unary(parser *ps) {
    token *t = cur(ps);
    if (t->kind != TK_MINUS && t->kind != TK_PLUS)
        return p_primary(ps);
    if (!enter(ps, t))
        return false;
    ps->pos++;
    if (!p_unary(ps))
        return false;
    ps->depth--;
    return t->kind == TK_MINUS ? emit(ps, FX_OP_NEG, 0, 0) : true;
}

/* mul := unary (('*' | '/') unary)* */
static bool p_mul(parser *ps) {
    if (!p_unary(ps))
        return false;
    for (;;) {
        tok_kind k = cur(ps)->kind;
        if (k != TK_STAR && k != TK_SLASH)
            return true;
        ps->pos++;
        if (!p_unary(ps) || !emit(ps, k == TK_STAR ? FX_OP_MUL : FX_OP_DIV, 0, 0))
            return false;
    }
}

/* add := mul (('+' | '-') mul)* */
static bool p_add(parser *ps) {
    if (!p_mul(ps))
        return false;
    for (;;) {
        tok_kind k = cur(ps)->kind;
        if (k != TK_PLUS && k != TK_MINUS)
            return true;
        ps->pos++;
        if (!p_mul(ps) || !emit(ps, k == TK_PLUS ? FX_OP_ADD : FX_OP_SUB, 0, 0))
            return false;
    }
}

static int cmp_op(tok_kind k) {
    switch (k) {
    case TK_EQ:
        return FX_OP_EQ;
    case TK_NE:
        return FX_OP_NE;
    case TK_LT:
        return FX_OP_LT;
    case TK_LE:
        return FX_OP_LE;
    case TK_GT:
        return FX_OP_GT;
    case TK_GE:
        return FX_OP_GE;
    default:
        return 0;
    }
}

/* cmp := add (('=' | '<>' | '<' | '<=' | '>' | '>=') add)? */
static bool p_cmp(parser *ps) {
    if (!p_add(ps))
        return false;
    int op = cmp_op(cur(ps)->kind);
    if (!op)
        return true;
    ps->pos++;
    if (!p_add(ps) || !emit(ps, (uint8_t)op, 0, 0))
        return false;
    if (cmp_op(cur(ps)->kind))
        return fail(ps, cur(ps), "comparisons cannot be chained (use AND)");
    return true;
}

/* not := 'NOT' not | cmp */
static bool p_not(parser *ps) {
    token *t = cur(ps);
    if (t->kind != TK_NOT)
        return p_cmp(ps);
    if (!enter(ps, t))
        return false;
    ps->pos++;
    if (!p_not(ps))
        return false;
    ps->depth--;
    return emit(ps, FX_OP_NOT, 0, 0);
}

/* and := not ('AND' not)* */
static bool p_and(parser *ps) {
    if (!p_not(ps))
        return false;
    while (cur(ps)->kind == TK_AND) {
        ps->pos++;
        if (!p_not(ps) || !emit(ps, FX_OP_AND, 0, 0))
            return false;
    }
    return true;
}

/* or := and ('OR' and)* ; expr := or */
static bool p_expr(parser *ps) {
    if (!p_and(ps))
        return false;
    while (cur(ps)->kind == TK_OR) {
        ps->pos++;
        if (!p_and(ps) || !emit(ps, FX_OP_OR, 0, 0))
            return false;
    }
    return true;
}

int fx_parse(const char *text, fx_parsed *out) {
    memset(out, 0, sizeof *out);
    parser ps = {.text = text ? text : "", .out = out};
    if (!tokenize(&ps)) {
        free(ps.toks);
        return -1;
    }
    if (p_expr(&ps) && cur(&ps)->kind != TK_EOF) {
        char buf[64];
        fail(&ps, cur(&ps), "unexpected '%s' after expression",
             tok_text(&ps, cur(&ps), buf, sizeof buf));
    }
    free(ps.toks);
    return ps.status;
}

void fx_program_clear(fx_program *p) {
    free(p->code);
    free(p->consts);
    memset(p, 0, sizeof *p);
}

void fx_parsed_clear(fx_parsed *p) {
    fx_program_clear(&p->prog);
    for (size_t i = 0; i < p->n_refs; i++)
        free(p->refs[i].code);
    free(p->refs);
    p->refs = NULL;
    p->n_refs = 0;
}
