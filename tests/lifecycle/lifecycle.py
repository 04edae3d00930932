#!/usr/bin/env python3
"""Model-based test of the run lifecycle (DESIGN.md 4 and 5.6, issue 8).

A small deterministic model of periods, runs and published runs is driven by a
seeded random sequence of actions applied through the real CLI: runs (ok,
failing at start, killed, timed out), resume, abort, publish, close-period,
ledger postings (SQL and import), ruleset edits (rename, reorder, an always-0
error audit rule), export, and probes (status, resume / abort / report of runs
the state refuses). After every step the database and the CLI are checked
against the model. The contract is the truth: the model follows DESIGN.md, not
whatever the binaries do.

Environment: ALLOC_BUILD, ALLOC_PG_DSN, ALLOC_AMQP_URL, ALLOC_REDIS_URL (a
private database, vhost and Redis db: t_lifecycle.sh sets them up);
ALLOC_LIFECYCLE_SEED (default: time-based, always printed),
ALLOC_LIFECYCLE_STEPS (default 300), ALLOC_LIFECYCLE_LOGS (log directory).
Prints one "ok - ..." / "not ok - ..." line per check family, then the replay
command and a summary line; exits 1 when any check failed.

Readings of the contract where it is not explicit:
  * A replaced run (its results deleted by a later success) keeps status
    'succeeded' in alloc_run: the status says how the run ended.
  * A run that was published and then switched away from by a later `publish`
    is unpublished but not yet replaced. DESIGN 5.6 says results are deleted
    only by a later success ("never earlier") but also that the published run
    "stays readable until the next publish". Either is accepted as long as it is
    consistent: `report --run` then reads it with its checksum or exits 4, stays
    so until a later success, and `publish --run` agrees.
  * `publish` of the run that is already published, when it has error findings
    and no --force: exit 0 (publish --help: "changes nothing") or 4 (DESIGN 4:
    refused) are both accepted; nothing may change either way.
  * A run resumed after a ruleset edit made while it was interrupted may use
    either the ruleset of its snapshot or the current one (names, audit rules);
    whichever it used, its report keeps it from then on.
  * `status --run` of a run that is not succeeded (running included) or whose
    results were replaced exits 4 but still prints the run and its status.
  * Runs that are expected to fail at start, to be killed or to time out are
    only started in open periods with no run going; refusals (closed period, a
    run going) are exercised by the plain `run` action.
  * The always-0 error rule is removed with a plain DELETE: a rule change must
    reach the next run however it was made (DESIGN 5.5).

How the checks can tell runs apart: before every action that starts a run, a
"marker" ledger row with a unique positive amount is posted to one fixed
project and item of the period (other postings are positive too), so any two
runs of a period have different checksums and a checksum names the run a
report shows. While a run or resume goes, a reader polls `report --checksum`
of its period: it must see the report as before, then as after, nothing else.
"""

import concurrent.futures
import csv
import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

BUILD = os.environ.get("ALLOC_BUILD", "build")
PRODUCER = os.path.join(BUILD, "alloc-producer")
CONSUMER = os.path.join(BUILD, "alloc-consumer")
GEN = os.path.join(BUILD, "alloc-gen")
DSN = os.environ["ALLOC_PG_DSN"]
AMQP_URL = os.environ["ALLOC_AMQP_URL"]
VHOST = AMQP_URL.rsplit("/", 1)[1]
IDLE_AMQP_URL = os.environ.get("ALLOC_LIFECYCLE_IDLE_AMQP_URL", "")  # a vhost no consumer reads
LOGS = os.environ.get("ALLOC_LIFECYCLE_LOGS", ".run/test-logs/t_lifecycle")
SEED = int(os.environ.get("ALLOC_LIFECYCLE_SEED") or (int(time.time() * 1000) % 1000000007))
STEPS = int(os.environ.get("ALLOC_LIFECYCLE_STEPS") or 300)

# Unreachable servers for runs that must fail at start; their passwords must
# never be printed (DESIGN 4: output never shows a credential).
BAD_AMQP = "amqp://alloc:s3cretAmqpPw@127.0.0.1:1/" + VHOST
BAD_REDIS = "redis://:s3cretRedisPw@127.0.0.1:1/0"
SECRETS = ["s3cretAmqpPw", "s3cretRedisPw"]
m = re.match(r"amqp://([^:/@]+):([^@/]+)@", AMQP_URL)
if m and m.group(2) != "***":
    SECRETS.append("%s:%s@" % (m.group(1), m.group(2)))  # the real broker's password in clear

FIRST_PERIODS = ["2026-01", "2026-02", "2026-03"]
MAX_PERIODS = 5  # closed periods are replaced by new ones up to this many in all
CONSUMERS = 2
RUN_TIMEOUT = "90"
ERR_RULE = "LC_ALWAYS_FAILS"

# action weights: runs are a minority, killed and timed-out runs rare
WEIGHTS = [
    ("run", 14), ("run_fail_start", 5), ("run_kill", 2), ("run_timeout", 2),
    ("resume", 6), ("abort", 3), ("publish", 12), ("close", 3),
    ("ledger_sql", 8), ("ledger_import", 3),
    ("rename", 4), ("reorder", 3), ("error_rule", 4), ("probe", 6), ("export", 3),
]

os.makedirs(LOGS, exist_ok=True)
CMDLOG = open(os.path.join(LOGS, "commands.log"), "w")


# ---------------------------------------------------------------- results ---

class Families:
    """Check families: counts and the first failures of each, printed at the end."""

    ORDER = [
        ("report", "report --period --checksum shows the model's run (published, else latest succeeded; exit 4 when none) after every step"),
        ("nonempty", "report --format csv of a period is never empty when the model has a report"),
        ("readable", "every readable run keeps the checksum it finished with (report --run)"),
        ("dead", "report --run of a replaced, failed or aborted run exits 4 and names the run"),
        ("status", "status --run exits 0 for a readable succeeded run, else 4, and prints the run's status (and 'stale' after ledger changes)"),
        ("db", "the database matches the model: run statuses, published runs, period states, ledger rows, no stray runs"),
        ("half", "nothing is half-published: report_published points at succeeded runs with results, report_current = their rows"),
        ("replace", "a success deletes the results of earlier unpublished runs, and nothing else does"),
        ("readers", "a reader polling report --checksum during a run or resume sees the report before it, then the one after it, nothing between"),
        ("run", "run with consumers up exits 0 and becomes the latest succeeded run"),
        ("fail_start", "a run failing at start (broker or Redis unreachable) exits 1, is failed, records the printed error"),
        ("kill", "a killed run stays running; resume exits 0 (succeeded), abort exits 0 (aborted)"),
        ("timeout", "run --timeout without consumers exits 5 and the run stays running (resumable)"),
        ("refuse", "run / resume / abort refused by state exit 4 and start no run"),
        ("publish", "publish: latest succeeded or --run of a succeeded run with results; error findings need --force; else exit 4"),
        ("close", "close-period: exit 4 without a published run (unless --force), while a run is running, when closed"),
        ("closed", "a closed period refuses runs, publish, imports (exit 4) and ledger changes (trigger naming the period)"),
        ("ledger", "ledger postings to an open period are accepted (SQL and import)"),
        ("export", "export --wait writes the model's run (checksum of the file), or of --run ID; a run without a readable report exits 4"),
        ("ruleset", "ruleset edits: new runs show the current names and order; existing reports keep theirs; closed reports byte-identical"),
        ("findings", "an always-0 error audit rule gives the runs made with it error findings, and only those"),
        ("cred", "no output and no alloc_run.error shows a credential"),
    ]

    def __init__(self):
        self.count = {k: 0 for k, _ in self.ORDER}
        self.fails = {k: [] for k, _ in self.ORDER}
        self.first_fail_step = None
        self.lock = threading.RLock()  # checks also run in the pool's threads

    def check(self, fam, cond, why):
        with self.lock:
            return self._check(fam, cond, why)

    def _check(self, fam, cond, why):
        self.count[fam] += 1
        if cond:
            return True
        self.fails[fam].append((STATE.step, why() if callable(why) else why))
        if self.first_fail_step is None:
            self.first_fail_step = STATE.step
            print("# FIRST FAILURE at step %d (seed %d): [%s] %s" % (STATE.step, SEED, fam, self.fails[fam][-1][1]))
            print("# steps so far:")
            for line in STATE.steps:
                print("#   " + line)
            if len(STATE.steps) < STATE.step:
                print("#   %3d %s (failed during this action)" % (STATE.step, STATE.current))
            sys.stdout.flush()
        elif len(self.fails[fam]) <= 3:
            print("# failure at step %d: [%s] %s" % (STATE.step, fam, self.fails[fam][-1][1]))
        return False


