package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// hardStop returns the context of a one-shot job's runs and the function
// that releases its signal handler. ctx is main's signal context, which
// the first SIGINT/SIGTERM cancels: that is the soft stop (in-flight
// batches drain and commit within the grace period). The runs must not
// inherit that cancellation, so their context is detached from ctx and
// cancelled by the second signal only: the hard stop. A signal that
// arrived before the handler was registered shows as ctx being done
// already, and counts as the first.
func hardStop(ctx context.Context) (context.Context, func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		if ctx.Err() == nil {
			select {
			case s := <-sigs:
				slog.Warn("stopping: committing in-flight batches (signal again to abort)", "signal", s.String())
			case <-done:
				return
			}
		}
		select {
		case <-sigs:
			slog.Warn("aborting: in-flight batch abandoned, nothing half-written")
			cancel()
		case <-done:
		}
	}()
	return hard, func() {
		signal.Stop(sigs)
		close(done)
		<-exited
		cancel()
	}
}
