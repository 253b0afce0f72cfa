DROP INDEX runs_open;
ALTER TABLE runs DROP COLUMN runner_start;
ALTER TABLE runs DROP COLUMN runner_pid;
ALTER TABLE runs DROP COLUMN runner_pid_ns;
ALTER TABLE runs DROP COLUMN runner_boot_id;
ALTER TABLE runs DROP COLUMN runner_host;
