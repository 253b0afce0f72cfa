package dupes

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/schema"
)

// fixture stores, in the fake sink, rows of 3-d vectors: a chain a-b-c of
// near pairs (a and c themselves farther apart than the threshold), an
// exact copy of b, a pair of exact copies with no near neighbour, a zero
// vector and lone rows.
func fixture(t *testing.T) (*connectortest.Sink, schema.ModelIdentity) {
	t.Helper()
	m := schema.ModelIdentity{ModelSHA256: fmt.Sprintf("%064d", 1), Layer: "fc7", Preprocess: "test", Dim: 3}
	s := connectortest.NewSink()
	put := func(source, key, content string, v ...float32) {
		s.Put(schema.Record{Source: source, Key: key, Fingerprint: schema.Fingerprint{SHA256: content},
			ModelID: m.ID(), Dim: 3, Vector: v})
	}
	const src, other = "file:///b", "file:///a"
	at := func(deg float64) []float32 { // unit vector at deg degrees in the x-y plane, scaled by 2
		r := deg * math.Pi / 180
		return []float32{float32(2 * math.Cos(r)), float32(2 * math.Sin(r)), 0}
	}
	// cos 10° = 0.9848: distance 0.0152; cos 20°: 0.0603.
	put(src, "chain/a.jpg", "A", at(0)...)
	put(src, "chain/b.jpg", "B", at(10)...)
	put(other, "copy-of-b.jpg", "B", at(10)...)
	put(src, "chain/c.jpg", "C", at(20)...)
	put(src, "twin1.jpg", "T", 0, 0, 5)
	put(src, "twin2.jpg", "T", 0, 0, 5)
	put(src, "zero.jpg", "Z", 0, 0, 0)
	put(src, "lone.jpg", "L", at(90)...)
	put(src, "lone2.jpg", "M", at(135)...)
	return s, m
}

func TestFind(t *testing.T) {
	s, m := fixture(t)
	scan := func(fn func(schema.Record) error) error { return s.ScanVectors(context.Background(), m.ID(), fn) }
	search := func(ctx context.Context, v []float32, k int) ([]connector.Hit, error) {
		return s.Search(ctx, m.ID(), v, k)
	}
	want := `[{"kind":"near","members":[` +
		`{"id":"ID(file:///a,copy-of-b.jpg)","source":"file:///a","key":"copy-of-b.jpg","sha256":"B","distance":0},` +
		`{"id":"ID(file:///b,chain/a.jpg)","source":"file:///b","key":"chain/a.jpg","sha256":"A","distance":0.0152},` +
		`{"id":"ID(file:///b,chain/b.jpg)","source":"file:///b","key":"chain/b.jpg","sha256":"B","distance":0},` +
		`{"id":"ID(file:///b,chain/c.jpg)","source":"file:///b","key":"chain/c.jpg","sha256":"C","distance":0.0152}]},` +
		`{"kind":"exact","members":[` +
		`{"id":"ID(file:///a,copy-of-b.jpg)","source":"file:///a","key":"copy-of-b.jpg","sha256":"B","distance":0},` +
		`{"id":"ID(file:///b,chain/b.jpg)","source":"file:///b","key":"chain/b.jpg","sha256":"B","distance":0}]},` +
		`{"kind":"exact","members":[` +
		`{"id":"ID(file:///b,twin1.jpg)","source":"file:///b","key":"twin1.jpg","sha256":"T","distance":0},` +
		`{"id":"ID(file:///b,twin2.jpg)","source":"file:///b","key":"twin2.jpg","sha256":"T","distance":0}]}]`
	for name, o := range map[string]Options{
		"exact, one block":       {Threshold: 0.02},
		"exact, a row per block": {Threshold: 0.02, BlockBytes: 1},
		"exact, two rows":        {Threshold: 0.02, BlockBytes: 24},
		"k-NN through Search":    {Threshold: 0.02, Search: search, K: 3},
	} {
		groups, err := Find(context.Background(), scan, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := render(groups); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	// Below the nearest pair's distance only exact copies remain.
	groups, err := Find(context.Background(), scan, Options{Threshold: 0.01})
	if err != nil || len(groups) != 2 || groups[0].Kind != Exact || groups[1].Kind != Exact {
		t.Errorf("threshold 0.01: %s, %v", render(groups), err)
	}
}

// render is the groups as JSON, ids written as ID(source,key) and
// distances to 4 decimals.
func render(groups []Group) string {
	for g := range groups {
		for m, mem := range groups[g].Members {
			if mem.ID == schema.ItemID(mem.Source, mem.Key) {
				groups[g].Members[m].ID = fmt.Sprintf("ID(%s,%s)", mem.Source, mem.Key)
			}
			groups[g].Members[m].Distance = math.Round(mem.Distance*1e4) / 1e4
		}
	}
	b, _ := json.Marshal(groups)
	return string(b)
}
