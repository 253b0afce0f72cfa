package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/imgvec/imgvec/schema"
)

// itemKind is what the pipeline does with an item once it has been read.
type itemKind int

const (
	kindExtract itemKind = iota // decode, preprocess, infer, upsert
	kindReuse                   // upsert with a stored vector of the same sha256
	kindMeta                    // metadata-only update of the stored row
	kindFailed                  // ledger entry
)

// item is one listed entry on its way through the pipeline. It is owned by
// one stage at a time: the channel send hands it over.
type item struct {
	entry  Entry
	id     string
	cat    Category
	stored StoredItem // what the sink held for id (when found)
	found  bool

	kind   itemKind
	size   int64  // bytes read
	sha    string // hex sha256 of the bytes read
	data   []byte // until prepared
	prep   *schema.Prepared
	width  int
	height int
	format string
	vec    []float32
	err    *schema.ItemError
}

func (it *item) fail(stage string, class schema.FailureClass, reason string, cause error) {
	it.kind = kindFailed
	it.err = &schema.ItemError{Item: it.entry.Key, Stage: stage, Class: class, Reason: reason, Err: cause}
	it.data = nil
	it.vec = nil
}

// refuseKey makes the item of a key that is not valid UTF-8 a ledger
// entry without reading it: no sink stores such a key. The id stays that of
// the raw key (the next run finds the entry by it); the entry's key is the
// escaped one.
func (it *item) refuseKey() {
	it.entry.Key = schema.EscapeKey(it.entry.Key)
	it.fail("list", schema.FailInvalidKey, `key is not valid UTF-8; recorded escaped (invalid bytes as \xHH, backslashes doubled), not read`, nil)
}

// failWith records err, which should be an *schema.ItemError; any other
// error is wrapped with the given stage and class.
func (it *item) failWith(err error, stage string, class schema.FailureClass) {
	var ie *schema.ItemError
	if errors.As(err, &ie) {
		cp := *ie
		cp.Item = it.entry.Key
		if cp.Stage == "" {
			cp.Stage = stage
		}
		if cp.Class == "" {
			cp.Class = class
		}
		it.kind, it.err, it.data, it.vec = kindFailed, &cp, nil, nil
		return
	}
	it.fail(stage, class, err.Error(), err)
}

// wbatch is one unit of writing: the items inferred together plus the items
// that need no inference (reused, metadata-only, failed) that arrived
// meanwhile.
type wbatch struct {
	infer []*item
	pass  []*item
}

func (b *wbatch) len() int { return len(b.infer) + len(b.pass) }

// runState is the state of one Run.
type runState struct {
	s       *Syncer
	src     Source
	sink    Sink
	emb     Embedder
	source  string
	model   schema.ModelIdentity
	modelID string
	d       *differ
	t       *tally
	listErr error // set by the lister; read after the pipeline ended

	// sinkMu serialises calls into the sink (the Sink contract allows one
	// at a time): the readers' VectorsBySHA256, the writer's Write and
	// Delete, and the final deletes.
	sinkMu sync.Mutex
}

