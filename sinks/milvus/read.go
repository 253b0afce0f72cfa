package milvus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// strong makes a read see every write acknowledged before it.
var strong = client.WithSearchQueryConsistencyLevel(entity.ClStrong)

// scanBatch is the page size of iterated reads.
const scanBatch = 2000

// scan calls fn with each page of the rows of coll matching expr. It uses
// the SDK's query iterator (primary-key paging); the collections imgvec
// creates have Strong consistency, which the iterator inherits.
func scan(ctx context.Context, c client.Client, coll, expr string, fields []string, fn func(client.ResultSet) error) error {
	it, err := c.QueryIterator(ctx, client.NewQueryIteratorOption(coll).WithExpr(expr).WithOutputFields(fields...).WithBatchSize(scanBatch))
	if err != nil {
		return err
	}
	for {
		rs, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rs); err != nil {
			return err
		}
	}
}

// noTime stands for the zero time in *_ns fields.
const noTime = math.MinInt64

func ns(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

func fromNS(v int64) time.Time {
	if v == noTime {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// row reads typed values of one result row; a missing column reads as
// zero (the caller asked for the fields it reads).
type row struct {
	rs client.ResultSet
	i  int
}

func (r row) str(f string) string {
	c := r.rs.GetColumn(f)
	if c == nil {
		return ""
	}
	v, _ := c.GetAsString(r.i)
	return v
}

func (r row) int(f string) int64 {
	c := r.rs.GetColumn(f)
	if c == nil {
		return 0
	}
	v, _ := c.GetAsInt64(r.i)
	return v
}

func (r row) vector() []float32 {
	c, ok := r.rs.GetColumn(fVector).(*entity.ColumnFloatVector)
	if !ok {
		return nil
	}
	return c.Data()[r.i]
}

func (r row) fingerprint() schema.Fingerprint {
	return schema.Fingerprint{Size: r.int(fSize), MTime: fromNS(r.int(fMTime)), ETag: r.str(fETag), SHA256: r.str(fSHA256)}
}

var itemFields = []string{fID, fSource, fKey, fSize, fMTime, fETag, fSHA256, fWidth, fHeight, fFormat, fModelID, fLayer, fDim, fExtracted, dynamicField}

func (r row) record() (schema.Record, error) {
	rec := schema.Record{ID: r.str(fID), Source: r.str(fSource), Key: r.str(fKey), Fingerprint: r.fingerprint(),
		Width: int(r.int(fWidth)), Height: int(r.int(fHeight)), Format: r.str(fFormat), ModelID: r.str(fModelID),
		Layer: r.str(fLayer), Dim: int(r.int(fDim)), ExtractedAt: fromNS(r.int(fExtracted)), Vector: r.vector()}
	if c, ok := r.rs.GetColumn(dynamicField).(*entity.ColumnJSONBytes); ok {
		var dyn struct {
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(c.Data()[r.i], &dyn); err != nil {
			return rec, fmt.Errorf("row %s: metadata: %w", rec.ID, err)
		}
		rec.Metadata = dyn.Metadata
	}
	return rec, nil
}

var failureFields = []string{fID, fSource, fKey, fSize, fMTime, fETag, fSHA256, fModelID, fStage, fClass, fReason, fAttempts, fFirstSeen, fLastSeen}

func (r row) failure() schema.Failure {
	return schema.Failure{ID: r.str(fID), Source: r.str(fSource), Key: r.str(fKey), Fingerprint: r.fingerprint(),
		ModelID: r.str(fModelID), Stage: r.str(fStage), Class: schema.FailureClass(r.str(fClass)), Reason: r.str(fReason),
		Attempts: int(r.int(fAttempts)), FirstSeen: fromNS(r.int(fFirstSeen)), LastSeen: fromNS(r.int(fLastSeen))}
}

var runFields = runFieldsOf(runsSchema(""))

// run reads a run row; the fields a layout lacks (version 1 has no shard,
// skipped count or runner) are zero.
func (r row) run() schema.Run {
	return schema.Run{ID: r.str(fID), Job: r.str(fJob), Kind: r.str(fKind), Source: r.str(fSource), Shard: r.str(fShard),
		ModelID: r.str(fModelID), StartedAt: fromNS(r.int(fStarted)), EndedAt: fromNS(r.int(fEnded)),
		Outcome: schema.RunOutcome(r.str(fOutcome)), Error: r.str(fError), Listed: r.int(fListed), Written: r.int(fWritten),
		Extracted: r.int(fExtractedN), Reused: r.int(fReused), Unchanged: r.int(fUnchanged), Failed: r.int(fFailed),
		Skipped: r.int(fSkipped), Deleted: r.int(fDeleted),
		Runner: schema.Runner{Host: r.str(fRunnerHost), BootID: r.str(fRunnerBoot), PIDNS: r.str(fRunnerPIDNS),
			PID: r.int(fRunnerPID), Start: r.int(fRunnerStart)}}
}

// Stored streams the rows of source and its ledger entries by key, then
// id, each id once: the open model's row, else an older collection's,
// else the ledger entry. Milvus cannot order a query, so everything is
// read first into a connector.StoredSorter (bounded memory, spilled to a
// temporary file and removed on return), then emitted in order; the
// stream is the state when the reading ended, and Writes during the
// emitting are not seen.
func (s *Sink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	c, items, model, err := s.state()
	if err != nil {
		return err
	}
	sorted := connector.NewStoredSorter("")
	defer sorted.Close()
	fields := []string{fID, fKey, fSize, fMTime, fETag, fSHA256, fModelID}
	// read adds coll's rows of source at rank; failed marks the ledger,
	// whose rows also carry their class.
	read := func(coll string, rank int, failed bool) error {
		fs := fields
		if failed {
			fs = append(fs[:len(fs):len(fs)], fClass)
		}
		err := scan(ctx, c, coll, eq(fSource, source), fs, func(rs client.ResultSet) error {
			for i := range rs.Len() {
				r := row{rs, i}
				it := connector.StoredItem{ID: r.str(fID), Key: r.str(fKey), Fingerprint: r.fingerprint(), ModelID: r.str(fModelID), Failed: failed}
				if failed {
					it.Class = schema.FailureClass(r.str(fClass))
				}
				if err := sorted.Add(it, rank); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read stored items of %s from %s: %w", source, coll, err)
		}
		return nil
	}
	collections := ordered(items, model)
	for rank, ic := range collections {
		if err := read(ic.name, rank, false); err != nil {
			return err
		}
	}
	if err := read(s.cfg.failuresName(), len(collections), true); err != nil {
		return err
	}
	return sorted.Emit(ctx, fn)
}

// lookupChunk bounds the values of one `in [...]` filter.
const lookupChunk = 500

// VectorsBySHA256 returns the vectors stored under modelID for those
// hashes.
func (s *Sink) VectorsBySHA256(ctx context.Context, modelID string, sha256s []string) (map[string][]float32, error) {
	c, items, _, err := s.state()
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	ic, ok := items[modelID]
	if !ok || len(sha256s) == 0 {
		return out, nil
	}
	uniq := dedupe(sha256s)
	for lo := 0; lo < len(uniq); lo += lookupChunk {
		part := uniq[lo:min(lo+lookupChunk, len(uniq))]
		rs, err := c.Query(ctx, ic.name, nil, inList(fSHA256, part), []string{fSHA256, fVector}, strong)
		if err != nil {
			return nil, fmt.Errorf("look up vectors by sha256 in %s: %w", ic.name, err)
		}
		for i := range rs.Len() {
			r := row{rs, i}
			out[r.str(fSHA256)] = r.vector()
		}
	}
	return out, nil
}

func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := make([]string, 0, len(ss))
	for _, v := range ss {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Get returns the stored record with id, with its vector: the open
// model's row if there is one, else the newest collection's.
func (s *Sink) Get(ctx context.Context, id string) (schema.Record, bool, error) {
	c, items, model, err := s.state()
	if err != nil {
		return schema.Record{}, false, err
	}
	for _, ic := range ordered(items, model) {
		rs, err := c.Query(ctx, ic.name, nil, eq(fID, id), append(itemFields, fVector), strong)
		if err != nil {
			return schema.Record{}, false, fmt.Errorf("get %s from %s: %w", id, ic.name, err)
		}
		if rs.Len() > 0 {
			rec, err := row{rs, 0}.record()
			return rec, err == nil, err
		}
	}
	return schema.Record{}, false, nil
}

// Search returns the k nearest rows of modelID by cosine distance.
func (s *Sink) Search(ctx context.Context, modelID string, vec []float32, k int) ([]connector.Hit, error) {
	c, items, _, err := s.state()
	if err != nil {
		return nil, err
	}
	ic, ok := items[modelID]
	if !ok || k <= 0 {
		return nil, nil
	}
	if len(vec) != ic.Dim {
		return nil, fmt.Errorf("search %s: query vector has %d dimensions, model %s has %d", ic.name, len(vec), modelID, ic.Dim)
	}
	sp, err := searchParam(s.cfg.index, k)
	if err != nil {
		return nil, err
	}
	res, err := c.Search(ctx, ic.name, nil, "", itemFields, []entity.Vector{entity.FloatVector(vec)}, fVector, Metric, k, sp, strong)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", ic.name, err)
	}
	var hits []connector.Hit
	for _, r := range res {
		for i := range r.ResultCount {
			rec, err := row{r.Fields, i}.record()
			if err != nil {
				return nil, err
			}
			// Milvus' COSINE score is the similarity; imgvec reports 1 - it.
			hits = append(hits, connector.Hit{Record: rec, Distance: 1 - float64(r.Scores[i])})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Distance < hits[j].Distance })
	return hits, nil
}

// count is a Strong count(*) of coll's rows matching expr.
func count(ctx context.Context, c client.Client, coll, expr string) (int64, error) {
	rs, err := c.Query(ctx, coll, nil, expr, []string{"count(*)"}, strong)
	if err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", coll, err)
	}
	col := rs.GetColumn("count(*)")
	if col == nil || col.Len() == 0 {
		return 0, fmt.Errorf("count rows of %s: no count in the reply", coll)
	}
	return col.GetAsInt64(0)
}

// Status reports rows per model, the ledger and the latest runs.
func (s *Sink) Status(ctx context.Context) (connector.Status, error) {
	c, items, model, err := s.state()
	if err != nil {
		return connector.Status{}, err
	}
	st := connector.Status{ByClass: map[string]int64{}}
	for _, ic := range ordered(items, model) {
		n, err := count(ctx, c, ic.name, "")
		if err != nil {
			return st, err
		}
		if n > 0 {
			st.Models = append(st.Models, connector.ModelCount{ModelID: ic.ModelID, Layer: ic.Layer, Dim: ic.Dim, Rows: n})
		}
	}
	sort.Slice(st.Models, func(i, j int) bool { return st.Models[i].Rows > st.Models[j].Rows })
	err = scan(ctx, c, s.cfg.failuresName(), "", failureFields, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			f := row{rs, i}.failure()
			st.Failures++
			st.ByClass[string(f.Class)]++
			st.Recent = append(st.Recent, f)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read ledger: %w", err)
	}
	sort.Slice(st.Recent, func(i, j int) bool { return st.Recent[i].LastSeen.After(st.Recent[j].LastSeen) })
	st.Recent = st.Recent[:min(len(st.Recent), 10)]
	err = scan(ctx, c, s.cfg.runsName(), "", runFields, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			st.Runs = append(st.Runs, row{rs, i}.run())
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read runs: %w", err)
	}
	sort.Slice(st.Runs, func(i, j int) bool { return st.Runs[i].StartedAt.After(st.Runs[j].StartedAt) })
	st.Runs = st.Runs[:min(len(st.Runs), 10)]
	return st, nil
}

var _ connector.VectorScanner = (*Sink)(nil)

// ScanVectors streams the rows of modelID in key order. Milvus cannot sort
// a query, so the scan pages through the model's collection for (source,
// key, id) alone, sorts those in memory — about 100 bytes a row plus the
// key's length: some 150 MB at 1M rows, the one cost that grows with the
// collection — and then reads the rows with their vectors by id,
// lookupChunk at a time. Reads are Strong.
func (s *Sink) ScanVectors(ctx context.Context, modelID string, fn func(schema.Record) error) error {
	c, items, _, err := s.state()
	if err != nil {
		return err
	}
	ic, ok := items[modelID]
	if !ok {
		return nil
	}
	wrap := func(err error) error { return fmt.Errorf("scan vectors of %s in %s: %w", modelID, ic.name, err) }
	type entry struct{ source, key, id string }
	var keys []entry
	err = scan(ctx, c, ic.name, eq(fModelID, modelID), []string{fID, fSource, fKey}, func(rs client.ResultSet) error {
		for i := range rs.Len() {
			r := row{rs, i}
			keys = append(keys, entry{r.str(fSource), r.str(fKey), r.str(fID)})
		}
		return nil
	})
	if err != nil {
		return wrap(err)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].source != keys[j].source {
			return keys[i].source < keys[j].source
		}
		return keys[i].key < keys[j].key
	})
	list := func(yield func(string) error) error {
		for _, e := range keys {
			if err := yield(e.id); err != nil {
				return err
			}
		}
		return nil
	}
	fetch := func(ctx context.Context, ids []string) (map[string]schema.Record, error) {
		rs, err := c.Query(ctx, ic.name, nil, inList(fID, ids), append(itemFields, fVector), strong)
		if err != nil {
			return nil, err
		}
		out := make(map[string]schema.Record, rs.Len())
		for i := range rs.Len() {
			rec, err := row{rs, i}.record()
			if err != nil {
				return nil, err
			}
			out[rec.ID] = rec
		}
		return out, nil
	}
	return connector.ScanByIDs(ctx, lookupChunk, list, fetch, fn, wrap)
}

var _ connector.IndexedSearcher = (*Sink)(nil)

// SearchIndexed reports whether modelID has a collection: every item
// collection is indexed (HNSW by default) and Search goes through it.
func (s *Sink) SearchIndexed(_ context.Context, modelID string) (bool, error) {
	_, items, _, err := s.state()
	if err != nil {
		return false, err
	}
	_, ok := items[modelID]
	return ok, nil
}
