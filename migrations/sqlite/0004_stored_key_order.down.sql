DROP INDEX failures_source_key;
CREATE INDEX failures_source ON failures (source);
DROP INDEX items_source_key;
CREATE INDEX items_source ON items (source);
