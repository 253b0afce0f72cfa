package connector

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/imgvec/imgvec/connector/extsort"
	"github.com/imgvec/imgvec/schema"
)

// Options configure a Syncer. Source and Sink are required; Embedder is
// required by Run (Plan only needs a model identity).
type Options struct {
	// Source lists and reads the collection. The caller closes it.
	Source Source
	// Sink stores the vectors. The caller opens it (with the same model
	// identity) before Plan or Run and closes it afterwards.
	Sink Sink
	// Embedder turns bytes into vectors. Required by Run.
	Embedder Embedder
	// Model is the model identity Plan diffs against when Embedder is nil
	// (a dry run need not load the model). When both are set their IDs
	// must agree. Defaults to Embedder.Identity().
	Model schema.ModelIdentity

	// Kind is KindSync or KindBackfill. Defaults to KindSync.
	Kind string
	// Job names the job in the run row. Defaults to "" (ad-hoc run).
	Job string
	// Shard restricts the run to one slice of the source's items (by item
	// id; see Shard): it lists, reads, writes and deletes only within it,
	// and its run row records it. The zero Shard is the whole source.
	Shard Shard
	// Reshard lets a run use another shard count than the job's unfinished
	// runs (see ShardLayoutError). Defaults to false: refused.
	Reshard bool
	// RetryFailed retries every ledger entry, even those whose size, mtime
	// and ETag did not change. Defaults to false.
	RetryFailed bool
	// MaxDelete bounds how many vanished items a sync deletes; above it the
	// run deletes nothing and fails with a *DeleteGuardError. Defaults to
	// no limit (the zero value); the CLI should pass its --max-delete.
	MaxDelete MaxDelete

	// ReadWorkers is the number of goroutines reading and hashing items.
	// Defaults to the Source's ReadConcurrency when it implements
	// ConcurrentSource (network sources), else 4.
	ReadWorkers int
	// InferWorkers is the number of goroutines calling Embedder.Infer,
	// each on its own batch. Defaults to the Embedder's InferConcurrency
	// when it implements ConcurrentEmbedder (one per device), else 1.
	InferWorkers int
	// PrepareWorkers is the number of goroutines decoding and
	// preprocessing. Defaults to runtime.GOMAXPROCS(0).
	PrepareWorkers int
	// Linger is how long a partial batch waits for more items before it is
	// sent to the model anyway. Defaults to 200ms.
	Linger time.Duration
	// Grace is how long in-flight batches may take to drain and commit
	// after Stop before the run is hard cancelled. Defaults to 30s; a
	// negative value waits for the drain without limit (only cancelling
	// Run's context stops it then).
	Grace time.Duration

	// Progress, if set, is called every ProgressEvery and once at the end,
	// from one goroutine at a time. It must not block for long.
	Progress func(Progress)
	// ProgressEvery defaults to 1s.
	ProgressEvery time.Duration
	// Observer, if set, receives per-stage timings and committed batches
	// (metrics).
	Observer Observer
	// Logger receives warnings (incomplete listing, skipped deletes).
	// Defaults to discarding them.
	Logger *slog.Logger
	// Now defaults to time.Now (tests override it).
	Now func() time.Time
	// TempDir is where a run spills what does not fit the diff's fixed
	// memory (entries listed out of key order, ids of vanished items).
	// Defaults to os.TempDir() ($TMPDIR). The files are removed when the
	// run ends (on Unix they have no name from the start).
	TempDir string
	// StartedAt, if set, is the run's start instead of Run's: when the
	// caller's preparation for it (the sink's Open, which may wait for a
	// locked table or a migration) belongs to the run's duration.
	StartedAt time.Time
}

const (
	defaultReadWorkers   = 4
	defaultLinger        = 200 * time.Millisecond
	defaultGrace         = 30 * time.Second
	defaultProgressEvery = time.Second
	deleteChunk          = 500
	finalWriteTimeout    = 15 * time.Second
)

// Syncer runs one backfill or sync of a Source into a Sink. Create it with
// NewSyncer, optionally call Plan, then call Run once. Stop may be called
// from any goroutine (e.g. a signal handler) at any time.
type Syncer struct {
	opts    Options
	model   schema.ModelIdentity
	modelID string
	log     *slog.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	soft    context.CancelFunc
	hard    context.CancelCauseFunc
	grace   *time.Timer
}

