-- Sharded runs (--shard I/N) record their slice, '' for the whole source,
-- and runs count policy skips (opted_out) apart from failures. The index
-- serves the latest run of each shard of a job (the shard-count check).
ALTER TABLE {{table "_runs"}}
    ADD COLUMN shard   text NOT NULL DEFAULT '',
    ADD COLUMN skipped bigint NOT NULL DEFAULT 0;
CREATE INDEX {{name "_runs_shard"}} ON {{table "_runs"}} (job, source, shard, started_at);