FAM = Families()


class State:
    step = 0
    steps = []
    touched = set()   # periods the current step acted on
    current = ""      # the action of the step in progress
    unpublished = [0, 0]  # runs a publish switched away from: [still readable, not]


STATE = State()


# ------------------------------------------------------------ subprocesses ---

class Res:
    def __init__(self, rc, out, err, argv):
        self.rc, self.out, self.err, self.argv = rc, out, err, argv

    def __repr__(self):
        return "rc=%s stderr=%r" % (self.rc, lastline(self.err))


def lastline(s):
    lines = [l for l in s.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def errlines(s):
    """stderr lines that are not INFO/DEBUG log lines."""
    return [l for l in s.splitlines() if l.strip() and not re.search(r"\b(INFO|DEBUG)\b", l)]


def cred_check(text, what):
    for s in SECRETS:
        if s in text:
            FAM.check("cred", False, "%s shows the credential %r: %r" % (what, s, [l for l in text.splitlines() if s in l][0][:300]))
            return
    FAM.check("cred", True, "")


def run_cmd(argv, timeout=120, stdin=None, env=None):
    t0 = time.time()
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, text=True, errors="replace", env=env)
        r = Res(p.returncode, p.stdout, p.stderr, argv)
    except subprocess.TimeoutExpired as e:
        r = Res(-999, (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or ""),
                "timed out after %ss" % timeout, argv)
    CMDLOG.write("[step %d] %.2fs rc=%s: %s\n" % (STATE.step, time.time() - t0, r.rc, " ".join(argv)))
    for l in r.err.splitlines()[-4:]:
        CMDLOG.write("    ! %s\n" % l[:400])
    CMDLOG.flush()
    if argv[0] in (PRODUCER, GEN):
        cred_check(r.out + "\n" + r.err, " ".join(argv[1:4]))
    return r


def producer(*args, timeout=120):
    return run_cmd([PRODUCER] + [str(a) for a in args], timeout=timeout)


# the checking queries are cheap but costed high: JIT compiling them would take
# most of their time
PSQL_ENV = dict(os.environ, PGOPTIONS=(os.environ.get("PGOPTIONS", "") + " -c jit=off").strip())


def psql(query, check=True):
    r = run_cmd(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", DSN, "-c", query], env=PSQL_ENV)
    if check and r.rc != 0:
        raise RuntimeError("psql failed: %s: %s" % (query[:200], r.err.strip()))
    return r


class PsqlSession:
    """One long-lived psql for the many small queries of the checks (a psql
    process and connection per query would cost more than the CLI calls it
    checks). Queries are serialized; an error raises."""

    END = "__lifecycle_end__"

    def __init__(self):
        self.proc = None
        self.lock = threading.Lock()

    def query(self, q):
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=0", "-d", DSN],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True, errors="replace", env=PSQL_ENV, bufsize=1)
            t0 = time.time()
            self.proc.stdin.write(q.strip().rstrip(";") + ";\n\\echo " + self.END + "\n")
            self.proc.stdin.flush()
            lines = []
            for line in self.proc.stdout:
                if line.rstrip("\n") == self.END:
                    break
                lines.append(line)
            else:
                raise RuntimeError("psql session ended: %s" % "".join(lines)[-300:])
            CMDLOG.write("[step %d] %.2fs session: %s\n" % (STATE.step, time.time() - t0, " ".join(q.split())[:120]))
            out = "".join(lines)
            if re.search(r"^(ERROR|FATAL):", out, re.M):
                raise RuntimeError("query failed: %s: %s" % (" ".join(q.split())[:200], out.strip()[-300:]))
            return out

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


SESSION = PsqlSession()


def sql_json(query):
    return json.loads(SESSION.query(query).strip() or "null")


POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4)


def parallel(calls):
    """calls: list of (fn, args); returns their results in order."""
    futs = [POOL.submit(fn, *args) for fn, args in calls]
    return [f.result() for f in futs]


# --------------------------------------------------------------- consumers ---

class Consumers:
    def __init__(self):
        self.procs = []
        self.n = 0

    def start(self):
        for _ in range(CONSUMERS - len(self.procs)):
            self.n += 1
            log = open(os.path.join(LOGS, "consumer-%d.log" % self.n), "w")
            self.procs.append(subprocess.Popen([CONSUMER, "--threads", "1"], stdout=log, stderr=subprocess.STDOUT))

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


CONS = Consumers()


# ------------------------------------------------------------------- model ---

class Run:
    def __init__(self, rid, period):
        self.id = rid
        self.period = period
        self.status = "running"       # running | succeeded | failed | aborted (as in alloc_run)
        self.replaced = False         # results deleted by a later success
        self.dropped = False          # unpublished by a publish and found unreadable (see module doc)
        self.checksum = None          # report --run --checksum when it succeeded
        self.body = None              # table report (from the first "version" line) when it succeeded
        self.errs = False             # has error findings
        self.edit_at_start = None     # ruleset edit counter when the run started
        self.rule_at_start = None     # error rule present when the run started
        self.changes_at_start = 0     # Period.changes when the run took its snapshot

    def readable(self):
        return self.status == "succeeded" and not self.replaced and not self.dropped

    def dead(self):
        return self.status in ("failed", "aborted") or self.replaced or self.dropped

    def what(self):
        if self.replaced:
            return "replaced"
        if self.dropped:
            return "unpublished and dropped"
        return self.status


class Period:
    def __init__(self, code):
        self.code = code
        self.closed = False
        self.published = None         # run id
        self.closed_report = None     # (rc, stdout) of `report --period P` right after closing
        self.ledger = 0               # expected ledger_entry rows
        self.changes = 0              # ledger rows inserted or updated by the test
        self.direct = []              # template rows (entry ids and fields) for postings
        self.pending = []


class Model:
    def __init__(self):
        self.periods = {}
        self.runs = {}
        self.max_run = 0
        self.err_rule = False         # the always-0 error rule is in the ruleset
        self.edits = 0                # ruleset edits so far
        self.items = []               # [item_code, name, sort_order], current ruleset
        self.base_names = {}

    def period_runs(self, p):
        return [r for r in self.runs.values() if r.period == p]

    def latest(self, p):
        rs = [r for r in self.period_runs(p) if r.readable()]
        return max(rs, key=lambda r: r.id) if rs else None

    def visible(self, p):
        pub = self.periods[p].published
        if pub is not None:
            return self.runs.get(pub)
        return self.latest(p)

    def running(self, p):
        rs = [r for r in self.period_runs(p) if r.status == "running"]
        return rs[0] if rs else None

    def succeed(self, run):
        """run has succeeded: earlier unpublished readable runs of its period are replaced."""
        run.status = "succeeded"
        pub = self.periods[run.period].published
        replaced = []
        for r in self.period_runs(run.period):
            if r.id != run.id and r.readable() and r.id != pub:
                r.replaced = True
                replaced.append(r)
        return replaced


M = Model()


