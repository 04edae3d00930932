-- The formula stage assembles report_after in units (DESIGN.md 5.4, 5.5): a
-- consumer takes the projects of one data source in one range of project codes,
-- sums their direct rows (report_before) and allocated partials, evaluates the
-- formula items and audit rules of each vector and writes every report row of
-- the unit once. Only the roll-ups (#TOTAL of each data source, #ALL) are left
-- to the producer, from the units' per-item totals.

-- The units of a run: projects of data_source with project_lo <= code < project_hi
-- (NULL: unbounded), compared in the columns' own collation, the same on both
-- sides, so the units partition the keys whatever that collation is.
CREATE TABLE run_unit (
    run_id      bigint NOT NULL,
    unit_id     int    NOT NULL,
    data_source text   NOT NULL,
    project_lo  text,
    project_hi  text,
    PRIMARY KEY (run_id, unit_id)
);

-- Per unit, version and base item: the sum of the unit's base rows (cents) and
-- how many there are; written in the unit's transaction, read by the producer
-- for the roll-ups and the conservation check.
CREATE TABLE run_unit_total (
    run_id      bigint NOT NULL,
    unit_id     int    NOT NULL,
    version     text   NOT NULL,
    data_source text   NOT NULL,
    item_code   text   NOT NULL,
    cents       numeric NOT NULL,
    rows        bigint NOT NULL
);
CREATE INDEX run_unit_total_run ON run_unit_total (run_id);

-- A unit reads its data source's direct rows by project range. report_before
-- is partitioned by run, as report_after is (011): a run's rows go into a table
-- of their own and the index is built in one pass before the table is attached,
-- instead of being maintained row by row. Rows of earlier runs (and rows written
-- directly, as tests do) go to the default partition.
ALTER TABLE report_before RENAME TO report_before_unpartitioned;
DROP INDEX report_before_run;
CREATE TABLE report_before (
    run_id       bigint NOT NULL,
    version      text NOT NULL,
    data_source  text NOT NULL,
    project_code text NOT NULL,
    item_code    text NOT NULL,
    amount       numeric(18,2) NOT NULL
) PARTITION BY LIST (run_id);
CREATE TABLE report_before_default PARTITION OF report_before DEFAULT;
CREATE INDEX report_before_unit ON report_before (run_id, data_source, project_code);
INSERT INTO report_before (run_id, version, data_source, project_code, item_code, amount)
SELECT run_id, version, data_source, project_code, item_code, amount
FROM report_before_unpartitioned;
DROP TABLE report_before_unpartitioned;

-- The allocated partials of a run are written by its consumers into a table of
-- the run's own, alloc_partial_run_N (LIKE alloc_partial, made by the snapshot),
-- indexed in one pass when the allocation stage ends and dropped with the run's
-- last transaction: alloc_partial itself keeps only partials of runs made
-- before this migration.
