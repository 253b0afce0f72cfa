-- The process performing each run (schema.Runner), so that a later run on
-- the same host can close as "abandoned" the runs whose process is
-- provably gone (killed one-shot runs, which hold no job lease).
ALTER TABLE {{table "_runs"}}
    ADD COLUMN runner_host    text NOT NULL DEFAULT '',
    ADD COLUMN runner_boot_id text NOT NULL DEFAULT '',
    ADD COLUMN runner_pid_ns  text NOT NULL DEFAULT '',
    ADD COLUMN runner_pid     bigint NOT NULL DEFAULT 0,
    ADD COLUMN runner_start   bigint NOT NULL DEFAULT 0;
CREATE INDEX {{name "_runs_open"}} ON {{table "_runs"}} (runner_host) WHERE outcome = 'running';
