package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imgvec/imgvec/connector/retry"
)

// WithRetry sets the retry policy of Write and Delete (and the reads of a
// sync); Attempts 1 turns retries off. Defaults to retry.Default: 4 tries,
// jittered backoff from 100 ms doubling to at most 2 s.
func WithRetry(p retry.Policy) Option { return func(s *Sink) { s.retryPolicy = p } }

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

// withRetries runs fn, one transaction, again while it fails with a
// Retryable error (connector/retry: bounded, jittered; never after ctx
// ends).
func withRetries(ctx context.Context, p retry.Policy, fn func() error) error {
	return retry.Do(ctx, p, Retryable, func(context.Context) error { return fn() })
}
