-- report_before is written once per run (about a million rows at seed scale)
-- and read by run only; its five-column text primary key cost more than half
-- of the run's snapshot. The batch markers already keep a run from writing a
-- row twice. A plain index on run_id serves every reader.
ALTER TABLE report_before DROP CONSTRAINT report_before_pkey;
CREATE INDEX report_before_run ON report_before (run_id);
