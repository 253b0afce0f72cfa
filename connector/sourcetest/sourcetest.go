package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
)

// Item is one item the suite asks a harness to store.
type Item struct {
	Key   string // slash-separated, relative ("dir/a.jpg")
	Data  []byte
	MTime time.Time // UTC; to the second, so any file system keeps it
}

// Harness makes the sources the suite checks.
type Harness struct {
	// New stores items in a fresh, isolated location and returns a source
	// over exactly them. It may be called from parallel subtests.
	New func(t *testing.T, items []Item) Fixture
	// MTime: the source lists each item's mtime (sources without one,
	// such as URL lists, leave Entry.MTime zero).
	MTime bool
}

// Fixture is one source over the suite's items.
type Fixture struct {
	Source connector.Source
	// Key returns the key under which the source lists the item keyed
	// item by the suite (the file-list source keys files by path); nil:
	// the same key. The suite also asks it for keys the source does not
	// hold.
	Key func(item string) string
	// Reopen returns a second, new instance over the same location.
	Reopen func(t *testing.T) connector.Source
	// Break makes a complete listing impossible from now on: some items
	// (not all) can no longer be listed, or the listing fails part-way.
	Break func(t *testing.T)
}

func (f Fixture) key(item string) string {
	if f.Key == nil {
		return item
	}
	return f.Key(item)
}

// Run runs the conformance suite against the sources h makes. Subtests run
// in parallel.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("sourcetest: Harness.New is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"CompleteListing", testCompleteListing},
		{"EmptyListing", testEmptyListing},
		{"FailedListing", testFailedListing},
		{"FnErrorStopsListing", testFnError},
		{"CancelledList", testCancelledList},
		{"CancelledRead", testCancelledRead},
		{"ConcurrentRead", testConcurrentRead},
		{"MissingKey", testMissingKey},
		{"StableName", testStableName},
		{"CloseTwice", testCloseTwice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, h)
		})
	}
}

// sample returns n items in nested folders with distinct sizes, bytes and
// mtimes.
func sample(n int) []Item {
	base := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
	items := make([]Item, n)
	for i := range items {
		key := fmt.Sprintf("%d.jpg", i)
		switch i % 3 {
		case 1:
			key = fmt.Sprintf("sub/%d.png", i)
		case 2:
			key = fmt.Sprintf("sub/deep/%d.jpeg", i)
		}
		data := make([]byte, 1+i*37)
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		items[i] = Item{Key: key, Data: data, MTime: base.Add(time.Duration(i) * time.Hour)}
	}
	return items
}

// open calls h.New and closes the source when the test ends.
func open(t *testing.T, h Harness, items []Item) Fixture {
	t.Helper()
	f := h.New(t, items)
	if f.Source == nil {
		t.Fatal("Harness.New returned no source")
	}
	t.Cleanup(func() { f.Source.Close() })
	return f
}

// ctx is a context for one subtest, bounded so that a hung source fails
// instead of blocking the run.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// list collects a listing.
func list(ctx context.Context, s connector.Source) ([]connector.Entry, error) {
	var got []connector.Entry
	err := s.List(ctx, func(e connector.Entry) error {
		got = append(got, e)
		return nil
	})
	return got, err
}

// checkEntries reports entries that are not items (by source key), are
// listed twice, or have the wrong size or mtime (an Entry.Revalidate entry
// may have neither). It returns the keys seen.
func checkEntries(t *testing.T, h Harness, f Fixture, items []Item, got []connector.Entry) map[string]bool {
	t.Helper()
	want := make(map[string]Item, len(items))
	for _, it := range items {
		want[f.key(it.Key)] = it
	}
	seen := make(map[string]bool, len(got))
	for _, e := range got {
		it, ok := want[e.Key]
		switch {
		case !ok:
			t.Errorf("listed %q, which is not an item", e.Key)
			continue
		case seen[e.Key]:
			t.Errorf("listed %q more than once", e.Key)
		case !e.Revalidate && e.Size != int64(len(it.Data)):
			t.Errorf("%q: size %d, want %d", e.Key, e.Size, len(it.Data))
		}
		seen[e.Key] = true
		if h.MTime && (!e.MTime.Equal(it.MTime) || e.MTime.Location() != time.UTC) {
			t.Errorf("%q: mtime %v, want %v in UTC", e.Key, e.MTime, it.MTime)
		}
	}
	return seen
}

func testCompleteListing(t *testing.T, h Harness) {
	items := sample(12)
	f := open(t, h, items)
	got, err := list(ctx(t), f.Source)
	if err != nil {
		t.Fatalf("List of a readable location: %v", err)
	}
	seen := checkEntries(t, h, f, items, got)
	for _, it := range items {
		if !seen[f.key(it.Key)] {
			t.Errorf("item %q (key %q) not listed", it.Key, f.key(it.Key))
		}
	}
}

