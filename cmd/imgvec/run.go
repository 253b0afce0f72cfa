package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// runSyncer runs syn with the two-phase stop: the first SIGINT/SIGTERM
// stops listing and lets in-flight batches commit (within the grace
// period); a second one cancels at once.
//
// ctx is main's signal context, which the first signal cancels: the run
// must not inherit that cancellation (it would abandon the in-flight
// batches at once instead of letting them commit), so it runs under a
// context detached from it and cancelled only by the second signal. A
// signal that arrived before this function registered its handler shows
// as ctx being done already: that is a soft stop too.
func runSyncer(ctx context.Context, syn *connector.Syncer) (schema.Run, error) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if ctx.Err() != nil {
		syn.Stop()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			slog.Warn("stopping: committing in-flight batches (signal again to abort)", "signal", s.String())
			syn.Stop()
		case <-done:
			return
		}
		select {
		case <-sigs:
			slog.Warn("aborting: in-flight batch abandoned, nothing half-written")
			cancel()
		case <-done:
		}
	}()
	return syn.Run(ctx)
}

// runError maps a run's result to the CLI's error (and so its exit code).
func runError(run schema.Run, err error) error {
	if err != nil {
		return err
	}
	if run.Failed > 0 {
		return errItemFailures
	}
	return nil
}

// joinRunErrors keeps the first fatal error, else the item-failure marker.
func joinRunErrors(errs []error) error {
	var itemFailures bool
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, errItemFailures):
			itemFailures = true
		default:
			return err
		}
	}
	if itemFailures {
		return errItemFailures
	}
	return nil
}
