-- imgvec SQLite schema, version 1.
--
-- Times: *_ns columns are Unix nanoseconds (UTC; NULL = unknown). The other
-- times are TEXT in the fixed-width form 2006-01-02T15:04:05.000000000Z, so
-- they read well in the sqlite3 shell, sort as text and round-trip to the
-- nanosecond.
--
-- items.vector is the float32 little-endian BLOB sqlite-vec reads
-- (vec_distance_cosine(vector, ...)). It is the LAST column on purpose: a
-- 4096-d vector is 16 KiB and spills onto overflow pages, and SQLite walks
-- those pages to reach any column stored after it.
CREATE TABLE items (
    id           TEXT PRIMARY KEY NOT NULL,
    source       TEXT NOT NULL,
    key          TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER,
    etag         TEXT NOT NULL DEFAULT '',
    sha256       TEXT NOT NULL DEFAULT '',
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    format       TEXT NOT NULL DEFAULT '',
    model_id     TEXT NOT NULL,
    layer        TEXT NOT NULL DEFAULT '',
    dim          INTEGER NOT NULL CHECK (dim > 0),
    extracted_at TEXT NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    vector       BLOB NOT NULL CHECK (length(vector) = 4 * dim)
);

-- Reuse of vectors by content (VectorsBySHA256) and per-model scans
-- (search, status, the dimension check at open).
CREATE INDEX items_model_sha256 ON items (model_id, sha256);
-- Stored(source) and Delete(source, ids).
CREATE INDEX items_source ON items (source);

-- The failure ledger: items that could not be turned into a vector at the
-- fingerprint they had when last tried.
CREATE TABLE failures (
    id         TEXT PRIMARY KEY NOT NULL,
    source     TEXT NOT NULL,
    key        TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER,
    etag       TEXT NOT NULL DEFAULT '',
    sha256     TEXT NOT NULL DEFAULT '',
    model_id   TEXT NOT NULL,
    stage      TEXT NOT NULL,
    class      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    attempts   INTEGER NOT NULL CHECK (attempts > 0),
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
CREATE INDEX failures_source ON failures (source);
CREATE INDEX failures_last_seen ON failures (last_seen);

-- One row per backfill or sync pass, upserted as the run progresses.
CREATE TABLE runs (
    id         TEXT PRIMARY KEY NOT NULL,
    job        TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL DEFAULT '',
    model_id   TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    outcome    TEXT NOT NULL,
    error      TEXT NOT NULL DEFAULT '',
    listed     INTEGER NOT NULL DEFAULT 0,
    written    INTEGER NOT NULL DEFAULT 0,
    extracted  INTEGER NOT NULL DEFAULT 0,
    reused     INTEGER NOT NULL DEFAULT 0,
    unchanged  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_started_at ON runs (started_at);
