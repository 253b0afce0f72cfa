package sinktest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// snapshot is everything observable about a store, for equality checks.
type snapshot struct {
	stored  map[string]connector.StoredItem
	records map[string]schema.Record
	status  connector.Status
}

func (e *env) snapshot(ids []string) snapshot {
	e.t.Helper()
	sn := snapshot{stored: e.stored(src), records: map[string]schema.Record{}, status: e.status()}
	for _, id := range ids {
		if r, ok := e.get(id); ok {
			sn.records[id] = r
		}
	}
	return sn
}

func (e *env) checkSameSnapshot(a, b snapshot) {
	e.t.Helper()
	if fmt.Sprint(sortedIDs(a.stored)) != fmt.Sprint(sortedIDs(b.stored)) {
		e.t.Fatalf("stored ids differ: %v vs %v", sortedIDs(a.stored), sortedIDs(b.stored))
	}
	for id, x := range a.stored {
		y := b.stored[id]
		if x.Key != y.Key || x.ModelID != y.ModelID || x.Failed != y.Failed || x.Class != y.Class ||
			x.Size != y.Size || x.SHA256 != y.SHA256 || !x.MTime.Equal(y.MTime) {
			e.t.Errorf("stored %s: %+v vs %+v", id, x, y)
		}
	}
	for id, x := range a.records {
		y, ok := b.records[id]
		if !ok {
			e.t.Errorf("record %s vanished", id)
			continue
		}
		e.checkRecord(y, x, false)
	}
	if len(a.records) != len(b.records) {
		e.t.Errorf("records: %d vs %d", len(a.records), len(b.records))
	}
	if fmt.Sprint(a.status.Models) != fmt.Sprint(b.status.Models) || a.status.Failures != b.status.Failures ||
		fmt.Sprint(a.status.ByClass) != fmt.Sprint(b.status.ByClass) || len(a.status.Runs) != len(b.status.Runs) {
		e.t.Errorf("status differs:\n%+v\n%+v", a.status, b.status)
	}
	for i := range a.status.Recent {
		if i < len(b.status.Recent) && a.status.Recent[i].Attempts != b.status.Recent[i].Attempts {
			e.t.Errorf("ledger %s attempts %d vs %d", a.status.Recent[i].Key, a.status.Recent[i].Attempts, b.status.Recent[i].Attempts)
		}
	}
}

func testIdempotentUpsert(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	var ids []string
	var b connector.Batch
	for i := range 5 {
		r := rec(m, src, fmt.Sprintf("img/%d.jpg", i), fmt.Sprint("content", i), vecOf(8, i))
		b.Upserts = append(b.Upserts, r)
		ids = append(ids, r.ID)
	}
	b.Failures = []schema.Failure{
		failure(m, src, "bad/1.jpg", schema.FailDecode, baseTime),
		failure(m, src, "bad/2.png", schema.FailTruncated, baseTime),
	}
	b.Run = testRun("run-1", src, m, baseTime)
	e.write(b)
	first := e.snapshot(ids)
	if len(first.stored) != 7 || first.status.Failures != 2 || len(first.status.Runs) != 1 {
		t.Fatalf("after first write: %d stored, %d failures, %d runs; want 7, 2, 1", len(first.stored), first.status.Failures, len(first.status.Runs))
	}
	// The same batch again (a lost commit reply, rerun) converges.
	e.write(b)
	second := e.snapshot(ids)
	e.checkSameSnapshot(first, second)
	for _, f := range second.status.Recent {
		if f.Attempts != 1 {
			t.Errorf("replayed ledger entry %s: attempts %d, want 1", f.Key, f.Attempts)
		}
	}
}

func testDuplicateIDs(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	a1 := rec(m, src, "a.jpg", "a v1", vecOf(8, 1))
	a2 := rec(m, src, "a.jpg", "a v2", vecOf(8, 2))
	a2.Size, a2.Width = 4242, 99
	b := rec(m, src, "b.jpg", "b", vecOf(8, 3))
	a3 := a2 // the last one wins, even after another id
	a3.Metadata = map[string]string{"last": "yes"}
	e.write(connector.Batch{Upserts: []schema.Record{a1, a2, b, a3}})
	got, ok := e.get(a1.ID)
	if !ok {
		t.Fatal("a.jpg not stored")
	}
	e.checkRecord(got, a3, false)
	if st := e.stored(src); len(st) != 2 {
		t.Fatalf("Stored yields %d items, want 2", len(st))
	}
	// Duplicate ledger entries in one batch count as one attempt.
	f := failure(m, src, "bad.jpg", schema.FailDecode, baseTime)
	f2 := f
	f2.Reason = "second"
	e.write(connector.Batch{Failures: []schema.Failure{f, f2}})
	st := e.status()
	if st.Failures != 1 || len(st.Recent) != 1 || st.Recent[0].Reason != "second" || st.Recent[0].Attempts != 1 {
		t.Fatalf("ledger after duplicate entries: %+v", st.Recent)
	}
}

