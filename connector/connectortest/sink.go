package connectortest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Sink is an in-memory connector.Sink, connector.Searcher and
// connector.StatusReader that passes sinks/sinktest like the real sinks.
// Write validates with connector.Batch.Normalize, as they do, then applies
// the batch whole under a lock, in their order: ledger upserts (attempts
// counted as the contract says), row upserts (which remove their ledger
// entries), metadata updates, the run row.
type Sink struct {
	// FailWrite, if set, is called before each Write is applied with the
	// 1-based number of the call; a non-nil error fails that Write without
	// applying anything.
	FailWrite func(n int, b connector.Batch) error
	// WriteDelay delays each Write before it commits; a ctx cancelled
	// meanwhile fails the Write without applying anything.
	WriteDelay time.Duration
	// StoredErr fails Stored.
	StoredErr error
	// OnWrite, if set, is called after each applied Write with its number.
	OnWrite func(n int, b connector.Batch)

	mu       sync.Mutex
	model    schema.ModelIdentity
	opened   bool
	rows     map[string]schema.Record
	ledger   map[string]schema.Failure
	runs     map[string]schema.Run
	applied  []connector.Batch
	writeN   int
	deletes  [][]string
	bySHA    int
	inflight atomic.Int32
	overlaps atomic.Int32
}

var (
	_ connector.Sink         = (*Sink)(nil)
	_ connector.RunAbandoner = (*Sink)(nil)
)

// NewSink returns an empty sink.
func NewSink() *Sink {
	return &Sink{
		rows:   make(map[string]schema.Record),
		ledger: make(map[string]schema.Failure),
		runs:   make(map[string]schema.Run),
	}
}

func (s *Sink) enter() func() {
	if s.inflight.Add(1) > 1 {
		s.overlaps.Add(1)
	}
	return func() { s.inflight.Add(-1) }
}

// Open refuses, like the real sinks, a store whose rows of model.ID()
// have another dimension. It may follow Close, with another model.
func (s *Sink) Open(ctx context.Context, model schema.ModelIdentity) error {
	if err := model.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rows {
		if r.ModelID == model.ID() && r.Dim != 0 && r.Dim != model.Dim {
			return fmt.Errorf("fake sink: rows of model %s have dimension %d, the model gives %d", model.ID(), r.Dim, model.Dim)
		}
	}
	s.model, s.opened = model, true
	return nil
}

// Close ends Writes until the next Open; the stored state is kept.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened = false
	return nil
}

// AbandonRuns closes the runs of job's shard still running as abandoned.
func (s *Sink) AbandonRuns(ctx context.Context, job, shard string, endedAt time.Time, reason string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, r := range s.runs {
		if r.Job == job && r.Shard == shard && r.Outcome == schema.RunRunning {
			r.Outcome, r.EndedAt, r.Error = schema.RunAbandoned, endedAt, reason
			s.runs[id] = r
			n++
		}
	}
	return n, nil
}

// LatestRuns returns the newest run of each shard of job over source.
func (s *Sink) LatestRuns(ctx context.Context, job, source string) ([]schema.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[string]schema.Run{}
	for _, r := range s.runs {
		if r.Job != job || r.Source != source {
			continue
		}
		if l, ok := latest[r.Shard]; !ok || connector.NewerRun(r, l) {
			latest[r.Shard] = r
		}
	}
	return slices.Collect(maps.Values(latest)), nil
}

// Stored streams a snapshot of source's rows and ledger entries in key
// order, then id. It is not counted by Overlaps: the contract lets it run
// while the other methods are called.
func (s *Sink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	if s.StoredErr != nil {
		return s.StoredErr
	}
	s.mu.Lock()
	var items []connector.StoredItem
	for _, r := range s.rows {
		if r.Source == source {
			items = append(items, connector.StoredItem{ID: r.ID, Key: r.Key, Fingerprint: r.Fingerprint, ModelID: r.ModelID})
		}
	}
	for _, f := range s.ledger {
		if _, ok := s.rows[f.ID]; !ok && f.Source == source {
			items = append(items, connector.StoredItem{ID: f.ID, Key: f.Key, Fingerprint: f.Fingerprint, ModelID: f.ModelID, Failed: true, Class: f.Class})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b connector.StoredItem) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.ID, b.ID))
	})
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) VectorsBySHA256(ctx context.Context, modelID string, sha256s []string) (map[string][]float32, error) {
	defer s.enter()()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(sha256s))
	for _, h := range sha256s {
		want[h] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySHA++
	out := make(map[string][]float32)
	for _, r := range s.rows {
		if r.ModelID == modelID && want[r.SHA256] {
			out[r.SHA256] = slices.Clone(r.Vector)
		}
	}
	return out, nil
}

