package connector

import "time"

// BatchReason says why the batcher closed a write batch (BatchObserver).
type BatchReason string

const (
	// BatchFull: the batch holds Embedder.BatchSize() items for the model,
	// or max(256, 4×BatchSize) items that need no inference.
	BatchFull BatchReason = "size"
	// BatchLinger: Options.Linger passed since the batch's first item.
	BatchLinger BatchReason = "linger"
	// BatchEnd: the input ended (the last batch of a run or of a drain).
	BatchEnd BatchReason = "end"
)

// maxPass bounds the items that need no inference carried by one write
// batch.
func maxPass(bs int) int { return max(256, 4*bs) }

// batchPolicy decides when the write batch being collected is ready. It is
// a plain synchronous object, told the time by its caller: the batcher
// stage adds items and runs the timer UntilNext asks for; tests drive it
// with explicit times.
//
// A batch is ready when it is full, when linger has passed since its first
// item, or once the input has ended. A ready batch takes more items until
// it is full, so a busy model gets full batches.
type batchPolicy struct {
	size    int // model items that fill a batch
	maxPass int // items that need no inference that fill a batch
	linger  time.Duration
	cur     *wbatch
	opened  time.Time // when cur's first item was added
	ended   bool
}

func newBatchPolicy(size int, linger time.Duration) *batchPolicy {
	return &batchPolicy{size: size, maxPass: maxPass(size), linger: linger, cur: &wbatch{}}
}

// Add puts it in the batch; now is when it arrived.
func (p *batchPolicy) Add(it *item, now time.Time) {
	if p.cur.len() == 0 {
		p.opened = now
	}
	if it.kind == kindExtract {
		p.cur.infer = append(p.cur.infer, it)
	} else {
		p.cur.pass = append(p.cur.pass, it)
	}
}

// End records that no more items will be added.
func (p *batchPolicy) End() { p.ended = true }

// Ended reports whether End was called.
func (p *batchPolicy) Ended() bool { return p.ended }

// Done reports whether the input has ended and every batch was flushed.
func (p *batchPolicy) Done() bool { return p.ended && p.cur.len() == 0 }

// Full reports whether the batch takes no more items.
func (p *batchPolicy) Full() bool {
	return len(p.cur.infer) >= p.size || len(p.cur.pass) >= p.maxPass
}

// Ready reports whether the batch may be sent at now.
func (p *batchPolicy) Ready(now time.Time) bool {
	return p.cur.len() > 0 && p.UntilNext(now) == 0
}

// UntilNext returns how long after now the batch becomes ready: 0 when it
// is ready, -1 when it is empty (no time makes it ready; an item will).
func (p *batchPolicy) UntilNext(now time.Time) time.Duration {
	switch {
	case p.cur.len() == 0:
		return -1
	case p.Full() || p.ended:
		return 0
	}
	return max(p.opened.Add(p.linger).Sub(now), 0)
}

// Pending returns the batch being collected (to offer it to the next
// stage); it stays the policy's until Flush.
func (p *batchPolicy) Pending() *wbatch { return p.cur }

// Flush starts a new batch and returns the one collected, with why it was
// ready at now: full, else lingered, else ended (a batch that lingered
// before the input ended counts as lingered).
func (p *batchPolicy) Flush(now time.Time) (*wbatch, BatchReason) {
	b, why := p.cur, BatchEnd
	switch {
	case p.Full():
		why = BatchFull
	case now.Sub(p.opened) >= p.linger:
		why = BatchLinger
	}
	p.cur = &wbatch{}
	return b, why
}
