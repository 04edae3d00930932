-- The run lifecycle (DESIGN.md 5.6): a run's results are replaced only by a
-- later run that succeeds, and a run keeps the report items it was made with.

-- Set, in the transaction that marks run N succeeded, on every earlier
-- unpublished succeeded run of the period whose results N deleted: such a run
-- stays 'succeeded' in its history but is no longer readable or publishable.
ALTER TABLE alloc_run ADD COLUMN replaced_by bigint;

-- The report items of a run (names, kinds, formulas and order) as its snapshot
-- saw them, so later ruleset edits never rename or reorder a run's report.
CREATE TABLE run_item (
    run_id     bigint NOT NULL,
    item_code  text   NOT NULL,
    name       text   NOT NULL,
    kind       text   NOT NULL,
    formula    text,
    sort_order int    NOT NULL,
    PRIMARY KEY (run_id, item_code)
);

-- Runs made before this migration: their items as the ruleset has them now
-- (the best that is known), and the succeeded ones whose results an earlier
-- version deleted when a later run of the period started are marked replaced.
INSERT INTO run_item (run_id, item_code, name, kind, formula, sort_order)
SELECT r.run_id, i.item_code, i.name, i.kind, i.formula, i.sort_order
FROM alloc_run r JOIN report_item i ON i.ruleset = r.ruleset
WHERE r.status = 'succeeded';

UPDATE alloc_run r
SET replaced_by = (SELECT min(l.run_id) FROM alloc_run l
                   WHERE l.period_code = r.period_code AND l.run_id > r.run_id)
WHERE r.status = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM report_published p WHERE p.run_id = r.run_id)
  AND NOT EXISTS (SELECT 1 FROM report_after a WHERE a.run_id = r.run_id)
  AND EXISTS (SELECT 1 FROM alloc_run l WHERE l.period_code = r.period_code AND l.run_id > r.run_id);
