package connector

import (
	"context"
	"time"
)

// batcher groups prepared items into write batches, as batchPolicy
// decides, and runs the policy's linger timer. Each batch sent is
// reported to a BatchObserver with why it closed.
func (rs *runState) batcher(gctx context.Context, in <-chan *item, out chan<- *wbatch, bs int) error {
	defer close(out)
	p := newBatchPolicy(bs, rs.s.opts.Linger)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	defer func() {
		for _, it := range p.Pending().infer {
			rs.release(it)
		}
	}()
	for !p.Done() {
		now := time.Now()
		var sendCh chan<- *wbatch
		if p.Ready(now) {
			sendCh = out
		}
		recvCh := in
		if p.Full() || p.Ended() {
			recvCh = nil
		}
		select {
		case <-gctx.Done():
			return gctx.Err()
		case it, ok := <-recvCh:
			if !ok {
				p.End()
				continue
			}
			now = time.Now()
			first := p.Pending().len() == 0
			p.Add(it, now)
			if d := p.UntilNext(now); first && d > 0 {
				linger.Reset(d)
			}
		case <-linger.C:
			// The next turn sees the batch ready; a timer that fired a
			// little early is set again for the rest.
			if d := p.UntilNext(time.Now()); d > 0 {
				linger.Reset(d)
			}
		case sendCh <- p.Pending():
			b, why := p.Flush(now)
			linger.Stop()
			rs.batchClosed(why, b.len())
		}
	}
	return nil
}
