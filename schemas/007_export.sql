-- Export tasks (DESIGN.md 5.7, issue 5): what a worker needs beyond 001's table.
-- run_id: the run `export` chose when the task was filed (published, else the
--   latest succeeded, or --run), so the file is that run's whatever happens later.
-- heartbeat_at: bumped by the worker while it writes; a task 'running' with a
--   stale heartbeat belongs to a worker that died and is claimed again.
-- claimed_by: the consumer (host:pid) that claimed it last.
-- attempts: claims so far; it is also the claim's token (a worker updates the
--   task only while attempts is still the value its claim set), and a task
--   claimed too often (a worker dies on it every time) is failed.
ALTER TABLE export_task
    ADD COLUMN run_id       bigint,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN claimed_by   text,
    ADD COLUMN attempts     int NOT NULL DEFAULT 0;
CREATE INDEX export_task_running ON export_task (task_id) WHERE status = 'running';
