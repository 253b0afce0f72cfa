package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy bounds the tries of one operation.
type Policy struct {
	// Attempts is the number of tries, at least 1 (1 turns retries off).
	// Defaults to 4.
	Attempts int
	// Base is the first wait. Defaults to 100ms.
	Base time.Duration
	// Max caps one wait. Defaults to 2s.
	Max time.Duration
	// PerTry, when positive, bounds each try with its own deadline; a try
	// that runs past it fails with context.DeadlineExceeded while ctx
	// itself is still live, which Retryable may accept.
	PerTry time.Duration
}

// Default is the policy of a zero Policy's fields.
var Default = Policy{Attempts: 4, Base: 100 * time.Millisecond, Max: 2 * time.Second}

func (p Policy) withDefaults() Policy {
	if p.Attempts < 1 {
		p.Attempts = Default.Attempts
	}
	if p.Base <= 0 {
		p.Base = Default.Base
	}
	if p.Max <= 0 {
		p.Max = Default.Max
	}
	return p
}

// Do runs op until it succeeds, fails with an error retryable rejects, ctx
// ends, or p.Attempts tries were made, and returns op's last error.
func Do(ctx context.Context, p Policy, retryable func(error) bool, op func(context.Context) error) error {
	p = p.withDefaults()
	wait := p.Base
	for try := 1; ; try++ {
		err := runTry(ctx, p.PerTry, op)
		if err == nil || try >= p.Attempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		d := Jitter(wait)
		var ra RetryAfter
		if errors.As(err, &ra) {
			d = max(d, min(ra.RetryAfter(), MaxRetryAfter))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, p.Max)
	}
}

func runTry(ctx context.Context, perTry time.Duration, op func(context.Context) error) error {
	if perTry <= 0 {
		return op(ctx)
	}
	tctx, cancel := context.WithTimeout(ctx, perTry)
	defer cancel()
	return op(tctx)
}

// RetryAfter is an error that says how long to wait before the next try
// (an HTTP server's Retry-After): Do waits at least that long, up to
// MaxRetryAfter.
type RetryAfter interface {
	error
	RetryAfter() time.Duration
}

// MaxRetryAfter caps a wait a RetryAfter error asks for.
const MaxRetryAfter = 2 * time.Minute

// Jitter returns a duration drawn uniformly from [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
