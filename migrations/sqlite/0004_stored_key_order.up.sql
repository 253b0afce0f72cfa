-- Stored(source) streams a source's rows and ledger entries in key order,
-- then id (a sync merges them with the listing in bounded memory). These
-- covering indexes give that order as a merge of two index scans, without
-- a sort and without reading the rows (nor their vectors); they replace
-- the source-only indexes, whose work they also do (Delete(source, ids)).
DROP INDEX items_source;
CREATE INDEX items_source_key ON items (source, key, id, size, mtime_ns, etag, sha256, model_id);
DROP INDEX failures_source;
CREATE INDEX failures_source_key ON failures (source, key, id, size, mtime_ns, etag, sha256, model_id, class);
