-- Stored(source) streams a source's rows and ledger entries in key order,
-- then id, comparing bytes (COLLATE "C"), so that a sync merges them with
-- the listing in bounded memory. These indexes give that order as a merge
-- of two index(-only) scans, without a sort; they replace the source-only
-- indexes, whose work they also do.
DROP INDEX IF EXISTS {{schema}}.{{name "_source"}};
CREATE INDEX {{name "_source_key"}} ON {{table ""}} (source, key COLLATE "C", id COLLATE "C")
    INCLUDE (size, mtime_ns, etag, sha256, model_id);
DROP INDEX IF EXISTS {{schema}}.{{name "_failures_source"}};
CREATE INDEX {{name "_failures_key"}} ON {{table "_failures"}} (source, key COLLATE "C", id COLLATE "C")
    INCLUDE (size, mtime_ns, etag, sha256, model_id, class);
