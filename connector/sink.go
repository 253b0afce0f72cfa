package connector

import (
	"context"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// StoredItem is what a sink holds for one item id: either a stored vector
// (Failed == false) or a failure-ledger entry (Failed == true). Both may
// exist for one id only transiently; sinks report the row if there is one.
type StoredItem struct {
	ID  string
	Key string
	schema.Fingerprint
	ModelID string
	Failed  bool
	Class   schema.FailureClass // when Failed
}

// MetaUpdate changes the fingerprint of a stored row whose bytes (sha256)
// did not change: the vector is kept.
type MetaUpdate struct {
	ID string
	schema.Fingerprint
}

// Batch is the unit of atomic writing. Everything in a batch commits
// together or not at all (one transaction where the sink has them).
type Batch struct {
	Upserts  []schema.Record  // full rows; ids may repeat (last one wins); their ledger entries are removed
	Metadata []MetaUpdate     // fingerprint-only updates of stored rows
	Failures []schema.Failure // ledger upserts; Attempts is incremented by the sink on conflict
	Run      *schema.Run      // when non-nil, the run's progress row is upserted in the same commit
}

// Hit is one search result.
type Hit struct {
	schema.Record         // Vector may be nil (sinks need not return it)
	Distance      float64 // cosine distance: 0 identical, 2 opposite
}

// Sink stores vectors. It is the only place where state lives: there is no
// separate state file.
//
// Lifecycle: a constructor (e.g. sqlite.New) validates configuration without
// I/O. Open connects, applies nothing, and refuses to proceed if the schema
// has pending migrations or the stored dimension differs from model.Dim; the
// error names the command that fixes it. Close releases everything; the
// caller that called Open calls Close.
//
// Concurrency: after Open, Write, Delete and VectorsBySHA256 may be
// called from one goroutine at a time (the pipeline's writer); one Stored
// stream may run concurrently with them (a sync's diff consumes it while
// the pipeline writes what the diff has passed), and so may searches and
// status reads.
//
// Errors: every method honours ctx. Write is all-or-nothing and idempotent:
// rerunning a batch whose commit reply was lost converges to the same state.
// Vectors that are not finite or not model.Dim long are refused before any
// I/O with an error naming the item.
type Sink interface {
	Open(ctx context.Context, model schema.ModelIdentity) error
	// Stored streams every row and ledger entry of source, of any model
	// id, each id once (its row when it has both), in key order: by Key,
	// then ID, comparing bytes, so that a sync merges it with the listing
	// in bounded memory (a stream out of order fails the run). It holds a
	// bounded number of items in memory whatever the number stored (an
	// ORDER BY over an index, or StoredSorter), calls fn from the calling
	// goroutine, and returns fn's error as is. Items written or deleted
	// while it streams may or may not be seen at the keys it has not
	// reached yet (the SQL sinks stream one snapshot).
	Stored(ctx context.Context, source string, fn func(StoredItem) error) error
	// VectorsBySHA256 returns stored vectors under modelID for those hashes
	// (hashes not found are absent from the map).
	VectorsBySHA256(ctx context.Context, modelID string, sha256s []string) (map[string][]float32, error)
	Write(ctx context.Context, b Batch) error
	// Delete removes rows and ledger entries of those ids in one commit.
	Delete(ctx context.Context, source string, ids []string) error
	Close() error
}

// Searcher answers similarity queries. Results never mix model ids.
type Searcher interface {
	// Get returns the stored record with id, with its vector.
	Get(ctx context.Context, id string) (schema.Record, bool, error)
	// Search returns the k nearest rows of modelID to vec by cosine distance.
	Search(ctx context.Context, modelID string, vec []float32, k int) ([]Hit, error)
}

// Status is what `imgvec status` shows.
type Status struct {
	Models   []ModelCount     // rows per model id
	Failures int64            // ledger entries
	ByClass  map[string]int64 // ledger entries per failure class
	Recent   []schema.Failure // most recent ledger entries (up to 10)
	Runs     []schema.Run     // most recent runs (up to 10), newest first
}

// ModelCount is the number of rows stored under one model id.
type ModelCount struct {
	ModelID string
	Layer   string
	Dim     int
	Rows    int64
}

// StatusReader reports what a sink holds.
type StatusReader interface {
	Status(ctx context.Context) (Status, error)
}

// RunAbandoner is implemented by sinks that can close the run rows a dead
// runner left in progress. The caller must hold the lease of the job's
// shard (Shard.LeaseName; so no run of that job and shard is in progress
// anywhere): AbandonRuns then marks every run of job whose Run.Shard is
// shard ("" for unsharded runs) still RunRunning as schema.RunAbandoned,
// ended at endedAt, with reason as its error, and returns how many it
// marked. Runs of the job's other shards are left alone: their own
// runners may be alive.
type RunAbandoner interface {
	AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error)
}

// DeadRunAbandoner is implemented by sinks that store each run's
// schema.Runner and so can close the runs of processes that are gone,
// leased or not (a killed one-shot run holds no lease). Any caller may
// call AbandonDeadRuns: it marks as schema.RunAbandoned, ended at endedAt
// with reason as the error, the runs still RunRunning whose Runner.Host is
// host and for whose Runner gone returns true, and returns how many.
// Runs of other hosts are never passed to gone; a run that ends between
// the read and the update keeps its end. Syncer.Run calls it with
// RunnerGone before its first run row, so the next run on a host closes
// what a killed one left.
type DeadRunAbandoner interface {
	AbandonDeadRuns(ctx context.Context, host string, gone func(schema.Runner) bool, endedAt time.Time, reason string) (int64, error)
}

// VectorScanner is implemented by sinks that can stream their stored
// vectors (export, dupes, map). Every sink implements it.
//
// ScanVectors calls fn once per stored row of modelID (ledger entries are
// not rows), with its vector and metadata, in key order: by Source, then
// Key, comparing bytes — so two scans of the same data give the same
// sequence. It holds a bounded number of rows in memory whatever the
// collection size. An error from fn stops the scan and is returned; ctx
// cancellation returns an error wrapping ctx.Err(). It may run
// concurrently with searches and status reads, not with a writer's
// commits on the same collection (rows committed during a scan may or may
// not be seen).
type VectorScanner interface {
	ScanVectors(ctx context.Context, modelID string, fn func(schema.Record) error) error
}
