-- Sharded runs (--shard I/N) record their slice, "" for the whole source,
-- and runs count policy skips (opted_out) apart from failures. The index
-- serves the latest run of each shard of a job (the shard-count check).
ALTER TABLE runs ADD COLUMN shard TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_job_shard ON runs (job, source, shard, started_at);