func (s *Sink) Write(ctx context.Context, b connector.Batch) error {
	defer s.enter()()
	s.mu.Lock()
	s.writeN++
	n := s.writeN
	model, opened := s.model, s.opened
	s.mu.Unlock()
	if !opened {
		return errors.New("fake sink: Write before Open")
	}
	b, err := b.Normalize(model, time.Now().UTC())
	if err != nil {
		return err
	}
	if s.WriteDelay > 0 {
		t := time.NewTimer(s.WriteDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.FailWrite != nil {
		if err := s.FailWrite(n, b); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, f := range b.Failures {
		s.upsertFailure(f)
	}
	for _, r := range b.Upserts {
		r.Vector = slices.Clone(r.Vector)
		r.Metadata = maps.Clone(r.Metadata)
		s.rows[r.ID] = r
		delete(s.ledger, r.ID)
	}
	for _, m := range b.Metadata {
		r, ok := s.rows[m.ID]
		if !ok {
			continue
		}
		r.Fingerprint = m.Fingerprint
		s.rows[m.ID] = r
	}
	if b.Run != nil {
		s.runs[b.Run.ID] = *b.Run
	}
	s.applied = append(s.applied, cloneBatch(b))
	s.mu.Unlock()
	if s.OnWrite != nil {
		s.OnWrite(n, b)
	}
	return nil
}

// upsertFailure applies one ledger upsert as the sinks do: an entry seen
// later than the stored one counts one more attempt and keeps FirstSeen; a
// replay (the same LastSeen) keeps the count; an older entry is ignored.
func (s *Sink) upsertFailure(f schema.Failure) {
	old, ok := s.ledger[f.ID]
	if ok {
		switch {
		case f.LastSeen.Before(old.LastSeen):
			return
		case f.LastSeen.Equal(old.LastSeen):
			f.Attempts = old.Attempts
		default:
			f.Attempts = old.Attempts + 1
		}
		if old.FirstSeen.Before(f.FirstSeen) {
			f.FirstSeen = old.FirstSeen
		}
	}
	s.ledger[f.ID] = f
}

func cloneBatch(b connector.Batch) connector.Batch {
	c := connector.Batch{
		Upserts:  slices.Clone(b.Upserts),
		Metadata: slices.Clone(b.Metadata),
		Failures: slices.Clone(b.Failures),
	}
	if b.Run != nil {
		r := *b.Run
		c.Run = &r
	}
	return c
}

func (s *Sink) Delete(ctx context.Context, source string, ids []string) error {
	defer s.enter()()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if r, ok := s.rows[id]; ok && r.Source == source {
			delete(s.rows, id)
		}
		if f, ok := s.ledger[id]; ok && f.Source == source {
			delete(s.ledger, id)
		}
	}
	s.deletes = append(s.deletes, slices.Clone(ids))
	return nil
}

var (
	_ connector.Searcher      = (*Sink)(nil)
	_ connector.StatusReader  = (*Sink)(nil)
	_ connector.VectorScanner = (*Sink)(nil)
)

// Get returns the row with id, with its vector.
func (s *Sink) Get(ctx context.Context, id string) (schema.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return schema.Record{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rows[id]
	r.Vector, r.Metadata = slices.Clone(r.Vector), maps.Clone(r.Metadata)
	return r, ok, nil
}

// Search ranks every row of modelID by cosine distance to vec, nearest
// first (ties by id); rows with a zero vector come last with a NaN
// distance, as in the SQLite sink.
func (s *Sink) Search(ctx context.Context, modelID string, vec []float32, k int) ([]connector.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("fake sink: search: k = %d", k)
	}
	s.mu.Lock()
	var hits []connector.Hit
	for _, r := range s.rows {
		if r.ModelID == modelID {
			r.Vector, r.Metadata = slices.Clone(r.Vector), maps.Clone(r.Metadata)
			hits = append(hits, connector.Hit{Record: r})
		}
	}
	s.mu.Unlock()
	if len(hits) == 0 {
		return nil, nil
	}
	if err := schema.CheckVector(vec, len(hits[0].Vector)); err != nil {
		return nil, fmt.Errorf("fake sink: search model %s: query %w", modelID, err)
	}
	qn := norm(vec)
	if qn == 0 {
		return nil, errors.New("fake sink: search: the query vector is zero and has no cosine distance")
	}
	for i := range hits {
		v := hits[i].Vector
		var dot float64
		for j := range min(len(v), len(vec)) {
			dot += float64(v[j]) * float64(vec[j])
		}
		hits[i].Distance = math.NaN()
		if n := norm(v); n > 0 {
			hits[i].Distance = 1 - dot/(qn*n)
		}
	}
	slices.SortFunc(hits, func(a, b connector.Hit) int {
		an, bn := math.IsNaN(a.Distance), math.IsNaN(b.Distance)
		switch {
		case an != bn && an:
			return 1
		case an != bn:
			return -1
		case !an && a.Distance != b.Distance:
			return cmp.Compare(a.Distance, b.Distance)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return hits[:min(k, len(hits))], nil
}

// ScanVectors yields the rows of modelID by source, then key (copies,
// taken under the lock at the start: the fake holds everything in memory
// anyway).
func (s *Sink) ScanVectors(ctx context.Context, modelID string, fn func(schema.Record) error) error {
	s.mu.Lock()
	var recs []schema.Record
	for _, r := range s.rows {
		if r.ModelID == modelID {
			r.Vector, r.Metadata = slices.Clone(r.Vector), maps.Clone(r.Metadata)
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(recs, func(a, b schema.Record) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Key, b.Key))
	})
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fake sink: scan vectors of %s: %w", modelID, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func norm(v []float32) float64 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum)
}

// Status counts rows per model, the ledger per class, and returns the 10
// newest ledger entries (by LastSeen) and runs (by StartedAt).
func (s *Sink) Status(ctx context.Context) (connector.Status, error) {
	if err := ctx.Err(); err != nil {
		return connector.Status{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var st connector.Status
	counts := map[connector.ModelCount]int64{}
	for _, r := range s.rows {
		counts[connector.ModelCount{ModelID: r.ModelID, Layer: r.Layer, Dim: r.Dim}]++
	}
	for mc, n := range counts {
		mc.Rows = n
		st.Models = append(st.Models, mc)
	}
	slices.SortFunc(st.Models, func(a, b connector.ModelCount) int {
		return cmp.Or(strings.Compare(a.ModelID, b.ModelID), strings.Compare(a.Layer, b.Layer), cmp.Compare(a.Dim, b.Dim))
	})
	st.ByClass = map[string]int64{}
	for _, f := range s.ledger {
		st.Failures++
		st.ByClass[string(f.Class)]++
		st.Recent = append(st.Recent, f)
	}
	slices.SortFunc(st.Recent, func(a, b schema.Failure) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), strings.Compare(a.ID, b.ID))
	})
	st.Recent = st.Recent[:min(10, len(st.Recent))]
	for _, r := range s.runs {
		st.Runs = append(st.Runs, r)
	}
	slices.SortFunc(st.Runs, func(a, b schema.Run) int {
		return cmp.Or(b.StartedAt.Compare(a.StartedAt), strings.Compare(b.ID, a.ID))
	})
	st.Runs = st.Runs[:min(10, len(st.Runs))]
	return st, nil
}

// Put stores r directly (test setup).
func (s *Sink) Put(r schema.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ID == "" {
		r.ID = schema.ItemID(r.Source, r.Key)
	}
	s.rows[r.ID] = r
}

// PutFailure stores a ledger entry directly (test setup).
func (s *Sink) PutFailure(f schema.Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ID == "" {
		f.ID = schema.ItemID(f.Source, f.Key)
	}
	s.ledger[f.ID] = f
}

// Rows returns a copy of the stored rows by id.
func (s *Sink) Rows() map[string]schema.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rows)
}

// Ledger returns a copy of the ledger by id.
func (s *Sink) Ledger() map[string]schema.Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ledger)
}

// Runs returns a copy of the run rows by id.
func (s *Sink) Runs() map[string]schema.Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.runs)
}

// Applied returns the batches applied so far, in order.
func (s *Sink) Applied() []connector.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// Deletes returns the ids of every Delete call, in order.
func (s *Sink) Deletes() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deletes)
}

// BySHACalls is the number of VectorsBySHA256 calls.
func (s *Sink) BySHACalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bySHA
}

// Overlaps is the number of calls that overlapped another call (the
// connector.Sink contract allows one at a time).
func (s *Sink) Overlaps() int { return int(s.overlaps.Load()) }

// ErrInjected is a convenient error for fault injection.
var ErrInjected = errors.New("injected failure")
