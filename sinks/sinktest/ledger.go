package sinktest

import (
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func testLedger(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	t1, t2 := baseTime, baseTime.Add(time.Hour)
	f1 := failure(m, src, "bad.jpg", schema.FailDecode, t1)
	e.write(connector.Batch{Failures: []schema.Failure{f1}})
	f2 := failure(m, src, "bad.jpg", schema.FailTruncated, t2)
	f2.Reason = "later"
	e.write(connector.Batch{Failures: []schema.Failure{f2}})

	st := e.status()
	if st.Failures != 1 || len(st.Recent) != 1 {
		t.Fatalf("ledger: %d entries, recent %+v", st.Failures, st.Recent)
	}
	got := st.Recent[0]
	if got.Attempts != 2 || got.Class != schema.FailTruncated || got.Reason != "later" || got.Stage != f2.Stage ||
		got.ModelID != m.ID() || got.Key != f1.Key || got.Source != src || got.ID != f1.ID ||
		!e.sameTime(got.FirstSeen, t1) || !e.sameTime(got.LastSeen, t2) {
		t.Errorf("ledger entry after two attempts = %+v; want attempts 2, class truncated, first seen %v, last seen %v", got, t1, t2)
	}
	e.checkFingerprint("ledger entry", got.Fingerprint, f2.Fingerprint)
	if st.ByClass[string(schema.FailTruncated)] != 1 || len(st.ByClass) != 1 {
		t.Errorf("ByClass = %v", st.ByClass)
	}
	it, ok := e.stored(src)[f1.ID]
	if !ok || !it.Failed || it.Class != schema.FailTruncated || it.ModelID != m.ID() {
		t.Errorf("Stored ledger entry = %+v (present %v)", it, ok)
	}
	e.checkFingerprint("stored ledger entry", it.Fingerprint, f2.Fingerprint)

	// A later upsert of the id clears its ledger entry in the same commit.
	r := rec(m, src, "bad.jpg", "fixed", vecOf(8, 5))
	e.write(connector.Batch{Upserts: []schema.Record{r}})
	st = e.status()
	if st.Failures != 0 || len(st.Recent) != 0 || len(st.ByClass) != 0 {
		t.Errorf("ledger after upsert: %d entries, by class %v", st.Failures, st.ByClass)
	}
	if it := e.stored(src)[r.ID]; it.Failed {
		t.Errorf("Stored still reports %s failed", r.Key)
	}
}