// pipeline runs the stages until the listing is exhausted and every item
// listed before a stop is written, or until the first fatal error.
func (rs *runState) pipeline(hardCtx, softCtx context.Context) error {
	o := rs.s.opts
	bs := rs.emb.BatchSize()
	g, gctx := errgroup.WithContext(hardCtx)
	// softCtx is also cancelled when gctx is (a fatal error).
	softCtx, cancelSoft := context.WithCancel(softCtx)
	defer cancelSoft()
	context.AfterFunc(gctx, cancelSoft)

	todo := make(chan *item, o.ReadWorkers)      // lister → readers
	readCh := make(chan *item, o.PrepareWorkers) // readers → preparers
	prepCh := make(chan *item, bs)               // preparers → batcher
	inferCh := make(chan *wbatch)                // batcher → inferer
	writeCh := make(chan *wbatch)                // inferer → writer

	g.Go(func() error { return rs.lister(gctx, softCtx, todo) })
	pool(g, o.ReadWorkers, readCh, func() error { return rs.reader(gctx, softCtx, todo, readCh) })
	pool(g, o.PrepareWorkers, prepCh, func() error { return rs.preparer(gctx, readCh, prepCh) })
	g.Go(func() error { return rs.batcher(gctx, prepCh, inferCh, bs) })
	g.Go(func() error { return rs.inferer(gctx, inferCh, writeCh) })
	g.Go(func() error { return rs.writer(gctx, writeCh) })
	err := g.Wait()

	// Every stage has returned and closed its output: hand back what an
	// abandoned run left in the channels.
	for it := range prepCh {
		rs.release(it)
	}
	for range readCh {
	}
	for range todo {
	}
	return err
}

// pool starts n workers in g and closes out when the last one returns.
func pool(g *errgroup.Group, n int, out chan<- *item, worker func() error) {
	var left atomic.Int64
	left.Store(int64(n))
	for range n {
		g.Go(func() error {
			defer func() {
				if left.Add(-1) == 0 {
					close(out)
				}
			}()
			return worker()
		})
	}
}

// ctxErr is what a stage returns when softCtx is done: nil after a soft
// stop, gctx's error after a hard stop or a fatal error elsewhere.
func ctxErr(gctx context.Context) error { return gctx.Err() }

// relay is the loop of a one-in, one-out stage: it receives from in until
// in is closed or recvCtx is done, applies fn to each value and sends it
// on. Sends watch gctx; a value that cannot be sent is handed to drop (when
// not nil) so pooled buffers go back. Readers pass the soft-stop context as
// recvCtx so that they take no new item after Stop; other stages pass gctx.
func relay[T any](gctx, recvCtx context.Context, in <-chan T, out chan<- T, fn func(T) error, drop func(T)) error {
	for {
		if recvCtx.Err() != nil {
			return ctxErr(gctx)
		}
		var v T
		select {
		case <-recvCtx.Done():
			return ctxErr(gctx)
		case x, ok := <-in:
			if !ok {
				return nil
			}
			v = x
		}
		if err := fn(v); err != nil {
			return err
		}
		select {
		case out <- v:
		case <-gctx.Done():
			if drop != nil {
				drop(v)
			}
			return gctx.Err()
		}
	}
}

// listAhead is how many listed entries may wait while the sink's stored
// items load (an Entry is ~100 bytes).
const listAhead = 1 << 16

