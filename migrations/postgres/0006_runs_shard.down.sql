DROP INDEX IF EXISTS {{schema}}.{{name "_runs_shard"}};
ALTER TABLE {{table "_runs"}}
    DROP COLUMN IF EXISTS skipped,
    DROP COLUMN IF EXISTS shard;