# ----------------------------------------------------------------- helpers ---

def body_of(table):
    """The table report from its first 'version' line on (the title line says
    how the run was chosen, which changes with publishing)."""
    lines = table.splitlines(True)
    for i, l in enumerate(lines):
        if l.startswith("version "):
            return "".join(lines[i:])
    return table


def csv_rows(out):
    lines = [l for l in out.splitlines() if l.strip()]
    return max(0, len(lines) - 1)


def names_run(err, rid):
    return re.search(r"(?<![0-9])%d(?![0-9])" % rid, err) is not None


def new_runs(after):
    return sql_json("SELECT coalesce(json_agg(json_build_object('id', run_id, 'period', period_code, 'status', status,"
                    " 'error', error) ORDER BY run_id), '[]') FROM alloc_run WHERE run_id > %d" % after)


def db_error_findings(rid):
    return int(SESSION.query("SELECT count(*) FROM audit_finding WHERE run_id = %d AND severity = 'error'" % rid).strip() or 0)


def marker_posting(p):
    """A direct row with a unique positive amount on the period's first template row."""
    P = M.periods[p]
    tpl = P.direct[0]
    amount = "%d.37" % (100 + STATE.step)
    SESSION.query("INSERT INTO ledger_entry (period_code, company_code, data_source, business_line, budget_item_code, account_code,"
         " project_code, category, amount) SELECT period_code, company_code, data_source, business_line, budget_item_code,"
         " account_code, project_code, category, %s FROM ledger_entry WHERE entry_id = %d" % (amount, tpl["entry_id"]))
    P.ledger += 1
    P.changes += 1


def record_success(run, how):
    """Reads back a run that has just succeeded: its checksum, table report and
    findings; applies replacement to the model and checks the replaced runs."""
    p = run.period
    cs, tab, errs, rows, st = parallel([
        (producer, ("report", "--period", p, "--run", run.id, "--checksum")),
        (producer, ("report", "--period", p, "--run", run.id)),
        (db_error_findings, (run.id,)),
        (producer, ("report", "--period", p, "--run", run.id, "--format", "csv")),
        (producer, ("status", "--run", run.id)),
    ])
    n = M.periods[p].changes - run.changes_at_start
    FAM.check("status", st.rc == 0 and "succeeded" in st.out and ("stale" in st.out) == (n > 0),
              lambda: "status --run %d (just succeeded; %d ledger rows changed after its snapshot): %r, stdout %r" % (
                  run.id, n, st, st.out[-300:]))
    FAM.check(how, cs.rc == 0 and re.fullmatch(r"[0-9a-f]{64}", cs.out.strip() or "") is not None,
              lambda: "report --run %d --checksum of the run that just succeeded: %r %r" % (run.id, cs, cs.out[:80]))
    FAM.check("nonempty", rows.rc == 0 and csv_rows(rows.out) > 0,
              lambda: "report --run %d --format csv of the run that just succeeded: %r, %d rows" % (run.id, rows, csv_rows(rows.out)))
    run.checksum = cs.out.strip() if cs.rc == 0 else None
    run.body = body_of(tab.out) if tab.rc == 0 else None
    # findings: the error rule as at the snapshot, or, for a run resumed after
    # a ruleset edit, possibly as now
    want = {run.rule_at_start} if run.edit_at_start == M.edits else {run.rule_at_start, M.err_rule}
    run.errs = errs > 0
    FAM.check("findings", run.errs in want,
              lambda: "run %d (error rule %s at its start%s) has %d error findings" % (
                  run.id, "present" if run.rule_at_start else "absent",
                  "" if run.edit_at_start == M.edits else ", %s now" % ("present" if M.err_rule else "absent"), errs))
    # names and order: the ruleset as now (unless edited while the run was interrupted)
    if run.edit_at_start == M.edits and tab.rc == 0:
        ok, why = table_follows_ruleset(tab.out)
        FAM.check("ruleset", ok, lambda: "table report of run %d (just succeeded): %s" % (run.id, why))
    replaced = M.succeed(run)
    for r in replaced:
        o = producer("report", "--period", p, "--run", r.id, "--checksum")
        FAM.check("dead", o.rc == 4 and names_run(o.err, r.id),
                  lambda: "report --run %d after run %d replaced it: %r, stdout %r" % (r.id, run.id, o, o.out[:80]))
    return replaced


