package connectortest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Sink is an in-memory connector.Sink. Write is atomic (validated first,
// then applied whole under a lock) and idempotent; ids repeated in a batch
// keep the last record.
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

var _ connector.Sink = (*Sink)(nil)

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

func (s *Sink) Open(ctx context.Context, model schema.ModelIdentity) error {
	if err := model.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model, s.opened = model, true
	return ctx.Err()
}

func (s *Sink) Close() error { return nil }

func (s *Sink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	defer s.enter()()
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
	dim := s.model.Dim
	s.mu.Unlock()
	for _, r := range b.Upserts {
		if len(r.Vector) != dim {
			return fmt.Errorf("upsert %s: vector has %d values, want %d", r.Key, len(r.Vector), dim)
		}
		for _, x := range r.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("upsert %s: vector is not finite", r.Key)
			}
		}
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
	for _, r := range b.Upserts {
		r.Vector = slices.Clone(r.Vector)
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
	for _, f := range b.Failures {
		if old, ok := s.ledger[f.ID]; ok {
			f.Attempts = old.Attempts + 1
			f.FirstSeen = old.FirstSeen
		}
		s.ledger[f.ID] = f
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
