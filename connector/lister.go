package connector

import (
	"context"
	"unicode/utf8"
)

// lister lists the source, diffs each entry against the sink's stored
// items (differ.diff, which streams both at once) and sends the items to
// read. It stops at a soft stop (softCtx).
func (rs *runState) lister(gctx, softCtx context.Context, out chan<- *item) error {
	defer close(out)
	listErr, err := rs.d.diff(softCtx, rs.src, rs.sink, func(e Entry, c Category, st StoredItem, found bool) error {
		rs.t.listed(c)
		if !c.needsRead() {
			return nil
		}
		it := &item{entry: e, id: rs.d.itemID(e, st, found), cat: c, stored: st, found: found}
		if !utf8.ValidString(e.Key) {
			it.refuseKey()
		}
		rs.t.queued(1)
		select {
		case out <- it:
			return nil
		case <-softCtx.Done():
			rs.t.queued(-1)
			return softCtx.Err()
		}
	})
	switch {
	case gctx.Err() != nil:
		return gctx.Err()
	case softCtx.Err() != nil:
		return nil // stopped: the listing is incomplete, Run deletes nothing
	case err != nil:
		return err
	case listErr != nil:
		rs.listErr = listErr
		rs.s.log.Warn("listing incomplete; processing what was listed, deleting nothing", "source", rs.source, "err", listErr)
		return nil
	}
	rs.t.listingDone()
	return nil
}
