-- 001_init: the database contract of DESIGN.md section 3 (inputs, outputs, run
-- state, report_current, the ledger_entry guards) plus the developers' tables:
-- batch markers, per-batch partial sums and export tasks.
-- Applied by `alloc-producer migrate` inside one transaction; schema_migration
-- is created by migrate itself. The last statement must be a command (not a SELECT).

-- ---------------------------------------------------------------- inputs

CREATE TABLE period (
    period_code text PRIMARY KEY CHECK (period_code ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    ruleset     text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    change_seq  bigint NOT NULL DEFAULT 0,
    closed_at   timestamptz
);

CREATE TABLE project (
    project_code  text PRIMARY KEY CHECK (project_code NOT LIKE '#%'),  -- '#...' codes are reserved
    company_code  text NOT NULL,
    data_source   text NOT NULL CHECK (data_source <> '#ALL'),
    business_line text,
    active        boolean NOT NULL DEFAULT true
);

CREATE TABLE ledger_entry (
    entry_id         bigserial PRIMARY KEY,
    period_code      text NOT NULL REFERENCES period,
    company_code     text NOT NULL,
    data_source      text NOT NULL,
    business_line    text,
    budget_item_code text,
    account_code     text,
    project_code     text NULL,           -- NULL = pending allocation
    category         text NOT NULL,
    amount           numeric(18,2) NOT NULL,
    posted_at        timestamptz NOT NULL DEFAULT now()
);
-- A run reads one period, pending (project_code IS NULL) and direct rows apart.
CREATE INDEX ledger_entry_period_project ON ledger_entry (period_code, project_code);

CREATE TABLE report_item (
    ruleset    text,
    item_code  text,
    name       text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('base', 'formula')),
    formula    text NULL,
    sort_order int NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ruleset, item_code)
);

CREATE TABLE binding_rule (
    ruleset    text,
    match_kind text CHECK (match_kind IN ('budget_item', 'account')),
    match_code text,
    item_code  text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ruleset, match_kind, match_code)
);

CREATE TABLE allocation_rule (
    ruleset    text,
    version    text,
    item_code  text,                      -- '*' = default for the version
    driver     text NOT NULL,             -- a driver name, or 'equal'
    scope      text NOT NULL CHECK (scope IN ('city', 'company')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ruleset, version, item_code)
);

CREATE TABLE allocation_driver (
    period_code  text,
    driver       text,
    project_code text,
    value        numeric(18,6) NOT NULL CHECK (value >= 0),
    PRIMARY KEY (period_code, driver, project_code)
);

CREATE TABLE report_version (
    version            text PRIMARY KEY,
    name               text NOT NULL,
    include_categories text[] NULL        -- NULL = all categories
);

CREATE TABLE audit_rule (
    ruleset    text,
    rule_code  text,
    expr       text NOT NULL,
    message    text NOT NULL,
    severity   text NOT NULL CHECK (severity IN ('error', 'warning')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ruleset, rule_code)
);

-- The ruleset stamp is the latest updated_at over the ruleset's rows (DESIGN.md
-- 5.5), so an UPDATE that does not set updated_at itself must still move it, or
-- the compiled formulas cached under the old stamp would be served.
CREATE FUNCTION ruleset_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at + interval '1 microsecond');
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER report_item_touch BEFORE UPDATE ON report_item
    FOR EACH ROW EXECUTE FUNCTION ruleset_touch();
CREATE TRIGGER binding_rule_touch BEFORE UPDATE ON binding_rule
    FOR EACH ROW EXECUTE FUNCTION ruleset_touch();
CREATE TRIGGER allocation_rule_touch BEFORE UPDATE ON allocation_rule
    FOR EACH ROW EXECUTE FUNCTION ruleset_touch();
CREATE TRIGGER audit_rule_touch BEFORE UPDATE ON audit_rule
    FOR EACH ROW EXECUTE FUNCTION ruleset_touch();

-- ---------------------------------------------------------------- outputs and run state

