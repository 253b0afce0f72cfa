// Package sqlite is the embedded default sink: one SQLite file with the
// sqlite-vec extension compiled in (github.com/mattn/go-sqlite3 +
// github.com/asg017/sqlite-vec-go-bindings/cgo; cgo required).
//
// # URI and lifecycle
//
//	sqlite://PATH      a database file; "sqlite://" alone is ./imgvec.db
//
// New validates the URI without I/O (no "?" or "#", no ":memory:").
// Open(ctx, model):
//
//   - opens PATH with journal_mode=WAL, busy_timeout=10s, foreign_keys=on,
//     synchronous=NORMAL (a killed process loses nothing committed; a power
//     loss may lose the last commits, which the next sync redoes); a single writer connection whose transactions are
//     BEGIN IMMEDIATE, and a pool of read-only connections, so searches and
//     status reads run while the pipeline writes;
//   - refuses a missing file and a schema with pending migrations, with an
//     error (wrapping migrations.ErrPending for the latter) that says to run
//     `imgvec migrate up --sink sqlite://PATH`, unless WithAutoMigrate allows
//     it: migrations.AutoMigrateFresh (what `imgvec sync` uses) creates and migrates a
//     brand-new file (or completes one whose creation was interrupted and
//     that holds no rows) but leaves upgrades of one with data explicit;
//     migrations.AutoMigrateAlways migrates whatever is pending;
//   - refuses a schema newer than this build (migrations.ErrUnknownVersion);
//   - refuses rows stored under model.ID() with another dimension than
//     model.Dim (ErrDimensionMismatch, with the DELETE that fixes it). Rows of
//     OTHER model ids, of any dimension, are fine: the dimension lives on
//     each row, and sync re-embeds stale rows.
//
// OpenRead (status, search, export, dupes, map, sync --dry-run) opens only read-only connections and creates
// nothing: a missing or unreadable file fails with an error that says so;
// a database no connection has open (no -wal or -shm file) is read as it
// is (SQLite's immutable=1), so it reads from a read-only directory too;
// otherwise the existing -wal and -shm are used, and when SQLite would have
// to create a -shm it cannot, the error says so. Writes are refused.
//
// OpenMigrator and Migrate serve `imgvec migrate up|down`: they open (and
// create) the file without the model checks. OpenMigratorRead serves
// `migrate status` and the dry runs: it opens the file as OpenRead does,
// without the schema checks. Close may be called more
// than once; Open after Close reconnects (possibly with another model).
//
// # Tables (migrations/sqlite)
//
//   - items: id (PK), source, key, size, mtime_ns, etag, sha256, width,
//     height, format, model_id, layer, dim, extracted_at, metadata (JSON
//     object text), vector (float32 little-endian BLOB, CHECK length =
//     4*dim). vector is the last column so that reading the others never
//     walks a 16 KiB vector's overflow pages. Indexes: (model_id, sha256),
//     (source).
//   - failures: the ledger, one row per id, attempts, first_seen, last_seen.
//   - runs: one row per run, upserted as it progresses.
//   - imgvec_migrations: the migration ledger.
//
// Times: mtime_ns is Unix nanoseconds (NULL for an unknown mtime; the years
// 1678-2262 are representable); the other times are fixed-width UTC text
// (2006-01-02T15:04:05.000000000Z). Every time round-trips to the
// nanosecond (TimePrecision).
//
// # Scanning vectors
//
// ScanVectors (connector.VectorScanner) reads one snapshot: SQLite sorts
// the model's (source, key, id) alone (BINARY collation: bytes; its sorter
// spills to temporary files past its memory budget), and the rows with
// their vectors are read by primary key, 256 at a time.
//
// # Search: exact scan, not vec0
//
// Search computes vec_distance_cosine over the rows of one model id and
// keeps the k nearest (ties by id; zero-norm rows last with a NaN
// distance). Measured on this project's 2-core machine at 20,000 rows x
// 4096-d (bench_test.go):
//
//	                    BLOB + vec_distance_cosine   vec0 (model_id partition key, cosine)
//	top-10 search       ~115 ms                      ~150 ms
//	write 20k rows      ~1.9 s                       ~20 s
//	re-upsert 1k rows   ~0.07 s                      ~2.0 s (delete + insert; no upsert)
//	file size           322 MB                       321 MB, grows on re-upsert
//
// sqlite-vec v0.1.6's vec0 is itself a brute-force scan (no ANN index), so
// it buys no asymptotic speed, while it costs 10-30x on writes (it has no
// UPSERT: a re-embed is a delete plus an insert into chunked shadow
// tables), needs one virtual table per dimension created outside the
// migrations, and splits each item over two tables. The plain column keeps
// one row per item, one UPSERT per write, and lets users query the file
// with any sqlite3 shell that loads the extension (the README's SQLite section). If
// collections outgrow an exact scan, an ANN index is a later migration.
//
// # Writes
//
// Write validates the whole batch before any I/O (record model id equals the
// open model's, vector length = model.Dim, every element finite; the error
// names the item), then commits in ONE transaction: ledger upserts, row
// upserts (the last occurrence of a repeated id wins) that delete their
// ids' ledger entries, metadata updates (size, mtime, etag, and sha256 when
// given; missing ids ignored), then the run row. A ledger upsert counts an
// attempt only when its LastSeen is later than the stored one (so a replayed
// batch changes nothing) and keeps first_seen. A cancelled ctx rolls the
// transaction back. Delete removes rows and ledger entries of ids within
// one source in one transaction.
//
// Stored streams rows and row-less ledger entries of a source from one
// snapshot, by key then id: one query merging two covering indexes
// (source, key, id, fingerprint columns; migration 0004), so that nothing
// is sorted or held in memory. It reads through the reader pool, so the
// writer commits while a sync's diff consumes the stream.
// VectorsBySHA256 looks hashes up 500 at a time.
package sqlite