// NewSyncer validates opts and fills defaults. It does no I/O.
func NewSyncer(opts Options) (*Syncer, error) {
	if opts.Source == nil {
		return nil, errors.New("syncer: no source")
	}
	if opts.Sink == nil {
		return nil, errors.New("syncer: no sink")
	}
	model := opts.Model
	if opts.Embedder != nil {
		id := opts.Embedder.Identity()
		if model != (schema.ModelIdentity{}) && model.ID() != id.ID() {
			return nil, fmt.Errorf("syncer: model %s does not match the embedder's model %s", model.ID(), id.ID())
		}
		model = id
		if bs := opts.Embedder.BatchSize(); bs < 1 {
			return nil, fmt.Errorf("syncer: embedder batch size %d", bs)
		}
	}
	if err := model.Validate(); err != nil {
		return nil, fmt.Errorf("syncer: %w", err)
	}
	switch opts.Kind {
	case "":
		opts.Kind = KindSync
	case KindSync, KindBackfill:
	default:
		return nil, fmt.Errorf("syncer: kind %q: want %q or %q", opts.Kind, KindSync, KindBackfill)
	}
	if opts.ReadWorkers <= 0 {
		opts.ReadWorkers = defaultReadWorkers
		if cs, ok := opts.Source.(ConcurrentSource); ok && cs.ReadConcurrency() > 0 {
			opts.ReadWorkers = cs.ReadConcurrency()
		}
	}
	if opts.InferWorkers <= 0 {
		opts.InferWorkers = 1
		if ce, ok := opts.Embedder.(ConcurrentEmbedder); ok && ce.InferConcurrency() > 0 {
			opts.InferWorkers = ce.InferConcurrency()
		}
	}
	if opts.PrepareWorkers <= 0 {
		opts.PrepareWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.Linger <= 0 {
		opts.Linger = defaultLinger
	}
	if opts.Grace == 0 {
		opts.Grace = defaultGrace
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = defaultProgressEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{opts: opts, model: model, modelID: model.ID(), log: log}, nil
}

// Plan computes what Run would do from one read of the sink's stored items
// and one listing. It reads no item and writes nothing. A listing error is
// returned (wrapping ErrIncompleteListing) together with the counts of what
// was listed; a delete-guard violation is reported in Plan.DeleteErr.
func (s *Syncer) Plan(ctx context.Context) (Plan, error) {
	src := s.opts.Source
	p := Plan{Source: src.Name(), ModelID: s.modelID, Kind: s.opts.Kind}
	d := newDiffer(p.Source, s.modelID, s.opts.RetryFailed, s.opts.Shard, s.opts.TempDir)
	defer d.close()
	d.sizes = newBloom(sizeFilterBytes, sizeFilterProbes)
	// The sizes of the items to read, checked against the sizes of the
	// stored rows once all of those are known.
	toRead := extsort.New(extsort.Config[int64]{Encode: extsort.AppendInt, Decode: decodeInt,
		Size: func(int64) int { return 8 }, RunBytes: idRunBytes, Dir: s.opts.TempDir})
	defer toRead.Close()
	listErr, err := d.diff(ctx, src, s.opts.Sink, func(e Entry, c Category, _ StoredItem, _ bool) error {
		p.Listed++
		if c.needsRead() && !utf8.ValidString(e.Key) {
			p.InvalidKeys++ // refused into the ledger unread
			return nil
		}
		switch c {
		case New:
			p.New++
		case Changed:
			p.Changed++
		case Unchanged:
			p.Unchanged++
		case Stale:
			p.Stale++
		case Retry:
			p.Retry++
		case FailedKnown:
			p.FailedKnown++
		case SkippedKnown:
			p.SkippedKnown++
		}
		if c.needsRead() {
			return toRead.Add(e.Size)
		}
		return nil
	})
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	if err != nil {
		return p, err
	}
	for {
		size, ok, err := toRead.Next()
		if err != nil {
			return p, fmt.Errorf("plan %s: count reuse candidates: %w", p.Source, err)
		}
		if !ok {
			break
		}
		if d.sizes.hasInt(size) {
			p.ReuseCandidates++
		}
	}
	p.Stored = d.storedCount
	if listErr != nil {
		p.ListErr = listErr
	}
	p.Vanished = d.vanishedCount
	del, note, derr := deleteDecision(s.opts.Kind, listErr, false, p.Listed, p.Vanished, s.opts.MaxDelete, p.Source, p.Stored)
	if del {
		p.ToDelete = p.Vanished
	}
	p.DeleteNote, p.DeleteErr = note, derr
	if listErr != nil {
		return p, fmt.Errorf("list %s: %w: %w", p.Source, ErrIncompleteListing, listErr)
	}
	return p, nil
}

// Stop asks the run to stop softly: listing and reading of new items stop,
// items already read go on through the model and are committed, then Run
// returns ErrStopped. If that takes longer than Options.Grace, the run is
// hard cancelled and Run returns ErrGraceExpired. Stop is idempotent, safe
// from any goroutine, and may be called before Run (which then does
// nothing). A stopped run deletes nothing.
func (s *Syncer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	s.stopLocked()
}

func (s *Syncer) stopLocked() {
	if s.soft == nil {
		return
	}
	s.soft()
	if s.opts.Grace > 0 {
		hard := s.hard
		s.grace = time.AfterFunc(s.opts.Grace, func() { hard(ErrGraceExpired) })
	}
}

func (s *Syncer) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Run performs the backfill or sync and returns the final run record, which
// it also writes to the sink. The error is nil when the run finished
// (Outcome RunOK, or RunPartial when items failed); otherwise it is
// ErrStopped or ErrGraceExpired (soft stop), ctx's error (hard cancel), an
// error wrapping ErrIncompleteListing, a *DeleteGuardError, or the fatal
// error that stopped the pipeline. Run may be called once per Syncer.
func (s *Syncer) Run(ctx context.Context) (schema.Run, error) {
	if s.opts.Embedder == nil {
		return schema.Run{}, errors.New("run: no embedder")
	}
	src := s.opts.Source
	now := s.opts.Now().UTC()
	run := schema.Run{
		ID:        newRunID(now),
		Job:       s.opts.Job,
		Kind:      s.opts.Kind,
		Source:    src.Name(),
		Shard:     s.opts.Shard.String(),
		ModelID:   s.modelID,
		StartedAt: cmp.Or(s.opts.StartedAt.UTC(), now),
		Outcome:   schema.RunRunning,
		Runner:    ThisRunner(),
	}

	hardCtx, hard := context.WithCancelCause(ctx)
	defer hard(nil)
	softCtx, soft := context.WithCancel(hardCtx)
	defer soft()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return run, errors.New("run: a Syncer runs once")
	}
	s.started = true
	if s.stopped {
		s.mu.Unlock()
		run.Outcome, run.EndedAt, run.Error = schema.RunCancelled, now, ErrStopped.Error()
		return run, ErrStopped
	}
	s.soft, s.hard = soft, hard
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.grace != nil {
			s.grace.Stop()
		}
		s.soft, s.hard = nil, nil
		s.mu.Unlock()
	}()

	rs := &runState{
		s:       s,
		src:     src,
		sink:    s.opts.Sink,
		emb:     s.opts.Embedder,
		source:  run.Source,
		model:   s.model,
		modelID: s.modelID,
		t:       newTally(run, s.opts.Now),
		d:       newDiffer(run.Source, s.modelID, s.opts.RetryFailed, s.opts.Shard, s.opts.TempDir),
	}
	rs.d.keepVanished()
	defer rs.d.close()
	rs.d.onStoredCount = rs.t.setStored
	rs.deleteAlso = newIDSpill(s.opts.TempDir)
	defer rs.deleteAlso.Close()

	s.closeDeadRuns(hardCtx, run.Runner)
	if err := s.checkShardLayout(hardCtx, run.Source); err != nil {
		return schema.Run{}, err // refused before its first row: no run
	}
	// The first run row: `status` shows the run while it is in progress.
	if err := rs.sink.Write(hardCtx, Batch{Run: &run}); err != nil {
		err = fmt.Errorf("write run row: %w", err)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		run.Outcome, run.EndedAt, run.Error = outcomeOf(ctx, err), s.opts.Now().UTC(), err.Error()
		return run, err
	}

	stopProgress := rs.startProgress()
	var (
		err  error
		note string
	)
	err = rs.pipeline(hardCtx, softCtx)
	err = s.classify(ctx, hardCtx, err)
	if err == nil && rs.listErr != nil {
		err = fmt.Errorf("list %s: %w: %w", rs.source, ErrIncompleteListing, rs.listErr)
		note = "the listing was incomplete"
	}
	if errors.Is(err, ErrStopped) || errors.Is(err, ErrGraceExpired) {
		note = "the run was stopped"
	}
	if err == nil {
		note, err = rs.deletes(hardCtx)
		if err != nil {
			err = s.classify(ctx, hardCtx, err)
		}
	}
	if note != "" && rs.d.vanishedCount > 0 {
		s.log.Warn("stored items missing from the listing were kept", "source", rs.source, "items", rs.d.vanishedCount, "reason", note)
	}

	final := rs.t.snapshot(delta{})
	final.EndedAt = s.opts.Now().UTC()
	final.Outcome = outcomeOf(ctx, err)
	if final.Outcome == schema.RunOK && final.Failed > 0 {
		final.Outcome = schema.RunPartial
	}
	if err != nil {
		final.Error = err.Error()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	if werr := rs.sink.Write(wctx, Batch{Run: &final}); werr != nil {
		s.log.Error("write final run row", "run", final.ID, "err", werr)
		if err == nil {
			err = fmt.Errorf("write final run row: %w", werr)
			final.Outcome, final.Error = schema.RunFailed, err.Error()
		}
	}
	cancel()
	stopProgress(final)
	return final, err
}

// classify turns what stopped the pipeline into Run's error: the parent
// context's error for a hard cancel, ErrGraceExpired, ErrStopped, or the
// fatal error.
func (s *Syncer) classify(ctx, hardCtx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(context.Cause(hardCtx), ErrGraceExpired):
		return ErrGraceExpired
	case err != nil:
		return err
	case s.isStopped():
		return ErrStopped
	}
	return nil
}

