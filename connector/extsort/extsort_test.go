package extsort

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type rec struct {
	Key string
	N   int64
	T   time.Time
}

func config(dir string, runBytes int, compare func(a, b rec) int) Config[rec] {
	return Config[rec]{
		Compare: compare,
		Encode: func(b []byte, r rec) []byte {
			return AppendTime(AppendInt(AppendString(b, r.Key), r.N), r.T)
		},
		Decode: func(b []byte) (rec, error) {
			d := NewDecoder(b)
			r := rec{Key: d.String(), N: d.Int(), T: d.Time()}
			return r, d.Err()
		},
		Size:     func(r rec) int { return len(r.Key) + 40 },
		RunBytes: runBytes,
		Dir:      dir,
	}
}

func byKey(a, b rec) int {
	return cmp.Or(strings.Compare(a.Key, b.Key), cmp.Compare(a.N, b.N), a.T.Compare(b.T))
}

func records(n int) []rec {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]rec, n)
	for i := range out {
		out[i] = rec{Key: strings.Repeat("k", rng.IntN(5)) + string(rune('a'+rng.IntN(26))), N: rng.Int64N(1000) - 500}
		if i%3 != 0 {
			out[i].T = time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9)).UTC()
		}
	}
	return out
}

func readAll(t *testing.T, s *Sorter[rec]) []rec {
	t.Helper()
	var got []rec
	for {
		v, ok, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			// The end stays the end.
			if _, ok, err := s.Next(); ok || err != nil {
				t.Fatalf("Next after the end = %v, %v", ok, err)
			}
			return got
		}
		got = append(got, v)
	}
}

// dirEntries counts the files left in dir.
func dirEntries(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestSortsInMemoryAndSpilled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		runBytes int
		n        int
	}{
		{"empty", 0, 0},
		{"in memory", 0, 1000},
		{"one record per run", 1, 200},
		{"many runs", 4 << 10, 20_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := New(config(dir, tc.runBytes, byKey))
			defer s.Close()
			in := records(tc.n)
			for _, r := range in {
				if err := s.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			if s.Len() != int64(tc.n) {
				t.Errorf("Len = %d, want %d", s.Len(), tc.n)
			}
			want := slices.Clone(in)
			slices.SortFunc(want, byKey)
			got := readAll(t, s)
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Key != want[i].Key || got[i].N != want[i].N || !got[i].T.Equal(want[i].T) || got[i].T.IsZero() != want[i].T.IsZero() {
					t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			if err := s.Add(rec{}); err == nil {
				t.Error("Add after reading succeeded")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := dirEntries(t, dir); n != 0 {
				t.Errorf("%d files left in the spill directory after Close", n)
			}
		})
	}
}

func TestFIFOKeepsOrder(t *testing.T) {
	for _, runBytes := range []int{0, 1, 1000} {
		s := New(config(t.TempDir(), runBytes, nil))
		in := records(3000)
		for _, r := range in {
			if err := s.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		got := readAll(t, s)
		if len(got) != len(in) {
			t.Fatalf("RunBytes %d: read %d records, want %d", runBytes, len(got), len(in))
		}
		for i := range in {
			if got[i].Key != in[i].Key || got[i].N != in[i].N {
				t.Fatalf("RunBytes %d: record %d = %+v, want %+v", runBytes, i, got[i], in[i])
			}
		}
		s.Close()
	}
}

// The spill file never outlives Close, whether the records were read or
// not: an abandoned sort (an error, a cancelled run) cleans up too.
func TestCloseRemovesSpillUnread(t *testing.T) {
	dir := t.TempDir()
	s := New(config(dir, 100, byKey))
	for _, r := range records(500) {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := dirEntries(t, dir); n != 0 {
		t.Errorf("%d files left after Close", n)
	}
	if _, _, err := s.Next(); err == nil {
		t.Error("Next after Close succeeded")
	}
}

func TestSpillErrorsNameTheOperation(t *testing.T) {
	s := New(config(filepath.Join(t.TempDir(), "missing"), 1, byKey))
	defer s.Close()
	err := s.Add(rec{Key: "a"})
	if err == nil || !strings.Contains(err.Error(), "create spill file") || !os.IsNotExist(errors.Unwrap(errors.Unwrap(err))) {
		t.Errorf("Add into a missing directory: %v", err)
	}
}

func TestDecoderRejectsTruncated(t *testing.T) {
	b := AppendTime(AppendString(nil, "hello"), time.Unix(5, 6))
	for i := range len(b) {
		d := NewDecoder(b[:i])
		_ = d.String()
		d.Time()
		if d.Err() == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
	d := NewDecoder(append(b, 7))
	_ = d.String()
	d.Time()
	if d.Err() == nil {
		t.Error("trailing bytes: no error")
	}
}
