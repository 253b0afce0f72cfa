package sinktest

import (
	"fmt"
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func testDelete(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	const other = "file:///sinktest/other"
	r1 := rec(m, src, "1.jpg", "1", vecOf(8, 1))
	r2 := rec(m, src, "2.jpg", "2", vecOf(8, 2))
	o1 := rec(m, other, "1.jpg", "1", vecOf(8, 1))
	f1 := failure(m, src, "f1.jpg", schema.FailDecode, baseTime)
	f2 := failure(m, src, "f2.jpg", schema.FailIO, baseTime)
	e.write(connector.Batch{Upserts: []schema.Record{r1, r2, o1}, Failures: []schema.Failure{f1, f2}})

	if err := e.s.Delete(e.ctx, src, nil); err != nil {
		t.Fatalf("Delete of no ids: %v", err)
	}
	// o1's id belongs to another source: Delete(src, ...) must not touch it.
	if err := e.s.Delete(e.ctx, src, []string{r1.ID, f1.ID, o1.ID, schema.ItemID(src, "unknown")}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := sortedIDs(e.stored(src)); fmt.Sprint(got) != fmt.Sprint(sortedIDs(map[string]bool{r2.ID: true, f2.ID: true})) {
		t.Errorf("after delete, Stored(src) = %v, want %s and %s", got, r2.ID, f2.ID)
	}
	if _, ok := e.get(r1.ID); ok {
		t.Error("deleted row still returned by Get")
	}
	if _, ok := e.get(o1.ID); !ok {
		t.Error("row of another source deleted")
	}
	st := e.status()
	if st.Failures != 1 || st.Recent[0].ID != f2.ID {
		t.Errorf("ledger after delete: %+v", st.Recent)
	}
	// Many ids in one call (sinks batch their statements).
	var b connector.Batch
	var ids []string
	for i := range 1200 {
		r := rec(m, src, fmt.Sprintf("many/%d.jpg", i), fmt.Sprint(i), vecOf(8, i))
		b.Upserts = append(b.Upserts, r)
		ids = append(ids, r.ID)
	}
	e.write(b)
	if err := e.s.Delete(e.ctx, src, ids); err != nil {
		t.Fatalf("Delete of 1200 ids: %v", err)
	}
	if n := len(e.stored(src)); n != 2 {
		t.Errorf("after deleting 1200 ids, %d items stored, want 2", n)
	}
}
