package connector_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// ScanByIDs keeps list's order across batches (a full last batch too),
// skips ids fetch no longer finds, and fetches at most batch ids at a time.
func TestScanByIDs(t *testing.T) {
	for _, n := range []int{0, 1, 5, 6, 7} {
		var ids []string
		for i := range n {
			ids = append(ids, fmt.Sprintf("id%02d", n-i)) // listed order is not sorted order
		}
		list := func(yield func(string) error) error {
			for _, id := range ids {
				if err := yield(id); err != nil {
					return err
				}
			}
			return nil
		}
		fetch := func(_ context.Context, batch []string) (map[string]schema.Record, error) {
			if len(batch) == 0 || len(batch) > 3 {
				t.Errorf("n=%d: fetch of %d ids, want 1 to 3", n, len(batch))
			}
			out := map[string]schema.Record{}
			for _, id := range batch {
				if id != "id02" { // deleted since listed
					out[id] = schema.Record{ID: id}
				}
			}
			return out, nil
		}
		var got []string
		err := connector.ScanByIDs(t.Context(), 3, list, fetch, func(r schema.Record) error {
			got = append(got, r.ID)
			return nil
		}, func(err error) error { return fmt.Errorf("wrapped: %w", err) })
		want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "id02" })
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("n=%d: got %v, %v; want %v", n, got, err, want)
		}
	}
}

func TestScanByIDsErrors(t *testing.T) {
	list := func(yield func(string) error) error {
		for _, id := range []string{"a", "b", "c"} {
			if err := yield(id); err != nil {
				return err
			}
		}
		return nil
	}
	fetch := func(_ context.Context, ids []string) (map[string]schema.Record, error) {
		out := map[string]schema.Record{}
		for _, id := range ids {
			out[id] = schema.Record{ID: id}
		}
		return out, nil
	}
	wrap := func(err error) error { return fmt.Errorf("wrapped: %w", err) }
	stop := errors.New("stop")
	err := connector.ScanByIDs(t.Context(), 2, list, fetch, func(schema.Record) error { return stop }, wrap)
	if err != stop {
		t.Errorf("fn's error came back as %v, want it as is", err)
	}
	bad := errors.New("fetch failed")
	err = connector.ScanByIDs(t.Context(), 2, list, func(context.Context, []string) (map[string]schema.Record, error) {
		return nil, bad
	}, func(schema.Record) error { return nil }, wrap)
	if !errors.Is(err, bad) || err.Error() != "wrapped: fetch failed" {
		t.Errorf("fetch's error = %v, want it wrapped", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err = connector.ScanByIDs(ctx, 2, list, fetch, func(schema.Record) error { calls++; cancel(); return nil }, wrap)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("cancelled in fn: %v after %d calls, want context.Canceled after 1", err, calls)
	}
}
