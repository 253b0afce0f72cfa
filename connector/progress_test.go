package connector_test

import (
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// In a synctest bubble the run's timeline is exact: 12 items in model
// batches of 4 that take 100ms each are committed at 100, 200 and 300ms;
// progress is reported every 45ms (never at the instant of a commit) and
// once at the end. The rate is averaged from the oldest sample kept.
func TestProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, 12)
		e.emb.InferDelay = 100 * time.Millisecond
		var mu sync.Mutex
		var got []connector.Progress
		e.mustRun(func(o *connector.Options) {
			o.ProgressEvery = 45 * time.Millisecond
			o.Progress = func(p connector.Progress) { mu.Lock(); got = append(got, p); mu.Unlock() }
		})
		ms := time.Millisecond
		want := []struct {
			elapsed time.Duration
			done    int64
			rate    float64 // items/s
			eta     time.Duration
		}{
			{45 * ms, 0, 0, 0},
			{90 * ms, 0, 0, 0},
			{135 * ms, 4, 4 / 0.090, 180 * ms}, // (4-0) done since the 45ms sample
			{180 * ms, 4, 4 / 0.135, 270 * ms},
			{225 * ms, 8, 8 / 0.180, 90 * ms},
			{270 * ms, 8, 8 / 0.225, 112500 * time.Microsecond},
			{300 * ms, 12, 12 / 0.255, 0}, // the final call
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(want) {
			t.Fatalf("%d progress calls, want %d: %+v", len(got), len(want), got)
		}
		for i, w := range want {
			p := got[i]
			if p.Elapsed != w.elapsed || p.Done != w.done || p.Queued != 12 || !p.ListingDone || p.Stopping ||
				math.Abs(p.Rate-w.rate) > 1e-9 || (p.ETA-w.eta).Abs() > time.Microsecond || p.Last != (i == len(want)-1) {
				t.Errorf("call %d: elapsed %v done %d/%d rate %.4f eta %v last %v; want elapsed %v done %d/12 rate %.4f eta %v",
					i, p.Elapsed, p.Done, p.Queued, p.Rate, p.ETA, p.Last, w.elapsed, w.done, w.rate, w.eta)
			}
		}
		if last := got[len(got)-1]; last.Run.Outcome != schema.RunOK || last.Run.Written != 12 {
			t.Errorf("final progress run %+v", last.Run)
		}
	})
}
