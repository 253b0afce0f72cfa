DROP INDEX IF EXISTS {{schema}}.{{name "_runs_open"}};
ALTER TABLE {{table "_runs"}}
    DROP COLUMN IF EXISTS runner_start,
    DROP COLUMN IF EXISTS runner_pid,
    DROP COLUMN IF EXISTS runner_pid_ns,
    DROP COLUMN IF EXISTS runner_boot_id,
    DROP COLUMN IF EXISTS runner_host;
