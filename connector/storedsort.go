package connector

import (
	"cmp"
	"context"
	"strings"

	"github.com/imgvec/imgvec/connector/extsort"
)

// StoredSorter puts stored items into the order Sink.Stored promises, for
// a sink that cannot order its reads (Milvus): Add them in any order,
// each with a rank, then Emit streams them by key, then id, each id once —
// the one added with the lowest rank (e.g. 0 for the open model's rows, 1
// for older collections, 2 for the ledger). It holds at most 32 MiB of
// items and spills the rest to a temporary file in dir ("":
// os.TempDir()); Close removes it, and the owner always calls Close. One
// goroutine at a time; Add after Emit is an error.
type StoredSorter struct {
	s *extsort.Sorter[rankedStored]
}

type rankedStored struct {
	st   StoredItem
	rank int64
}

// NewStoredSorter returns an empty StoredSorter.
func NewStoredSorter(dir string) *StoredSorter {
	return &StoredSorter{s: extsort.New(extsort.Config[rankedStored]{
		Compare: func(a, b rankedStored) int {
			return cmp.Or(strings.Compare(a.st.Key, b.st.Key), strings.Compare(a.st.ID, b.st.ID), cmp.Compare(a.rank, b.rank))
		},
		Encode: func(b []byte, r rankedStored) []byte { return extsort.AppendInt(encodeStored(b, r.st), r.rank) },
		Decode: func(b []byte) (rankedStored, error) {
			d := extsort.NewDecoder(b)
			r := rankedStored{st: readStored(d)}
			r.rank = d.Int()
			return r, d.Err()
		},
		Size:     func(r rankedStored) int { return storedSize(r.st) },
		RunBytes: storedSortRunBytes,
		Dir:      dir,
	})}
}

// Add adds one item with its rank.
func (s *StoredSorter) Add(st StoredItem, rank int) error {
	return s.s.Add(rankedStored{st: st, rank: int64(rank)})
}

// Emit calls fn for each id once, in Stored's order. fn's error is
// returned as is; a cancelled ctx returns its error.
func (s *StoredSorter) Emit(ctx context.Context, fn func(StoredItem) error) error {
	var last string
	for n := 0; ; n++ {
		if n%checkEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		r, ok, err := s.s.Next()
		if err != nil || !ok {
			return err
		}
		if n > 0 && r.st.ID == last {
			continue // a lower rank of this id came first
		}
		last = r.st.ID
		if err := fn(r.st); err != nil {
			return err
		}
	}
}

// Close removes the spill.
func (s *StoredSorter) Close() error { return s.s.Close() }
