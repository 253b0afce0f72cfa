package connector

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// inferer runs the model on each batch, one batch at a time, and hands
// every Prepared back to the embedder afterwards. Options.InferWorkers of
// them share in and out; the pool closes out.
func (rs *runState) inferer(gctx context.Context, in <-chan *wbatch, out chan<- *wbatch) error {
	return relay(gctx, gctx, in, out, func(b *wbatch) error { return rs.infer(gctx, b) }, nil)
}

func (rs *runState) infer(ctx context.Context, b *wbatch) error {
	n := len(b.infer)
	if n == 0 {
		return nil
	}
	batch := make([]*schema.Prepared, n)
	for i, it := range b.infer {
		batch[i] = it.prep
	}
	start := time.Now()
	results, err := func() (res []schema.VectorResult, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return rs.emb.Infer(ctx, batch)
	}()
	rs.observe(StageInfer, n, start)
	for _, it := range b.infer {
		rs.release(it)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("infer batch of %d (first %s): %w", n, b.infer[0].entry.Key, err)
	}
	if len(results) != n {
		return fmt.Errorf("infer batch of %d (first %s): embedder returned %d results", n, b.infer[0].entry.Key, len(results))
	}
	for i, it := range b.infer {
		r := results[i]
		if r.Err != nil {
			it.failWith(r.Err, "infer", schema.FailInfer)
			continue
		}
		switch err := schema.CheckVector(r.Vector, rs.model.Dim); {
		case err == nil:
			it.vec = r.Vector
		case errors.Is(err, schema.ErrNotFinite):
			it.fail("infer", schema.FailNonFinite, "model output is NaN or Inf", nil)
		default:
			it.fail("infer", schema.FailInfer, "model output: "+err.Error(), nil)
		}
	}
	return nil
}
