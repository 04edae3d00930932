#!/usr/bin/env python3
"""An independent evaluation of report-item formulas and audit rules (DESIGN.md 5.5),
for tests/integration/t_formulas.sh. Python standard library only; shares no code
with common/fx_*.c.

    fx_eval.py --run ID          every formula row of report_after and every audit
                                 finding of run ID against this evaluation of the
                                 run's base and roll-up rows (psql, $ALLOC_PG_DSN)
    fx_eval.py --expr TEXT [CODE=VALUE ...]
                                 evaluates one formula (VALUE a number or NULL)
    fx_eval.py --cases FILE...   checks the value cases of tests/fx/cases files
                                 (one-line "FORMULA | INPUTS => EXPECTED" cases)
    fx_eval.py --add-random IN OUT SEED N
                                 copies ruleset file IN to OUT with N random
                                 formula items (R000...) and N / 5 random warning
                                 audit rules over its items: the whole grammar,
                                 .5 boundaries, division by zero, NULLs

--run reads the rules as they are now: check a run before its rules change.
It prints one line per mismatch (version, data source, project, item or rule,
both values) and a summary; exits 0 when everything matches, 1 otherwise.

Semantics, from DESIGN.md 5.5: values are IEEE doubles (Python floats) or NULL
(None); a base item enters as cents / 100.0, 0 when it has no row; binary
operators evaluate left to right; x / 0 is NULL; NULL propagates through
arithmetic, comparisons, AND, OR, NOT; comparisons and logic give 1 or 0;
IF(c, a, b); SUM of the non-NULL arguments (0 when none); MIN/MAX ignore NULLs;
COALESCE; ROUND(x, n) = C round(x * 10^n) / 10^n with n an integer literal 0..6;
ABS; every non-finite result is NULL; the stored value is C round(x * 100) cents.
Where the contract is silent this follows common/fx.h's documented choices:
comparisons do not chain, an identifier followed by '(' is a function, arities
IF 3 / ROUND 2 / ABS 1 / MIN, MAX, COALESCE >= 1 / SUM >= 0, and a stored value
beyond numeric(18,2) is NULL.
"""
import json
import math
import os
import re
import subprocess
import sys
from decimal import Decimal

FUNCS = {"SUM", "IF", "ROUND", "ABS", "MIN", "MAX", "COALESCE"}
KEYWORDS = {"AND", "OR", "NOT"}
MAX_CENTS = 999999999999999999
MAX_NESTING = 256
sys.setrecursionlimit(100000)


class FxError(Exception):
    pass


# ---------------------------------------------------------------- tokenizer

def tokenize(text):
    """[(kind, value, line, column)]: kind NUM (value: the literal text), ITEM
    (value: the code), IDENT (a bare identifier: keyword, function or item),
    OP (value: the operator or punctuation), END."""
    toks = []
    i, line, col = 0, 1, 1
    n = len(text)

    def adv(k):
        nonlocal i, line, col
        for _ in range(k):
            if text[i] == "\n":
                line += 1
                col = 1
            else:
                col += 1
            i += 1

    while True:
        while i < n and text[i] in " \t\r\n":
            adv(1)
        if i >= n:
            toks.append(("END", None, line, col))
            return toks
        c = text[i]
        start = (line, col)
        if c.isascii() and (c.isdigit() or c == "."):
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            if j < n and text[j] == ".":
                k = j + 1
                while k < n and text[k].isascii() and text[k].isdigit():
                    k += 1
                if k == j + 1:
                    raise FxError("%d:%d: a digit must follow '.'" % (line, col + (j - i) + 1))
                j = k
            toks.append(("NUM", text[i:j]) + start)
            adv(j - i)
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(("IDENT", text[i:j]) + start)
            adv(j - i)
        elif c == "[":
            j = text.find("]", i + 1)
            if j < 0:
                raise FxError("%d:%d: '[' without ']'" % start)
            if j == i + 1:
                raise FxError("%d:%d: empty item code" % start)
            toks.append(("ITEM", text[i + 1:j]) + start)
            adv(j + 1 - i)
        elif text.startswith(("<>", "<=", ">="), i):
            toks.append(("OP", text[i:i + 2]) + start)
            adv(2)
        elif c in "=<>+-*/(),":
            toks.append(("OP", c) + start)
            adv(1)
        else:
            raise FxError("%d:%d: unexpected character %r" % (start[0], start[1], c))


