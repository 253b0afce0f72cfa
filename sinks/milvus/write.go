package milvus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/schema"
)

// finishTimeout bounds the rest of a Write (or Delete) after its first
// mutation, which runs on even when the caller's context is cancelled.
const finishTimeout = 2 * time.Minute

// Write applies b; see doc.go for the order of its steps and what a crash
// between them leaves.
func (s *Sink) Write(ctx context.Context, b connector.Batch) error {
	c, items, model, err := s.state()
	if err != nil {
		return err
	}
	if model == nil {
		return fmt.Errorf("milvus sink %s: opened read-only (OpenRead); Write needs Open with a model", s.cfg.base)
	}
	ic := items[model.ID()]
	nb, err := b.Normalize(*model, time.Now().UTC())
	if err != nil {
		return err
	}
	for _, r := range nb.Upserts {
		if err := checkID(r.ID); err != nil {
			return fmt.Errorf("upsert %s: %w", connector.ItemName(r.ID, r.Key), err)
		}
	}
	for _, f := range nb.Failures {
		if err := checkID(f.ID); err != nil {
			return fmt.Errorf("ledger entry %s: %w", connector.ItemName(f.ID, f.Key), err)
		}
	}
	// Reads first: the stored rows that metadata updates change, and the
	// ledger entries whose attempts the new ones count on.
	rows, err := s.metaRows(ctx, c, ic.name, nb.Metadata)
	if err != nil {
		return err
	}
	failures, err := s.mergeLedger(ctx, c, nb.Failures)
	if err != nil {
		return err
	}
	upserts := append(nb.Upserts, rows...)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	// The first mutation is the commit point: from here the batch runs to
	// its end even if ctx is cancelled, so that a soft or hard stop leaves
	// all of it or none (bounded by finishTimeout).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := s.upsertItems(wctx, c, ic.name, upserts); err != nil {
		return err
	}
	if err := s.upsertFailures(wctx, c, failures); err != nil {
		return err
	}
	if len(nb.Upserts) > 0 {
		ids := make([]string, len(nb.Upserts))
		for i, r := range nb.Upserts {
			ids[i] = r.ID
		}
		if err := s.deleteChunked(wctx, c, s.cfg.failuresName(), "", ids); err != nil {
			return fmt.Errorf("clear ledger entries of stored items: %w", err)
		}
	}
	if nb.Run != nil {
		if err := s.upsertRun(wctx, c, *nb.Run); err != nil {
			return err
		}
		if complete(*nb.Run) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if err := s.switchTo(wctx, ic, nb.Run.Source); err != nil {
				return fmt.Errorf("switch readers to %s: %w", ic.name, err)
			}
		}
	}
	return nil
}

// checkID refuses an id that the SDK's query iterator could not page
// past: it writes the last id of a page into its next filter unquoted.
// Item ids (schema.ItemID) are hex; only a caller's own ids can fail.
func checkID(id string) error {
	if quote(id) != `"`+id+`"` {
		return fmt.Errorf("id %q: Milvus ids must not contain quotes, backslashes or control characters", id)
	}
	return nil
}

// complete reports a finished run that stored every item it could: the
// moment a new model's collection is full enough for readers.
func complete(r schema.Run) bool {
	return !r.EndedAt.IsZero() && (r.Outcome == schema.RunOK || r.Outcome == schema.RunPartial)
}

// metaRows reads the rows that metadata updates change and returns them
// updated (Milvus 2.3 has no partial update: the row is rewritten whole).
// Updates of ids without a row are dropped.
func (s *Sink) metaRows(ctx context.Context, c client.Client, coll string, ups []connector.MetaUpdate) ([]schema.Record, error) {
	if len(ups) == 0 {
		return nil, nil
	}
	byID := map[string]connector.MetaUpdate{}
	var ids []string
	for _, u := range ups {
		if _, dup := byID[u.ID]; !dup {
			ids = append(ids, u.ID)
		}
		byID[u.ID] = u // the last update of an id wins
	}
	var out []schema.Record
	for lo := 0; lo < len(ids); lo += lookupChunk {
		rs, err := c.Query(ctx, coll, nil, inList(fID, ids[lo:min(lo+lookupChunk, len(ids))]), append(itemFields, fVector), strong)
		if err != nil {
			return nil, fmt.Errorf("read rows for metadata updates from %s: %w", coll, err)
		}
		for i := range rs.Len() {
			rec, err := row{rs, i}.record()
			if err != nil {
				return nil, err
			}
			rec.Fingerprint = byID[rec.ID].Fingerprint
			out = append(out, rec)
		}
	}
	return out, nil
}

