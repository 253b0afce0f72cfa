package postgres

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// RetryPolicy bounds the retries of Write and Delete.
type RetryPolicy struct {
	Attempts int           // total tries, at least 1. Defaults to 4.
	Base     time.Duration // first backoff, doubled each retry (with jitter). Defaults to 100ms.
	Max      time.Duration // cap of one backoff. Defaults to 2s.
}

// DefaultRetryPolicy is what a Sink uses unless WithRetry says otherwise.
var DefaultRetryPolicy = RetryPolicy{Attempts: 4, Base: 100 * time.Millisecond, Max: 2 * time.Second}

// WithRetry sets the retry policy of Write and Delete; Attempts 1 turns
// retries off.
func WithRetry(p RetryPolicy) Option { return func(s *Sink) { s.retryPolicy = p } }

// Retryable reports whether a failed Write or Delete transaction may be run
// again. Each one is a single transaction whose effect is idempotent (a
// replayed batch converges to the same state), so a retry is safe whenever
// the transaction did not commit or its COMMIT reply was lost:
//
//   - the connection failed before the statement was sent
//     (pgconn.SafeToRetry), or could not be made at all;
//   - serialization failure (40001) and deadlock (40P01): the server
//     rolled the transaction back;
//   - idle-in-transaction timeout (25P03), which fenced transactions set
//     (lease.go): the server ended a paused writer's transaction; the
//     rerun checks the lease again;
//   - the backend was terminated (57P01 admin_shutdown, e.g.
//     pg_terminate_backend; 57P02/57P03) or the connection broke (class 08,
//     EOF, network errors) in the middle of the transaction: the server
//     rolls back an uncommitted transaction of a dead connection, and a
//     lost COMMIT reply is resolved by the idempotent rerun.
//
// A cancelled or expired context is never retried.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03",
			pe.Code == "25P03", // idle_in_transaction_session_timeout: a fenced writer that was paused; its rerun meets the fence
			strings.HasPrefix(pe.Code, "08"):
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// pgx reports a connection closed under it with these texts.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "connection reset")
}

// retry runs fn until it succeeds, fails with an error that is not
// Retryable, ctx ends, or p.Attempts tries were made. It returns fn's last
// error.
func retry(ctx context.Context, p RetryPolicy, fn func() error) error {
	if p.Attempts < 1 {
		p.Attempts = DefaultRetryPolicy.Attempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetryPolicy.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryPolicy.Max
	}
	backoff := p.Base
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= p.Attempts || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		d := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, p.Max)
	}
}