# ------------------------------------------------------------------- parser
# AST nodes are tuples: ("num", float) ("item", code) ("neg", e) ("pos", e)
# ("not", e) ("bin", op, a, b) ("call", NAME, [args]) ("round", e, digits)

class Parser:
    def __init__(self, text):
        self.toks = tokenize(text)
        self.p = 0
        self.depth = 0

    def nest(self, t):
        """One more level of parentheses, call, unary sign or NOT (common/fx.h
        limits them to 256 levels)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(t, "formula nested too deeply")

    def peek(self, k=0):
        return self.toks[min(self.p + k, len(self.toks) - 1)]

    def take(self):
        t = self.toks[self.p]
        self.p += 1
        return t

    def is_kw(self, t, kw):
        return t[0] == "IDENT" and t[1].upper() == kw

    def fail(self, t, what):
        raise FxError("%d:%d: %s" % (t[2], t[3], what))

    def parse(self):
        e = self.p_or()
        if self.peek()[0] != "END":
            self.fail(self.peek(), "unexpected %r after expression" % (self.peek()[1],))
        return e

    def p_or(self):
        e = self.p_and()
        while self.is_kw(self.peek(), "OR"):
            self.take()
            e = ("bin", "OR", e, self.p_and())
        return e

    def p_and(self):
        e = self.p_not()
        while self.is_kw(self.peek(), "AND"):
            self.take()
            e = ("bin", "AND", e, self.p_not())
        return e

    def p_not(self):
        if self.is_kw(self.peek(), "NOT"):
            self.nest(self.take())
            e = ("not", self.p_not())
            self.depth -= 1
            return e
        return self.p_cmp()

    def p_cmp(self):
        e = self.p_add()
        t = self.peek()
        if t[0] == "OP" and t[1] in ("=", "<>", "<", "<=", ">", ">="):
            self.take()
            e = ("bin", t[1], e, self.p_add())
            t2 = self.peek()
            if t2[0] == "OP" and t2[1] in ("=", "<>", "<", "<=", ">", ">="):
                self.fail(t2, "comparisons cannot be chained")
        return e

    def p_add(self):
        e = self.p_mul()
        while self.peek()[0] == "OP" and self.peek()[1] in "+-":
            op = self.take()[1]
            e = ("bin", op, e, self.p_mul())
        return e

    def p_mul(self):
        e = self.p_unary()
        while self.peek()[0] == "OP" and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            e = ("bin", op, e, self.p_unary())
        return e

    def p_unary(self):
        t = self.peek()
        if t[0] == "OP" and t[1] in "+-":
            self.nest(self.take())
            e = ("neg" if t[1] == "-" else "pos", self.p_unary())
            self.depth -= 1
            return e
        return self.p_primary()

    def p_primary(self):
        t = self.take()
        if t[0] == "NUM":
            return ("num", float(t[1]))
        if t[0] == "ITEM":
            return ("item", t[1])
        if t[0] == "IDENT":
            if t[1].upper() in KEYWORDS:
                self.fail(t, "expected an operand, found %s" % t[1])
            nxt = self.peek()
            if nxt[0] == "OP" and nxt[1] == "(":
                name = t[1].upper()
                if name not in FUNCS:
                    self.fail(t, "unknown function %s" % t[1])
                self.nest(self.take())
                args, arg_toks = [], []
                if not (self.peek()[0] == "OP" and self.peek()[1] == ")"):
                    while True:
                        arg_toks.append(self.peek())
                        args.append(self.p_or())
                        if self.peek()[0] == "OP" and self.peek()[1] == ",":
                            self.take()
                            continue
                        break
                if not (self.peek()[0] == "OP" and self.peek()[1] == ")"):
                    self.fail(self.peek(), "expected ')' after argument list")
                self.take()
                self.depth -= 1
                want = {"IF": (3, 3), "ROUND": (2, 2), "ABS": (1, 1), "SUM": (0, None)}.get(name, (1, None))
                if len(args) < want[0] or (want[1] is not None and len(args) > want[1]):
                    self.fail(t, "%s: wrong number of arguments" % name)
                if name == "ROUND":
                    d = arg_toks[1]
                    if args[1][0] != "num" or d[0] != "NUM" or "." in d[1] or int(d[1]) > 6:
                        self.fail(d, "ROUND digits must be an integer literal 0..6")
                    return ("round", args[0], int(d[1]))
                return ("call", name, args)
            return ("item", t[1])
        if t[0] == "OP" and t[1] == "(":
            self.nest(t)
            e = self.p_or()
            if not (self.peek()[0] == "OP" and self.peek()[1] == ")"):
                self.fail(self.peek(), "expected ')'")
            self.take()
            self.depth -= 1
            return e
        self.fail(t, "expected an operand, found %s" % ("end of formula" if t[0] == "END" else repr(t[1])))


def parse(text):
    return Parser(text).parse()


def refs(node, out):
    """Adds the item codes node refers to."""
    k = node[0]
    if k == "item":
        out.add(node[1])
    elif k in ("neg", "pos", "not"):
        refs(node[1], out)
    elif k == "bin":
        refs(node[2], out)
        refs(node[3], out)
    elif k == "call":
        for a in node[2]:
            refs(a, out)
    elif k == "round":
        refs(node[1], out)
    return out


# ---------------------------------------------------------------- evaluator

def c_round(y):
    """C round(): half away from zero, decided on the double itself (no +0.5
    addition, which rounds wrongly near .5)."""
    r = math.trunc(y)
    if abs(y - r) >= 0.5:
        r += 1 if y > 0 else -1
    return math.copysign(float(r), y)  # round(-0.4) is -0.0


def fin(v):
    """A value: non-finite becomes NULL."""
    if v is None or not math.isfinite(v):
        return None
    return v


def evaluate(node, env):
    """env(code) -> float or None."""
    k = node[0]
    if k == "num":
        return fin(node[1])
    if k == "item":
        return env(node[1])
    if k == "neg":
        v = evaluate(node[1], env)
        return None if v is None else -v
    if k == "pos":
        return evaluate(node[1], env)
    if k == "not":
        v = evaluate(node[1], env)
        return None if v is None else (1.0 if v == 0 else 0.0)
    if k == "bin":
        op = node[1]
        a = evaluate(node[2], env)  # left to right
        b = evaluate(node[3], env)
        if a is None or b is None:
            return None
        if op == "+":
            return fin(a + b)
        if op == "-":
            return fin(a - b)
        if op == "*":
            return fin(a * b)
        if op == "/":
            return None if b == 0 else fin(a / b)
        if op == "AND":
            return 1.0 if (a != 0 and b != 0) else 0.0
        if op == "OR":
            return 1.0 if (a != 0 or b != 0) else 0.0
        return 1.0 if {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b,
                       ">": a > b, ">=": a >= b}[op] else 0.0
    if k == "round":
        x = evaluate(node[1], env)
        if x is None:
            return None
        p = 10.0 ** node[2]  # exact for 0..6
        y = fin(x * p)
        return None if y is None else fin(c_round(y) / p)
    if k == "call":
        name = node[1]
        vals = [evaluate(a, env) for a in node[2]]
        if name == "IF":
            return vals[1] if (vals[0] is not None and vals[0] != 0) else vals[2]
        if name == "SUM":
            s = 0.0
            for v in vals:
                if v is not None:
                    s = s + v
                    if not math.isfinite(s):
                        return None
            return s
        if name == "ABS":
            return None if vals[0] is None else abs(vals[0])
        if name == "COALESCE":
            for v in vals:
                if v is not None:
                    return v
            return None
        present = [v for v in vals if v is not None]
        if not present:
            return None
        m = present[0]
        for v in present[1:]:
            if (v < m) if name == "MIN" else (v > m):
                m = v
        return m
    raise AssertionError(node)


def stored_cents(v):
    """The stored numeric(18,2) of a value, as integer cents, or None (NULL)."""
    if v is None:
        return None
    y = v * 100.0
    if not math.isfinite(y):
        return None
    c = int(c_round(y))
    if abs(c) > MAX_CENTS:
        return None
    return c


class Ruleset:
    """Formula items and audit rules, parsed; base items are everything else."""

    def __init__(self, items, audits):
        # items: {code: (kind, formula)}; audits: {rule_code: expr}
        self.kinds = {c: k for c, (k, _) in items.items()}
        self.formulas, self.audits, self.errors = {}, {}, []
        for code, (kind, text) in items.items():
            if kind == "formula":
                try:
                    self.formulas[code] = parse(text or "")
                except FxError as e:
                    self.errors.append("%s %s" % (code, e))
        for code, text in audits.items():
            try:
                self.audits[code] = parse(text)
            except FxError as e:
                self.errors.append("audit %s %s" % (code, e))
        for code, node in list(self.formulas.items()) + list(self.audits.items()):
            for r in refs(node, set()):
                if r not in self.kinds:
                    self.errors.append("%s: unknown item %s" % (code, r))

    def eval_vector(self, base):
        """base: {code: cents}. Returns ({formula code: value}, {rule: value})."""
        done, busy = {}, set()

        def env(code):
            if code in self.formulas:
                if code not in done:
                    if code in busy:
                        raise FxError("cycle through %s" % code)
                    busy.add(code)
                    done[code] = evaluate(self.formulas[code], env)
                    busy.discard(code)
                return done[code]
            return base.get(code, 0) / 100.0

        values = {code: env(code) for code in self.formulas}
        audits = {code: evaluate(node, env) for code, node in self.audits.items()}
        return values, audits


# ------------------------------------------------------------------ --run

def psql_json(query, *params):
    """Runs a query returning one JSON value (psql, $ALLOC_PG_DSN) and decodes it."""
    args = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", os.environ["ALLOC_PG_DSN"]]
    for i, p in enumerate(params):
        args += ["-v", "p%d=%s" % (i + 1, p)]
    out = subprocess.run(args, input=query, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("fx_eval: psql failed: %s" % out.stderr.strip())
    return json.loads(out.stdout)


def cents_of(text):
    return int(Decimal(text) * 100)


def show(c):
    if c is None:
        return "NULL"
    return "%s%d.%02d" % ("-" if c < 0 else "", abs(c) // 100, abs(c) % 100)


def check_run(run_id):
    meta = psql_json("SELECT row_to_json(r) FROM (SELECT ruleset, status FROM alloc_run "
                     "WHERE run_id = :'p1') r", run_id)
    if not meta:
        sys.exit("fx_eval: run %s not found" % run_id)
    rs = meta["ruleset"]
    items = psql_json("SELECT coalesce(json_object_agg(item_code, json_build_array(kind, formula)), '{}') "
                      "FROM report_item WHERE ruleset = :'p1'", rs)
    audit_rows = psql_json("SELECT coalesce(json_object_agg(rule_code, json_build_array(expr, severity, "
                           "message)), '{}') FROM audit_rule WHERE ruleset = :'p1'", rs)
    ruleset = Ruleset({c: tuple(v) for c, v in items.items()},
                      {c: v[0] for c, v in audit_rows.items()})
    problems = list(ruleset.errors)
    rows = psql_json("SELECT coalesce(json_agg(json_build_array(a.version, a.data_source, a.project_code, "
                     "a.item_code, a.amount::text, i.kind)), '[]') FROM report_after a "
                     "LEFT JOIN report_item i ON i.ruleset = :'p2' AND i.item_code = a.item_code "
                     "WHERE a.run_id = :'p1'", run_id, rs)
    findings = psql_json("SELECT coalesce(json_agg(json_build_array(version, data_source, project_code, "
                         "rule_code, severity, message)), '[]') FROM audit_finding "
                         "WHERE run_id = :'p1' AND rule_code <> 'unallocated'", run_id)
    base, got = {}, {}
    for v, ds, p, item, amount, kind in rows:
        key = (v, ds, p)
        if kind == "base":
            base.setdefault(key, {})[item] = cents_of(amount)
        elif kind == "formula":
            got.setdefault(key, {})[item] = None if amount is None else cents_of(amount)
        else:
            problems.append("%s/%s/%s: item %s of report_after is not in ruleset %s" % (v, ds, p, item, rs))
    got_findings = {}
    for v, ds, p, rule, sev, msg in findings:
        k = (v, ds, p, rule)
        if k in got_findings:
            problems.append("%s/%s/%s: finding %s recorded twice" % k)
        got_findings[k] = (sev, msg)
    for key in got:
        if key not in base:
            problems.append("%s/%s/%s: formula rows without any base row" % key)
    nvalues = nrules = nfindings = 0
    for key in sorted(base):
        values, audits = ruleset.eval_vector(base[key])
        have = got.get(key, {})
        for code, value in values.items():
            want = stored_cents(value)
            nvalues += 1
            if code not in have:
                problems.append("%s/%s/%s %s: no formula row (expected %s)" % (key + (code, show(want))))
            elif have[code] != want:
                problems.append("%s/%s/%s %s: report_after has %s, expected %s (unrounded %r)"
                                % (key + (code, show(have[code]), show(want), value)))
        for code in have:
            if code not in values:
                problems.append("%s/%s/%s %s: unexpected formula row" % (key + (code,)))
        for code, value in audits.items():
            nrules += 1
            fails = value is None or value == 0
            k = key + (code,)
            if fails:
                nfindings += 1
                sev, msg = audit_rows[code][1], audit_rows[code][2]
                if k not in got_findings:
                    problems.append("%s/%s/%s rule %s: no finding, expected one (value %r)" % (k + (value,)))
                elif got_findings[k] != (sev, msg):
                    problems.append("%s/%s/%s rule %s: finding has %r, expected %r" % (k + (got_findings[k], (sev, msg))))
            elif k in got_findings:
                problems.append("%s/%s/%s rule %s: finding recorded, but the rule holds (value %r)" % (k + (value,)))
    for k in got_findings:
        if k[:3] not in base:
            problems.append("%s/%s/%s rule %s: finding on a vector without base rows" % k)
        elif k[3] not in audit_rows:
            problems.append("%s/%s/%s rule %s: finding of an unknown rule" % k)
    for line in problems[:50]:
        print("mismatch: " + line)
    if len(problems) > 50:
        print("mismatch: ... and %d more" % (len(problems) - 50))
    print("vectors %d, formula values %d, audit evaluations %d, findings expected %d, found %d, "
          "mismatches %d" % (len(base), nvalues, nrules, nfindings, len(got_findings), len(problems)))
    return 1 if problems else 0


# -------------------------------------------------------------- --expr, --cases

def parse_inputs(text):
    """'A=1 [Net Sales]=2.5 B=NULL' -> {code: value}."""
    out = {}
    for code, val in re.findall(r"(\[[^\]]*\]|[^=\s]+)=(\S+)", text):
        if code.startswith("[") and code.endswith("]"):
            code = code[1:-1]
        if val.upper() == "NULL":
            out[code] = None
        else:
            out[code] = fin(float(val))
    return out


def eval_text(text, inputs):
    node = parse(text)
    for r in refs(node, set()):
        if r not in inputs:
            raise FxError("unknown item %s" % r)
    return evaluate(node, lambda c: inputs[c])


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def check_cases(files):
    """The one-line cases of tests/fx/cases (block cases and exact compile error
    texts are common/fx's own business and are skipped; an expected error only
    has to be an error here too)."""
    bad = n = 0
    for path in files:
        in_block = False
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("ruleset "):
                in_block = True
                continue
            if in_block:
                in_block = line != "end"
                continue
            if " => " not in line:
                continue
            left, _, expected = line.rpartition(" => ")
            formula, inputs = left, ""
            if " | " in left:
                formula, _, inputs = left.rpartition(" | ")
            n += 1
            where = "%s:%d: %s" % (os.path.basename(path), lineno, line)
            try:
                v = eval_text(unescape(formula), parse_inputs(inputs))
            except FxError as e:
                if not expected.startswith("error:"):
                    bad += 1
                    print("case %s: compile error %s" % (where, e))
                continue
            exp = expected.split()
            if exp[0] == "error:":
                bad += 1
                print("case %s: compiles here (value %r)" % (where, v))
            elif exp[0] == "cents":
                c = stored_cents(v)
                want = exp[1]
                if want == "RANGE":
                    ok = v is not None and abs(c_round(v * 100.0)) > MAX_CENTS
                else:
                    ok = (c is None and want == "NULL") or (c is not None and want != "NULL" and c == int(want))
                if not ok:
                    bad += 1
                    print("case %s: got cents %s" % (where, c))
            elif exp[0] == "NULL":
                if v is not None:
                    bad += 1
                    print("case %s: got %r" % (where, v))
            else:
                exact = exp[0] == "exact"
                want = float(exp[1] if exact else exp[0])
                if v is None:
                    ok = False
                elif exact:
                    ok = v == want and math.copysign(1, v) == math.copysign(1, want)
                else:
                    ok = abs(v - want) <= 1e-9 * max(1.0, abs(want))
                if not ok:
                    bad += 1
                    print("case %s: got %r" % (where, v))
    print("cases %d, failed %d" % (n, bad))
    return 1 if bad else 0


def random_formula(rng, depth, codes):
    """A random formula over codes, in the whole DESIGN.md 5.5 grammar."""
    def ref():
        c = rng.choice(codes)
        bare = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c) and c.upper() not in KEYWORDS
        return c if bare else "[%s]" % c
    if depth <= 0 or rng.random() < 0.25:
        return ref() if rng.random() < 0.6 else rng.choice(
            ["0", "1", "2", ".5", "0.5", "100", "0.005", "0.015", "1.005", "2.675", "3", "1000000", "0.1"])
    e = lambda: random_formula(rng, depth - 1, codes)
    args = lambda lo, hi: ", ".join(e() for _ in range(rng.randint(lo, hi)))
    return rng.choice([
        lambda: "%s %s %s" % (e(), rng.choice("+-*/"), e()),
        lambda: "(%s %s %s)" % (e(), rng.choice(["=", "<>", "<", "<=", ">", ">="]), e()),
        lambda: "(%s %s %s)" % (e(), rng.choice(["AND", "or", "And"]), e()),
        lambda: "(NOT %s)" % e(),
        lambda: "-%s" % e(),
        lambda: "IF(%s, %s, %s)" % (e(), e(), e()),
        lambda: "sum(%s)" % args(0, 3),
        lambda: "MIN(%s)" % args(1, 3),
        lambda: "Max(%s)" % args(1, 3),
        lambda: "COALESCE(%s)" % args(1, 3),
        lambda: "ROUND(%s, %d)" % (e(), rng.randint(0, 6)),
        lambda: "ABS(%s)" % e(),
        lambda: "(%s) / %s" % (e(), rng.choice(["0", "3", "7", ref()])),
        lambda: "(\n  %s\n)" % e(),
    ])()


def add_random(src, dst, seed, n):
    import random
    rng = random.Random(seed)
    d = json.load(open(src))
    codes = [it["code"] for it in d["items"]]
    top = max(it["sort_order"] for it in d["items"])
    for i in range(n):
        code = "R%03d" % i
        d["items"].append({"code": code, "name": "random formula %d" % i, "kind": "formula",
                           "formula": random_formula(rng, 4, codes), "sort_order": top + 1 + i})
        codes.append(code)
    for i in range(n // 5):
        d["audit_rules"].append({"rule_code": "RANDOM_%02d" % i, "expr": random_formula(rng, 3, codes),
                                 "message": "random rule %d" % i, "severity": "warning"})
    json.dump(d, open(dst, "w"), indent=1)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "--run":
        return check_run(argv[1])
    if len(argv) >= 2 and argv[0] == "--expr":
        try:
            v = eval_text(argv[1], parse_inputs(" ".join(argv[2:])))
        except FxError as e:
            print("error: %s" % e)
            return 1
        print("NULL" if v is None else repr(v), "stored", show(stored_cents(v)))
        return 0
    if len(argv) >= 2 and argv[0] == "--cases":
        return check_cases(argv[1:])
    if len(argv) == 5 and argv[0] == "--add-random":
        return add_random(argv[1], argv[2], int(argv[3]), int(argv[4]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
