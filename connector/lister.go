package connector

import (
	"context"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/imgvec/imgvec/schema"
)

// listAhead is how many listed entries may wait while the sink's stored
// items load (an Entry is ~100 bytes).
const listAhead = 1 << 16

// lister lists the source, classifies each entry and sends the items to
// read. It stops at a soft stop (softCtx).
//
// The sink's stored items load while the source lists, since neither
// needs the other until an entry is classified: the listing runs ahead by
// up to listAhead entries. Both goroutines belong to the lister, which
// waits for them.
func (rs *runState) lister(gctx, softCtx context.Context, out chan<- *item) error {
	defer close(out)
	entries := make(chan Entry, listAhead)
	var listErr error
	g, lctx := errgroup.WithContext(softCtx)
	g.Go(func() error {
		defer close(entries)
		listErr = rs.src.List(lctx, func(e Entry) error {
			select {
			case entries <- e:
				return nil
			case <-lctx.Done():
				return lctx.Err()
			}
		})
		return nil
	})
	g.Go(func() error {
		d, err := loadStored(gctx, rs.sink, rs.source, rs.modelID, rs.s.opts.RetryFailed, rs.s.opts.Shard)
		if err != nil {
			return err
		}
		rs.d = d
		rs.t.setStored(d.storedCount)
		for e := range entries {
			if !rs.s.opts.Shard.Contains(schema.ItemID(rs.source, e.Key)) {
				continue // another shard's item: not listed by this run
			}
			c, it := rs.d.visit(e)
			rs.t.listed(c)
			if it == nil {
				continue
			}
			if !utf8.ValidString(e.Key) {
				it.refuseKey()
			}
			rs.t.queued(1)
			select {
			case out <- it:
			case <-lctx.Done():
				rs.t.queued(-1)
				return nil
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	switch {
	case gctx.Err() != nil:
		return gctx.Err()
	case softCtx.Err() != nil:
		return nil // stopped: the listing is incomplete, Run deletes nothing
	case listErr != nil:
		rs.listErr = listErr
		rs.s.log.Warn("listing incomplete; processing what was listed, deleting nothing", "source", rs.source, "err", listErr)
		return nil
	}
	rs.t.listingDone()
	return nil
}
