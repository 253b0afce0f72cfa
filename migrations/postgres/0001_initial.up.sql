-- imgvec PostgreSQL schema, version 1.
--
-- This file is a text/template: the actions schema, table "SUFFIX" and
-- name "SUFFIX" expand to identifiers derived from the sink's configured
-- schema and table (validated, then quoted with pgx.Identifier); nothing
-- else is substituted (see migrations/pgx.go).
--
-- mtime_ns is Unix nanoseconds (NULL = unknown) so that fingerprints
-- round-trip exactly (timestamptz keeps microseconds); the other times are
-- timestamptz. embedding is an unconstrained pgvector `vector` whose length
-- is checked against dim, so rows of several models (of several dimensions)
-- can live in one table while a sync re-embeds stale rows.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE {{table ""}} (
    id           text PRIMARY KEY,
    source       text NOT NULL,
    key          text NOT NULL,
    size         bigint NOT NULL,
    mtime_ns     bigint,
    etag         text NOT NULL DEFAULT '',
    sha256       text NOT NULL DEFAULT '',
    width        integer NOT NULL DEFAULT 0,
    height       integer NOT NULL DEFAULT 0,
    format       text NOT NULL DEFAULT '',
    model_id     text NOT NULL,
    layer        text NOT NULL DEFAULT '',
    dim          integer NOT NULL CHECK (dim > 0),
    extracted_at timestamptz NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    embedding    vector NOT NULL CHECK (vector_dims(embedding) = dim)
);
CREATE INDEX {{name "_model_sha256"}} ON {{table ""}} (model_id, sha256);
CREATE INDEX {{name "_source"}} ON {{table ""}} (source);

-- The failure ledger.
CREATE TABLE {{table "_failures"}} (
    id         text PRIMARY KEY,
    source     text NOT NULL,
    key        text NOT NULL,
    size       bigint NOT NULL,
    mtime_ns   bigint,
    etag       text NOT NULL DEFAULT '',
    sha256     text NOT NULL DEFAULT '',
    model_id   text NOT NULL,
    stage      text NOT NULL,
    class      text NOT NULL,
    reason     text NOT NULL,
    attempts   integer NOT NULL CHECK (attempts > 0),
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);
CREATE INDEX {{name "_failures_source"}} ON {{table "_failures"}} (source);
CREATE INDEX {{name "_failures_last_seen"}} ON {{table "_failures"}} (last_seen);

-- One row per backfill or sync pass, upserted as the run progresses.
CREATE TABLE {{table "_runs"}} (
    id         text PRIMARY KEY,
    job        text NOT NULL DEFAULT '',
    kind       text NOT NULL DEFAULT '',
    source     text NOT NULL DEFAULT '',
    model_id   text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    outcome    text NOT NULL,
    error      text NOT NULL DEFAULT '',
    listed     bigint NOT NULL DEFAULT 0,
    written    bigint NOT NULL DEFAULT 0,
    extracted  bigint NOT NULL DEFAULT 0,
    reused     bigint NOT NULL DEFAULT 0,
    unchanged  bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    deleted    bigint NOT NULL DEFAULT 0
);
CREATE INDEX {{name "_runs_started_at"}} ON {{table "_runs"}} (started_at);
