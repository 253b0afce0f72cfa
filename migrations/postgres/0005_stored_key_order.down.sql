DROP INDEX IF EXISTS {{schema}}.{{name "_failures_key"}};
CREATE INDEX {{name "_failures_source"}} ON {{table "_failures"}} (source);
DROP INDEX IF EXISTS {{schema}}.{{name "_source_key"}};
CREATE INDEX {{name "_source"}} ON {{table ""}} (source);
