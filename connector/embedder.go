package connector

import (
	"context"

	"github.com/imgvec/imgvec/schema"
)

// Embedder turns image bytes into vectors. *extract.Extractor satisfies it;
// connectortest.Embedder is a fake for tests.
//
// Concurrency: every method is safe for concurrent use. One Embedder may
// serve several pipelines at once (`imgvec serve` shares one per model
// between its jobs), each calling Infer from its own goroutine: a call
// must not depend on or disturb another in flight, and cancelling one
// call's ctx ends that call only.
type Embedder interface {
	// Identity is the model identity stamped on every vector. It does no I/O.
	Identity() schema.ModelIdentity
	// BatchSize is the number of images per Infer call (at least 1).
	BatchSize() int
	// Prepare decodes and preprocesses one image. It is safe for concurrent
	// use. Errors are *schema.ItemError (Stage "decode" or "preprocess") and
	// concern this item only. The Prepared may hold a pooled tensor: the
	// pipeline hands it back with Release and never touches it again.
	Prepare(key string, data []byte) (*schema.Prepared, error)
	// Infer runs one batch. It returns exactly one VectorResult per input,
	// in order; the vectors belong to the caller. A per-item failure (found
	// by bisecting inside Infer) is VectorResult.Err; a returned error is fatal for the run. Infer honours ctx.
	// It is safe for concurrent use: the vectors of a batch are those a
	// lone call would give, whatever other calls run meanwhile.
	Infer(ctx context.Context, batch []*schema.Prepared) ([]schema.VectorResult, error)
	// Release hands p back to the Embedder's pool. The pipeline calls it
	// once per Prepared, after Infer (or when the item is abandoned).
	Release(p *schema.Prepared)
}

// ConcurrentEmbedder is an optional interface of an Embedder that runs
// batches on several devices at once: InferConcurrency is how many Infer
// calls the pipeline keeps in flight (Options.InferWorkers, when not set).
type ConcurrentEmbedder interface {
	InferConcurrency() int
}
