package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/imgvec/imgvec/connector/lease"
)

// Job leases live in TABLE_leases (migration 0003), one row per job. Expiry
// is judged by the server's clock_timestamp() only (now() would be the
// transaction's start), so replicas' clocks need not agree.
//
// Fencing: with SetFence, every Write and Delete transaction ends with
//
//	SELECT 1 FROM TABLE_leases WHERE job, holder, epoch match AND expires_at > clock_timestamp() FOR SHARE
//
// just before COMMIT. The row lock makes a takeover (an UPDATE of that row)
// wait until the commit, so a commit either happens while the lease is
// valid or not at all. The check comes last so the lock is held for
// moments, not for a whole COPY; and a fenced transaction sets
// idle_in_transaction_session_timeout to the lease's TTL, so a holder
// paused between the check and its COMMIT (SIGSTOP) is disconnected and
// rolled back instead of blocking the takeover forever (statement_timeout
// does the same for one paused in the middle of a statement). Acquire waits at
// most leaseLockTimeout for that row lock and otherwise reports the lease
// as held.

// leaseLockTimeout bounds how long Acquire waits for a committing holder.
const leaseLockTimeout = 5 * time.Second

// Leases returns the lease store of the sink's table. The sink must be
// open (Open or OpenRead); the store uses its pool.
func (s *Sink) Leases() lease.Store { return leaseStore{s} }

type leaseStore struct{ s *Sink }

func (ls leaseStore) pool() (*pgxpool.Pool, error) {
	pool, _, err := ls.s.state(false)
	return pool, err
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func (ls leaseStore) Acquire(ctx context.Context, job, holder string, ttl time.Duration) (lease.Lease, error) {
	pool, err := ls.pool()
	if err != nil {
		return lease.Lease{}, err
	}
	t := ls.s.names.Qualified("_leases")
	l := lease.Lease{Job: job, Holder: holder}
	var held *lease.HeldError
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", leaseLockTimeout.Milliseconds())); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO `+t+` AS l (job, holder, epoch, acquired_at, renewed_at, expires_at)
VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, epoch = l.epoch + 1,
	acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= clock_timestamp() OR l.holder = EXCLUDED.holder
RETURNING epoch, expires_at`, job, holder, seconds(ttl)).Scan(&l.Epoch, &l.Expires)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		held = &lease.HeldError{Job: job}
		return tx.QueryRow(ctx, `SELECT holder, expires_at FROM `+t+` WHERE job = $1`, job).Scan(&held.Holder, &held.Expires)
	})
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available: the holder is committing
		return lease.Lease{}, &lease.HeldError{Job: job, Holder: "a runner that is committing a batch"}
	case err != nil:
		return lease.Lease{}, ls.s.wrap("acquire lease of job "+job, err)
	case held != nil:
		return lease.Lease{}, held
	}
	return l, nil
}

func (ls leaseStore) Renew(ctx context.Context, l lease.Lease, ttl time.Duration) (lease.Lease, error) {
	pool, err := ls.pool()
	if err != nil {
		return l, err
	}
	err = pool.QueryRow(ctx, `UPDATE `+ls.s.names.Qualified("_leases")+`
SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => $4)
WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
RETURNING expires_at`, l.Job, l.Holder, l.Epoch, seconds(ttl)).Scan(&l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, lostError(l)
	}
	return l, ls.s.wrap("renew lease of job "+l.Job, err)
}

func (ls leaseStore) Check(ctx context.Context, l lease.Lease) error {
	pool, err := ls.pool()
	if err != nil {
		return err
	}
	return checkLease(ctx, pool, ls.s, l, "")
}

func (ls leaseStore) Release(ctx context.Context, l lease.Lease) error {
	pool, err := ls.pool()
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `UPDATE `+ls.s.names.Qualified("_leases")+` SET expires_at = clock_timestamp()
WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`, l.Job, l.Holder, l.Epoch)
	return ls.s.wrap("release lease of job "+l.Job, err)
}

// Current reads the job's valid lease, if any (a plain SELECT: it takes no
// row lock and so never waits for a committing holder).
func (ls leaseStore) Current(ctx context.Context, job string) (lease.Lease, error) {
	pool, err := ls.pool()
	if err != nil {
		return lease.Lease{}, err
	}
	l := lease.Lease{Job: job}
	err = pool.QueryRow(ctx, `SELECT holder, epoch, expires_at FROM `+ls.s.names.Qualified("_leases")+`
WHERE job = $1 AND expires_at > clock_timestamp()`, job).Scan(&l.Holder, &l.Epoch, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return lease.Lease{}, nil
	}
	if err != nil {
		return lease.Lease{}, ls.s.wrap("read lease of job "+job, err)
	}
	return l, nil
}

func lostError(l lease.Lease) error {
	return fmt.Errorf("job %s: %w: epoch %d of %s expired or was taken over", l.Job, lease.ErrLost, l.Epoch, l.Holder)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkLease returns nil if l is valid now; lock is "" or " FOR SHARE".
func checkLease(ctx context.Context, q querier, s *Sink, l lease.Lease, lock string) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM `+s.names.Qualified("_leases")+`
WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`+lock, l.Job, l.Holder, l.Epoch).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return lostError(l)
	}
	if err != nil {
		return fmt.Errorf("check lease of job %s: %w", l.Job, err)
	}
	return nil
}

// SetFence makes every later Write and Delete commit only while l is
// valid (see the comment at the top of this file), until Close. The zero
// Lease removes the fence.
func (s *Sink) SetFence(l lease.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fence = l
}

// fenceStatementTimeout caps one statement of a fenced transaction, so a
// holder paused in the middle of a COPY (whose server side then waits for
// data, which is not "idle") cannot hold its row locks, and so block the
// next holder's writes, for longer than this.
const fenceStatementTimeout = time.Minute

// fenceIdleTimeout caps how long a fenced transaction may sit idle (a
// paused holder) before the server ends it; the lease's remaining time
// bounds it too.
const fenceIdleTimeout = 30 * time.Second

// inTx runs fn in one transaction, fenced by the lease set with SetFence,
// with the lock_timeout of one try of waitLocks (locks.go).
func (s *Sink) inTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	s.mu.Lock()
	fence := s.fence
	s.mu.Unlock()
	return s.lockedTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if fence.Job != "" {
			idle := min(fenceIdleTimeout, max(time.Until(fence.Expires), time.Second))
			stmt := min(fenceStatementTimeout, max(time.Until(fence.Expires), 10*time.Second))
			if _, err := tx.Exec(ctx, `SELECT set_config('idle_in_transaction_session_timeout', $1, true), set_config('statement_timeout', $2, true)`,
				fmt.Sprintf("%dms", idle.Milliseconds()), fmt.Sprintf("%dms", stmt.Milliseconds())); err != nil {
				return fmt.Errorf("fence: %w", err)
			}
		}
		if err := fn(tx); err != nil {
			return err
		}
		if fence.Job == "" {
			return nil
		}
		return checkLease(ctx, tx, s, fence, " FOR SHARE")
	})
}

var (
	_ lease.Fenceable = (*Sink)(nil)
	_ lease.Store     = leaseStore{}
)
