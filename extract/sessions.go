package extract

import (
	"context"
	"errors"
)

// sessionSet runs each call on whichever of its sessions (one per device)
// is free, so that a pipeline keeping one Infer in flight per session uses
// every device. Every session runs the same model: a batch's vectors do not
// depend on which one ran it (on CPU they are bit-identical).
type sessionSet struct {
	all  []runner
	free chan runner
}

func newSessionSet(all []runner) *sessionSet {
	s := &sessionSet{all: all, free: make(chan runner, len(all))}
	for _, r := range all {
		s.free <- r
	}
	return s
}

// Run waits for a free session (or ctx) and runs the batch on it.
func (s *sessionSet) Run(ctx context.Context, input []float32, n int, output []float32) error {
	return s.on(ctx, func(r runner) error { return r.Run(ctx, input, n, output) })
}

// RunPixels is Run for pixel input.
func (s *sessionSet) RunPixels(ctx context.Context, input []byte, n int, output []float32) error {
	return s.on(ctx, func(r runner) error { return r.RunPixels(ctx, input, n, output) })
}

// on waits for a free session (or ctx) and calls fn with it.
func (s *sessionSet) on(ctx context.Context, fn func(runner) error) error {
	var r runner
	select {
	case r = <-s.free:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { s.free <- r }()
	return fn(r)
}

func (s *sessionSet) InputSize() (height, width int) { return s.all[0].InputSize() }
func (s *sessionSet) Dim() int                       { return s.all[0].Dim() }

// Close closes every session.
func (s *sessionSet) Close() error {
	var errs []error
	for _, r := range s.all {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
