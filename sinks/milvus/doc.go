// Package milvus is the Milvus sink (github.com/milvus-io/milvus-sdk-go/v2,
// tested against Milvus 2.3.5 standalone and Milvus Lite 3.2.2; see
// "Milvus Lite" below for how the two differ).
//
// # URI and credentials
//
//	milvus://HOST:PORT?collection=NAME&db=DB&tls=true&tls_ca=FILE&index=HNSW&grace=24h&chunk_mb=32&writers=1&retries=4
//
// collection (default imgvec) is the base name of every collection the
// sink owns; index is HNSW (default), IVF_FLAT or AUTOINDEX, always with
// the COSINE metric; grace is how long a collection replaced by a
// blue/green switch is kept; chunk_mb and writers shape the write path
// (below); retries bounds the tries of each request. Credentials never go
// in the URI (New refuses user info): the token comes from
// $IMGVEC_MILVUS_TOKEN, or user and password from $IMGVEC_MILVUS_USER and
// $IMGVEC_MILVUS_PASSWORD. They never appear in errors (scrub) or URI().
// New validates without I/O.
//
// # Collections
//
//   - NAME_vN (N = 1, 2, ...): the item collections, one per model id.
//     Primary key id (VarChar, the item id, never auto_id); vector
//     (FloatVector of the model's dimension, indexed with COSINE); scalar
//     fields source, key, size, mtime_ns, etag, sha256, width, height,
//     format, model_id, layer, dim, extracted_at_ns; the dynamic field
//     holds {"metadata": {...}} (filter with metadata["album"] == "x").
//     The meta row items/NAME_vN, written before the collection, is JSON
//     naming the model id, layer, dimension and the item schema version
//     (ItemsSchemaVersion); the collection's description holds the same
//     (Milvus Lite drops descriptions). The sink finds a model's
//     collection by listing NAME_v* and reading those rows (a collection
//     made before the rows existed: its description).
//   - NAME: an alias of the current item collection, the one readers
//     (pymilvus, Attu, imgvec search) should query.
//   - NAME_failures: the failure ledger. NAME_runs: one row per run, with
//     its shard, skipped count and runner (schema.Runner; so killed runs
//     are closed as on the other sinks: DeadRunAbandoner). Runs
//     collections of layout 1 (no such fields; Milvus 2.3 cannot add
//     fields) are rebuilt by migration 0002 (rebuildRuns: copy through
//     NAME_runs_rebuild, crash-safe and idempotent).
//   - NAME_meta: the migration ledger (rows migration/NNNN), what each
//     item collection holds (rows items/NAME_vN), the current collection
//     (row current, which mirrors the alias), retired collections (rows
//     retired/NAME_vN with the time of retirement) and the sources each
//     collection has had a complete run of (rows complete/NAME_vN/HASH,
//     whose value is the source).
//
// Companion collections carry a 2-d placeholder vector: Milvus requires
// a vector field in every collection. Every collection is created with
// Strong consistency and one shard; every read the diff depends on is
// Strong (the query iterator inherits the collection's level).
// Times are int64 Unix nanoseconds (math.MinInt64 for the zero time), so
// fingerprints round-trip exactly.
//
// # Open and versioning
//
// Open(ctx, model) connects, applies pending migrations as WithAutoMigrate
// allows (else the error wraps migrations.ErrPending and names `imgvec
// migrate up --sink URI`), verifies the companion collections, then finds
// model's item collection and verifies its primary key (VarChar id,
// no auto_id), its fields and types, its dimension and its index metric
// (COSINE); a mismatch is refused with ErrIncompatible and a hint. A model
// without a collection gets a new NAME_vN (indexed, loaded). Every
// collection is loaded before Open returns. OpenRead opens without a
// model (writes refused); OpenMigrator serves `imgvec migrate`.
//
// Versions are recorded in two places: the companion layout by the
// migration ledger in NAME_meta (migrations are Go steps, each
// idempotent, the ledger row written after the step: Milvus has no
// transaction to share), the item layout in each item collection's meta
// row items/NAME_vN (and description). A change Milvus cannot make in place (a new dimension, a
// new model, a new item layout) is blue/green: the new NAME_vN is created
// beside the old one and filled by sync while readers keep the alias on
// the old one; each run of the new model that completes (a run row with
// an end time and outcome ok or partial) records its source as covered
// (meta row complete/NAME_vN/HASH); the alias NAME moves to the new
// collection once it covers every source the old one was complete for and
// still holds rows of — so a sink fed by several sources keeps serving all
// of them from the old model until each has been re-embedded — and the
// old collection is recorded as retired; the first Open after the grace
// period drops it (and its complete rows). A source that stops being
// synced but keeps rows holds the switch back until it is synced or its
// rows are deleted. Searches by model id go to that model's collection
// whatever the alias says, so imgvec never mixes models.
//
// Servers without aliases: the switch keeps only the meta row current;
// readers must resolve it (or read `imgvec status`) instead of querying
// NAME. The sink notices the missing feature (an unimplemented or "not
// support" error) and carries on without aliases. (Milvus Lite 3.2 has
// aliases.)
//
// # Writes
//
// Write validates the whole batch first (connector.Batch.Normalize: ids
// deduplicated, the last occurrence wins; model, dimension, finite
// values), then reads what it must merge (rows that metadata updates
// rewrite whole, since Milvus 2.3 has no partial update; stored ledger
// entries for the attempt count). A batch whose context is cancelled by
// then writes nothing. The first mutation is the commit point: the rest
// of the batch runs on a context that ignores cancellation (bounded by
// two minutes), so a stop leaves all of a batch or none. In order:
//
//  1. item rows, upserted in chunks of at most chunk_mb estimated bytes
//     (default 32 MB; Milvus refuses requests over 64 MB, so a larger
//     batch is split, never rejected), writers chunks at a time;
//  2. ledger entries (upsert);
//  3. deletion of the ledger entries of the upserted ids;
//  4. the run row, and the blue/green switch when the run completed.
//
// Milvus has no transactions, so a crash (client or server) between
// requests can leave a prefix of that order. The order keeps the "nothing
// lost" invariant: a row written before its ledger entry was removed
// shadows the entry (Stored reports the row; a stale entry stays counted
// in the ledger until the item is next written); an item whose row or
// ledger entry was not written is absent, so the next run treats it as new
// and extracts it again; the run row, written last, is then the rerun's.
// Every step is idempotent (upserts by primary key, ledger attempts
// counted only when last_seen moves forward), so a rerun converges. Each
// request is retried through connector/retry (retries tries, each bounded to
// 30 s, jittered backoff 250 ms doubling to 4 s) when
// the server is unavailable, overloaded or the try timed out, on top of
// the SDK's own retries of rate-limited calls.
//
// Delete removes the ids from every item collection and the ledger with
// `source == S && id in [...]` filters. Every string in a filter is built
// by quote (strconv.Quote; Milvus decodes literals with strconv.Unquote),
// so keys and ids with quotes, backslashes or newlines cannot break out of
// their literal: Milvus 2.3 has no expression templates. One exception is
// outside the sink's hands: the SDK's query iterator writes the last id of
// a page into its next filter unquoted, so Write refuses ids that need
// quoting (item ids, schema.ItemID, are hex; only a caller's own ids can).
//
// # Reads
//
// Stored iterates (query iterator, primary-key pages of 2000) the open
// model's collection, then older ones, then the ledger, into a
// connector.StoredSorter (Milvus cannot order a query): an external sort
// that holds 32 MiB and spills the rest to a temporary file ($TMPDIR,
// removed when Stored returns, unlinked at once on Unix), then streams
// each id once (the open model's row, else an older one, else the ledger
// entry) by key, then id.
// VectorsBySHA256 and the merges query by `in` lists of 500. Search runs
// an ANN search on the model's collection (HNSW ef = max(k, 64)) and
// reports distance = 1 - cosine similarity; SearchIndexed
// (connector.IndexedSearcher) is true for every model with a collection.
// Status counts rows per item collection with Strong count(*) and reads
// the ledger and runs whole. ScanVectors (connector.VectorScanner) pages
// through the model's collection for (source, key, id), sorts them in
// memory (Milvus has no ORDER BY: about 150 MB at 1M rows, the one part
// of a scan that grows with the collection), then reads the rows with
// their vectors by id, 500 at a time.
//
// # Milvus Lite
//
// Milvus Lite 3.x (PyPI milvus-lite, `milvus-lite server`) reimplements
// Milvus' gRPC API in Python. Where its replies differ from Milvus', the
// sink reads them by the fields milvus-proto documents (compat.go), so
// one code path serves both:
//
//   - ShowCollections fills collection_names but not collection_ids,
//     which the SDK's ListCollections walks: the sink lists by name
//     (CollectionNames). Lite also fails the listing with "collection
//     ... does not exist" while a collection is dropped; it is retried.
//   - Collection descriptions are not kept: the sink reads what an item
//     collection holds from its meta row items/NAME_vN.
//   - Errors outside Lite's own exception types come in Status.code with
//     error_code left Success, which the SDK reads as success: every call
//     goes through an interceptor that makes them errors.
//   - Writes to one collection must be serialized: Open refuses
//     writers > 1 on Lite (GetVersion "milvus_lite-...") before writing.
//   - Upsert merges onto the stored row (partial update); the sink always
//     sends whole rows with the one dynamic key metadata, so the stored
//     row is the same as on Milvus. Consistency levels are accepted and
//     moot (a read sees every acknowledged write).
//
// Concurrency: as connector.Sink says; Status, Search and Get may run
// beside the writer.
package milvus
