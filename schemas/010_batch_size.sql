-- The batch size a run's buckets were cut with: `resume` must split a
-- republished bucket exactly as before, or its batch ids would name other rows.
ALTER TABLE alloc_run ADD COLUMN batch_size int;
