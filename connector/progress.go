package connector

import (
	"sync"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// Progress is a snapshot of a running sync, passed to Options.Progress.
type Progress struct {
	Run         schema.Run    // counters so far (Outcome RunRunning until the last call)
	Queued      int64         // items sent to be read (new, changed, stale, retried) so far
	Done        int64         // of Queued: committed (written or failed)
	ListingDone bool          // the listing is complete: Queued is final
	Stopping    bool          // Stop was called: the in-flight batches are draining
	Elapsed     time.Duration // since the run started
	// Rate is Done items per second over the last few seconds (0 before
	// the first commit).
	Rate float64
	// ETA is (Queued-Done)/Rate, 0 when unknown; a lower bound until
	// ListingDone.
	ETA  time.Duration
	Last bool // the final call: Run is the final run record
}

// delta is what one committed batch adds to the counters.
type delta struct {
	written, extracted, reused, failed, skipped, unchanged, done int64
	unlisted                                                     int64 // vanished between listing and read
}

// tally holds a run's counters. The lister, the writer and the deleter
// update it; the progress reporter reads it.
type tally struct {
	mu       sync.Mutex
	run      schema.Run
	stored   int64
	queue    int64
	done     int64
	listDone bool
	now      func() time.Time
}

func newTally(run schema.Run, now func() time.Time) *tally {
	return &tally{run: run, now: now}
}

func (t *tally) setStored(n int64) {
	t.mu.Lock()
	t.stored = n
	t.mu.Unlock()
}

func (t *tally) listed(c Category) {
	t.mu.Lock()
	t.run.Listed++
	switch c {
	case Unchanged:
		t.run.Unchanged++
	case FailedKnown:
		t.run.Failed++
	case SkippedKnown:
		t.run.Skipped++
	}
	t.mu.Unlock()
}

func (t *tally) queued(n int64) {
	t.mu.Lock()
	t.queue += n
	t.mu.Unlock()
}

func (t *tally) listingDone() {
	t.mu.Lock()
	t.listDone = true
	t.mu.Unlock()
}

func (t *tally) deleted(n int64) {
	t.mu.Lock()
	t.run.Deleted += n
	t.mu.Unlock()
}

// snapshot returns the run row as it will be once d is committed.
func (t *tally) snapshot(d delta) schema.Run {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.run
	r.Written += d.written
	r.Extracted += d.extracted
	r.Reused += d.reused
	r.Failed += d.failed
	r.Skipped += d.skipped
	r.Unchanged += d.unchanged
	r.Listed -= d.unlisted
	return r
}

func (t *tally) apply(d delta) {
	t.mu.Lock()
	t.run.Written += d.written
	t.run.Extracted += d.extracted
	t.run.Reused += d.reused
	t.run.Failed += d.failed
	t.run.Skipped += d.skipped
	t.run.Unchanged += d.unchanged
	t.run.Listed -= d.unlisted
	t.done += d.done
	t.mu.Unlock()
}

func (t *tally) progress() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Progress{
		Run:         t.run,
		Queued:      t.queue,
		Done:        t.done,
		ListingDone: t.listDone,
		Elapsed:     t.now().Sub(t.run.StartedAt),
	}
}

// rateWindow is how many progress samples the rate is averaged over.
const rateWindow = 10

type sample struct {
	at   time.Time
	done int64
}

// startProgress starts the progress reporter when Options.Progress is set.
// The returned function stops it and makes the final call with the final
// run record.
func (rs *runState) startProgress() func(final schema.Run) {
	o := rs.s.opts
	if o.Progress == nil {
		return func(schema.Run) {}
	}
	var (
		samples []sample
		mu      sync.Mutex // one call at a time
	)
	report := func(last bool, final schema.Run) {
		mu.Lock()
		defer mu.Unlock()
		p := rs.t.progress()
		now := o.Now()
		samples = append(samples, sample{now, p.Done})
		if len(samples) > rateWindow+1 {
			samples = samples[1:]
		}
		if first := samples[0]; len(samples) > 1 {
			if dt := now.Sub(first.at).Seconds(); dt > 0 {
				p.Rate = float64(p.Done-first.done) / dt
			}
		} else if secs := p.Elapsed.Seconds(); secs > 0 {
			// Before a window exists (and for runs shorter than one
			// interval) the average since the start is the best estimate.
			p.Rate = float64(p.Done) / secs
		}
		if p.Rate > 0 && p.Queued > p.Done {
			p.ETA = time.Duration(float64(p.Queued-p.Done) / p.Rate * float64(time.Second))
		}
		p.Stopping = rs.s.isStopped()
		if last {
			p.Run, p.Last, p.ETA = final, true, 0
		}
		o.Progress(p)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(o.ProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				report(false, schema.Run{})
			}
		}
	})
	return func(final schema.Run) {
		close(done)
		wg.Wait()
		report(true, final)
	}
}
