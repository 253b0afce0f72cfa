package sinktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// env is one subtest's sink and helpers.
type env struct {
	t    *testing.T
	ctx  context.Context
	s    connector.Sink
	prec time.Duration
	// round is the sink's element precision (WithVectorPrecision); nil:
	// float32, exact.
	round func(float32) float32
}

func newEnv(t *testing.T, newSink func(t *testing.T) connector.Sink, round func(float32) float32) *env {
	t.Helper()
	s := newSink(t)
	if s == nil {
		t.Fatal("newSink returned nil")
	}
	if _, ok := s.(connector.Searcher); !ok {
		t.Fatalf("%T does not implement connector.Searcher", s)
	}
	if _, ok := s.(connector.StatusReader); !ok {
		t.Fatalf("%T does not implement connector.StatusReader", s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{t: t, ctx: ctx, s: s, prec: time.Nanosecond, round: round}
	if p, ok := s.(TimePrecisioner); ok && p.TimePrecision() > 0 {
		e.prec = p.TimePrecision()
	}
	return e
}

func (e *env) open(m schema.ModelIdentity) {
	e.t.Helper()
	if err := e.s.Open(e.ctx, m); err != nil {
		e.t.Fatalf("Open(%s, dim %d): %v", m.ID(), m.Dim, err)
	}
}

func (e *env) reopen(m schema.ModelIdentity) {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open(m)
}

func (e *env) write(b connector.Batch) {
	e.t.Helper()
	if err := e.s.Write(e.ctx, b); err != nil {
		e.t.Fatalf("Write: %v", err)
	}
}

func (e *env) searcher() connector.Searcher     { return e.s.(connector.Searcher) }
func (e *env) statuser() connector.StatusReader { return e.s.(connector.StatusReader) }

func (e *env) get(id string) (schema.Record, bool) {
	e.t.Helper()
	r, ok, err := e.searcher().Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return r, ok
}

func (e *env) status() connector.Status {
	e.t.Helper()
	st, err := e.statuser().Status(e.ctx)
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	return st
}

func (e *env) stored(source string) map[string]connector.StoredItem {
	e.t.Helper()
	out := map[string]connector.StoredItem{}
	err := e.s.Stored(e.ctx, source, func(it connector.StoredItem) error {
		if _, dup := out[it.ID]; dup {
			e.t.Errorf("Stored(%s) yielded id %s twice", source, it.ID)
		}
		out[it.ID] = it
		return nil
	})
	if err != nil {
		e.t.Fatalf("Stored(%s): %v", source, err)
	}
	return out
}

func (e *env) search(modelID string, v []float32, k int) []connector.Hit {
	e.t.Helper()
	hits, err := e.searcher().Search(e.ctx, modelID, v, k)
	if err != nil {
		e.t.Fatalf("Search(%s, k=%d): %v", modelID, k, err)
	}
	return hits
}

// sameTime reports whether got is want as stored at precision prec (sinks
// may truncate or round).
func (e *env) sameTime(got, want time.Time) bool {
	if want.IsZero() || got.IsZero() {
		return want.IsZero() == got.IsZero()
	}
	d := got.Sub(want)
	return d > -e.prec && d < e.prec
}

func (e *env) checkFingerprint(what string, got, want schema.Fingerprint) {
	e.t.Helper()
	if got.Size != want.Size || got.ETag != want.ETag || got.SHA256 != want.SHA256 || !e.sameTime(got.MTime, want.MTime) {
		e.t.Errorf("%s: fingerprint = %+v, want %+v (time precision %v)", what, got, want, e.prec)
	}
}

// checkRecord compares every field; the vector bit for bit unless
// ignoreVector.
func (e *env) checkRecord(got, want schema.Record, ignoreVector bool) {
	e.t.Helper()
	what := "record " + want.Key
	if got.ID != want.ID || got.Source != want.Source || got.Key != want.Key || got.Width != want.Width ||
		got.Height != want.Height || got.Format != want.Format || got.ModelID != want.ModelID ||
		got.Layer != want.Layer || got.Dim != want.Dim {
		e.t.Errorf("%s: got %+v\nwant %+v", what, brief(got), brief(want))
	}
	e.checkFingerprint(what, got.Fingerprint, want.Fingerprint)
	if !e.sameTime(got.ExtractedAt, want.ExtractedAt) {
		e.t.Errorf("%s: ExtractedAt = %v, want %v", what, got.ExtractedAt, want.ExtractedAt)
	}
	if !(len(got.Metadata) == 0 && len(want.Metadata) == 0) && !reflect.DeepEqual(got.Metadata, want.Metadata) {
		e.t.Errorf("%s: Metadata = %v, want %v", what, got.Metadata, want.Metadata)
	}
	if !ignoreVector && !e.sameVector(got.Vector, want.Vector) {
		e.t.Errorf("%s: vector differs (len %d, want %d)", what, len(got.Vector), len(want.Vector))
	}
}

func brief(r schema.Record) schema.Record {
	r.Vector = nil
	return r
}

// sameVector reports whether got is want as the sink stores it: bit for
// bit, after rounding want's elements to the sink's precision.
func (e *env) sameVector(got, want []float32) bool {
	if e.round != nil {
		r := make([]float32, len(want))
		for i, x := range want {
			r[i] = e.round(x)
		}
		want = r
	}
	return sameBits(got, want)
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// testModel returns a distinct model identity of dimension dim.
func testModel(tag string, dim int) schema.ModelIdentity {
	h := sha256.Sum256([]byte("sinktest model " + tag))
	return schema.ModelIdentity{
		ModelSHA256: hex.EncodeToString(h[:]),
		Layer:       "fc7",
		Preprocess:  "sinktest-v1",
		Dim:         dim,
		Normalized:  false,
	}
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// baseTime has nanoseconds so that precision loss shows.
var baseTime = time.Date(2024, 5, 17, 10, 11, 12, 123456789, time.UTC)

// rec builds a record of model m for source/key with vector v; content
// names the bytes (sha256 = hashOf(content)).
func rec(m schema.ModelIdentity, source, key, content string, v []float32) schema.Record {
	return schema.Record{
		ID:     schema.ItemID(source, key),
		Source: source,
		Key:    key,
		Fingerprint: schema.Fingerprint{
			Size:   int64(1000 + len(key)),
			MTime:  baseTime.Add(time.Duration(len(key)) * time.Second),
			ETag:   "",
			SHA256: hashOf(content),
		},
		Width:       640,
		Height:      480,
		Format:      "jpeg",
		ModelID:     m.ID(),
		Layer:       m.Layer,
		Dim:         m.Dim,
		Vector:      v,
		ExtractedAt: baseTime.Add(time.Hour),
		Metadata:    map[string]string{"album": "test", "key": key},
	}
}

// vecOf returns a deterministic pseudo-random vector of dim for seed.
func vecOf(dim int, seed int) []float32 {
	v := make([]float32, dim)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(int64(x%2001)-1000) / 1000
	}
	v[0] += 0.001 // never all zero
	return v
}

// basis returns a dim-long vector with the given leading components.
func basis(dim int, lead ...float32) []float32 {
	v := make([]float32, dim)
	copy(v, lead)
	return v
}

func failure(m schema.ModelIdentity, source, key string, class schema.FailureClass, seen time.Time) schema.Failure {
	return schema.Failure{
		ID:     schema.ItemID(source, key),
		Source: source,
		Key:    key,
		Fingerprint: schema.Fingerprint{
			Size:   int64(10 + len(key)),
			MTime:  baseTime.Add(-time.Duration(len(key)) * time.Minute),
			SHA256: hashOf("failed " + key),
		},
		ModelID:   m.ID(),
		Stage:     "decode",
		Class:     class,
		Reason:    "test failure of " + key,
		Attempts:  1,
		FirstSeen: seen,
		LastSeen:  seen,
	}
}

func testRun(id, source string, m schema.ModelIdentity, started time.Time) *schema.Run {
	return &schema.Run{
		ID:        id,
		Job:       "sinktest",
		Kind:      "sync",
		Source:    source,
		ModelID:   m.ID(),
		StartedAt: started,
		Outcome:   schema.RunRunning,
		Listed:    11,
		Written:   7,
		Extracted: 5,
		Reused:    2,
		Unchanged: 2,
		Failed:    1,
		Skipped:   1,
		Deleted:   0,
	}
}

// checkRuns checks that status shows exactly the runs of want (by id).
func (e *env) checkRuns(want map[string]schema.Run) {
	e.t.Helper()
	st := e.status()
	if len(st.Runs) != len(want) {
		e.t.Fatalf("%d runs, want %d", len(st.Runs), len(want))
	}
	for _, r := range st.Runs {
		e.checkRun(r, want[r.ID])
	}
}

func (e *env) checkRun(got, want schema.Run) {
	e.t.Helper()
	g, w := got, want
	g.StartedAt, g.EndedAt, w.StartedAt, w.EndedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g != w || !e.sameTime(got.StartedAt, want.StartedAt) || !e.sameTime(got.EndedAt, want.EndedAt) {
		e.t.Errorf("run %s = %+v, want %+v", want.ID, got, want)
	}
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func hitKeys(hits []connector.Hit) string {
	keys := make([]string, len(hits))
	for i, h := range hits {
		keys[i] = h.Key
	}
	return strings.Join(keys, ",")
}

func names(err error, ids ...string) bool {
	if err == nil {
		return false
	}
	for _, id := range ids {
		if strings.Contains(err.Error(), id) {
			return true
		}
	}
	return false
}
