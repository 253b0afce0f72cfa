package connector

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// preparer decodes and preprocesses the items to extract; other items pass
// through untouched.
func (rs *runState) preparer(gctx context.Context, in <-chan *item, out chan<- *item) error {
	return relay(gctx, gctx, in, out, func(it *item) error {
		if it.kind == kindExtract {
			rs.prepare(it)
		}
		return nil
	}, rs.release)
}

func (rs *runState) prepare(it *item) {
	defer rs.observe(StageDecode, 1, time.Now())
	data := it.data
	it.data = nil
	p, err := func() (p *schema.Prepared, err error) {
		defer func() {
			if r := recover(); r != nil {
				rs.s.log.Error("embedder panicked preparing an item", "key", it.entry.Key, "panic", r, "stack", string(debug.Stack()))
				err = &schema.ItemError{Stage: "decode", Class: schema.FailDecode, Reason: fmt.Sprintf("decoder panic: %v", r)}
			}
		}()
		return rs.emb.Prepare(it.entry.Key, data)
	}()
	switch {
	case err != nil:
		if p != nil {
			rs.emb.Release(p)
		}
		it.failWith(err, "decode", schema.FailDecode)
	case p == nil:
		it.fail("preprocess", schema.FailDecode, "embedder prepared nothing", nil)
	default:
		it.prep, it.width, it.height, it.format = p, p.Width, p.Height, p.Format
	}
}

func (rs *runState) release(it *item) {
	if it != nil && it.prep != nil {
		rs.emb.Release(it.prep)
		it.prep = nil
	}
}