CREATE TABLE alloc_run (
    run_id           bigserial PRIMARY KEY,
    period_code      text NOT NULL REFERENCES period,
    ruleset          text,
    ruleset_stamp    text,
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    change_seq       bigint,             -- period.change_seq seen by the snapshot
    rows_pending     bigint,
    rows_direct      bigint,
    amount_pending   numeric,
    amount_direct    numeric,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    error            text,
    stage            text,               -- split | allocate | aggregate | formula | done
    detail           boolean NOT NULL DEFAULT false,
    expected_batches bigint,
    heartbeat_at     timestamptz
);
-- At most one running run per period: a second INSERT fails with 23505.
CREATE UNIQUE INDEX alloc_run_one_running ON alloc_run (period_code) WHERE status = 'running';
CREATE INDEX alloc_run_period ON alloc_run (period_code, run_id);

-- The result tables carry no foreign keys: they are bulk-loaded with COPY and an
-- RI check per row would dominate the load. The keys order the rows for keyset
-- reads (export, checksum) and catch a batch written twice.
CREATE TABLE report_before (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    data_source  text NOT NULL,
    project_code text NOT NULL,
    item_code    text NOT NULL,
    amount       numeric(18,2) NOT NULL,
    PRIMARY KEY (run_id, version, data_source, project_code, item_code)
);

CREATE TABLE report_after (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    data_source  text NOT NULL,
    project_code text NOT NULL,
    item_code    text NOT NULL,
    amount       numeric(18,2) NULL,     -- NULL: a formula without a value
    PRIMARY KEY (run_id, version, data_source, project_code, item_code)
);

CREATE TABLE alloc_detail (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    entry_id     bigint NOT NULL,
    project_code text NOT NULL,
    amount       numeric(18,2) NOT NULL,
    PRIMARY KEY (run_id, version, entry_id, project_code)
);

CREATE TABLE audit_finding (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    data_source  text NOT NULL,
    project_code text NOT NULL,
    rule_code    text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('error', 'warning')),
    message      text NOT NULL
);
CREATE INDEX audit_finding_run ON audit_finding (run_id, version, data_source, project_code);

CREATE TABLE report_published (
    period_code  text PRIMARY KEY REFERENCES period,
    run_id       bigint NOT NULL REFERENCES alloc_run,
    published_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE run_log (
    run_id bigint,                        -- NULL for events of no run
    at     timestamptz NOT NULL DEFAULT now(),
    event  text NOT NULL,
    detail jsonb
);
CREATE INDEX run_log_run ON run_log (run_id, at);

-- The rows of the published run of each period.
CREATE VIEW report_current AS
SELECT p.period_code, a.run_id, a.version, a.data_source, a.project_code, a.item_code, a.amount
FROM report_published p
JOIN report_after a ON a.run_id = p.run_id;

-- A batch processed for a stage of a run, written in the transaction of the
-- batch's results: the truth for exactly-once counting (DESIGN.md 5.6).
CREATE TABLE batch_marker (
    run_id   bigint NOT NULL,
    stage    text NOT NULL,
    batch_id text NOT NULL,
    consumer text,
    rows     int,
    done_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, stage, batch_id)
);

-- Per-batch partial sums of allocated and direct amounts, in cents, summed by
-- the aggregation stage into report_after.
CREATE TABLE alloc_partial (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    data_source  text NOT NULL,
    project_code text NOT NULL,
    item_code    text NOT NULL,
    cents        bigint NOT NULL
);
CREATE INDEX alloc_partial_run ON alloc_partial (run_id);

