package connector

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/imgvec/imgvec/schema"
)

// The range of mtimes a sink can store as int64 nanoseconds since 1970.
var (
	minMTime = time.Unix(0, math.MinInt64).UTC()
	maxMTime = time.Unix(0, math.MaxInt64).UTC()
)

// Normalize is the validation every sink applies to a batch before any I/O,
// so that all sinks refuse and repair the same things:
//
//   - upserts and ledger entries with a repeated id keep their last
//     occurrence (in the order of last occurrences), because one upsert
//     statement may not touch a key twice;
//   - an empty id, a record of another model id than model, a record or
//     vector whose dimension is not model.Dim, a non-finite vector, or an
//     mtime outside the int64-nanosecond range is refused with an error
//     naming the item;
//   - a key or source that is not valid UTF-8 is refused (the pipeline
//     records such keys as schema.FailInvalidKey ledger entries under
//     schema.EscapeKey; no sink can store the raw bytes); a ledger reason
//     that is not valid UTF-8 is escaped the same way;
//   - defaults are filled in: record Dim and Layer from model; ledger
//     LastSeen (now), FirstSeen (LastSeen), Attempts (1) and ModelID.
//
// It returns a new Batch; b is not modified.
func (b Batch) Normalize(model schema.ModelIdentity, now time.Time) (Batch, error) {
	out := Batch{Run: b.Run}
	modelID := model.ID()
	for _, i := range lastOccurrences(len(b.Upserts), func(i int) string { return b.Upserts[i].ID }) {
		r := b.Upserts[i]
		name := ItemName(r.ID, r.Key)
		switch {
		case r.ID == "":
			return Batch{}, fmt.Errorf("upsert %s: empty id", name)
		case r.ModelID != modelID:
			return Batch{}, fmt.Errorf("upsert %s: model id %q, the sink is open for %q", name, r.ModelID, modelID)
		case r.Dim != 0 && r.Dim != model.Dim:
			return Batch{}, fmt.Errorf("upsert %s: record dimension %d, the model gives %d", name, r.Dim, model.Dim)
		}
		if err := schema.CheckVector(r.Vector, model.Dim); err != nil {
			return Batch{}, fmt.Errorf("upsert %s: %w", name, err)
		}
		if err := checkMTime(r.MTime); err != nil {
			return Batch{}, fmt.Errorf("upsert %s: %w", name, err)
		}
		if err := checkText(r.Source, r.Key); err != nil {
			return Batch{}, fmt.Errorf("upsert %s: %w", name, err)
		}
		r.Dim = model.Dim
		if r.Layer == "" {
			r.Layer = model.Layer
		}
		out.Upserts = append(out.Upserts, r)
	}
	for _, i := range lastOccurrences(len(b.Failures), func(i int) string { return b.Failures[i].ID }) {
		f := b.Failures[i]
		name := ItemName(f.ID, f.Key)
		if f.ID == "" {
			return Batch{}, fmt.Errorf("ledger entry %s: empty id", name)
		}
		if err := checkMTime(f.MTime); err != nil {
			return Batch{}, fmt.Errorf("ledger entry %s: %w", name, err)
		}
		if err := checkText(f.Source, f.Key); err != nil {
			return Batch{}, fmt.Errorf("ledger entry %s: %w", name, err)
		}
		f.Reason = schema.EscapeKey(f.Reason)
		if f.LastSeen.IsZero() {
			f.LastSeen = now
		}
		if f.FirstSeen.IsZero() || f.FirstSeen.After(f.LastSeen) {
			f.FirstSeen = f.LastSeen
		}
		f.Attempts = max(f.Attempts, 1)
		if f.ModelID == "" {
			f.ModelID = modelID
		}
		out.Failures = append(out.Failures, f)
	}
	for _, u := range b.Metadata {
		if u.ID == "" {
			return Batch{}, fmt.Errorf("metadata update: empty id")
		}
		if err := checkMTime(u.MTime); err != nil {
			return Batch{}, fmt.Errorf("metadata update %s: %w", u.ID, err)
		}
		out.Metadata = append(out.Metadata, u)
	}
	if b.Run != nil && b.Run.ID == "" {
		return Batch{}, fmt.Errorf("run row: empty id")
	}
	return out, nil
}

// lastOccurrences returns, in ascending order, the indexes of the last
// occurrence of each id among n items.
func lastOccurrences(n int, id func(int) string) []int {
	last := make(map[string]int, n)
	for i := range n {
		last[id(i)] = i
	}
	idx := make([]int, 0, len(last))
	for i := range n {
		if last[id(i)] == i {
			idx = append(idx, i)
		}
	}
	return idx
}

func checkMTime(t time.Time) error {
	if !t.IsZero() && (t.Before(minMTime) || t.After(maxMTime)) {
		return fmt.Errorf("mtime %s is outside the years 1678-2262", t.Format(time.RFC3339))
	}
	return nil
}

// checkText refuses a source name or key that is not valid UTF-8.
func checkText(source, key string) error {
	switch {
	case !utf8.ValidString(source):
		return fmt.Errorf("source %q is not valid UTF-8", source)
	case !utf8.ValidString(key):
		return fmt.Errorf("key is not valid UTF-8 (the pipeline records it as an %s ledger entry under %q)", schema.FailInvalidKey, schema.EscapeKey(key))
	}
	return nil
}

// ItemName names an item in errors: its key, its id, or both.
func ItemName(id, key string) string {
	switch {
	case key == "":
		return fmt.Sprintf("%q", id)
	case id == "":
		return fmt.Sprintf("%q", key)
	}
	return fmt.Sprintf("%q (id %s)", key, id)
}
