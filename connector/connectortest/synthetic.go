package connectortest

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Synthetic describes a collection of N items that exist only as a
// function of their index: SyntheticSource lists them and SyntheticSink
// reports them stored, without either holding them in memory, so that a
// sync over millions of items measures the connector, not the fakes.
type Synthetic struct {
	Source string // the source's name
	N      int
}

// syntheticEpoch is the mtime of item 0.
var syntheticEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Key returns the key of item i: fixed-width numbers, so that index order
// is key order.
func (y Synthetic) Key(i int) string { return fmt.Sprintf("%05d/%09d.jpg", i/1000, i) }

// Entry returns the listing entry of item i.
func (y Synthetic) Entry(i int) connector.Entry {
	return connector.Entry{Key: y.Key(i), Size: 10_000 + int64(i%100_000), MTime: syntheticEpoch.Add(time.Duration(i) * time.Second)}
}

// SyntheticSource lists the items of a Synthetic collection in key order.
// Read answers fs.ErrNotExist: a no-op sync reads nothing.
type SyntheticSource struct{ Synthetic }

var _ connector.Source = SyntheticSource{}

func (s SyntheticSource) Name() string { return s.Source }

// ListsInKeyOrder is true: index order is key order.
func (s SyntheticSource) ListsInKeyOrder() bool { return true }

func (s SyntheticSource) List(ctx context.Context, fn func(connector.Entry) error) error {
	for i := range s.N {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", s.Source, err)
			}
		}
		if err := fn(s.Entry(i)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s SyntheticSource) Read(_ context.Context, key string) ([]byte, error) {
	return nil, fmt.Errorf("read %s: synthetic items have no bytes: %w", key, fs.ErrNotExist)
}

func (s SyntheticSource) Close() error { return nil }

// SyntheticSink is a Sink (the in-memory fake for everything else) whose
// Stored reports every item of a Synthetic collection as a row of Model
// with the fingerprint the source lists, in key order: a sync of the two
// is a no-op. Each StoredItem's strings are freshly allocated, as a real
// sink's scan allocates them.
type SyntheticSink struct {
	*Sink
	Synthetic
	Model schema.ModelIdentity
}

// NewSyntheticSink returns a sink that stores y as rows of model.
func NewSyntheticSink(y Synthetic, model schema.ModelIdentity) *SyntheticSink {
	return &SyntheticSink{Sink: NewSink(), Synthetic: y, Model: model}
}

func (s *SyntheticSink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	if source != s.Source {
		return s.Sink.Stored(ctx, source, fn)
	}
	modelID := s.Model.ID()
	for i := range s.N {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e := s.Entry(i)
		st := connector.StoredItem{
			ID:          schema.ItemID(source, e.Key),
			Key:         e.Key,
			Fingerprint: schema.Fingerprint{Size: e.Size, MTime: e.MTime, SHA256: fmt.Sprintf("%064x", i)},
			ModelID:     strings.Clone(modelID),
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}
