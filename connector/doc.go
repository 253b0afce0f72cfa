// Package connector keeps a sink in sync with a source: it lists the source,
// diffs the listing against what the sink stores, extracts vectors for new
// and changed items in batches, writes them, records per-item failures in
// the ledger, and deletes vanished items after a complete listing.
//
// Interfaces: Source (source.go), Sink/Searcher/StatusReader/VectorScanner
// (sink.go; ScanByIDs in scan.go builds a VectorScanner from an ordered id
// listing) and Embedder (embedder.go) carry their contracts in their doc
// comments; a
// Source may also be an ItemReader (reads that give the fingerprint the
// bytes were read at, and item metadata) and a ConcurrentSource (how many
// reads to keep in flight). The folder source is in connector/folder, the
// S3 source in connector/s3source and the file-list source of `imgvec
// embed` in connector/filelist; in-memory fakes for tests are in
// connector/connectortest. Conformance suites make the contracts
// executable: every Source passes connector/sourcetest and every Sink
// (the fake included) sinks/sinktest.
//
// The package and everything under it build without cgo
// (CGO_ENABLED=0): the embedder is an interface over schema types, so
// sinks, sources and leases never link ONNX Runtime or the image codecs.
//
// # Using it
//
//	s, err := connector.NewSyncer(connector.Options{Source: src, Sink: sink, Embedder: emb, ...})
//	plan, err := s.Plan(ctx) // --dry-run: one read of the sink, one listing, no reads, no writes
//	run, err := s.Run(ctx)   // the pipeline; returns the final run record
//	s.Stop()                 // from a signal handler: soft stop (see below)
//
// The caller opens the Sink (with the Embedder's model identity) before
// Plan or Run and closes it and the Source afterwards. A Syncer runs once.
//
// # Incremental rules
//
// The diff (diff.go) never holds the sink's stored items for the source:
// it merges two streams in key order (bytewise), the listing and
// Sink.Stored (rows and ledger entries of any model id, by key then id).
// A listed entry matches the stored item of its key; an entry that comes
// out of key order (or every entry of a Source that is not a
// KeyOrderedSource), and every key that is not valid UTF-8, is sorted on
// disk (connector/extsort, in Options.TempDir) and matched after the
// listing, by stored key and id, against the stored items the listing
// passed and the rest of the stream; what is left unmatched has vanished
// (counted, and its ids spilled for the deletes). The sha256s of the
// current model's rows go into a fixed-size Bloom filter (bloom.go).
// Every listed entry enters the diff in one place and every stored item
// in one (the callbacks of differ.diff): a per-item filter belongs there.
// Then, for each listed entry (Classify):
//
//   - new key: read, hash, extract and insert.
//   - row of the current model with the same size, mtime and ETag:
//     unchanged, skipped WITHOUT reading.
//   - row of the current model whose size, mtime or ETag differ: read and
//     hash. The same sha256 as stored: metadata-only update (MetaUpdate),
//     the vector is kept. Another sha256: re-extract.
//   - row of another model id: stale, read and re-embedded.
//   - ledger entry with the same size, mtime and ETag, recorded under the
//     current model id (or none): skipped without reading and counted as
//     failed (SkippedKnown and counted as skipped when its class is a
//     policy skip, schema.FailureClass.PolicySkip), unless
//     Options.RetryFailed. A changed fingerprint or another model id
//     retries it.
//   - whenever an item is read, its sha256 is looked up in the filter of
//     sha256s stored under the current model (copies, moved files, and
//     items committed earlier in this run): on a hit the stored vector is
//     copied (Sink.VectorsBySHA256) and the model does not run. A false
//     positive costs a query that finds nothing; until the stored stream
//     has been read to its end the filter is incomplete, and every read
//     item is looked up.
//   - an entry to revalidate (Entry.Revalidate: URL lists, whose listing
//     has no fingerprint) is never skipped unread: a row of the current
//     model is Changed and its ItemReader is given the stored fingerprint,
//     so that it may answer NotModified (counted unchanged, nothing
//     written); a ledger entry is always retried.
//   - an item whose read fails with fs.ErrNotExist vanished between the
//     listing and the read: it is not counted as listed, and a row or
//     ledger entry it had is deleted with the vanished ids, under the
//     same rules.
//   - a read that fails with ErrGone (HTTP 404/410) is a ledger entry of
//     class schema.FailGone; gone again on the next run (its ledger entry
//     was of that class), the id is also deleted with the vanished ones,
//     under the same rules.
//   - a key that is not valid UTF-8 (a file name with byte 0xff) is never
//     read and never reaches a sink as it is: whatever its category
//     (except unchanged or known-failed), it becomes a ledger entry of
//     class schema.FailInvalidKey, stage "list", under the raw key's id and
//     with schema.EscapeKey(key) as its key; the next run finds it as a
//     known failure. Batch.Normalize refuses such keys, so every sink
//     behaves the same.
//   - an item whose new bytes fail (read, decode, preprocess, infer) gets a
//     ledger entry; a row it had is removed first (it no longer describes
//     the item).
//   - ids stored for the source but not listed have vanished. They are
//     deleted only by a "sync" run (never a "backfill") that was not
//     stopped, whose listing was complete (Source.List returned nil) and
//     not empty, and only if their number is within Options.MaxDelete
//     (a count, or a percentage of the ids stored before the run);
//     otherwise the run deletes nothing and fails with a
//     *DeleteGuardError that names the numbers and --max-delete.
//
// Per-item problems never fail the run: they become ledger entries with
// the stage ("list", "read", "decode", "preprocess", "infer") and a class.
// Policy skips (schema.FailOptedOut: the source says the item must not be
// used) are ledger entries too but count as Run.Skipped, not Run.Failed:
// a run whose only problems are policy skips is RunOK. At the end of a run
// that was not stopped, Written + Unchanged + Failed + Skipped == Listed.
//
// # Shards
//
// Options.Shard (Shard, shard.go) restricts a run to the items whose id
// falls in shard I of N: the id's first 16 hex digits as a big-endian
// uint64, modulo N (the id is a sha256, so shards are even; the same on
// every platform). The filter applies where items enter the diff (the
// two callbacks of differ.diff, for Run and Plan alike): each listed entry
// and each stored item (after the Bloom filter took the sha256s of every
// shard's rows, so that a copy reuses a vector another shard stored). Everything
// after follows: a sharded run classifies, reads, writes and counts only
// its slice, and the vanished
// ids it may delete are its slice's stored ids that its slice's listing
// lacked, so N runs with shards 0/N … N-1/N cover a source once and never
// touch each other's items. The run row records the shard (Run.Shard,
// "I/N"). A sink that implements LatestRunReader lets Run refuse a shard
// count that differs from the job's unfinished runs (ShardLayoutError,
// unless Options.Reshard); the caller takes the lease of the job's shard
// (Shard.LeaseName), and RunAbandoner closes the runs of that shard only.
//
// # Stages
//
//	lister ──todo──► readers ×R ──read──► preparers ×P ──prep──► batcher ──► inferers ×I ──► writer
//	(1)   cap R                 cap P                 cap B       unbuffered  unbuffered      (1)
//
// R = Options.ReadWorkers (default 4, or a ConcurrentSource's
// ReadConcurrency), P = Options.PrepareWorkers (default
// GOMAXPROCS), B = Embedder.BatchSize(), I = Options.InferWorkers
// (default 1, or a ConcurrentEmbedder's InferConcurrency: one per device).
//
//   - lister: calls Source.List, classifies each entry and sends the items
//     to read. Unchanged and known-failed items are only counted.
//   - readers: Source.Read (ItemReader.ReadItem when the source has it:
//     the item's fingerprint becomes the one its bytes were read at, and
//     its metadata goes with an upsert), sha256, then decide:
//     metadata-only, reuse (one VectorsBySHA256 call per candidate),
//     extract, or failure.
//   - preparers: Embedder.Prepare for items to extract (panics are
//     recovered into decode failures); other items pass through.
//   - batcher: collects up to B items for the model plus any number (up
//     to max(256, 4B)) of items that need no inference. A batch is ready
//     when full, when Options.Linger (default 200ms) has passed since its
//     first item, or at the end of the input; a ready batch keeps growing
//     until the inferer takes it, so a busy model gets full batches. The
//     decision is batchPolicy's, a synchronous object told the time; the
//     batcher runs its timer.
//   - inferers: one Embedder.Infer call per batch, then Release of every
//     Prepared; vectors that are not finite or not Dim long become
//     failures. An error returned by Infer is fatal. With I > 1, batches
//     reach the writer in the order their inference ends (each is
//     committed whole, so the order does not matter).
//   - writer: one Sink.Write per batch: upserts, metadata updates, ledger
//     entries and the run's progress row, committed together. A Write
//     error is fatal.
//
// Memory is bounded by the channel capacities: at most R+P raw images and
// about P+(2+I)B preprocessed tensors are alive at once. The diff's memory is
// fixed whatever the collection size: two buffers of 32k values between
// its goroutines, the Bloom filters (16 MiB; a dry run adds 8 MiB for
// sizes) and the spills' in-memory budgets (diff.go).
//
// The lister and Sink.Stored run together: the stored stream is consumed
// as the listing advances, while the pipeline reads, writes and looks up
// vectors (the Sink contract allows one Stored stream beside the other
// calls).
//
// Ownership: each stage closes its output channel when it returns (a
// worker pool when its last worker returns); an item belongs to one stage
// at a time. Every send and receive also watches the run's context.
// Sink calls are serialised by a mutex (the Sink contract allows one call
// at a time): the readers' VectorsBySHA256, the writer's Write and Delete,
// and the deletes at the end.
//
// # Stopping
//
// The stages run in an errgroup: the first fatal error cancels them all,
// and Run returns it (Outcome RunFailed). Stopping is two-phase:
//
//  1. Syncer.Stop (the CLI calls it on the first SIGINT/SIGTERM) is the
//     soft stop: the lister stops listing and the readers take no new
//     item; reads in progress finish, and everything already read goes
//     on through the model and is committed. Run then returns ErrStopped
//     (Outcome RunCancelled) and deletes nothing.
//  2. If the drain takes longer than Options.Grace (default 30s), or the
//     context passed to Run is cancelled (the CLI cancels it on the second
//     signal), the run is hard cancelled: every stage returns at once and
//     the batch in flight is abandoned whole (Sink.Write is atomic, so
//     nothing is half-written). Run returns ErrGraceExpired or the
//     context's error (Outcome RunCancelled).
//
// In every case the final run row is written (with a context that is not
// cancelled, bounded by 15s). Committed items are unchanged on the next
// run, so an interrupted run resumes where it stopped.
//
// # Progress
//
// Options.Progress is called every Options.ProgressEvery (default 1s) and
// once at the end (Progress.Last) with the counters, the number of items
// queued for reading and committed, the rate over the last ~10 calls and
// an ETA.
//
// # Metrics and job runs
//
// Options.Observer, when set, is told each stage's unit of work (read and
// decode per item, infer per model batch, write per commit) with its
// duration, and each committed batch with its failure classes; `imgvec
// serve` turns these into Prometheus series. An Observer that is also a
// BatchObserver is told why each write batch closed (BatchReason: size,
// linger or end of input). Calls come from the stage goroutines,
// concurrently.
//
// Scheduling lives in connector/schedule and the one-runner-per-job rule in
// connector/lease: a job's runs write through a sink fenced by (or guarded
// by) the job's lease. A sink that implements RunAbandoner lets the next
// holder of a job's lease close the run rows a dead runner left "running".
// Each run row records its runner (schema.Runner: host, boot id, pid
// namespace, pid, process start; ThisRunner); a sink that implements
// DeadRunAbandoner lets every run close, before it starts, the rows of this
// host's runners that are provably gone (RunnerGone), leased or not.
package connector