// lister lists the source, classifies each entry and sends the items to
// read. It stops at a soft stop (softCtx).
//
// The sink's stored items load while the source lists, since neither
// needs the other until an entry is classified: the listing runs ahead by
// up to listAhead entries. Both goroutines belong to the lister, which
// waits for them.
func (rs *runState) lister(gctx, softCtx context.Context, out chan<- *item) error {
	defer close(out)
	entries := make(chan Entry, listAhead)
	var listErr error
	g, lctx := errgroup.WithContext(softCtx)
	g.Go(func() error {
		defer close(entries)
		listErr = rs.src.List(lctx, func(e Entry) error {
			select {
			case entries <- e:
				return nil
			case <-lctx.Done():
				return lctx.Err()
			}
		})
		return nil
	})
	g.Go(func() error {
		d, err := loadStored(gctx, rs.sink, rs.source, rs.modelID, rs.s.opts.RetryFailed)
		if err != nil {
			return err
		}
		rs.d = d
		rs.t.setStored(d.storedCount)
		for e := range entries {
			c, it := rs.d.visit(e)
			rs.t.listed(c)
			if it == nil {
				continue
			}
			if !utf8.ValidString(e.Key) {
				it.refuseKey()
			}
			rs.t.queued(1)
			select {
			case out <- it:
			case <-lctx.Done():
				rs.t.queued(-1)
				return nil
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	switch {
	case gctx.Err() != nil:
		return gctx.Err()
	case softCtx.Err() != nil:
		return nil // stopped: the listing is incomplete, Run deletes nothing
	case listErr != nil:
		rs.listErr = listErr
		rs.s.log.Warn("listing incomplete; processing what was listed, deleting nothing", "source", rs.source, "err", listErr)
		return nil
	}
	rs.t.listingDone()
	return nil
}

// reader reads and hashes items and decides how each continues. After a
// soft stop it takes no new item; a read in progress completes.
func (rs *runState) reader(gctx, softCtx context.Context, in <-chan *item, out chan<- *item) error {
	return relay(gctx, softCtx, in, out, func(it *item) error { return rs.read(gctx, it) }, nil)
}

func (rs *runState) read(ctx context.Context, it *item) error {
	if it.kind == kindFailed { // refused when listed
		return nil
	}
	start := time.Now()
	data, err := rs.src.Read(ctx, it.entry.Key)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		class := schema.FailIO
		if errors.Is(err, ErrTooLarge) {
			class = schema.FailTooLarge
		}
		it.failWith(err, "read", class)
		return nil
	}
	sum := sha256.Sum256(data)
	it.size, it.sha = int64(len(data)), hex.EncodeToString(sum[:])
	rs.observe(StageRead, 1, start)
	if len(data) == 0 {
		it.fail("read", schema.FailEmpty, "zero bytes", nil)
		return nil
	}
	// Same bytes as the stored row of the current model: keep the vector.
	if it.found && !it.stored.Failed && it.stored.ModelID == rs.modelID && it.stored.SHA256 == it.sha {
		it.kind = kindMeta
		return nil
	}
	// The same bytes are stored under another key (a copy or a move).
	if rs.d.shas.has(it.sha) {
		vec, err := rs.lookup(ctx, it.sha)
		if err != nil {
			return err
		}
		if vec != nil {
			it.kind, it.vec = kindReuse, vec
			return nil
		}
	}
	it.kind, it.data = kindExtract, data
	return nil
}

// lookup returns the stored vector of the current model with that sha256,
// or nil if there is none (any more) or it is unusable.
func (rs *runState) lookup(ctx context.Context, sha string) ([]float32, error) {
	rs.sinkMu.Lock()
	m, err := rs.sink.VectorsBySHA256(ctx, rs.modelID, []string{sha})
	rs.sinkMu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("look up stored vector by sha256 %s: %w", sha, err)
	}
	vec := m[sha]
	if CheckVector(vec, rs.model.Dim) != nil {
		return nil, nil
	}
	return vec, nil
}

// preparer decodes and preprocesses the items to extract; other items pass
// through untouched.
func (rs *runState) preparer(gctx context.Context, in <-chan *item, out chan<- *item) error {
	return relay(gctx, gctx, in, out, func(it *item) error {
		if it.kind == kindExtract {
			rs.prepare(it)
		}
		return nil
	}, rs.release)
}

func (rs *runState) prepare(it *item) {
	defer rs.observe(StageDecode, 1, time.Now())
	data := it.data
	it.data = nil
	p, err := func() (p *schema.Prepared, err error) {
		defer func() {
			if r := recover(); r != nil {
				rs.s.log.Error("embedder panicked preparing an item", "key", it.entry.Key, "panic", r, "stack", string(debug.Stack()))
				err = &schema.ItemError{Stage: "decode", Class: schema.FailDecode, Reason: fmt.Sprintf("decoder panic: %v", r)}
			}
		}()
		return rs.emb.Prepare(it.entry.Key, data)
	}()
	switch {
	case err != nil:
		if p != nil {
			rs.emb.Release(p)
		}
		it.failWith(err, "decode", schema.FailDecode)
	case p == nil:
		it.fail("preprocess", schema.FailDecode, "embedder prepared nothing", nil)
	default:
		it.prep, it.width, it.height, it.format = p, p.Width, p.Height, p.Format
	}
}

func (rs *runState) release(it *item) {
	if it != nil && it.prep != nil {
		rs.emb.Release(it.prep)
		it.prep = nil
	}
}

// maxPass bounds the items that need no inference carried by one write
// batch.
func maxPass(bs int) int { return max(256, 4*bs) }

// batcher groups prepared items into batches of bs for the model and
// attaches the items that need no inference. A batch is ready when it is
// full, when the linger has passed since its first item, or at the end of
// the input; a ready batch keeps growing until the inferer takes it.
func (rs *runState) batcher(gctx context.Context, in <-chan *item, out chan<- *wbatch, bs int) error {
	defer close(out)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var (
		cur     = &wbatch{}
		lingerd bool // the linger for cur's first item has passed
		closed  bool // in is exhausted
	)
	defer func() {
		for _, it := range cur.infer {
			rs.release(it)
		}
	}()
	for {
		full := len(cur.infer) >= bs || len(cur.pass) >= maxPass(bs)
		if closed && cur.len() == 0 {
			return nil
		}
		var sendCh chan<- *wbatch
		if cur.len() > 0 && (full || lingerd || closed) {
			sendCh = out
		}
		recvCh := in
		if full || closed {
			recvCh = nil
		}
		select {
		case <-gctx.Done():
			return gctx.Err()
		case it, ok := <-recvCh:
			if !ok {
				closed = true
				continue
			}
			if cur.len() == 0 {
				linger.Reset(rs.s.opts.Linger)
			}
			if it.kind == kindExtract {
				cur.infer = append(cur.infer, it)
			} else {
				cur.pass = append(cur.pass, it)
			}
		case <-linger.C:
			lingerd = true
		case sendCh <- cur:
			cur, lingerd = &wbatch{}, false
			linger.Stop()
		}
	}
}

// inferer runs the model on each batch, one batch at a time, and hands
// every Prepared back to the embedder afterwards.
func (rs *runState) inferer(gctx context.Context, in <-chan *wbatch, out chan<- *wbatch) error {
	defer close(out)
	return relay(gctx, gctx, in, out, func(b *wbatch) error { return rs.infer(gctx, b) }, nil)
}

func (rs *runState) infer(ctx context.Context, b *wbatch) error {
	n := len(b.infer)
	if n == 0 {
		return nil
	}
	batch := make([]*schema.Prepared, n)
	for i, it := range b.infer {
		batch[i] = it.prep
	}
	start := time.Now()
	results, err := func() (res []schema.VectorResult, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return rs.emb.Infer(ctx, batch)
	}()
	rs.observe(StageInfer, n, start)
	for _, it := range b.infer {
		rs.release(it)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("infer batch of %d (first %s): %w", n, b.infer[0].entry.Key, err)
	}
	if len(results) != n {
		return fmt.Errorf("infer batch of %d (first %s): embedder returned %d results", n, b.infer[0].entry.Key, len(results))
	}
	for i, it := range b.infer {
		r := results[i]
		if r.Err != nil {
			it.failWith(r.Err, "infer", schema.FailInfer)
			continue
		}
		switch err := CheckVector(r.Vector, rs.model.Dim); {
		case err == nil:
			it.vec = r.Vector
		case errors.Is(err, ErrNotFinite):
			it.fail("infer", schema.FailNonFinite, "model output is NaN or Inf", nil)
		default:
			it.fail("infer", schema.FailInfer, "model output: "+err.Error(), nil)
		}
	}
	return nil
}

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
				Vector: it.vec, ExtractedAt: now,
			})
			dl.written++
			if it.kind == kindExtract {
				dl.extracted++
			} else {
				dl.reused++
			}
			shas = append(shas, it.sha)
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
			dl.failed++
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
	for _, sha := range shas {
		rs.d.shas.add(sha)
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
