package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imgvec/imgvec/migrations"
)

// Lock waits. A table locked by another session (LOCK TABLE, a long ALTER
// TABLE, VACUUM FULL, a migration) would make a write or a migration wait
// silently for as long as the lock is held. Instead, every write
// transaction (Write, Delete, AbandonRuns), the reads of a sync (Open's
// dimension check, Stored, VectorsBySHA256) and the migration connection
// set lock_timeout to the policy's Step: the statement fails with
// lock_not_available (55P03), waitLocks logs the sessions holding locks on
// the sink's tables and tries again, and after about Limit in all the
// operation fails with an error wrapping ErrLocked that names them. Reads
// (status, search) keep PostgreSQL's default: they wait.

// LockWait bounds how long an operation waits for a table another session
// has locked.
type LockWait struct {
	Step  time.Duration // lock_timeout of one try; a log line names the blocker after each. Defaults to the DSN's lock_timeout parameter, else 10s.
	Limit time.Duration // total wait before the operation fails. Defaults to 10m.
}

// DefaultLockWait is what a Sink uses unless WithLockWait says otherwise.
var DefaultLockWait = LockWait{Step: 10 * time.Second, Limit: 10 * time.Minute}

// WithLockWait sets how long writes and migrations wait for locked tables
// (zero fields take their defaults).
func WithLockWait(w LockWait) Option { return func(s *Sink) { s.lockWait = w } }

// WithLogger sets where the sink logs lock waits. Defaults to
// slog.Default() at the time of each message.
func WithLogger(l *slog.Logger) Option { return func(s *Sink) { s.log = l } }

// ErrLocked is wrapped by the error of a write or migration that waited
// LockWait.Limit for a table another session kept locked.
var ErrLocked = errors.New("table locked by another session")

func (s *Sink) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}

// lockTimeoutMS is the lock_timeout setting of one try.
func (s *Sink) lockTimeoutMS() string { return fmt.Sprintf("%dms", s.lockPolicy().Step.Milliseconds()) }

func (s *Sink) lockPolicy() LockWait {
	w := s.lockWait
	if w.Step <= 0 {
		w.Step = DefaultLockWait.Step
		if d, ok := parseMillis(s.cfg.ConnConfig.RuntimeParams["lock_timeout"]); ok {
			w.Step = d
		}
	}
	if w.Limit <= 0 {
		w.Limit = DefaultLockWait.Limit
	}
	return w
}

// parseMillis reads a positive duration as PostgreSQL's lock_timeout
// takes it here: Go syntax ("500ms", "2s") or a number of milliseconds.
func parseMillis(v string) (time.Duration, bool) {
	d, err := time.ParseDuration(v)
	if err != nil {
		ms, err2 := strconv.ParseInt(v, 10, 64)
		d, err = time.Duration(ms)*time.Millisecond, err2
	}
	return d, err == nil && d > 0
}

// lockedTx runs fn in a transaction whose lock_timeout is one try of
// waitLocks. The setting is a SET, not a query, so a REPEATABLE READ
// transaction takes its snapshot at fn's first query.
func (s *Sink) lockedTx(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, pool, opts, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+s.lockTimeoutMS()+`'`); err != nil {
			return fmt.Errorf("set lock_timeout: %w", err)
		}
		return fn(tx)
	})
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// rowsQuerier is a pool or a connection.
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// waitLocks runs fn, and runs it again while it fails on a lock timeout,
// logging who holds locks on the sink's tables (asked through q), until
// s.lockWait.Limit has passed since the first try. fn must be safe to run
// again (one transaction, or idempotent steps).
func (s *Sink) waitLocks(ctx context.Context, op string, q rowsQuerier, fn func() error) error {
	start, limit := time.Now(), s.lockPolicy().Limit
	for {
		err := fn()
		if !isLockTimeout(err) || ctx.Err() != nil {
			return err
		}
		waited := time.Since(start).Round(time.Millisecond)
		blockers := s.lockHolders(ctx, q)
		if waited >= limit {
			return fmt.Errorf("%s: %w: gave up after waiting %s for %s: %w", op, ErrLocked, waited, blockers, err)
		}
		s.logger().Warn("waiting for a lock held by another session", "op", op, "table", s.names.Qualified(""),
			"waited", waited, "limit", limit, "blockers", blockers)
	}
}

// lockHolders describes the other sessions holding locks on the sink's
// tables (TABLE and TABLE_*) or the migration lock (migrations.PGLockKey),
// for messages.
func (s *Sink) lockHolders(ctx context.Context, q rowsQuerier) string {
	rows, err := q.Query(ctx, `SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), a.query_start,
	coalesce(c.relname, 'the imgvec migration lock'), l.mode
FROM pg_locks l
LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((n.nspname = $1 AND (c.relname = $2 OR starts_with(c.relname, $2 || '_')))
		OR (l.locktype = 'advisory' AND l.objsubid = 1 AND (l.classid::bigint << 32 | l.objid::bigint) = $3))
ORDER BY l.pid, 5`, s.names.Schema, s.names.Table, migrations.PGLockKey)
	if err != nil {
		return "sessions unknown (" + s.wrap("read pg_locks", err).Error() + ")"
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			pid             int32
			app, state, rel string
			mode            string
			queryStart      *time.Time
		)
		if err := rows.Scan(&pid, &app, &state, &queryStart, &rel, &mode); err != nil {
			return "sessions unknown (" + s.wrap("read pg_locks", err).Error() + ")"
		}
		started := "unknown"
		if queryStart != nil {
			started = queryStart.UTC().Format(time.RFC3339)
		}
		out = append(out, fmt.Sprintf("pid %d (application_name %q, state %q, query started %s) holding %s on %s",
			pid, app, state, started, mode, rel))
	}
	if err := rows.Err(); err != nil {
		return "sessions unknown (" + s.wrap("read pg_locks", err).Error() + ")"
	}
	if len(out) == 0 {
		return "a session that no longer holds a lock on " + s.names.Qualified("")
	}
	return strings.Join(out, "; ")
}
