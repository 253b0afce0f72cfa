DROP INDEX runs_job_shard;
ALTER TABLE runs DROP COLUMN skipped;
ALTER TABLE runs DROP COLUMN shard;