func testEmptyListing(t *testing.T, h Harness) {
	f := open(t, h, nil)
	got, err := list(ctx(t), f.Source)
	if err != nil || len(got) != 0 {
		t.Errorf("List of an empty location = %d entries, %v; want none, nil", len(got), err)
	}
}

func testFailedListing(t *testing.T, h Harness) {
	items := sample(12)
	f := open(t, h, items)
	if f.Break == nil {
		t.Skip("the harness gives no Fixture.Break")
	}
	f.Break(t)
	got, err := list(ctx(t), f.Source)
	if err == nil {
		t.Fatalf("List after Break returned nil (a complete listing of %d entries): an incomplete listing must return an error", len(got))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List after Break returned a context error: %v", err)
	}
	if seen := checkEntries(t, h, f, items, got); len(seen) == len(items) {
		t.Errorf("List after Break listed all %d items and failed with %v: Break must make some unlistable", len(items), err)
	}
}

func testFnError(t *testing.T, h Harness) {
	f := open(t, h, sample(6))
	stop := errors.New("stop the listing")
	calls := 0
	err := f.Source.List(ctx(t), func(connector.Entry) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with a failing fn: %v after %d calls; want fn's error after 1", err, calls)
	}
}

func testCancelledList(t *testing.T, h Harness) {
	f := open(t, h, sample(9))
	c, cancel := context.WithCancel(ctx(t))
	calls := 0
	err := f.Source.List(c, func(connector.Entry) error { calls++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("List cancelled in the first fn: %v after %d calls; want context.Canceled after 1", err, calls)
	}
	// A context cancelled before the call: nothing is listed and the
	// listing is not complete, even where nothing is left to list.
	for _, items := range [][]Item{sample(3), nil} {
		f := open(t, h, items)
		c, cancel := context.WithCancel(ctx(t))
		cancel()
		got, err := list(c, f.Source)
		if !errors.Is(err, context.Canceled) || len(got) != 0 {
			t.Errorf("List of %d items with a cancelled context = %d entries, %v; want none, context.Canceled", len(items), len(got), err)
		}
	}
}

func testCancelledRead(t *testing.T, h Harness) {
	items := sample(3)
	f := open(t, h, items)
	key := f.key(items[2].Key)
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if b, err := f.Source.Read(c, key); !errors.Is(err, context.Canceled) {
		t.Errorf("Read(%q) with a cancelled context = %d bytes, %v; want context.Canceled", key, len(b), err)
	}
	c, cancel = context.WithDeadline(ctx(t), time.Now().Add(-time.Second))
	defer cancel()
	if b, err := f.Source.Read(c, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read(%q) past the deadline = %d bytes, %v; want context.DeadlineExceeded", key, len(b), err)
	}
}

func testConcurrentRead(t *testing.T, h Harness) {
	items := sample(40)
	f := open(t, h, items)
	c := ctx(t)
	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers*len(items))
	for r := range readers {
		wg.Go(func() {
			// Each reader starts elsewhere so that reads of one key overlap
			// with reads of others.
			for i := range items {
				it := items[(i+r*5)%len(items)]
				key := f.key(it.Key)
				b, err := f.Source.Read(c, key)
				switch {
				case err != nil:
					errs <- fmt.Errorf("Read(%q): %w", key, err)
				case !slices.Equal(b, it.Data):
					errs <- fmt.Errorf("Read(%q) = %d bytes, not the item's %d", key, len(b), len(it.Data))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testMissingKey(t *testing.T, h Harness) {
	items := sample(3)
	f := open(t, h, items)
	for _, item := range []string{"missing.jpg", "sub/missing.png", "nowhere/deep/missing.jpeg"} {
		key := f.key(item)
		b, err := f.Source.Read(ctx(t), key)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Read(%q) of a key the source does not hold = %d bytes, %v; want an error wrapping fs.ErrNotExist", key, len(b), err)
		}
	}
}

func testStableName(t *testing.T, h Harness) {
	f := open(t, h, sample(3))
	name := f.Source.Name()
	if name == "" {
		t.Fatal("Name is empty")
	}
	if again := f.Source.Name(); again != name {
		t.Errorf("Name changed between calls: %q, then %q", name, again)
	}
	if _, err := list(ctx(t), f.Source); err != nil {
		t.Fatal(err)
	}
	if after := f.Source.Name(); after != name {
		t.Errorf("Name changed after List: %q, then %q", name, after)
	}
	if f.Reopen == nil {
		t.Skip("the harness gives no Fixture.Reopen")
	}
	other := f.Reopen(t)
	defer other.Close()
	if got := other.Name(); got != name {
		t.Errorf("another instance over the same location is named %q, want %q", got, name)
	}
}

func testCloseTwice(t *testing.T, h Harness) {
	f := h.New(t, sample(2))
	if _, err := list(ctx(t), f.Source); err != nil {
		t.Fatal(err)
	}
	if err := f.Source.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := f.Source.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
