package sinktest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func testModelIsolation(t *testing.T, e *env) {
	a, b := testModel("a", 8), testModel("b", 16)
	e.open(a)
	var aRecs, bRecs []schema.Record
	for i := range 3 {
		aRecs = append(aRecs, rec(a, src, fmt.Sprintf("a%d.jpg", i), fmt.Sprint("shared ", i), vecOf(8, i)))
	}
	e.write(connector.Batch{Upserts: aRecs})

	// Rows of another model id with another dimension do not stop Open: sync
	// re-embeds them.
	e.reopen(b)
	for i := range 2 {
		bRecs = append(bRecs, rec(b, src, fmt.Sprintf("b%d.jpg", i), fmt.Sprint("shared ", i), vecOf(16, 10+i)))
	}
	e.write(connector.Batch{Upserts: bRecs})

	check := func(m schema.ModelIdentity, recs []schema.Record) {
		t.Helper()
		hits := e.search(m.ID(), vecOf(m.Dim, 99), 10)
		if len(hits) != len(recs) {
			t.Errorf("Search(%s) returned %d hits, want %d", m.ID(), len(hits), len(recs))
		}
		for _, h := range hits {
			if h.ModelID != m.ID() {
				t.Errorf("Search(%s) returned %s of model %s", m.ID(), h.Key, h.ModelID)
			}
		}
		vs, err := e.s.VectorsBySHA256(e.ctx, m.ID(), []string{recs[0].SHA256, recs[1].SHA256})
		if err != nil || len(vs) != 2 || !e.sameVector(vs[recs[0].SHA256], recs[0].Vector) {
			t.Errorf("VectorsBySHA256(%s) = %d vectors, %v", m.ID(), len(vs), err)
		}
	}
	check(a, aRecs)
	check(b, bRecs)
	if _, err := e.searcher().Search(e.ctx, a.ID(), vecOf(16, 1), 3); err == nil {
		t.Error("Search with a vector of another dimension than the model's rows: no error")
	}
	if hits := e.search(testModel("unknown", 8).ID(), vecOf(8, 1), 3); len(hits) != 0 {
		t.Errorf("Search of a model id without rows returned %d hits", len(hits))
	}

	st := e.status()
	want := map[string]connector.ModelCount{
		a.ID(): {ModelID: a.ID(), Layer: a.Layer, Dim: 8, Rows: 3},
		b.ID(): {ModelID: b.ID(), Layer: b.Layer, Dim: 16, Rows: 2},
	}
	if len(st.Models) != 2 {
		t.Fatalf("Status.Models = %+v, want 2 models", st.Models)
	}
	for _, mc := range st.Models {
		if mc != want[mc.ModelID] {
			t.Errorf("Status model count %+v, want %+v", mc, want[mc.ModelID])
		}
	}
	stored := e.stored(src)
	if len(stored) != 5 {
		t.Errorf("Stored yields %d items across both models, want 5", len(stored))
	}
	for _, r := range aRecs {
		if stored[r.ID].ModelID != a.ID() {
			t.Errorf("Stored %s: model %s, want %s", r.Key, stored[r.ID].ModelID, a.ID())
		}
	}

	// A record of model a is refused while the sink is open for b.
	if err := e.s.Write(e.ctx, connector.Batch{Upserts: []schema.Record{rec(a, src, "late.jpg", "late", vecOf(8, 7))}}); err == nil {
		t.Error("Write of a record of another model id than the open one: no error")
	}
	// And a can be opened again over b's rows.
	e.reopen(a)
	if n := len(e.search(a.ID(), vecOf(8, 1), 10)); n != 3 {
		t.Errorf("after reopening model a, Search returned %d hits, want 3", n)
	}
}

func testDimensionMismatch(t *testing.T, e *env, forge ForgeDim) {
	if forge == nil {
		t.Skip("the sink's test gave no sinktest.WithForgeDim, so a stored dimension cannot be forged")
	}
	m := testModel("a", 8)
	e.open(m)
	e.write(connector.Batch{Upserts: []schema.Record{rec(m, src, "1.jpg", "1", vecOf(8, 1))}})
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	forge(t, e.s, m, 5)
	err := e.s.Open(e.ctx, m)
	if err == nil {
		t.Fatal("Open over rows of the model id with another dimension: no error")
	}
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "dimension") || !strings.Contains(msg, "5") || !strings.Contains(msg, "8") {
		t.Errorf("Open error %q does not name the dimensions (5 stored, 8 given)", err)
	}
}
