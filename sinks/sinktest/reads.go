package sinktest

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func testStored(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	const other = "file:///sinktest/other"
	r1 := rec(m, src, "1.jpg", "1", vecOf(8, 1))
	r2 := rec(m, src, "dir/2.png", "2", vecOf(8, 2))
	r2.ETag = `"abc-1"`
	r2.MTime = time.Unix(1_700_000_000, 999_999_999).UTC()
	o1 := rec(m, other, "o.jpg", "o", vecOf(8, 3))
	f1 := failure(m, src, "f1.jpg", schema.FailUnsupportedFormat, baseTime)
	f1.MTime = time.Time{} // sources without mtimes (URL lists)
	f1.SHA256 = ""
	// A ledger entry for an id that also has a row: Stored reports the row.
	both := failure(m, src, r1.Key, schema.FailDecode, baseTime)
	e.write(connector.Batch{Upserts: []schema.Record{r1, r2, o1}, Failures: []schema.Failure{f1, both}})

	got := e.stored(src)
	if len(got) != 3 {
		t.Fatalf("Stored(src) yielded %d items (%v), want 3", len(got), sortedIDs(got))
	}
	for _, r := range []schema.Record{r1, r2} {
		it, ok := got[r.ID]
		if !ok || it.Key != r.Key || it.ModelID != m.ID() || it.Failed {
			t.Errorf("Stored row %s = %+v", r.Key, it)
		}
		e.checkFingerprint("stored "+r.Key, it.Fingerprint, r.Fingerprint)
	}
	it := got[f1.ID]
	if !it.Failed || it.Class != schema.FailUnsupportedFormat || it.Key != f1.Key || it.ModelID != m.ID() {
		t.Errorf("Stored ledger entry = %+v", it)
	}
	e.checkFingerprint("stored ledger entry", it.Fingerprint, f1.Fingerprint)
	if o := e.stored(other); len(o) != 1 {
		t.Errorf("Stored(other) yielded %d items, want 1", len(o))
	}
	if n := len(e.stored("file:///nothing")); n != 0 {
		t.Errorf("Stored of an unknown source yielded %d items", n)
	}

	// An error from fn stops the stream and is returned.
	stop := errors.New("stop here")
	calls := 0
	err := e.s.Stored(e.ctx, src, func(connector.StoredItem) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Stored with failing fn: err %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func testVectorsBySHA256(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	r1 := rec(m, src, "1.jpg", "same bytes", vecOf(8, 1))
	r1copy := rec(m, src, "copy-of-1.jpg", "same bytes", vecOf(8, 1))
	r2 := rec(m, src, "2.jpg", "other bytes", vecOf(8, 2))
	e.write(connector.Batch{Upserts: []schema.Record{r1, r1copy, r2}})

	hashes := []string{r1.SHA256, hashOf("missing"), r2.SHA256, r1.SHA256}
	for i := range 1100 { // more than one lookup batch
		hashes = append(hashes, hashOf(fmt.Sprint("absent ", i)))
	}
	got, err := e.s.VectorsBySHA256(e.ctx, m.ID(), hashes)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !e.sameVector(got[r1.SHA256], r1.Vector) || !e.sameVector(got[r2.SHA256], r2.Vector) {
		t.Errorf("VectorsBySHA256 = %d vectors, want exactly those of %s and %s", len(got), r1.Key, r2.Key)
	}
	other, err := e.s.VectorsBySHA256(e.ctx, testModel("b", 8).ID(), hashes)
	if err != nil || len(other) != 0 {
		t.Errorf("VectorsBySHA256 under another model id = %d vectors, %v; want none", len(other), err)
	}
	none, err := e.s.VectorsBySHA256(e.ctx, m.ID(), nil)
	if err != nil || len(none) != 0 {
		t.Errorf("VectorsBySHA256(nil) = %v, %v", none, err)
	}
}

func testSearchOrdering(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	// Cosine distances to the query e0, by construction.
	items := []struct {
		key  string
		v    []float32
		dist float64
	}{
		{"same-direction.jpg", basis(8, 3), 0},
		{"close.jpg", basis(8, 1, 0.2), 1 - 1/math.Sqrt(1.04)},
		{"diagonal.jpg", basis(8, 1, 1), 1 - 1/math.Sqrt2},
		{"three-way.jpg", basis(8, 1, 1, 1), 1 - 1/math.Sqrt(3)},
		{"orthogonal.jpg", basis(8, 0, 0, 0, 0, 0, 0, 0, 2), 1},
		{"opposite.jpg", basis(8, -1, 0, 0.1), 1 + 1/math.Sqrt(1.01)},
	}
	var b connector.Batch
	// Written in reverse so that insertion order cannot pass for ranking.
	for i := len(items) - 1; i >= 0; i-- {
		b.Upserts = append(b.Upserts, rec(m, src, items[i].key, items[i].key, items[i].v))
	}
	e.write(b)
	q := basis(8, 0.5)
	hits := e.search(m.ID(), q, 10)
	if len(hits) != len(items) {
		t.Fatalf("Search returned %d hits, want %d", len(hits), len(items))
	}
	for i, h := range hits {
		if h.Key != items[i].key || math.Abs(h.Distance-items[i].dist) > 1e-5 {
			t.Errorf("hit %d = %s at %.6f, want %s at %.6f", i, h.Key, h.Distance, items[i].key, items[i].dist)
		}
		if h.ID != schema.ItemID(src, items[i].key) || h.ModelID != m.ID() || h.Source != src || h.SHA256 != hashOf(items[i].key) {
			t.Errorf("hit %d record = %+v", i, brief(h.Record))
		}
	}
	if got := hitKeys(e.search(m.ID(), q, 3)); got != "same-direction.jpg,close.jpg,diagonal.jpg" {
		t.Errorf("top 3 = %s", got)
	}
}

func testGet(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	r := rec(m, src, "photos/2024/a b ü.jpg", "a", vecOf(8, 1))
	r.Vector[2] = float32(math.Copysign(0, -1))
	r.Vector[5] = math.SmallestNonzeroFloat32
	r.Metadata = map[string]string{"camera": "X100", "quote": `"q" & 'a'`, "empty": ""}
	r.ETag = "W/\"x\""
	e.write(connector.Batch{Upserts: []schema.Record{r}})
	got, ok := e.get(r.ID)
	if !ok {
		t.Fatal("Get: not found")
	}
	e.checkRecord(got, r, false)
	if _, ok := e.get(schema.ItemID(src, "nope")); ok {
		t.Error("Get of a missing id found something")
	}
}

func testRoundTrip4096(t *testing.T, e *env) {
	m := testModel("vgg", 4096)
	e.open(m)
	var recs []schema.Record
	for i := range 3 {
		recs = append(recs, rec(m, src, fmt.Sprintf("%d.jpg", i), fmt.Sprint(i), vecOf(4096, i)))
	}
	e.write(connector.Batch{Upserts: recs})
	for _, r := range recs {
		got, ok := e.get(r.ID)
		if !ok {
			t.Fatalf("%s not stored", r.Key)
		}
		e.checkRecord(got, r, false)
	}
	hits := e.search(m.ID(), recs[1].Vector, 1)
	if len(hits) != 1 || hits[0].ID != recs[1].ID || math.Abs(hits[0].Distance) > 1e-6 {
		t.Errorf("Search for a stored 4096-d vector = %+v", hits)
	}
	vs, err := e.s.VectorsBySHA256(e.ctx, m.ID(), []string{recs[2].SHA256})
	if err != nil || !e.sameVector(vs[recs[2].SHA256], recs[2].Vector) {
		t.Errorf("VectorsBySHA256 of a 4096-d vector: %v", err)
	}
}

// Stored streams in key order, then id, comparing bytes: the sync's diff
// merges the stream with the listing and would take an item out of order
// for a vanished one. Rows of every model and ledger entries interleave;
// an id with both is reported once, as its row. The escaped key of an
// invalid-key ledger entry may equal a valid key: then the ids order them.
// The pipeline writes while the stream goes on, so fn may call Write.
func testStoredKeyOrder(t *testing.T, e *env) {
	ma, mb := testModel("a", 8), testModel("b", 8)
	keys := []string{"z", "a", "a b", "a-c", "a/b", "a/b/c", "a.jpg", "B", "b", "é.jpg", "日本.png", "~", `x\xff.jpg`}
	var want []connector.StoredItem
	// Rows of another model first (its own collection, where the sink has
	// them), then of the open one, then ledger entries.
	e.open(mb)
	var old []schema.Record
	for i, k := range keys[:4] {
		r := rec(mb, src, "old/"+k, k, vecOf(8, i))
		old = append(old, r)
		want = append(want, connector.StoredItem{ID: r.ID, Key: r.Key, ModelID: mb.ID()})
	}
	e.write(connector.Batch{Upserts: old})
	e.reopen(ma)
	var rows []schema.Record
	for i, k := range keys {
		r := rec(ma, src, k, k, vecOf(8, 10+i))
		rows = append(rows, r)
		want = append(want, connector.StoredItem{ID: r.ID, Key: r.Key, ModelID: ma.ID()})
	}
	var fails []schema.Failure
	for _, k := range []string{"a/a", "a,b", "m", "ü"} {
		f := failure(ma, src, k, schema.FailDecode, baseTime)
		fails = append(fails, f)
		want = append(want, connector.StoredItem{ID: f.ID, Key: f.Key, ModelID: ma.ID(), Failed: true})
	}
	raw := "x\xff.jpg"
	inv := failure(ma, src, schema.EscapeKey(raw), schema.FailInvalidKey, baseTime)
	inv.ID = schema.ItemID(src, raw)
	fails = append(fails, inv, failure(ma, src, "a", schema.FailDecode, baseTime)) // "a" has a row too
	want = append(want, connector.StoredItem{ID: inv.ID, Key: inv.Key, ModelID: ma.ID(), Failed: true})
	e.write(connector.Batch{Upserts: rows, Failures: fails})
	slices.SortFunc(want, func(a, b connector.StoredItem) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.ID, b.ID))
	})

	var got []connector.StoredItem
	err := e.s.Stored(e.ctx, src, func(it connector.StoredItem) error {
		if len(got) == 0 {
			// The stream goes on while the pipeline writes.
			late := rec(ma, src, "0-written-during-the-stream", "late", vecOf(8, 99))
			if err := e.s.Write(e.ctx, connector.Batch{Upserts: []schema.Record{late}}); err != nil {
				return fmt.Errorf("write during Stored: %w", err)
			}
		}
		got = append(got, it)
		return nil
	})
	if err != nil {
		t.Fatalf("Stored: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Stored yielded %d items, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Key != w.Key || g.ModelID != w.ModelID || g.Failed != w.Failed {
			t.Errorf("item %d = key %q id %s model %s failed %v; want key %q id %s model %s failed %v",
				i, g.Key, g.ID, g.ModelID, g.Failed, w.Key, w.ID, w.ModelID, w.Failed)
		}
	}
}