func outcomeOf(ctx context.Context, err error) schema.RunOutcome {
	switch {
	case err == nil:
		return schema.RunOK
	case ctx.Err() != nil, errors.Is(err, ErrStopped), errors.Is(err, ErrGraceExpired):
		return schema.RunCancelled
	default:
		return schema.RunFailed
	}
}

// deletes removes the ids whose keys vanished (and those the pipeline
// found gone), when the rules allow it, streaming them from their spills
// in chunks. It returns why nothing was deleted (a note) or the error
// that stopped it.
func (rs *runState) deletes(ctx context.Context) (string, error) {
	s := rs.s
	snap := rs.t.snapshot(delta{})
	n := rs.d.vanishedCount + rs.deleteAlso.Len()
	del, note, err := deleteDecision(s.opts.Kind, rs.listErr, s.isStopped(), snap.Listed, n, s.opts.MaxDelete, rs.source, rs.d.storedCount)
	if err != nil || !del {
		return note, err
	}
	chunk := make([]string, 0, deleteChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if s.isStopped() {
			return ErrStopped
		}
		rs.sinkMu.Lock()
		err := rs.sink.Delete(ctx, rs.source, chunk)
		rs.sinkMu.Unlock()
		if err != nil {
			return fmt.Errorf("delete %d vanished items of %s (first %s): %w", len(chunk), rs.source, chunk[0], err)
		}
		rs.t.deleted(int64(len(chunk)))
		chunk = chunk[:0]
		return nil
	}
	for _, ids := range []*extsort.Sorter[string]{rs.d.vanished, rs.deleteAlso} {
		for {
			id, ok, err := ids.Next()
			if err != nil {
				return "", fmt.Errorf("delete vanished items of %s: %w", rs.source, err)
			}
			if !ok {
				break
			}
			if chunk = append(chunk, id); len(chunk) == deleteChunk {
				if err := flush(); err != nil {
					return deleteNote(err), err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return deleteNote(err), err
	}
	return "", nil
}

func deleteNote(err error) string {
	if errors.Is(err, ErrStopped) {
		return "the run was stopped"
	}
	return ""
}

func newRunID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// checkShardLayout refuses the run when the job's runs over source are
// split another number of ways and unfinished (ShardLayoutError), unless
// Options.Reshard. A sink that keeps no run history (no LatestRunReader)
// constrains nothing.
func (s *Syncer) checkShardLayout(ctx context.Context, source string) error {
	lr, ok := s.opts.Sink.(LatestRunReader)
	if !ok || s.opts.Reshard {
		return nil
	}
	latest, err := lr.LatestRuns(ctx, s.opts.Job, source)
	if err != nil {
		return fmt.Errorf("read the latest runs of job %q over %s: %w", s.opts.Job, source, err)
	}
	return checkLayout(s.opts.Job, source, s.opts.Shard, latest)
}

// deadRunnerReason is the error recorded on runs whose process is gone.
const deadRunnerReason = "the runner process is gone (killed, or its host restarted) without recording an end"

// closeDeadRuns closes the runs that processes of this host which are
// provably gone left "running" (DeadRunAbandoner). It is
// housekeeping: a failure is logged, and the run goes on.
func (s *Syncer) closeDeadRuns(ctx context.Context, here schema.Runner) {
	ra, ok := s.opts.Sink.(DeadRunAbandoner)
	if !ok || here.Host == "" {
		return
	}
	n, err := ra.AbandonDeadRuns(ctx, here.Host, func(r schema.Runner) bool { return RunnerGone(here, r) },
		s.opts.Now().UTC(), deadRunnerReason)
	switch {
	case err != nil:
		s.log.Warn("close the runs of dead runners", "host", here.Host, "err", err)
	case n > 0:
		s.log.Warn("closed runs whose runner process is gone", "host", here.Host, "runs", n, "outcome", schema.RunAbandoned)
	}
}
