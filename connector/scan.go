package connector

import (
	"context"

	"github.com/imgvec/imgvec/schema"
)

// ScanByIDs is the core of a VectorScanner for a store that lists ids in
// key order cheaply but reads whole rows (with vectors) only by id: list
// calls its argument with each id in key order; ScanByIDs gathers them
// into batches of batch ids, reads each batch with fetch (which returns
// the rows it found, keyed by id, in any order), and calls fn with the
// rows in list's order. An id that fetch does not find (deleted since it
// was listed) is skipped. It holds at most one batch of rows.
//
// fn's error is returned as is; every other error (list's, fetch's, or
// ctx's once it is done, which stops the scan between rows) is returned
// through wrap, which names the store and must wrap with %w.
func ScanByIDs(ctx context.Context, batch int, list func(yield func(id string) error) error,
	fetch func(ctx context.Context, ids []string) (map[string]schema.Record, error),
	fn func(schema.Record) error, wrap func(error) error) error {
	ids := make([]string, 0, batch)
	var fnErr error
	flush := func() error {
		rows, err := fetch(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return err
			}
			if r, ok := rows[id]; ok {
				if fnErr = fn(r); fnErr != nil {
					return fnErr
				}
			}
		}
		ids = ids[:0]
		return nil
	}
	err := list(func(id string) error {
		if ids = append(ids, id); len(ids) == batch {
			return flush()
		}
		return ctx.Err()
	})
	if err == nil && len(ids) > 0 {
		err = flush()
	}
	switch {
	case fnErr != nil:
		return fnErr
	case err == nil:
		err = ctx.Err()
	}
	if err != nil {
		return wrap(err)
	}
	return nil
}
