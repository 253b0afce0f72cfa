package connector

import (
	"context"
	"fmt"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// writer commits one sink batch per write batch, with the run's progress
// row.
func (rs *runState) writer(gctx context.Context, in <-chan *wbatch) error {
	for {
		var b *wbatch
		select {
		case <-gctx.Done():
			return gctx.Err()
		case v, ok := <-in:
			if !ok {
				return nil
			}
			b = v
		}
		if err := rs.write(gctx, b); err != nil {
			return err
		}
	}
}

func (rs *runState) write(ctx context.Context, b *wbatch) error {
	now := rs.s.opts.Now().UTC()
	var (
		batch   Batch
		dl      delta
		replace []string // ids whose stored row is replaced by a ledger entry
		gone    []string // ids to delete: gone twice, or vanished since listed
		shas    []string
	)
	add := func(it *item) {
		fp := schema.Fingerprint{Size: it.size, MTime: it.entry.MTime, ETag: it.entry.ETag, SHA256: it.sha}
		switch it.kind {
		case kindExtract, kindReuse:
			batch.Upserts = append(batch.Upserts, schema.Record{
				ID: it.id, Source: rs.source, Key: it.entry.Key, Fingerprint: fp,
				Width: it.width, Height: it.height, Format: it.format,
				ModelID: rs.modelID, Layer: rs.model.Layer, Dim: rs.model.Dim,
				Vector: it.vec, ExtractedAt: now, Metadata: it.meta,
			})
			dl.written++
			if it.kind == kindExtract {
				dl.extracted++
			} else {
				dl.reused++
			}
			shas = append(shas, it.sha)
		case kindUnchanged:
			dl.unchanged++
		case kindVanished:
			dl.unlisted++
			if it.found {
				gone = append(gone, it.id)
			}
		case kindMeta:
			batch.Metadata = append(batch.Metadata, MetaUpdate{ID: it.id, Fingerprint: fp})
			dl.written++
		case kindFailed:
			if fp.SHA256 == "" { // not read: the listing's size
				fp.Size = it.entry.Size
			}
			e := it.err
			batch.Failures = append(batch.Failures, schema.Failure{
				ID: it.id, Source: rs.source, Key: it.entry.Key, Fingerprint: fp,
				ModelID: rs.modelID, Stage: e.Stage, Class: e.Class, Reason: reason(e),
				Attempts: 1, FirstSeen: now, LastSeen: now,
			})
			if e.Class.PolicySkip() {
				dl.skipped++
			} else {
				dl.failed++
			}
			if it.gone {
				gone = append(gone, it.id)
			}
			if it.found && !it.stored.Failed {
				replace = append(replace, it.id)
			}
		}
	}
	for _, it := range b.infer {
		add(it)
	}
	for _, it := range b.pass {
		add(it)
	}
	dl.done = int64(b.len())
	run := rs.t.snapshot(dl)
	batch.Run = &run

	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	rs.sinkMu.Lock()
	var err error
	if len(replace) > 0 {
		// The bytes changed and no longer make a vector: the old row no
		// longer describes the item, the ledger entry does.
		if err = rs.sink.Delete(ctx, rs.source, replace); err != nil {
			err = fmt.Errorf("remove %d outdated rows replaced by ledger entries: %w", len(replace), err)
		}
	}
	if err == nil {
		if err = rs.sink.Write(ctx, batch); err != nil {
			err = fmt.Errorf("write batch of %d items (%d upserts, %d metadata updates, %d failures; first %s): %w",
				b.len(), len(batch.Upserts), len(batch.Metadata), len(batch.Failures), firstKey(b), err)
		}
	}
	rs.sinkMu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	rs.observe(StageWrite, b.len(), start)
	if o := rs.s.opts.Observer; o != nil {
		classes := make([]schema.FailureClass, len(batch.Failures))
		for i, f := range batch.Failures {
			classes[i] = f.Class
		}
		o.Committed(b.len(), classes)
	}
	rs.t.apply(dl)
	for _, id := range gone {
		if err := rs.deleteAlso.Add(id); err != nil {
			return fmt.Errorf("keep the ids to delete after the run: %w", err)
		}
	}
	for _, sha := range shas {
		rs.d.shas.addString(sha)
	}
	return nil
}

func reason(e *schema.ItemError) string {
	if e.Err != nil && e.Reason == "" {
		return e.Err.Error()
	}
	if e.Err != nil && e.Err.Error() != e.Reason {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func firstKey(b *wbatch) string {
	if len(b.infer) > 0 {
		return b.infer[0].entry.Key
	}
	return b.pass[0].entry.Key
}