// mergeLedger reads the stored entries of fs's ids and applies the
// attempt rule: a LastSeen later than the stored one counts one more
// attempt and keeps FirstSeen; a replay (same LastSeen) keeps the stored
// counts, so a rerun batch changes nothing; an older LastSeen is dropped.
func (s *Sink) mergeLedger(ctx context.Context, c client.Client, fs []schema.Failure) ([]schema.Failure, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	stored := map[string]schema.Failure{}
	for lo := 0; lo < len(fs); lo += lookupChunk {
		part := fs[lo:min(lo+lookupChunk, len(fs))]
		ids := make([]string, len(part))
		for i, f := range part {
			ids[i] = f.ID
		}
		rs, err := c.Query(ctx, s.cfg.failuresName(), nil, inList(fID, ids), []string{fID, fAttempts, fFirstSeen, fLastSeen}, strong)
		if err != nil {
			return nil, fmt.Errorf("read ledger entries: %w", err)
		}
		for i := range rs.Len() {
			f := row{rs, i}.failure()
			stored[f.ID] = f
		}
	}
	out := make([]schema.Failure, 0, len(fs))
	for _, f := range fs {
		if old, ok := stored[f.ID]; ok {
			if f.LastSeen.Before(old.LastSeen) {
				continue // an older sighting than the stored one changes nothing
			}
			f.FirstSeen = old.FirstSeen
			f.Attempts = old.Attempts
			if f.LastSeen.After(old.LastSeen) {
				f.Attempts++
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// rowBytes estimates the request bytes of one item row.
func rowBytes(r schema.Record) int {
	n := 4*len(r.Vector) + len(r.ID) + len(r.Source) + len(r.Key) + len(r.ETag) + len(r.SHA256) + len(r.Format) +
		len(r.ModelID) + len(r.Layer) + 6*8 + 64
	for k, v := range r.Metadata {
		n += len(k) + 2*len(v) + 8
	}
	return n
}

// chunks splits records into runs of at most limit estimated bytes (a row
// larger than limit goes alone).
func chunks(recs []schema.Record, limit int) [][]schema.Record {
	var out [][]schema.Record
	start, size := 0, 0
	for i, r := range recs {
		n := rowBytes(r)
		if i > start && size+n > limit {
			out = append(out, recs[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(recs) {
		out = append(out, recs[start:])
	}
	return out
}

// upsertItems writes recs in byte-bounded chunks, cfg.writers at a time.
func (s *Sink) upsertItems(ctx context.Context, c client.Client, coll string, recs []schema.Record) error {
	if len(recs) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.writers)
	for _, part := range chunks(recs, s.cfg.chunkBytes) {
		cols, err := itemColumns(part)
		if err != nil {
			return err
		}
		g.Go(func() error {
			if s.beforeUpsert != nil {
				s.beforeUpsert()
			}
			return s.retry(gctx, fmt.Sprintf("upsert %d rows into %s", len(part), coll), func(ctx context.Context) error {
				_, err := c.Upsert(ctx, coll, "", cols...)
				return err
			})
		})
	}
	return g.Wait()
}

func itemColumns(recs []schema.Record) ([]entity.Column, error) {
	n := len(recs)
	ids, sources, keys, etags, shas, formats, models, layers := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sizes, mtimes, widths, heights, dims, extracted := make([]int64, n), make([]int64, n), make([]int64, n),
		make([]int64, n), make([]int64, n), make([]int64, n)
	vecs, dyn := make([][]float32, n), make([][]byte, n)
	for i, r := range recs {
		ids[i], sources[i], keys[i], etags[i], shas[i], formats[i], models[i], layers[i] =
			r.ID, r.Source, r.Key, r.ETag, r.SHA256, r.Format, r.ModelID, r.Layer
		sizes[i], mtimes[i], widths[i], heights[i], dims[i], extracted[i] =
			r.Size, ns(r.MTime), int64(r.Width), int64(r.Height), int64(r.Dim), ns(r.ExtractedAt)
		vecs[i] = r.Vector
		md := r.Metadata
		if md == nil {
			md = map[string]string{}
		}
		b, err := json.Marshal(map[string]any{fMetadata: md})
		if err != nil {
			return nil, fmt.Errorf("upsert %s: metadata: %w", connector.ItemName(r.ID, r.Key), err)
		}
		dyn[i] = b
	}
	return []entity.Column{
		entity.NewColumnVarChar(fID, ids), entity.NewColumnFloatVector(fVector, len(vecs[0]), vecs),
		entity.NewColumnVarChar(fSource, sources), entity.NewColumnVarChar(fKey, keys),
		entity.NewColumnInt64(fSize, sizes), entity.NewColumnInt64(fMTime, mtimes),
		entity.NewColumnVarChar(fETag, etags), entity.NewColumnVarChar(fSHA256, shas),
		entity.NewColumnInt64(fWidth, widths), entity.NewColumnInt64(fHeight, heights),
		entity.NewColumnVarChar(fFormat, formats), entity.NewColumnVarChar(fModelID, models),
		entity.NewColumnVarChar(fLayer, layers), entity.NewColumnInt64(fDim, dims),
		entity.NewColumnInt64(fExtracted, extracted),
		entity.NewColumnJSONBytes(dynamicField, dyn).WithIsDynamic(true),
	}, nil
}

func placeholders(n int) entity.Column {
	v := make([][]float32, n)
	for i := range v {
		v[i] = placeholder
	}
	return entity.NewColumnFloatVector(fVector, placeholderDim, v)
}

// upsertFailures writes ledger entries (small rows: one request per
// lookupChunk).
func (s *Sink) upsertFailures(ctx context.Context, c client.Client, fs []schema.Failure) error {
	for lo := 0; lo < len(fs); lo += lookupChunk {
		part := fs[lo:min(lo+lookupChunk, len(fs))]
		n := len(part)
		str := func(get func(schema.Failure) string) []string {
			out := make([]string, n)
			for i, f := range part {
				out[i] = get(f)
			}
			return out
		}
		num := func(get func(schema.Failure) int64) []int64 {
			out := make([]int64, n)
			for i, f := range part {
				out[i] = get(f)
			}
			return out
		}
		cols := []entity.Column{
			entity.NewColumnVarChar(fID, str(func(f schema.Failure) string { return f.ID })), placeholders(n),
			entity.NewColumnVarChar(fSource, str(func(f schema.Failure) string { return f.Source })),
			entity.NewColumnVarChar(fKey, str(func(f schema.Failure) string { return f.Key })),
			entity.NewColumnInt64(fSize, num(func(f schema.Failure) int64 { return f.Size })),
			entity.NewColumnInt64(fMTime, num(func(f schema.Failure) int64 { return ns(f.MTime) })),
			entity.NewColumnVarChar(fETag, str(func(f schema.Failure) string { return f.ETag })),
			entity.NewColumnVarChar(fSHA256, str(func(f schema.Failure) string { return f.SHA256 })),
			entity.NewColumnVarChar(fModelID, str(func(f schema.Failure) string { return f.ModelID })),
			entity.NewColumnVarChar(fStage, str(func(f schema.Failure) string { return f.Stage })),
			entity.NewColumnVarChar(fClass, str(func(f schema.Failure) string { return string(f.Class) })),
			entity.NewColumnVarChar(fReason, str(func(f schema.Failure) string { return f.Reason })),
			entity.NewColumnInt64(fAttempts, num(func(f schema.Failure) int64 { return int64(f.Attempts) })),
			entity.NewColumnInt64(fFirstSeen, num(func(f schema.Failure) int64 { return ns(f.FirstSeen) })),
			entity.NewColumnInt64(fLastSeen, num(func(f schema.Failure) int64 { return ns(f.LastSeen) })),
		}
		err := s.retry(ctx, fmt.Sprintf("upsert %d ledger entries", n), func(ctx context.Context) error {
			_, err := c.Upsert(ctx, s.cfg.failuresName(), "", cols...)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) upsertRun(ctx context.Context, c client.Client, r schema.Run) error {
	return s.upsertRuns(ctx, c, s.cfg.runsName(), 2, []schema.Run{r})
}

// upsertRuns writes runs into coll, a runs collection of that layout
// version (runsSchemaV).
func (s *Sink) upsertRuns(ctx context.Context, c client.Client, coll string, version int, runs []schema.Run) error {
	str := func(f string, get func(schema.Run) string) entity.Column {
		v := make([]string, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		return entity.NewColumnVarChar(f, v)
	}
	num := func(f string, get func(schema.Run) int64) entity.Column {
		v := make([]int64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		return entity.NewColumnInt64(f, v)
	}
	cols := []entity.Column{
		str(fID, func(r schema.Run) string { return r.ID }), placeholders(len(runs)),
		str(fJob, func(r schema.Run) string { return r.Job }), str(fKind, func(r schema.Run) string { return r.Kind }),
		str(fSource, func(r schema.Run) string { return r.Source }), str(fModelID, func(r schema.Run) string { return r.ModelID }),
		num(fStarted, func(r schema.Run) int64 { return ns(r.StartedAt) }), num(fEnded, func(r schema.Run) int64 { return ns(r.EndedAt) }),
		str(fOutcome, func(r schema.Run) string { return string(r.Outcome) }), str(fError, func(r schema.Run) string { return r.Error }),
		num(fListed, func(r schema.Run) int64 { return r.Listed }), num(fWritten, func(r schema.Run) int64 { return r.Written }),
		num(fExtractedN, func(r schema.Run) int64 { return r.Extracted }), num(fReused, func(r schema.Run) int64 { return r.Reused }),
		num(fUnchanged, func(r schema.Run) int64 { return r.Unchanged }), num(fFailed, func(r schema.Run) int64 { return r.Failed }),
		num(fDeleted, func(r schema.Run) int64 { return r.Deleted }),
	}
	if version >= 2 {
		cols = append(cols,
			str(fShard, func(r schema.Run) string { return r.Shard }), num(fSkipped, func(r schema.Run) int64 { return r.Skipped }),
			str(fRunnerHost, func(r schema.Run) string { return r.Runner.Host }),
			str(fRunnerBoot, func(r schema.Run) string { return r.Runner.BootID }),
			str(fRunnerPIDNS, func(r schema.Run) string { return r.Runner.PIDNS }),
			num(fRunnerPID, func(r schema.Run) int64 { return r.Runner.PID }),
			num(fRunnerStart, func(r schema.Run) int64 { return r.Runner.Start }))
	}
	what := "upsert run " + runs[0].ID
	if len(runs) > 1 {
		what = fmt.Sprintf("upsert %d runs into %s", len(runs), coll)
	}
	return s.retry(ctx, what, func(ctx context.Context) error {
		_, err := c.Upsert(ctx, coll, "", cols...)
		return err
	})
}

// Delete removes the rows (of every item collection) and ledger entries of
// ids in source.
func (s *Sink) Delete(ctx context.Context, source string, ids []string) error {
	c, items, model, err := s.state()
	if err != nil {
		return err
	}
	if model == nil {
		return fmt.Errorf("milvus sink %s: opened read-only (OpenRead); Delete needs Open with a model", s.cfg.base)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete from %s: %w", source, err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	colls := []string{s.cfg.failuresName()}
	for _, ic := range ordered(items, model) {
		colls = append(colls, ic.name)
	}
	for _, coll := range colls {
		if err := s.deleteChunked(wctx, c, coll, source, ids); err != nil {
			return fmt.Errorf("delete %d items of %s: %w", len(ids), source, err)
		}
	}
	return nil
}

// deleteChunked deletes ids from coll (only those of source when source is
// not empty), lookupChunk ids per request, every value quoted.
func (s *Sink) deleteChunked(ctx context.Context, c client.Client, coll, source string, ids []string) error {
	for lo := 0; lo < len(ids); lo += lookupChunk {
		expr := inList(fID, ids[lo:min(lo+lookupChunk, len(ids))])
		if source != "" {
			expr = eq(fSource, source) + " && " + expr
		}
		err := s.retry(ctx, "delete from "+coll, func(ctx context.Context) error {
			return c.Delete(ctx, coll, "", expr)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// retry runs op up to cfg.retries times while it fails with an error that
// a later try may not have (transient: the server unavailable or
// restarting, a deadline of the attempt, rate limiting), each try bounded
// to 30 s, with jittered doubling backoff from 250 ms to 4 s. On top of the
// SDK's own retries, which cover rate limits only; every operation retried
// here is idempotent.
func (s *Sink) retry(ctx context.Context, what string, op func(context.Context) error) error {
	p := retry.Policy{Attempts: s.cfg.retries, Base: 250 * time.Millisecond, Max: 4 * time.Second, PerTry: 30 * time.Second}
	if err := retry.Do(ctx, p, transient, op); err != nil {
		return fmt.Errorf("%s: %w", what, scrub(err, s.cfg))
	}
	return nil
}

// transient reports errors worth another try: gRPC statuses of a server
// that is down, restarting or overloaded, and a try that timed out.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) { // status.Code looks through wrapping
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}
