-- Pipeline state of a run (developers' tables, DESIGN.md section 3 "more tables").
-- Written in the run's snapshot transaction, so a run and its inputs appear together.

-- The run's pending rows, copied out of its snapshot with their item resolved:
-- buckets are cut from here (and again by `resume`), never from the live ledger.
CREATE TABLE run_pending (
    run_id       bigint NOT NULL,
    entry_id     bigint NOT NULL,
    data_source  text   NOT NULL,
    company_code text   NOT NULL,
    item_code    text   NOT NULL,
    category     text   NOT NULL,
    cents        bigint NOT NULL,
    PRIMARY KEY (run_id, entry_id)
);

-- The buckets of a run: rows [first_row, first_row + row_count) of its data source's
-- pending rows in (item_code, entry_id) order; batch ids are bucket_id || '/' || k.
CREATE TABLE run_bucket (
    run_id      bigint NOT NULL,
    bucket_id   text   NOT NULL,
    data_source text   NOT NULL,
    first_row   bigint NOT NULL,
    row_count   int    NOT NULL,
    batch_count int    NOT NULL,
    PRIMARY KEY (run_id, bucket_id)
);

-- Per version: the ledger total the version includes, for the conservation check.
CREATE TABLE run_version_total (
    run_id  bigint  NOT NULL,
    version text    NOT NULL,
    rows    bigint  NOT NULL,
    amount  numeric NOT NULL,
    PRIMARY KEY (run_id, version)
);

-- The public data (rules, projects, driver weights) consumers take from Redis;
-- kept here so a lost Redis key can be restored without re-reading live tables.
CREATE TABLE run_public (
    run_id    bigint PRIMARY KEY,
    cache_key text   NOT NULL,
    body      text   NOT NULL
);

-- Pending rows that could not be allocated, counted per batch, for the
-- 'unallocated' warning findings.
CREATE TABLE alloc_unallocated (
    run_id      bigint NOT NULL,
    batch_id    text   NOT NULL,
    version     text   NOT NULL,
    data_source text   NOT NULL,
    item_code   text   NOT NULL,
    rows        bigint NOT NULL
);
CREATE INDEX alloc_unallocated_run ON alloc_unallocated (run_id);
