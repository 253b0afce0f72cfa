package connector

import (
	"context"
	"time"
)

// maxPass bounds the items that need no inference carried by one write
// batch.
func maxPass(bs int) int { return max(256, 4*bs) }

// batcher groups prepared items into batches of bs for the model and
// attaches the items that need no inference. A batch is ready when it is
// full, when the linger has passed since its first item, or at the end of
// the input; a ready batch keeps growing until the inferer takes it.
func (rs *runState) batcher(gctx context.Context, in <-chan *item, out chan<- *wbatch, bs int) error {
	defer close(out)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var (
		cur     = &wbatch{}
		lingerd bool // the linger for cur's first item has passed
		closed  bool // in is exhausted
	)
	defer func() {
		for _, it := range cur.infer {
			rs.release(it)
		}
	}()
	for {
		full := len(cur.infer) >= bs || len(cur.pass) >= maxPass(bs)
		if closed && cur.len() == 0 {
			return nil
		}
		var sendCh chan<- *wbatch
		if cur.len() > 0 && (full || lingerd || closed) {
			sendCh = out
		}
		recvCh := in
		if full || closed {
			recvCh = nil
		}
		select {
		case <-gctx.Done():
			return gctx.Err()
		case it, ok := <-recvCh:
			if !ok {
				closed = true
				continue
			}
			if cur.len() == 0 {
				linger.Reset(rs.s.opts.Linger)
			}
			if it.kind == kindExtract {
				cur.infer = append(cur.infer, it)
			} else {
				cur.pass = append(cur.pass, it)
			}
		case <-linger.C:
			lingerd = true
		case sendCh <- cur:
			cur, lingerd = &wbatch{}, false
			linger.Stop()
		}
	}
}
