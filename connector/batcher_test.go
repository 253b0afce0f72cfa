package connector_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/imgvec/imgvec/connector"
)

// A partial batch goes to the model when the linger has passed since its
// first item, exactly then (the policy's rules are in batchpolicy_test.go).
func TestLingerFlushesPartialBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 200 * time.Millisecond
		e := newEnv(t, 6)
		e.emb.Batch = 8
		start := time.Now()
		var committedAt time.Duration
		firstCommit := make(chan struct{})
		e.sink.OnWrite = func(n int, _ connector.Batch) {
			if n == 2 { // the run row, then the first batch
				committedAt = time.Since(start)
				close(firstCommit)
			}
		}
		e.src.OnList = func(i int, _ string) {
			if i != 2 {
				return
			}
			// Hold the listing until the first two items are committed:
			// only the linger can send their partial batch.
			select {
			case <-firstCommit:
			case <-time.After(time.Hour):
			}
		}
		r := newRecorder()
		run := e.mustRun(func(o *connector.Options) { o.Linger, o.Observer = linger, r })
		if committedAt != linger {
			t.Errorf("first batch committed after %v, want the linger (%v)", committedAt, linger)
		}
		first := slices.Sorted(slices.Values(e.emb.Stats().Batches[0]))
		if run.Written != 6 || !slices.Equal(first, []string{key(0), key(1)}) {
			t.Errorf("run %+v, batches %v", run, e.emb.Stats().Batches)
		}
		if want := []connector.BatchReason{connector.BatchLinger, connector.BatchEnd}; !slices.Equal(r.closed, want) {
			t.Errorf("batches closed by %v, want %v", r.closed, want)
		}
		e.checkConverged()
	})
}
