package jobrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/schema"
)

// Job is one job's run: its sources and the settings every source's
// syncer shares.
type Job struct {
	// Sources are the job's source references, run in order.
	Sources []string
	// Open opens the source a reference names; Run closes it.
	Open func(ref string) (connector.Source, error)
	// Template is every source's syncer options but Source (Run sets it):
	// sink (open), embedder or model, kind, job name, retry, max-delete,
	// grace, workers, observer, logger. Its StartedAt, if set, is the first
	// run's start (when the sink's Open, which may wait on locks, belongs
	// to the run's time).
	Template connector.Options
	// Progress, if set, makes the progress callback of one source's run.
	Progress func(source string) func(connector.Progress)
	// Finished, if set, is called after each source's run with its row and
	// error. A run that could not start (its source did not open, or the
	// job's dead runs could not be closed) has a row without an ID.
	Finished func(run schema.Run, err error)
}

// Lease is the job's lease during the run; the zero Lease runs unleased.
type Lease struct {
	Held *lease.Held
	// Fenced: the sink checks the lease inside each commit (it is a
	// lease.Fenceable in the lease's own database); else each commit is
	// guarded by a check just before it.
	Fenced bool
}

// abandonedReason is the error recorded on runs a dead runner left open.
const abandonedReason = "the runner stopped without recording an end (killed, or its job lease expired)"

// Run runs the job (see the package doc for the contract).
func Run(soft, hard context.Context, j Job, l Lease) error {
	o := j.Template
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := writeThrough(hard, o.Sink, l, o.Job, o.Shard.String(), log)
	if err != nil {
		if j.Finished != nil {
			j.Finished(schema.Run{}, err)
		}
		return err
	}
	o.Sink = w
	var lost <-chan struct{}
	if l.Held != nil {
		lost = l.Held.Lost()
	}
	var errs []error
	for _, ref := range j.Sources {
		if soft.Err() != nil {
			break
		}
		run, err := runSource(soft, hard, j, o, ref, lost, log)
		o.StartedAt = time.Time{} // only the first run counts the sink's Open
		if j.Finished != nil {
			j.Finished(run, err)
		}
		if err != nil {
			errs = append(errs, err)
			if !SourceOnly(err) {
				break
			}
		}
	}
	if hard.Err() == nil {
		errs = append(errs, buildDeferredIndex(soft, hard, j.Template.Sink, log)) // the sink itself: a guard hides its capabilities
	}
	return errors.Join(errs...)
}

// Plan computes, for each source in order, what a run would do
// (connector.Syncer.Plan: one read of the sink and one listing, nothing
// written), and hands it to each. It stops at the first error.
func Plan(ctx context.Context, j Job, each func(connector.Plan)) error {
	for _, ref := range j.Sources {
		src, err := j.Open(ref)
		if err != nil {
			return err
		}
		o := j.Template
		o.Source = src
		syn, err := connector.NewSyncer(o)
		var p connector.Plan
		if err == nil {
			p, err = syn.Plan(ctx)
		}
		src.Close()
		if err != nil {
			return err
		}
		each(p)
	}
	return nil
}

// SourceOnly reports whether err ends only its source's run, so that the
// job's next source still runs: an incomplete listing or a refused
// deletion.
func SourceOnly(err error) bool {
	var dg *connector.DeleteGuardError
	return errors.As(err, &dg) || errors.Is(err, connector.ErrIncompleteListing)
}

// runSource runs one source with the soft stop and the lease watched.
func runSource(soft, hard context.Context, j Job, o connector.Options, ref string, lost <-chan struct{}, log *slog.Logger) (schema.Run, error) {
	src, err := j.Open(ref)
	if err != nil {
		return schema.Run{}, err
	}
	defer src.Close()
	o.Source = src
	if j.Progress != nil {
		o.Progress = j.Progress(src.Name())
	}
	syn, err := connector.NewSyncer(o)
	if err != nil {
		return schema.Run{}, err
	}
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-soft.Done():
			syn.Stop()
		case <-lost:
			log.Error("job lease lost: stopping the run (its commits are refused)", "job", o.Job)
			syn.Stop()
		case <-done:
		}
	}()
	run, err := syn.Run(hard)
	close(done)
	<-watched
	return run, err
}

// writeThrough returns the sink the job writes through while l (the lease
// of the job's shard) is held, and closes the runs of the job's shard that
// a dead runner left "running".
func writeThrough(ctx context.Context, s connector.Sink, l Lease, job, shard string, log *slog.Logger) (connector.Sink, error) {
	if l.Held == nil {
		return s, nil
	}
	w := s
	if f, ok := s.(lease.Fenceable); ok && l.Fenced {
		f.SetFence(l.Held.Lease())
	} else {
		w = lease.Guard(s, l.Held)
	}
	if ra, ok := s.(connector.RunAbandoner); ok {
		n, err := ra.AbandonRuns(ctx, job, shard, time.Now().UTC(), abandonedReason)
		if err != nil {
			return nil, fmt.Errorf("job %s: close runs a dead runner left open: %w", job, err)
		}
		if n > 0 {
			log.Warn("closed runs a dead runner left open", "job", job, "shard", shard, "runs", n, "outcome", schema.RunAbandoned)
		}
	}
	return w, nil
}

// buildDeferredIndex builds the vector index the sink deferred while the
// job loaded an empty model (loading first and indexing after is much
// faster than a live index). After a stop it only says how to build it:
// the build can take minutes, and whoever stopped the run wants it to end.
func buildDeferredIndex(soft, hard context.Context, s connector.Sink, log *slog.Logger) error {
	ix, ok := s.(connector.IndexManager)
	if !ok || !ix.IndexDeferred() {
		return nil
	}
	if soft.Err() != nil {
		log.Warn("vector index not built (run stopped); build it with `imgvec index create binary --sink …`")
		return nil
	}
	start := time.Now()
	info, built, err := ix.BuildDeferredIndex(hard, connector.IndexOptions{})
	if err != nil {
		return fmt.Errorf("build deferred index: %w", err)
	}
	if built {
		log.Info("built index", "index", info.Name, "strategy", info.Strategy, "size_mib", info.SizeBytes>>20,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