-- Export tasks (DESIGN.md 5.7): filed by `export`, claimed by a worker.
CREATE TABLE export_task (
    task_id     bigserial PRIMARY KEY,
    period_code text NOT NULL,
    version     text,                     -- NULL = every version
    detail      boolean NOT NULL DEFAULT false,
    format      text NOT NULL CHECK (format IN ('csv.gz', 'xlsx')),
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
    path        text,
    row_count   bigint,
    sha256      text,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX export_task_queued ON export_task (task_id) WHERE status = 'queued';

-- ---------------------------------------------------------------- ledger guards
-- Statement-level triggers (one per event, as transition tables require): the
-- rows a statement touched are counted per period in one pass over the
-- transition table; then each touched period row is updated, which locks it.
-- A statement touching a closed period fails with SQLSTATE AL001 naming the
-- period; otherwise period.change_seq grows by the number of rows touched.
-- The lock closes the race with close-period: close-period's UPDATE of the
-- period row waits for an uncommitted ledger change, and a ledger change after
-- the close re-reads the row (READ COMMITTED) and sees it closed.

-- Applies one statement's per-period row counts.
CREATE FUNCTION ledger_entry_apply(codes text[], counts bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    closed_code text;
BEGIN
    IF codes IS NULL THEN
        RETURN;
    END IF;
    WITH bumped AS (
        UPDATE period p
           SET change_seq = p.change_seq + t.n
          FROM unnest(codes, counts) AS t(code, n)
         WHERE p.period_code = t.code
        RETURNING p.period_code, p.status
    )
    SELECT min(period_code) INTO closed_code FROM bumped WHERE status = 'closed';
    IF closed_code IS NOT NULL THEN
        RAISE EXCEPTION 'period % is closed: ledger rows cannot change', closed_code
            USING ERRCODE = 'AL001',
                  HINT = 'post the change to an open period';
    END IF;
END $$;

CREATE FUNCTION ledger_entry_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[];
    counts bigint[];
BEGIN
    SELECT array_agg(period_code ORDER BY period_code), array_agg(n ORDER BY period_code)
      INTO codes, counts
      FROM (SELECT period_code, count(*) AS n FROM new_rows GROUP BY period_code) t;
    PERFORM ledger_entry_apply(codes, counts);
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_entry_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[];
    counts bigint[];
BEGIN
    SELECT array_agg(period_code ORDER BY period_code), array_agg(n ORDER BY period_code)
      INTO codes, counts
      FROM (SELECT period_code, count(*) AS n FROM old_rows GROUP BY period_code) t;
    PERFORM ledger_entry_apply(codes, counts);
    RETURN NULL;
END $$;

-- An updated row counts once in its new period and, when it moved, once more in
-- its old period.
CREATE FUNCTION ledger_entry_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[];
    counts bigint[];
BEGIN
    SELECT array_agg(period_code ORDER BY period_code), array_agg(n ORDER BY period_code)
      INTO codes, counts
      FROM (SELECT period_code, count(*) AS n
              FROM (SELECT nr.period_code FROM new_rows nr
                    UNION ALL
                    SELECT o.period_code FROM old_rows o
                     WHERE NOT EXISTS (SELECT 1 FROM new_rows nr
                                        WHERE nr.entry_id = o.entry_id
                                          AND nr.period_code = o.period_code)) touched
             GROUP BY period_code) t;
    PERFORM ledger_entry_apply(codes, counts);
    RETURN NULL;
END $$;

-- TRUNCATE has no transition table: count what is there before it goes.
CREATE FUNCTION ledger_entry_before_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    codes text[];
    counts bigint[];
BEGIN
    SELECT array_agg(period_code ORDER BY period_code), array_agg(n ORDER BY period_code)
      INTO codes, counts
      FROM (SELECT period_code, count(*) AS n FROM ledger_entry GROUP BY period_code) t;
    PERFORM ledger_entry_apply(codes, counts);
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entry_guard_insert AFTER INSERT ON ledger_entry
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_after_insert();
CREATE TRIGGER ledger_entry_guard_update AFTER UPDATE ON ledger_entry
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_after_update();
CREATE TRIGGER ledger_entry_guard_delete AFTER DELETE ON ledger_entry
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_after_delete();
CREATE TRIGGER ledger_entry_guard_truncate BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_before_truncate();
