-- imgvec PostgreSQL schema, version 2: SQL functions that run the two-stage
-- indexed similarity query in one call (see sinks/postgres/SQL.md).
--
-- This file is a text/template (see 0001_initial.up.sql): only the schema
-- and table actions are substituted, with validated, quoted identifiers.
--
--   imgvec_search(query vector, model text, k int = 10, candidates int = 40, tbl text = <this table>)
--   imgvec_similar(item_id text, k int = 10, candidates int = 40, tbl text = <this table>)
--
-- both return (id, key, distance), nearest first (cosine distance, ties by
-- id). When the item table has a valid `binary` index for the model
-- (`imgvec index create binary`: an HNSW index on
-- binary_quantize(embedding)::bit(DIM) with bit_hamming_ops, partial on
-- model_id, named TABLE_bq_<first 12 hex of sha256(model_id)>), they take
-- the k*candidates nearest rows by Hamming distance through the index and
-- re-rank them by exact cosine distance; otherwise they scan the model's
-- rows (exact search). hnsw.ef_search is raised to k*candidates (at most
-- 1000, beyond which iterative scans supply the rest) inside the call only.
--
-- The functions are shared by every item table of the schema; tbl defaults
-- to the table whose migration created them last: pass tbl => 'name' when
-- several item tables share a schema.
-- Load pgvector's library in this session first: it defines hnsw.*, which
-- a user who is not a superuser may then name in the SET clauses below.
SELECT vector_dims('[1]'::vector);

CREATE OR REPLACE FUNCTION {{schema}}.imgvec_search(
    query vector, model text, k integer DEFAULT 10, candidates integer DEFAULT 40,
    tbl text DEFAULT '{{table ""}}')
RETURNS TABLE (id text, key text, distance double precision)
LANGUAGE plpgsql
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = off
SET enable_sort = on
SET enable_incremental_sort = on
AS $fn$
DECLARE
    t      regclass := tbl::regclass;
    d      integer;
    rel    name;
    ns     oid;
    use_ix boolean;
    n      integer := greatest(coalesce(k, 0), 0) * greatest(coalesce(candidates, 1), 1);
BEGIN
    IF coalesce(k, 0) < 1 OR query IS NULL OR model IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT dim FROM %s WHERE model_id = $1 LIMIT 1', t) INTO d USING model;
    IF d IS NULL THEN
        RETURN;
    END IF;
    IF vector_dims(query) <> d THEN
        RAISE EXCEPTION 'imgvec_search: the query vector has % dimensions, model % has %', vector_dims(query), model, d
            USING ERRCODE = '22000';
    END IF;
    SELECT c.relname, c.relnamespace INTO rel, ns FROM pg_class c WHERE c.oid = t;
    SELECT i.indisvalid AND i.indisready INTO use_ix
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = t AND ic.relnamespace = ns
      AND ic.relname = rel || '_bq_' || left(encode(sha256(convert_to(model, 'UTF8')), 'hex'), 12);
    IF coalesce(use_ix, false) THEN
        PERFORM set_config('hnsw.ef_search', least(greatest(n, 40), 1000)::text, true);
        -- Every plan ends with the re-rank's sort: with sorts disabled the
        -- planner takes the HNSW scan (which delivers the candidates in
        -- order) over scanning and sorting the model's rows.
        PERFORM set_config('enable_sort', 'off', true);
        PERFORM set_config('enable_incremental_sort', 'off', true);
        IF n > 1000 THEN
            PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        END IF;
        -- EXECUTE plans with the parameter values, so the planner sees
        -- model_id = <constant> and can use the partial index.
        RETURN QUERY EXECUTE format(
            'SELECT c.id, c.key, c.embedding <=> $1 AS distance FROM (
                 SELECT r.id, r.key, r.embedding FROM %s r WHERE r.model_id = $2
                 ORDER BY binary_quantize(r.embedding)::bit(%s) <~> binary_quantize($1)::bit(%s)
                 LIMIT $3) c
             ORDER BY distance, c.id LIMIT $4', t, d, d)
            USING query, model, n, k;
    ELSE
        RETURN QUERY EXECUTE format(
            'SELECT r.id, r.key, r.embedding <=> $1 AS distance FROM %s r WHERE r.model_id = $2
             ORDER BY distance, r.id LIMIT $3', t)
            USING query, model, k;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION {{schema}}.imgvec_similar(
    item_id text, k integer DEFAULT 10, candidates integer DEFAULT 40,
    tbl text DEFAULT '{{table ""}}')
RETURNS TABLE (id text, key text, distance double precision)
LANGUAGE plpgsql
AS $fn$
DECLARE
    t regclass := tbl::regclass;
    q vector;
    m text;
BEGIN
    EXECUTE format('SELECT embedding, model_id FROM %s WHERE id = $1', t) INTO q, m USING item_id;
    IF q IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT s.id, s.key, s.distance
        FROM {{schema}}.imgvec_search(q, m, k + 1, candidates, tbl) AS s
        WHERE s.id <> item_id
        ORDER BY s.distance, s.id
        LIMIT k;
END
$fn$;
