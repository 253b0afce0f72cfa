package connector

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/imgvec/imgvec/connector/extsort"
	"github.com/imgvec/imgvec/schema"
)

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
	// deleteAlso are ids deleted with the vanished ones, under the same
	// rules: items gone on this run and the last (ErrGone), and items
	// that vanished between the listing and their read. Added to by the
	// writer once committed; read after the pipeline ended.
	deleteAlso *extsort.Sorter[string]

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
	pool(g, o.InferWorkers, writeCh, func() error { return rs.inferer(gctx, inferCh, writeCh) })
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
func pool[T any](g *errgroup.Group, n int, out chan<- T, worker func() error) {
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
