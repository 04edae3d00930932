-- The formula stage of a run (issue 4): the compiled ruleset the run uses, kept
-- so a resumed run caches exactly the formulas its snapshot compiled, and the
-- number of formula batches.
ALTER TABLE run_public
    ADD COLUMN fx_key   text,   -- Redis key of the compiled formulas (and fx_key || ':audits')
    ADD COLUMN formulas bytea,  -- fx_ruleset_serialize() of the snapshot's ruleset
    ADD COLUMN audits   text;   -- JSON [[rule_code, severity, message], ...] in evaluation order
ALTER TABLE alloc_run
    ADD COLUMN formula_batches bigint;