func testMetadataUpdate(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	r := rec(m, src, "a.jpg", "a", vecOf(8, 1))
	e.write(connector.Batch{Upserts: []schema.Record{r}})
	fp := r.Fingerprint
	fp.Size += 1
	fp.MTime = fp.MTime.Add(90 * time.Minute)
	fp.ETag = "etag-2"
	missing := schema.ItemID(src, "never-stored.jpg")
	e.write(connector.Batch{Metadata: []connector.MetaUpdate{{ID: r.ID, Fingerprint: fp}, {ID: missing, Fingerprint: fp}}})
	got, ok := e.get(r.ID)
	if !ok {
		t.Fatal("row vanished after a metadata update")
	}
	want := r
	want.Fingerprint = fp
	e.checkRecord(got, want, false)
	if _, ok := e.get(missing); ok {
		t.Error("a metadata update of a missing id created a row")
	}
	if it := e.stored(src)[r.ID]; it.Size != fp.Size || !e.sameTime(it.MTime, fp.MTime) || it.ETag != fp.ETag {
		t.Errorf("Stored after metadata update: %+v, want fingerprint %+v", it, fp)
	}
}

func testBadVectors(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	good := rec(m, src, "good.jpg", "good", vecOf(8, 1))
	nan := vecOf(8, 2)
	nan[3] = float32(math.NaN())
	inf := vecOf(8, 3)
	inf[0] = float32(math.Inf(1))
	ninf := vecOf(8, 4)
	ninf[7] = float32(math.Inf(-1))
	tests := []struct {
		name string
		v    []float32
		dim  int
	}{
		{"NaN", nan, 8},
		{"+Inf", inf, 8},
		{"-Inf", ninf, 8},
		{"short", vecOf(7, 5), 8},
		{"long", vecOf(9, 6), 8},
		{"empty", nil, 8},
		{"record dim disagrees", vecOf(16, 7), 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := rec(m, src, "bad-"+tt.name+".jpg", "bad", tt.v)
			bad.Dim = tt.dim
			err := e.s.Write(e.ctx, connector.Batch{
				Upserts: []schema.Record{good, bad},
				Run:     testRun("run-bad", src, m, baseTime),
			})
			if err == nil {
				t.Fatal("Write accepted the batch")
			}
			if !names(err, bad.ID, bad.Key) {
				t.Errorf("error %q names neither the id nor the key of the bad item", err)
			}
			if _, ok := e.get(good.ID); ok {
				t.Error("the good record of the refused batch was written")
			}
			if st := e.status(); len(st.Runs) != 0 || len(st.Models) != 0 {
				t.Errorf("the refused batch left %d runs and %d models", len(st.Runs), len(st.Models))
			}
		})
	}
}

func testCancelledWrite(t *testing.T, e *env) {
	m := testModel("a", 16)
	e.open(m)
	const rows, fails = 1500, 20
	batch := func(source string) connector.Batch {
		var b connector.Batch
		for i := range rows {
			b.Upserts = append(b.Upserts, rec(m, source, fmt.Sprintf("%d.jpg", i), fmt.Sprint(source, i), vecOf(16, i)))
		}
		for i := range fails {
			b.Failures = append(b.Failures, failure(m, source, fmt.Sprintf("bad/%d.jpg", i), schema.FailDecode, baseTime))
		}
		b.Run = testRun("run "+source, source, m, baseTime)
		return b
	}
	count := func(source string) (r, f int) {
		for _, it := range e.stored(source) {
			if it.Failed {
				f++
			} else {
				r++
			}
		}
		return
	}
	var committed, rolledBack int
	delays := []time.Duration{-1, 0, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond,
		3 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond}
	for i, d := range delays {
		source := fmt.Sprintf("file:///sinktest/crash-%d", i)
		b := batch(source)
		ctx, cancel := context.WithCancel(e.ctx)
		switch {
		case d < 0:
			cancel() // cancelled before the call
		default:
			time.AfterFunc(d, cancel)
		}
		err := e.s.Write(ctx, b)
		cancel()
		r, f := count(source)
		switch {
		case r == rows && f == fails:
			committed++
		case r == 0 && f == 0:
			rolledBack++
			if err == nil {
				t.Errorf("delay %v: Write returned nil but nothing was stored", d)
			}
		default:
			t.Fatalf("delay %v: interrupted Write (err %v) left %d of %d rows and %d of %d ledger entries", d, err, r, rows, f, fails)
		}
		// The rerun converges.
		e.write(b)
		if r, f := count(source); r != rows || f != fails {
			t.Fatalf("delay %v: after the rerun %d rows, %d ledger entries; want %d, %d", d, r, f, rows, fails)
		}
	}
	t.Logf("interrupted writes: %d committed, %d rolled back", committed, rolledBack)
	if rolledBack == 0 {
		t.Error("no interrupted Write was rolled back: a Write cancelled before the call must not commit")
	}
}
