package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/jobrun"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks"
)

// DefaultLeaseTTL is the lease TTL of one-shot runs given --job (serve
// takes its from the config).
const DefaultLeaseTTL = 30 * time.Second

// LeaseHome is where a job's lease lives:
//
//   - lock_dsn set: TABLE_leases of that PostgreSQL database; commits to
//     the sink check the lease first (lease.Guard);
//   - a PostgreSQL sink: its own TABLE_leases; every commit checks the
//     lease in its transaction (fenced);
//   - a SQLite sink: a lock file beside the database.
//
// Other sinks without lock_dsn have none (openLeaseHome returns nil).
type LeaseHome struct {
	Store  lease.Store
	Fenced bool       // the sink checks the lease inside its commits
	db     sinks.Sink // the database holding the leases, open, if any
}

// OpenLeaseHome opens the lease home of a job writing to sinkURI: the sink's
// own when it is a sinks.LeaseKeeper, else lockDSN's. A database with no
// imgvec tables yet is migrated (as the first sync would); one with pending
// upgrades is refused with the command that applies them.
func OpenLeaseHome(ctx context.Context, sinkURI, lockDSN string) (*LeaseHome, error) {
	dsn := lockDSN
	if dsn == "" {
		s, err := NewSink(sinkURI, false, "")
		if err != nil {
			return nil, err
		}
		lk, ok := s.(sinks.LeaseKeeper)
		if !ok {
			return nil, nil
		}
		if _, fenced := s.(lease.Fenceable); !fenced {
			return &LeaseHome{Store: lk.Leases()}, nil // lock files: nothing to open
		}
		dsn = sinkURI
	} else if drv, err := sinks.Lookup(dsn); err != nil || !drv.LockStore {
		return nil, Usagef("--lock-dsn %s: want a postgres:// URI (leases live in PostgreSQL)", sinks.Redact(dsn))
	}
	db, err := sinks.New(dsn, sinks.Options{AutoMigrate: migrations.AutoMigrateFresh})
	if err != nil {
		return nil, Usagef("job lease database: %v", err)
	}
	lk, keeps := db.(sinks.LeaseKeeper)
	mg, migrates := db.(sinks.Migrator)
	if !keeps || !migrates {
		return nil, Usagef("job lease database %s keeps no job leases", sinks.Redact(dsn))
	}
	m, err := mg.OpenMigrator(ctx)
	if err == nil {
		err = m.Ensure(ctx, migrations.AutoMigrateFresh, "'"+sinks.Redact(dsn)+"'", nil)
	}
	db.Close()
	if err == nil {
		err = db.OpenRead(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("job lease database %s: %w", sinks.Redact(dsn), err)
	}
	return &LeaseHome{Store: lk.Leases(), Fenced: lockDSN == "", db: db}, nil
}

func (h *LeaseHome) Close() error {
	if h == nil || h.db == nil {
		return nil
	}
	return h.db.Close()
}

// Hold takes and keeps renewing job's lease for holder. An error wrapping
// lease.ErrHeld means another runner has it.
func (h *LeaseHome) Hold(ctx context.Context, job, holder string, ttl time.Duration, log *slog.Logger) (*lease.Held, error) {
	return lease.Hold(ctx, h.Store, job, holder, ttl, log)
}

// WarnUnleased says that a job runs without a lease.
func WarnUnleased(log *slog.Logger, job, sinkURI string) {
	scheme, _, _ := strings.Cut(sinkURI, "://")
	log.Warn("job runs without a lease: sink "+scheme+" keeps none; set lock_dsn to a PostgreSQL database so that replicas cannot run the job at the same time",
		"job", job)
}

// OneShotLease takes the lease of job's shard (shard.LeaseName: the job's
// own when unsharded) for one run of `imgvec sync|backfill --job` writing
// to sinkURI, and returns it with the function that releases it. Without a
// job, or with a sink that keeps no leases and no lockDSN, the run is
// unleased (the zero Lease).
func OneShotLease(ctx context.Context, job string, shard connector.Shard, sinkURI, lockDSN string, log *slog.Logger) (jobrun.Lease, func(), error) {
	nothing := func() {}
	if job == "" {
		return jobrun.Lease{}, nothing, nil
	}
	h, err := OpenLeaseHome(ctx, sinkURI, lockDSN)
	if err != nil {
		return jobrun.Lease{}, nothing, err
	}
	if h == nil {
		WarnUnleased(log, job, sinkURI)
		return jobrun.Lease{}, nothing, nil
	}
	name := shard.LeaseName(job)
	held, err := h.Hold(ctx, name, lease.NewHolderID(), DefaultLeaseTTL, log)
	if err != nil {
		h.Close()
		if errors.Is(err, lease.ErrHeld) {
			return jobrun.Lease{}, nothing, fmt.Errorf("%w (a serve process or another run has it; trigger the job there with POST /v1/jobs/%s/run, or wait)", err, job)
		}
		return jobrun.Lease{}, nothing, err
	}
	release := func() {
		if err := held.Release(context.WithoutCancel(ctx)); err != nil {
			log.Warn("release job lease", "job", name, "err", err)
		}
		h.Close()
	}
	return jobrun.Lease{Held: held, Fenced: h.Fenced}, release, nil
}
