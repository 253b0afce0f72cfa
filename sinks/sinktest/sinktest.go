package sinktest

import (
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// TimePrecisioner is implemented by sinks that store times at less than
// nanosecond precision. The suite compares stored times within it.
type TimePrecisioner interface {
	TimePrecision() time.Duration
}

// ForgeDim stores, under model.ID() in s's store, rows whose dimension is
// dim although the model gives model.Dim: a state the API refuses to
// create. s has been opened with model, written to and closed.
type ForgeDim func(t *testing.T, s connector.Sink, model schema.ModelIdentity, dim int)

// Option tunes Run.
type Option func(*config)

type config struct {
	forgeDim ForgeDim
	round    func(float32) float32
	parallel bool
}

// WithForgeDim lets the suite check that Open refuses a store whose rows
// for the model id have another dimension. Without it that check is
// skipped.
func WithForgeDim(f ForgeDim) Option { return func(c *config) { c.forgeDim = f } }

// WithVectorPrecision is for a sink that stores vector elements at less
// than float32 precision (PostgreSQL's halfvec): the suite expects each
// element of a vector read back to be round(element written), bit for bit.
func WithVectorPrecision(round func(float32) float32) Option {
	return func(c *config) { c.round = round }
}

// WithParallel runs the suite's subtests in parallel (t.Parallel), for a
// sink whose fresh stores are independent of each other: their own file,
// schema, collection or memory, and no process-wide state.
func WithParallel() Option { return func(c *config) { c.parallel = true } }

// Run runs the conformance suite. newSink returns an unopened sink over a
// fresh, isolated store (its own file, schema or collection) each time it
// is called; see the package documentation for what the sink must do.
func Run(t *testing.T, newSink func(t *testing.T) connector.Sink, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"IdempotentUpsert", testIdempotentUpsert},
		{"DuplicateIDsInBatch", testDuplicateIDs},
		{"MetadataUpdateKeepsVector", testMetadataUpdate},
		{"LedgerAttemptsAndClear", testLedger},
		{"Delete", testDelete},
		{"StoredStreams", testStored},
		{"StoredKeyOrder", testStoredKeyOrder},
		{"VectorsBySHA256", testVectorsBySHA256},
		{"ModelIsolation", testModelIsolation},
		{"DimensionMismatchAtOpen", func(t *testing.T, e *env) { testDimensionMismatch(t, e, cfg.forgeDim) }},
		{"RefusesBadVectors", testBadVectors},
		{"CancelledWriteIsAllOrNothing", testCancelledWrite},
		{"SearchOrdering", testSearchOrdering},
		{"Get", testGet},
		{"StatusRuns", testStatusRuns},
		{"AbandonRuns", testAbandonRuns},
		{"AbandonDeadRuns", testAbandonDeadRuns},
		{"LatestRuns", testLatestRuns},
		{"RoundTrip4096", testRoundTrip4096},
		{"ScanVectors", testScanVectors},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cfg.parallel {
				t.Parallel()
			}
			tt.fn(t, newEnv(t, newSink, cfg.round))
		})
	}
}

const src = "file:///sinktest/photos"
