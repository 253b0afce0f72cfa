-- Drops the functions of 0002_search_functions.up.sql, unless another item
-- table of the schema still has version 2 applied (they are shared).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {{schema}}.imgvec_migrations
                   WHERE version = 2 AND tbl <> btrim('{{name ""}}', '"')) THEN
        DROP FUNCTION IF EXISTS {{schema}}.imgvec_similar(text, integer, integer, text);
        DROP FUNCTION IF EXISTS {{schema}}.imgvec_search(vector, text, integer, integer, text);
    END IF;
END
$do$;
