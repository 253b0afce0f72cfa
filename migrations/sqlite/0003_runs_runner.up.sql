-- The process performing each run (schema.Runner), so that a later run on
-- the same host can close as "abandoned" the runs whose process is
-- provably gone (killed one-shot runs, which hold no job lease).
ALTER TABLE runs ADD COLUMN runner_host TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN runner_boot_id TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN runner_pid_ns TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN runner_pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN runner_start INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_open ON runs (runner_host) WHERE outcome = 'running';
