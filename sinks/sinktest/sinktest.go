package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// TimePrecisioner is implemented by sinks that store times at less than
// nanosecond precision. The suite compares stored times within it.
type TimePrecisioner interface {
	TimePrecision() time.Duration
}

// ForgeDim stores, under model.ID() in s's store, rows whose dimension is
// dim although the model gives model.Dim: a state the API refuses to
// create. s has been opened with model, written to and closed.
type ForgeDim func(t *testing.T, s connector.Sink, model schema.ModelIdentity, dim int)

// Option tunes Run.
type Option func(*config)

type config struct {
	forgeDim ForgeDim
	round    func(float32) float32
}

// WithForgeDim lets the suite check that Open refuses a store whose rows
// for the model id have another dimension. Without it that check is
// skipped.
func WithForgeDim(f ForgeDim) Option { return func(c *config) { c.forgeDim = f } }

// WithVectorPrecision is for a sink that stores vector elements at less
// than float32 precision (PostgreSQL's halfvec): the suite expects each
// element of a vector read back to be round(element written), bit for bit.
func WithVectorPrecision(round func(float32) float32) Option {
	return func(c *config) { c.round = round }
}

// Run runs the conformance suite. newSink returns an unopened sink over a
// fresh, isolated store (its own file, schema or collection) each time it
// is called; see the package documentation for what the sink must do.
func Run(t *testing.T, newSink func(t *testing.T) connector.Sink, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"IdempotentUpsert", testIdempotentUpsert},
		{"DuplicateIDsInBatch", testDuplicateIDs},
		{"MetadataUpdateKeepsVector", testMetadataUpdate},
		{"LedgerAttemptsAndClear", testLedger},
		{"Delete", testDelete},
		{"StoredStreams", testStored},
		{"VectorsBySHA256", testVectorsBySHA256},
		{"ModelIsolation", testModelIsolation},
		{"DimensionMismatchAtOpen", func(t *testing.T, e *env) { testDimensionMismatch(t, e, cfg.forgeDim) }},
		{"RefusesBadVectors", testBadVectors},
		{"CancelledWriteIsAllOrNothing", testCancelledWrite},
		{"SearchOrdering", testSearchOrdering},
		{"Get", testGet},
		{"StatusRuns", testStatusRuns},
		{"AbandonRuns", testAbandonRuns},
		{"AbandonDeadRuns", testAbandonDeadRuns},
		{"RoundTrip4096", testRoundTrip4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newEnv(t, newSink, cfg.round))
		})
	}
}

const src = "file:///sinktest/photos"

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

func testStatusRuns(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	if st := e.status(); len(st.Models) != 0 || st.Failures != 0 || len(st.Runs) != 0 || len(st.Recent) != 0 {
		t.Fatalf("status of an empty store: %+v", st)
	}
	r1 := testRun("run-1", src, m, baseTime)
	r2 := testRun("run-2", src, m, baseTime.Add(time.Minute))
	r3 := testRun("run-3", src, m, baseTime.Add(2*time.Minute))
	e.write(connector.Batch{Run: r1})
	e.write(connector.Batch{Run: r2})
	e.write(connector.Batch{Run: r3})
	// Progress, then the end of run 2.
	done := *r2
	done.EndedAt = done.StartedAt.Add(30 * time.Second)
	done.Outcome = schema.RunPartial
	done.Error = "1 item failed"
	done.Listed, done.Written, done.Failed = 20, 18, 2
	e.write(connector.Batch{Run: &done, Upserts: []schema.Record{rec(m, src, "x.jpg", "x", vecOf(8, 1))}})
	for i := range 12 {
		e.write(connector.Batch{Failures: []schema.Failure{
			failure(m, src, fmt.Sprintf("f%02d.jpg", i), schema.FailDecode, baseTime.Add(time.Duration(i)*time.Second)),
		}})
	}

	st := e.status()
	if len(st.Runs) != 3 {
		t.Fatalf("Status.Runs has %d runs, want 3", len(st.Runs))
	}
	e.checkRun(st.Runs[0], *r3)
	e.checkRun(st.Runs[1], done)
	e.checkRun(st.Runs[2], *r1)
	if st.Failures != 12 || st.ByClass[string(schema.FailDecode)] != 12 {
		t.Errorf("Failures = %d, ByClass = %v; want 12 decode", st.Failures, st.ByClass)
	}
	if len(st.Recent) != 10 || st.Recent[0].Key != "f11.jpg" || st.Recent[9].Key != "f02.jpg" {
		t.Errorf("Recent = %d entries from %v; want the 10 newest, f11.jpg first", len(st.Recent), st.Recent)
	}
	if len(st.Models) != 1 || st.Models[0].Rows != 1 || st.Models[0].Dim != 8 {
		t.Errorf("Models = %+v", st.Models)
	}
	for i := range 10 {
		e.write(connector.Batch{Run: testRun(fmt.Sprintf("run-%02d", 10+i), src, m, baseTime.Add(time.Hour+time.Duration(i)*time.Minute))})
	}
	if st := e.status(); len(st.Runs) != 10 || st.Runs[0].ID != "run-19" {
		t.Errorf("after 13 runs, Status.Runs = %d runs, newest %v; want 10, run-19", len(st.Runs), st.Runs[0].ID)
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
