package connector

import (
	"time"

	"github.com/imgvec/imgvec/schema"
)

// Stage names a pipeline stage in Observer reports.
type Stage string

const (
	StageRead   Stage = "read"   // one item read from the source and hashed
	StageDecode Stage = "decode" // one item decoded and preprocessed
	StageInfer  Stage = "infer"  // one model batch
	StageWrite  Stage = "write"  // one sink commit (Write, with the Delete of replaced rows)
)

// Observer receives a run's measurements, for metrics. Methods are called
// concurrently from the pipeline's goroutines and must return quickly;
// they cannot fail the run.
type Observer interface {
	// StageDone reports one unit of a stage's work: n items in d.
	StageDone(stage Stage, n int, d time.Duration)
	// Committed reports a committed write batch of n items, with the
	// failure class of each ledger entry among them.
	Committed(n int, failures []schema.FailureClass)
}

// BatchObserver is an Observer that is also told why each write batch
// closed, so that metrics can show whether batches fill up or wait out the
// linger. The pipeline finds it by a type assertion on Options.Observer;
// the same concurrency rules apply.
type BatchObserver interface {
	Observer
	// BatchClosed reports a write batch handed to the model: why it
	// closed, and its items (those for the model and those that need no
	// inference).
	BatchClosed(reason BatchReason, n int)
}

// observe reports a stage's work since start, when an Observer is set.
func (rs *runState) observe(stage Stage, n int, start time.Time) {
	if o := rs.s.opts.Observer; o != nil {
		o.StageDone(stage, n, time.Since(start))
	}
}

// batchClosed reports a closed write batch, when the Observer is a
// BatchObserver.
func (rs *runState) batchClosed(reason BatchReason, n int) {
	if o, ok := rs.s.opts.Observer.(BatchObserver); ok {
		o.BatchClosed(reason, n)
	}
}