def table_follows_ruleset(table):
    """The item rows of a table report are the current names in the current
    order, repeated once per version."""
    names = [n for _, n, _ in sorted(M.items, key=lambda x: (x[2], x[0]))]
    seen = []
    allnames = set(names) | set(M.base_names.values()) | set(n for n in HIST_NAMES)
    for l in table.splitlines():
        for n in allnames:
            if l.startswith(n + " ") or l == n:
                seen.append(n)
                break
    if not seen:
        return False, "no item row found"
    if len(seen) % len(names) != 0 or seen != names * (len(seen) // len(names)):
        return False, "item rows %r, want %r per version" % (seen[:len(names) + 2], names)
    return True, ""


HIST_NAMES = set()


def pick_period(rng, pred=None):
    ps = [p for p in sorted(M.periods) if pred is None or pred(M.periods[p])]
    p = rng.choice(ps) if ps else None
    if p is not None:
        STATE.touched.add(p)
    return p


def eligible(P):
    return not P.closed and M.running(P.code) is None


# ----------------------------------------------------------------- actions ---

def run_watched(p, *args, timeout=150):
    """Runs `alloc-producer ARGS` while a reader polls `report --period P
    --checksum` until it exits; returns its result and what the reader saw, as
    a list of (exit code, checksum)."""
    tag = "watched-%d" % STATE.step
    out_path, err_path = os.path.join(LOGS, tag + ".out"), os.path.join(LOGS, tag + ".err")
    argv = [PRODUCER] + [str(a) for a in args]
    t0 = time.time()
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        proc = subprocess.Popen(argv, stdout=fo, stderr=fe)
    seen = []
    while proc.poll() is None and time.time() - t0 < timeout:
        o = producer("report", "--period", p, "--checksum")
        seen.append((o.rc, o.out.strip() if o.rc == 0 else ""))
        time.sleep(0.05)
    try:
        rc = proc.wait(timeout=max(1, timeout - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = -999
    with open(out_path, errors="replace") as f:
        out = f.read()
    with open(err_path, errors="replace") as f:
        err = f.read()
    CMDLOG.write("[step %d] %.2fs rc=%s: %s (watched by %d reports)\n" % (STATE.step, time.time() - t0, rc, " ".join(argv), len(seen)))
    cred_check(out + "\n" + err, " ".join(argv[1:4]))
    return Res(rc, out, err, argv), seen


def shown(p):
    """What `report --period P --checksum` must show now: (exit code, checksum)."""
    v = M.visible(p)
    return (0, v.checksum) if v is not None else (4, "")


def check_readers(p, what, seen, before):
    """While a command ran, the reader saw the report as before it, then
    possibly as after it: never anything else, never back."""
    after = shown(p)
    states = [before] if before == after else [before, after]
    idx = 0
    for x in seen:
        while idx < len(states) and x != states[idx]:
            idx += 1
        if idx == len(states):
            def why(x=x):
                sh = next((r for r in M.runs.values() if r.checksum and r.checksum == x[1]), None)
                return "while %s, report --period %s --checksum showed %s; before it showed %s, after it %s" % (
                    what, p, "run %d" % sh.id if sh else "exit %d %s" % (x[0], x[1][:16]),
                    fmt_shown(before), fmt_shown(after))
            FAM.check("readers", False, why)
            return
    FAM.check("readers", True, "")


def fmt_shown(s):
    if s[0] != 0:
        return "exit %d" % s[0]
    r = next((r for r in M.runs.values() if r.checksum == s[1]), None)
    return "run %d" % r.id if r else s[1][:16]


def act_run(rng):
    p = pick_period(rng)
    P = M.periods[p]
    refuse = P.closed or M.running(p) is not None
    if not refuse:
        marker_posting(p)
    before = M.max_run
    edit, rule = M.edits, M.err_rule
    was = shown(p)
    r, seen = run_watched(p, "run", "--period", p, "--timeout", RUN_TIMEOUT)
    nr = new_runs(before)
    if refuse:
        why = "closed" if P.closed else "run %d is running" % M.running(p).id
        fam = "closed" if P.closed else "refuse"
        FAM.check(fam, r.rc == 4 and not nr, lambda: "run --period %s (%s): %r, new runs %r" % (p, why, r, nr))
        adopt_new_runs(nr)
        return "run %s (%s) -> rc %s" % (p, why, r.rc)
    FAM.check("run", r.rc == 0 and len(nr) == 1 and nr[0]["status"] == "succeeded",
              lambda: "run --period %s: %r, new runs %r" % (p, r, nr))
    run = adopt_new_runs(nr, edit, rule)
    if run is None:
        return "run %s -> rc %s, no run" % (p, r.rc)
    if run.status == "succeeded":
        rep = record_success(run, "run")
        check_readers(p, "run %d ran" % run.id, seen, was)
        return "run %s -> rc %s run %d%s" % (p, r.rc, run.id, " (replaces %s)" % ",".join(str(x.id) for x in rep) if rep else "")
    return "run %s -> rc %s run %d %s" % (p, r.rc, run.id, run.status)


def adopt_new_runs(nr, edit=None, rule=None):
    """Puts runs the database has but the model does not into the model (as the
    database has them); returns the last one."""
    run = None
    for x in nr:
        run = Run(x["id"], x["period"])
        run.status = x["status"]
        run.edit_at_start = M.edits if edit is None else edit
        run.rule_at_start = M.err_rule if rule is None else rule
        if x["period"] in M.periods:
            run.changes_at_start = M.periods[x["period"]].changes
        M.runs[run.id] = run
        M.max_run = max(M.max_run, run.id)
    return run


def act_run_fail_start(rng):
    p = pick_period(rng, eligible)
    if p is None:
        return None
    marker_posting(p)
    before = M.max_run
    which = rng.choice(["broker", "redis"])
    flag = ["--amqp-url", BAD_AMQP] if which == "broker" else ["--redis-url", BAD_REDIS]
    was = shown(p)
    r, seen = run_watched(p, "run", "--period", p, "--timeout", "30", *flag, timeout=120)
    nr = new_runs(before)
    check_readers(p, "a run failed at start", seen, was)
    FAM.check("fail_start", r.rc == 1 and len(nr) == 1 and nr[0]["status"] == "failed",
              lambda: "run --period %s with the %s unreachable: %r, new runs %r (want exit 1 and one failed run)" % (p, which, r, nr))
    run = adopt_new_runs(nr)
    if run is not None and run.status == "failed":
        err = nr[-1]["error"] or ""
        lines = errlines(r.err)
        FAM.check("fail_start", err.strip() != "" and any(err.strip() in l for l in lines),
                  lambda: "run %d failed with alloc_run.error %r, which is not (in) the error line printed: %r" % (
                      run.id, err, lines[-3:]))
        o = producer("report", "--period", p, "--run", run.id, "--checksum")
        FAM.check("dead", o.rc == 4 and names_run(o.err, run.id), lambda: "report --run %d of failed run: %r" % (run.id, o))
        st = producer("status", "--run", run.id)
        FAM.check("status", st.rc == 4 and "failed" in st.out + st.err and names_run(st.out + st.err, run.id),
                  lambda: "status --run %d of failed run: %r stdout %r" % (run.id, st, st.out[:200]))
    return "run %s with %s unreachable -> rc %s%s" % (p, which, r.rc, " run %d %s" % (run.id, run.status) if run else "")


def wait_for(cond, secs):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def act_run_kill(rng):
    p = pick_period(rng, eligible)
    if p is None:
        return None
    marker_posting(p)
    before = M.max_run
    edit, rule = M.edits, M.err_rule
    how, flags = no_consumers(rng)
    out_path = os.path.join(LOGS, "killed-%d.out" % STATE.step)
    err_path = os.path.join(LOGS, "killed-%d.err" % STATE.step)
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        proc = subprocess.Popen([PRODUCER, "run", "--period", p, "--timeout", "120"] + flags, stdout=fo, stderr=fe)

    def waiting():
        # registered, buckets published, waiting on the consumers
        if proc.poll() is not None:
            return True
        text = open(out_path, errors="replace").read() + open(err_path, errors="replace").read()
        return "bucket(s) published" in text or re.search(r"batches \d+/\d+", text) is not None

    wait_for(waiting, 30)
    exited = proc.poll()
    if exited is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    CONS.start()  # (the killed run's batches are allocated now, if they were in the queue)
    err = open(err_path, errors="replace").read()
    cred_check(open(out_path, errors="replace").read() + err, "killed run")
    nr = new_runs(before)
    FAM.check("kill", exited is None and len(nr) == 1 and nr[0]["status"] == "running",
              lambda: "run --period %s killed while waiting: exited by itself %s, new runs %r, stderr %r" % (
                  p, exited, nr, lastline(err)))
    run = adopt_new_runs(nr, edit, rule)
    if run is not None and run.status == "running":
        st = producer("status", "--run", run.id)
        FAM.check("status", st.rc == 4 and "running" in st.out + st.err and names_run(st.out + st.err, run.id),
                  lambda: "status --run %d of a running run: %r stdout %r" % (run.id, st, st.out[:200]))
    return "run %s killed (%s)%s" % (p, how, " -> run %d %s" % (run.id, run.status) if run else "")


def act_run_timeout(rng):
    p = pick_period(rng, eligible)
    if p is None:
        return None
    marker_posting(p)
    before = M.max_run
    edit, rule = M.edits, M.err_rule
    how, flags = no_consumers(rng)
    r = producer("run", "--period", p, "--timeout", "2", *flags, timeout=60)
    CONS.start()
    nr = new_runs(before)
    FAM.check("timeout", r.rc == 5 and len(nr) == 1 and nr[0]["status"] == "running",
              lambda: "run --period %s --timeout 2 (%s): %r, new runs %r" % (p, how, r, nr))
    run = adopt_new_runs(nr, edit, rule)
    return "run %s --timeout 2 (%s) -> rc %s%s" % (p, how, r.rc, " run %d %s" % (run.id, run.status) if run else "")


def no_consumers(rng):
    """A run that nobody serves: either the consumers are stopped (they are
    started again after it, and then allocate its batches while no producer
    waits), or the run is sent to a vhost no consumer reads (its buckets are
    never allocated; `resume` republishes them on the real vhost). The second
    is cheaper: no consumer restarts."""
    if IDLE_AMQP_URL and rng.random() < 0.7:
        return "idle vhost", ["--amqp-url", IDLE_AMQP_URL]
    CONS.stop()
    return "consumers stopped", []


def running_runs():
    return sorted((r for r in M.runs.values() if r.status == "running"), key=lambda r: r.id)


def act_resume(rng):
    rs = running_runs()
    if not rs:
        return None
    run = rng.choice(rs)
    STATE.touched.add(run.period)
    was = shown(run.period)
    r, seen = run_watched(run.period, "resume", "--run", run.id, "--timeout", RUN_TIMEOUT)
    st = sql_json("SELECT to_json(status) FROM alloc_run WHERE run_id = %d" % run.id)
    FAM.check("kill", r.rc == 0 and st == "succeeded", lambda: "resume --run %d: %r, status now %s" % (run.id, r, st))
    if r.rc == 0 or st == "succeeded":
        rep = record_success(run, "kill")
        check_readers(run.period, "run %d resumed" % run.id, seen, was)
        return "resume %d (%s) -> rc %s%s" % (run.id, run.period, r.rc, " (replaces %s)" % ",".join(str(x.id) for x in rep) if rep else "")
    run.status = st
    return "resume %d -> rc %s, %s" % (run.id, r.rc, st)


def act_abort(rng):
    rs = running_runs()
    if not rs:
        return None
    run = rng.choice(rs)
    STATE.touched.add(run.period)
    r = producer("abort", "--run", run.id)
    st = sql_json("SELECT to_json(status) FROM alloc_run WHERE run_id = %d" % run.id)
    FAM.check("kill", r.rc == 0 and st == "aborted", lambda: "abort --run %d: %r, status now %s" % (run.id, r, st))
    run.status = st
    o = producer("report", "--period", run.period, "--run", run.id, "--checksum")
    FAM.check("dead", o.rc == 4 and names_run(o.err, run.id), lambda: "report --run %d of aborted run: %r" % (run.id, o))
    return "abort %d (%s) -> rc %s" % (run.id, run.period, r.rc)


def probe_superseded(run):
    """run was published and a publish switched away from it: it is either
    still readable (its checksum) or not (exit 4) — see the module doc."""
    o = producer("report", "--period", run.period, "--run", run.id, "--checksum")
    STATE.unpublished[0 if o.rc == 0 else 1] += 1
    if o.rc == 0:
        FAM.check("readable", o.out.strip() == run.checksum,
                  lambda: "report --run %d (unpublished by a publish) shows checksum %s, it finished with %s" % (
                      run.id, o.out.strip()[:16], (run.checksum or "")[:16]))
    else:
        FAM.check("dead", o.rc == 4 and names_run(o.err, run.id),
                  lambda: "report --run %d (unpublished by a publish): %r" % (run.id, o))
        run.dropped = True


def act_publish(rng):
    p = pick_period(rng)
    P = M.periods[p]
    kind = rng.choice(["latest", "latest", "latest_force", "run_visible", "run_dead", "run_running",
                       "run_other_period", "run_unknown", "run_readable"])
    force = kind == "latest_force" or (kind.startswith("run") and rng.random() < 0.3)
    target = None
    unknown = False
    if kind in ("latest", "latest_force"):
        target = M.latest(p)
        args = []
    else:
        if kind == "run_visible":
            cands = [M.latest(p)] if M.latest(p) else []
        elif kind == "run_dead":
            cands = [r for r in M.period_runs(p) if r.dead()]
        elif kind == "run_running":
            cands = [r for r in M.period_runs(p) if r.status == "running"]
        elif kind == "run_other_period":
            cands = [r for r in M.runs.values() if r.period != p and r.readable()]
        elif kind == "run_readable":
            cands = [r for r in M.period_runs(p) if r.readable()]
        else:
            cands = []
        cands = sorted(cands, key=lambda r: r.id)
        if cands:
            target = rng.choice(cands)
            args = ["--run", target.id]
        else:
            args = ["--run", M.max_run + 1000]
            unknown = True
    if force:
        args.append("--force")
    # what the contract says
    if P.closed:
        want, why = 4, "period closed"
    elif target is None:
        want, why = 4, "no such run" if unknown else "no succeeded run"
    elif target.period != p:
        want, why = 4, "run %d of period %s" % (target.id, target.period)
    elif not target.readable():
        want, why = 4, "run %d is %s" % (target.id, target.what())
    elif target.errs and not force and target.id == P.published:
        # DESIGN 4 refuses a run with error findings; `publish --help` says
        # publishing the published run changes nothing: either exit is fine
        want, why = (0, 4), "run %d has error findings and is already published" % target.id
    elif target.errs and not force:
        want, why = 4, "run %d has error findings" % target.id
    else:
        want, why = 0, "run %d" % target.id
    r = producer("publish", "--period", p, *args)
    fam = "closed" if P.closed else "publish"
    want = want if isinstance(want, tuple) else (want,)
    FAM.check(fam, r.rc in want, lambda: "publish --period %s %s (%s): %r, want exit %s" % (
        p, " ".join(map(str, args)), why, r, " or ".join(map(str, want))))
    if want == (4,) and r.rc == 4 and target is not None and not P.closed:
        FAM.check(fam, target.period != p or not target.dead() or names_run(r.err, target.id),
                  lambda: "publish refusal does not name run %d: %r" % (target.id, r))
    old = P.published
    db_pub = sql_json("SELECT to_json(run_id) FROM report_published WHERE period_code = '%s'" % p)
    if 0 in want and r.rc == 0:
        P.published = target.id
    else:
        P.published = db_pub   # resync after a mismatch; the db check compares from here on
    if old is not None and P.published != old and old in M.runs and M.runs[old].readable():
        probe_superseded(M.runs[old])
    return "publish %s %s%s (%s) -> rc %s" % (p, kind, " --force" if force else "", why, r.rc)


def act_close(rng):
    if len(M.periods) >= MAX_PERIODS:
        # no more new periods: only closes that must be refused
        p = pick_period(rng, lambda P: P.closed or M.running(P.code) is not None)
        if p is None:
            return None
    elif rng.random() < 0.6:
        # mostly a period with a published run, so a closed report has a run to keep
        p = pick_period(rng, lambda P: not P.closed and P.published is not None) or pick_period(rng)
    else:
        p = pick_period(rng)
    P = M.periods[p]
    force = rng.random() < 0.25
    if P.closed:
        want, why = 4, "already closed"
    elif M.running(p) is not None:
        want, why = 4, "run %d is running" % M.running(p).id
    elif P.published is None and not force:
        want, why = 4, "no published run"
    else:
        want, why = 0, "published run %s" % P.published if P.published else "--force, nothing published"
    args = ["--force"] if force else []
    r = producer("close-period", "--period", p, *args)
    FAM.check("close", r.rc == want, lambda: "close-period --period %s %s (%s): %r, want exit %d" % (p, " ".join(args), why, r, want))
    db_closed = sql_json("SELECT to_json(status = 'closed') FROM period WHERE period_code = '%s'" % p)
    P.closed = bool(db_closed)   # resync after a mismatch
    note = ""
    if P.closed and P.closed_report is None:
        t = producer("report", "--period", p)
        P.closed_report = (t.rc, t.out)
        if len(M.periods) < MAX_PERIODS:
            note = ", new period " + add_period()
    return "close-period %s%s (%s) -> rc %s%s" % (p, " --force" if force else "", why, r.rc, note)


def next_period_code():
    y, mth = map(int, max(M.periods).split("-"))
    mth += 1
    if mth > 12:
        y, mth = y + 1, 1
    return "%04d-%02d" % (y, mth)


def add_period(code=None):
    code = code or next_period_code()
    g = run_cmd([GEN, "--demo", "--period", code])
    if g.rc != 0:
        raise RuntimeError("alloc-gen --demo --period %s failed: %s" % (code, lastline(g.err)))
    P = Period(code)
    data = sql_json("SELECT json_build_object('n', (SELECT count(*) FROM ledger_entry WHERE period_code = '%s'),"
                    " 'direct', (SELECT json_agg(x ORDER BY entry_id) FROM (SELECT * FROM ledger_entry WHERE period_code = '%s'"
                    "   AND project_code IS NOT NULL ORDER BY entry_id LIMIT 12) x),"
                    " 'pending', (SELECT json_agg(x ORDER BY entry_id) FROM (SELECT * FROM ledger_entry WHERE period_code = '%s'"
                    "   AND project_code IS NULL ORDER BY entry_id LIMIT 12) x))" % (code, code, code))
    P.ledger = data["n"]
    P.direct = data["direct"]
    P.pending = data["pending"]
    M.periods[code] = P
    return code


def act_ledger_sql(rng):
    p = pick_period(rng)
    P = M.periods[p]
    kind = rng.choice(["insert", "insert", "insert", "update"])
    if kind == "insert":
        rows = [rng.choice(P.direct + P.pending) for _ in range(rng.randint(1, 4))]
        values = ",".join("(%d, %d.%02d)" % (t["entry_id"], rng.randint(1, 999), rng.randint(0, 99)) for t in rows)
        q = ("INSERT INTO ledger_entry (period_code, company_code, data_source, business_line, budget_item_code, account_code,"
             " project_code, category, amount) SELECT l.period_code, l.company_code, l.data_source, l.business_line,"
             " l.budget_item_code, l.account_code, l.project_code, l.category, v.amount FROM (VALUES %s) v(id, amount)"
             " JOIN ledger_entry l ON l.entry_id = v.id" % values)
        n = len(rows)
    else:
        t = rng.choice(P.direct + P.pending)
        q = "UPDATE ledger_entry SET amount = amount + 1 WHERE entry_id = %d" % t["entry_id"]
        n = 0
    r = psql(q, check=False)
    if P.closed:
        FAM.check("closed", r.rc != 0 and p in r.err, lambda: "ledger %s in closed period %s: rc %s, error %r" % (kind, p, r.rc, lastline(r.err)))
    else:
        FAM.check("ledger", r.rc == 0, lambda: "ledger %s in open period %s: rc %s, error %r" % (kind, p, r.rc, lastline(r.err)))
        P.ledger += n
        P.changes += n or 1
    return "ledger %s (%d rows) %s%s -> rc %s" % (kind, n or 1, p, " (closed)" if P.closed else "", r.rc)


def csv_field(v):
    if v is None:
        return ""
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


def act_ledger_import(rng):
    p = pick_period(rng)
    P = M.periods[p]
    rows = [rng.choice(P.direct + P.pending) for _ in range(rng.randint(1, 3))]
    cols = ["company_code", "data_source", "business_line", "budget_item_code", "account_code", "project_code", "category"]
    path = os.path.join(LOGS, "import-%d.csv" % STATE.step)
    with open(path, "w") as f:
        f.write(",".join(cols + ["amount"]) + "\n")
        for t in rows:
            f.write(",".join([csv_field(t[c]) for c in cols] + ["%d.%02d" % (rng.randint(1, 999), rng.randint(0, 99))]) + "\n")
    r = producer("import", "--period", p, "--kind", "ledger", "--file", path)
    if P.closed:
        FAM.check("closed", r.rc == 4, lambda: "import --kind ledger into closed period %s: %r, want exit 4" % (p, r))
    else:
        FAM.check("ledger", r.rc == 0, lambda: "import --kind ledger into open period %s: %r" % (p, r))
        if r.rc == 0:
            P.ledger += len(rows)
            P.changes += len(rows)
    return "import ledger (%d rows) %s%s -> rc %s" % (len(rows), p, " (closed)" if P.closed else "", r.rc)


def load_items():
    M.items = [list(x) for x in sql_json(
        "SELECT json_agg(json_build_array(item_code, name, sort_order) ORDER BY sort_order, item_code)"
        " FROM report_item WHERE ruleset = 'demo'")]
    for code, name, _ in M.items:
        M.base_names.setdefault(code, name)
        HIST_NAMES.add(name)


def sql_lit(s):
    return "'" + s.replace("'", "''") + "'"


def act_rename(rng):
    M.edits += 1
    chosen = rng.sample(range(len(M.items)), rng.randint(1, 3))
    sets = []
    for i in chosen:
        code = M.items[i][0]
        name = "e%d%s %s" % (M.edits, chr(97 + i), M.base_names[code][:12])
        M.items[i][1] = name
        HIST_NAMES.add(name)
        sets.append("UPDATE report_item SET name = %s, updated_at = now() WHERE ruleset = 'demo' AND item_code = %s;" % (
            sql_lit(name), sql_lit(code)))
    psql("BEGIN;" + "".join(sets) + "COMMIT;")
    return "rename %s" % ", ".join(M.items[i][0] for i in chosen)


def act_reorder(rng):
    M.edits += 1
    orders = sorted(x[2] for x in M.items)
    rng.shuffle(orders)
    sets = []
    for it, o in zip(M.items, orders):
        it[2] = o
        sets.append("UPDATE report_item SET sort_order = %d, updated_at = now() WHERE ruleset = 'demo' AND item_code = %s;" % (
            o, sql_lit(it[0])))
    psql("BEGIN;" + "".join(sets) + "COMMIT;")
    return "reorder items"


def act_error_rule(rng):
    M.edits += 1
    if M.err_rule:
        psql("DELETE FROM audit_rule WHERE ruleset = 'demo' AND rule_code = '%s'" % ERR_RULE)
        M.err_rule = False
        return "remove error rule"
    psql("INSERT INTO audit_rule (ruleset, rule_code, expr, message, severity, updated_at)"
         " VALUES ('demo', '%s', '0', 'lifecycle test: always fails', 'error', now())" % ERR_RULE)
    M.err_rule = True
    return "add error rule (expr 0)"


def act_probe(rng):
    """Commands on runs that the state refuses, and status --run."""
    kind = rng.choice(["resume_dead", "abort_dead", "status", "status", "report_other_period"])
    runs = sorted(M.runs.values(), key=lambda r: r.id)
    if not runs:
        return None
    if kind in ("resume_dead", "abort_dead"):
        cands = [r for r in runs if r.status != "running"]
        if not cands:
            return None
        run = rng.choice(cands)
        cmd = kind.split("_")[0]
        r = producer(cmd, "--run", run.id, "--timeout", "10") if cmd == "resume" else producer(cmd, "--run", run.id)
        st = sql_json("SELECT to_json(status) FROM alloc_run WHERE run_id = %d" % run.id)
        FAM.check("refuse", r.rc == 4 and st == run.status,
                  lambda: "%s --run %d of a %s run: %r, status now %s" % (cmd, run.id, run.what(), r, st))
        return "%s --run %d (%s) -> rc %s" % (cmd, run.id, run.what(), r.rc)
    run = rng.choice(runs)
    if kind == "status":
        r = producer("status", "--run", run.id)
        want = 0 if run.readable() else 4
        text = r.out + r.err
        words = ["succeeded", "replaced"] if run.replaced or run.dropped else [run.status]
        FAM.check("status", r.rc == want and names_run(text, run.id) and any(w in text for w in words),
                  lambda: "status --run %d (%s): %r, want exit %d and the status %s printed; stdout %r" % (
                      run.id, run.what(), r, want, "/".join(words), r.out[:200]))
        if run.readable() and r.rc == 0:
            # DESIGN 5.6: status reports the changes after the snapshot ("report is stale")
            n = M.periods[run.period].changes - run.changes_at_start
            FAM.check("status", ("stale" in r.out) == (n > 0),
                      lambda: "status --run %d: %d ledger rows of %s changed after its snapshot, but the output %s 'stale': %r" % (
                          run.id, n, run.period, "does not say" if n > 0 else "says", r.out[-200:]))
        return "status --run %d (%s) -> rc %s" % (run.id, run.what(), r.rc)
    others = [p for p in sorted(M.periods) if p != run.period]
    p = rng.choice(others)
    r = producer("report", "--period", p, "--run", run.id, "--checksum")
    FAM.check("dead", r.rc == 4, lambda: "report --period %s --run %d (a run of %s): %r" % (p, run.id, run.period, r))
    return "report --period %s --run %d (other period) -> rc %s" % (p, run.id, r.rc)


def export_checksum(path):
    """The contract checksum (DESIGN 4, report --checksum) of an exported
    csv.gz file, and its row count."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))[1:]
    keyed = sorted((tuple(x.encode() for x in r[:4]), r[4] if r[4] != "" else "NULL") for r in rows)
    text = "".join("%s|%s\n" % ("|".join(k.decode() for k in key), amount) for key, amount in keyed)
    return hashlib.sha256(text.encode()).hexdigest(), len(rows)


def act_export(rng):
    """export --wait of the period (published, else latest succeeded run) or of
    --run ID: the file holds that run's rows; a dead run or none exits 4."""
    p = pick_period(rng)
    kind = rng.choice(["period", "period", "run_dead", "run_readable"])
    cands = []
    if kind == "run_dead":
        cands = sorted((r for r in M.period_runs(p) if r.dead() or r.status == "running"), key=lambda r: r.id)
    elif kind == "run_readable":
        cands = sorted((r for r in M.period_runs(p) if r.readable()), key=lambda r: r.id)
    if cands:
        target = rng.choice(cands)
        args = ["--run", target.id]
    else:
        kind, target, args = "period", M.visible(p), []
    r = producer("export", "--period", p, *args, "--format", "csv.gz", "--wait", "--timeout", "60", timeout=90)
    if target is None or not target.readable():
        what = "no run to export" if target is None else "run %d is %s" % (target.id, target.what())
        FAM.check("export", r.rc == 4 and (target is None or names_run(r.err, target.id)),
                  lambda: "export --period %s %s (%s): %r, want exit 4%s" % (
                      p, " ".join(map(str, args)), what, r, "" if target is None else " naming the run"))
        return "export %s %s (%s) -> rc %s" % (p, kind, what, r.rc)
    info = dict(l.split(" ", 1) for l in r.out.splitlines() if " " in l)
    got = None
    if r.rc == 0 and os.path.exists(info.get("path", "")):
        got = export_checksum(info["path"])
    FAM.check("export", got is not None and got[0] == target.checksum,
              lambda: "export --period %s %s (run %d): %r, %s" % (
                  p, " ".join(map(str, args)), target.id, r,
                  "no file (%r)" % r.out[-200:] if got is None else "the file has %d rows with checksum %s, run %d finished with %s" % (
                      got[1], got[0][:16], target.id, (target.checksum or "")[:16])))
    return "export %s %s (run %d) -> rc %s" % (p, kind, target.id, r.rc)


ACTIONS = {
    "run": act_run, "run_fail_start": act_run_fail_start, "run_kill": act_run_kill, "run_timeout": act_run_timeout,
    "resume": act_resume, "abort": act_abort, "publish": act_publish, "close": act_close,
    "ledger_sql": act_ledger_sql, "ledger_import": act_ledger_import,
    "rename": act_rename, "reorder": act_reorder, "error_rule": act_error_rule, "probe": act_probe,
    "export": act_export,
}


# ------------------------------------------------------------------ checks ---

DB_QUERY = r"""
SELECT json_build_object(
 'runs', (SELECT coalesce(json_agg(json_build_object('id', run_id, 'period', period_code, 'status', status, 'error', error)
          ORDER BY run_id), '[]') FROM alloc_run),
 'rows', (SELECT coalesce(json_object_agg(run_id, n), '{}') FROM (SELECT run_id, count(*) AS n FROM report_after GROUP BY run_id) x),
 'periods', (SELECT json_object_agg(period_code, json_build_array(status,
          (SELECT count(*) FROM ledger_entry l WHERE l.period_code = p.period_code))) FROM period p),
 'published', (SELECT coalesce(json_agg(json_build_object('period', p.period_code, 'run', p.run_id,
          'status', (SELECT status FROM alloc_run r WHERE r.run_id = p.run_id),
          'run_period', (SELECT period_code FROM alloc_run r WHERE r.run_id = p.run_id),
          'n', (SELECT count(*) FROM report_after a WHERE a.run_id = p.run_id),
          'h', (SELECT md5(coalesce(string_agg(concat_ws('|', version, data_source, project_code, item_code, coalesce(amount::text, 'NULL')),
                E'\n' ORDER BY version COLLATE "C", data_source COLLATE "C", project_code COLLATE "C", item_code COLLATE "C"), ''))
                FROM report_after a WHERE a.run_id = p.run_id),
          'cn', (SELECT count(*) FROM report_current c WHERE c.period_code = p.period_code),
          'ch', (SELECT md5(coalesce(string_agg(concat_ws('|', version, data_source, project_code, item_code, coalesce(amount::text, 'NULL')),
                E'\n' ORDER BY version COLLATE "C", data_source COLLATE "C", project_code COLLATE "C", item_code COLLATE "C"), ''))
                FROM report_current c WHERE c.period_code = p.period_code),
          'cr', (SELECT coalesce(json_agg(DISTINCT c.run_id), '[]') FROM report_current c WHERE c.period_code = p.period_code))), '[]')
          FROM report_published p),
 'current_periods', (SELECT coalesce(json_agg(DISTINCT period_code), '[]') FROM report_current))
"""


def check_db(db):
    dbruns = {x["id"]: x for x in db["runs"]}
    for rid, x in sorted(dbruns.items()):
        run = M.runs.get(rid)
        if run is None:
            FAM.check("db", False, "alloc_run has run %d (%s, %s) that no command of the model started" % (rid, x["period"], x["status"]))
            adopt_new_runs([x])
            continue
        FAM.check("db", x["status"] == run.status,
                  lambda: "run %d of %s is %s in alloc_run, the model says %s" % (rid, run.period, x["status"], run.what()))
        if x["status"] == "failed":
            FAM.check("fail_start", bool((x["error"] or "").strip()), lambda: "failed run %d has no alloc_run.error" % rid)
        if x["error"]:
            cred_check(x["error"], "alloc_run.error of run %d" % rid)
        n = db["rows"].get(str(rid), 0)
        if run.readable():
            FAM.check("replace", n > 0, lambda: "run %d (%s, readable in the model) has no report_after rows" % (rid, run.period))
        elif run.replaced:
            FAM.check("replace", n == 0, lambda: "run %d was replaced but still has %d report_after rows" % (rid, n))
    for rid, run in M.runs.items():
        if rid not in dbruns:
            FAM.check("db", False, "run %d (%s) is missing from alloc_run" % (rid, run.period))
    for p, P in sorted(M.periods.items()):
        st, n = db["periods"].get(p, [None, None])
        FAM.check("db", st == ("closed" if P.closed else "open"),
                  lambda: "period %s is %s, the model says %s" % (p, st, "closed" if P.closed else "open"))
        FAM.check("db", n == P.ledger, lambda: "period %s has %s ledger rows, the model says %d" % (p, n, P.ledger))
    pubs = {x["period"]: x for x in db["published"]}
    for p, P in sorted(M.periods.items()):
        got = pubs.get(p, {}).get("run")
        FAM.check("db", got == P.published, lambda: "report_published of %s is run %s, the model says %s" % (p, got, P.published))
    for p, x in sorted(pubs.items()):
        FAM.check("half", x["status"] == "succeeded" and x["run_period"] == p and x["n"] > 0,
                  lambda: "report_published %s -> run %s (%s of %s) with %d report_after rows" % (p, x["run"], x["status"], x["run_period"], x["n"]))
        FAM.check("half", x["cn"] == x["n"] and x["ch"] == x["h"] and x["cr"] in ([], [x["run"]]),
                  lambda: "report_current of %s: %d rows of runs %s, report_after of published run %s: %d rows (same rows: %s)" % (
                      p, x["cn"], x["cr"], x["run"], x["n"], x["ch"] == x["h"]))
    for p in db["current_periods"]:
        FAM.check("half", p in pubs, lambda: "report_current has rows of %s, which has no published run" % p)


def check_all(crng, ruleset_edited):
    """After every step: the checksum report of every period; the csv report,
    and the readable runs other than the shown one, of the periods the step
    acted on and of one more in turn (the checksum already tells which run is
    shown); every other step one dead run (each is also checked when it dies);
    after ruleset edits the table reports; the database."""
    periods = sorted(M.periods)
    calls = [(SESSION.query, (DB_QUERY,))]
    csv_for = set(STATE.touched) | {periods[STATE.step % len(periods)]}
    for p in periods:
        calls.append((producer, ("report", "--period", p, "--checksum")))
        if p in csv_for:
            calls.append((producer, ("report", "--period", p, "--format", "csv")))
    # readable runs other than the one --period shows (in the same periods as the csv)
    extra = [r for r in sorted(M.runs.values(), key=lambda r: r.id)
             if r.period in csv_for and r.readable() and r is not M.visible(r.period)]
    for r in extra:
        calls.append((producer, ("report", "--period", r.period, "--run", r.id, "--checksum")))
    dead = [r for r in sorted(M.runs.values(), key=lambda r: r.id) if r.dead()]
    probe = crng.choice(dead) if dead and STATE.step % 2 == 0 else None
    if probe:
        calls.append((producer, ("report", "--period", probe.period, "--run", probe.id, "--checksum")))
    tables = []
    if ruleset_edited:
        for p in periods:
            if M.periods[p].closed or M.visible(p) is not None:
                tables.append(p)
                calls.append((producer, ("report", "--period", p)))
    res = parallel(calls)
    db = json.loads(res[0].strip())
    i = 1
    by_sum = {r.checksum: r for r in M.runs.values() if r.checksum}
    for p in periods:
        cs, csv = res[i], (res[i + 1] if p in csv_for else None)
        i += 2 if p in csv_for else 1
        want = M.visible(p)
        got = cs.out.strip()
        if want is None:
            FAM.check("report", cs.rc == 4, lambda: "report --period %s --checksum: the model has no run to show, got %r %s" % (p, cs, got[:16]))
            if csv is not None:
                FAM.check("nonempty", csv.rc == 4, lambda: "report --period %s --format csv: the model has no run to show, got %r" % (p, csv))
        else:
            def why():
                shown = by_sum.get(got)
                return "report --period %s --checksum shows %s, the model says run %d (%s) with %s" % (
                    p, ("run %d (%s)" % (shown.id, shown.what())) if shown else ("%r %s" % (cs, got[:16])),
                    want.id, "published" if M.periods[p].published == want.id else "latest succeeded", (want.checksum or "")[:16])
            FAM.check("report", cs.rc == 0 and got == want.checksum, why)
            if csv is not None:
                FAM.check("nonempty", csv.rc == 0 and csv_rows(csv.out) > 0,
                          lambda: "report --period %s --format csv: %r with %d rows, the model shows run %d" % (p, csv, csv_rows(csv.out), want.id))
    for r in extra:
        o = res[i]
        i += 1
        FAM.check("readable", o.rc == 0 and o.out.strip() == r.checksum,
                  lambda: "report --run %d (%s, readable) -> %r %s, it finished with %s" % (r.id, r.period, o, o.out.strip()[:16], (r.checksum or "")[:16]))
    if probe:
        o = res[i]
        i += 1
        FAM.check("dead", o.rc == 4 and names_run(o.err, probe.id),
                  lambda: "report --run %d (%s) -> %r, want exit 4 naming the run" % (probe.id, probe.what(), o))
    for p in tables:
        o = res[i]
        i += 1
        P = M.periods[p]
        if P.closed:
            FAM.check("ruleset", (o.rc, o.out) == P.closed_report,
                      lambda: "report --period %s (closed) changed after a ruleset edit: exit %s->%s, first differing line %r -> %r" % (
                          p, P.closed_report[0], o.rc, *first_diff(P.closed_report[1], o.out)))
        else:
            want = M.visible(p)
            if want.body is not None:
                FAM.check("ruleset", o.rc == 0 and body_of(o.out) == want.body,
                          lambda: "report --period %s (run %d) changed after a ruleset edit: first differing line %r -> %r" % (
                              p, want.id, *first_diff(want.body, body_of(o.out))))
    check_db(db)


def first_diff(a, b):
    la, lb = a.splitlines(), b.splitlines()
    for x, y in zip(la, lb):
        if x != y:
            return x, y
    return (la[len(lb)] if len(la) > len(lb) else ""), (lb[len(la)] if len(lb) > len(la) else "")


# -------------------------------------------------------------------- main ---

def main():
    t0 = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the consumers on the way out
    print("# seed %d, %d steps (ALLOC_LIFECYCLE_SEED, ALLOC_LIFECYCLE_STEPS)" % (SEED, STEPS))
    sys.stdout.flush()
    rng = random.Random(SEED)
    crng = random.Random(SEED * 7919 + 1)
    steplog = open(os.path.join(LOGS, "steps.log"), "w")
    names = [a for a, _ in WEIGHTS]
    weights = [w for _, w in WEIGHTS]
    mix = {}
    wall = {}  # seconds per action kind, and in the checks
    try:
        for p in FIRST_PERIODS:
            add_period(p)
        load_items()
        CONS.start()
        for step in range(1, STEPS + 1):
            STATE.step = step
            STATE.touched = set()
            t1 = time.time()
            while True:
                a = rng.choices(names, weights)[0]
                STATE.current = a
                desc = ACTIONS[a](rng)
                if desc is not None:
                    break
            mix[a] = mix.get(a, 0) + 1
            t2 = time.time()
            wall[a] = wall.get(a, 0) + t2 - t1
            line = "%3d %s" % (step, desc)
            STATE.steps.append(line)
            steplog.write(line + "\n")
            steplog.flush()
            check_all(crng, a in ("rename", "reorder", "error_rule") or step == STEPS)
            wall["checks"] = wall.get("checks", 0) + time.time() - t2
    except Exception as e:  # a broken harness must not look like a pass
        traceback.print_exc(file=sys.stdout)
        FAM.check("db", False, "the driver stopped at step %d: %s" % (STATE.step, e))
    finally:
        CONS.stop()
        SESSION.close()
    # the consumers' logs and the killed producers' output (DESIGN 4: logs too)
    for name in sorted(os.listdir(LOGS)):
        if name.startswith(("consumer-", "killed-")):
            with open(os.path.join(LOGS, name), errors="replace") as f:
                cred_check(f.read(), name)
    elapsed = time.time() - t0
    total_fail = 0
    for fam, title in FAM.ORDER:
        n, fails = FAM.count[fam], FAM.fails[fam]
        if fails:
            total_fail += 1
            step, why = fails[0]
            print("not ok - lifecycle: %s (%d of %d checks failed; first at step %d: %s)" % (title, len(fails), n, step, why))
        elif n == 0:
            print("ok - lifecycle: %s (not exercised by this seed)" % title)
        else:
            print("ok - lifecycle: %s (%d checks)" % (title, n))
    print("# step mix: " + ", ".join("%s %d" % (a, mix.get(a, 0)) for a in names))
    print("# seconds: " + ", ".join("%s %.0f" % (a, t) for a, t in sorted(wall.items(), key=lambda x: -x[1])))
    print("# %d runs in the model: %s" % (len(M.runs), ", ".join("%s %d" % (s, sum(1 for r in M.runs.values() if r.what() == s))
                                                                 for s in ("succeeded", "replaced", "failed", "aborted", "running", "unpublished and dropped"))))
    print("# runs a publish switched away from: %d still readable until the next success, %d not" % tuple(STATE.unpublished))
    print("# periods: " + ", ".join("%s %s%s" % (p, "closed" if P.closed else "open", " published %s" % P.published if P.published else "")
                                     for p, P in sorted(M.periods.items())))
    if FAM.first_fail_step is not None:
        print("# replay: ALLOC_LIFECYCLE_SEED=%d ALLOC_LIFECYCLE_STEPS=%d tests/run.sh t_lifecycle   (first failure at step %d; steps in %s/steps.log)"
              % (SEED, FAM.first_fail_step, FAM.first_fail_step, LOGS))
    print("# lifecycle: %d steps in %.0f s, seed %d, %d check families failed" % (STEPS, elapsed, SEED, total_fail))
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
