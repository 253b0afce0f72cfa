package migrations

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LedgerTable is the table, in every SQL sink, that records which
// migrations are applied: one row per applied version.
const LedgerTable = "imgvec_migrations"

// ErrPending is wrapped by errors that refuse to work on a schema with
// pending migrations.
var ErrPending = errors.New("pending migrations")

// ErrUnknownVersion is wrapped when the ledger records a version this build
// does not know: the database was migrated by a newer imgvec.
var ErrUnknownVersion = errors.New("database schema is newer than this imgvec")

// ErrConflict is returned by Driver.Apply when the ledger no longer says
// what the runner saw (another process migrated concurrently). Nothing was
// changed by that step.
var ErrConflict = errors.New("migration ledger changed concurrently")

// AppliedVersion is one row of the ledger.
type AppliedVersion struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// Step is one migration to apply in one direction.
type Step struct {
	Direction Direction
	Version   int
	Name      string
	SQL       string
}

// Driver is what the runner needs from a database. It is deliberately
// small so that a pgx-based PostgreSQL sink can implement it without
// database/sql.
type Driver interface {
	// Applied returns the ledger rows, in ascending version order. A
	// database without the ledger table has none; Applied must not create
	// it (status and dry runs write nothing).
	Applied(ctx context.Context) ([]AppliedVersion, error)
	// Apply runs one step in ONE transaction: it creates the ledger table
	// if absent, checks that the step's version is absent from the ledger
	// (up) or present (down) and returns an error wrapping ErrConflict if
	// not, executes step.SQL, inserts (up) or deletes (down) the ledger
	// row, and commits. Drivers for servers also serialise concurrent
	// migrators in that transaction (e.g. a transaction-scoped advisory
	// lock taken first).
	Apply(ctx context.Context, step Step) error
}

// Migrator applies one sink's migrations through a Driver.
type Migrator struct {
	driver Driver
	ms     []Migration
}

// New returns a Migrator for ms, which must be numbered 1..N without gaps
// (as Parse returns them).
func New(driver Driver, ms []Migration) (*Migrator, error) {
	if driver == nil {
		return nil, errors.New("migrations: nil driver")
	}
	if err := validate(ms); err != nil {
		return nil, err
	}
	return &Migrator{driver: driver, ms: append([]Migration(nil), ms...)}, nil
}

// Latest is the highest version this build knows.
func (m *Migrator) Latest() int { return len(m.ms) }

// Migrations returns the known migrations in version order.
func (m *Migrator) Migrations() []Migration { return append([]Migration(nil), m.ms...) }

// Status is the state of the schema.
type Status struct {
	Current int              // highest applied version, 0 for an empty database
	Latest  int              // highest known version
	Applied []AppliedVersion // ledger rows, ascending
	Pending []Migration      // known migrations not in the ledger, ascending
}

// UpToDate reports whether nothing is pending.
func (s Status) UpToDate() bool { return len(s.Pending) == 0 }

// Status reads the ledger. It fails with ErrUnknownVersion when the ledger
// holds a version this build does not know.
func (m *Migrator) Status(ctx context.Context) (Status, error) {
	applied, err := m.driver.Applied(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("read migration ledger: %w", err)
	}
	st := Status{Latest: len(m.ms), Applied: applied}
	done := map[int]bool{}
	for _, a := range applied {
		if a.Version < 1 || a.Version > len(m.ms) {
			return st, fmt.Errorf("%w: %s holds version %d, this build knows versions 1 to %d; upgrade imgvec",
				ErrUnknownVersion, LedgerTable, a.Version, len(m.ms))
		}
		done[a.Version] = true
		st.Current = max(st.Current, a.Version)
	}
	for _, mig := range m.ms {
		if !done[mig.Version] {
			st.Pending = append(st.Pending, mig)
		}
	}
	return st, nil
}

// AllVersions, as Options.TargetVersion of Down, rolls back every applied
// migration.
const AllVersions = -1

// Options tune Up and Down. The zero value applies every pending migration
// (Up) or rolls back the last applied one (Down).
type Options struct {
	// DryRun plans the steps and returns them without executing anything.
	DryRun bool
	// MaxSteps caps the number of steps; 0 means no cap for Up and 1 for
	// Down when TargetVersion is 0.
	MaxSteps int
	// TargetVersion is, for Up, the highest version to apply (0: the
	// latest); for Down, the version to end at (migrations above it are
	// rolled back; AllVersions rolls back everything; 0: one step).
	TargetVersion int
}

// StepResult is one executed (or, in a dry run, planned) step.
type StepResult struct {
	Step
	Duration time.Duration // 0 in a dry run
}

// Result lists the steps Up or Down took, in the order taken.
type Result struct {
	Direction Direction
	DryRun    bool
	Steps     []StepResult
}

// Up applies pending migrations in ascending order, each in its own
// transaction that also records its version. A failing step stops the run:
// the steps before it stay applied and the error names the failing version.
func (m *Migrator) Up(ctx context.Context, opts Options) (Result, error) {
	res := Result{Direction: DirectionUp, DryRun: opts.DryRun}
	target := opts.TargetVersion
	switch {
	case target == 0:
		target = len(m.ms)
	case target < 0 || target > len(m.ms):
		return res, fmt.Errorf("migrate up: target version %d is not between 1 and %d", target, len(m.ms))
	}
	st, err := m.Status(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", err)
	}
	var plan []Step
	for _, mig := range st.Pending {
		if mig.Version > target || (opts.MaxSteps > 0 && len(plan) == opts.MaxSteps) {
			break
		}
		plan = append(plan, Step{Direction: DirectionUp, Version: mig.Version, Name: mig.Name, SQL: mig.Up})
	}
	return m.run(ctx, res, plan)
}

// Down rolls back applied migrations in descending order, each in its own
// transaction that also removes its version from the ledger.
func (m *Migrator) Down(ctx context.Context, opts Options) (Result, error) {
	res := Result{Direction: DirectionDown, DryRun: opts.DryRun}
	if opts.TargetVersion > len(m.ms) || opts.TargetVersion < AllVersions {
		return res, fmt.Errorf("migrate down: target version %d is not between 0 and %d", opts.TargetVersion, len(m.ms))
	}
	st, err := m.Status(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate down: %w", err)
	}
	target, maxSteps := opts.TargetVersion, opts.MaxSteps
	switch {
	case target == AllVersions:
		target = 0
	case target == 0 && maxSteps == 0:
		maxSteps = 1
	}
	var plan []Step
	for i := len(st.Applied) - 1; i >= 0; i-- {
		a := st.Applied[i]
		if a.Version <= target || (maxSteps > 0 && len(plan) == maxSteps) {
			break
		}
		mig := m.ms[a.Version-1]
		plan = append(plan, Step{Direction: DirectionDown, Version: mig.Version, Name: mig.Name, SQL: mig.Down})
	}
	return m.run(ctx, res, plan)
}

func (m *Migrator) run(ctx context.Context, res Result, plan []Step) (Result, error) {
	for _, step := range plan {
		if res.DryRun {
			res.Steps = append(res.Steps, StepResult{Step: step})
			continue
		}
		start := time.Now()
		if err := m.driver.Apply(ctx, step); err != nil {
			return res, fmt.Errorf("migrate %s %04d_%s: %w", step.Direction, step.Version, step.Name, err)
		}
		res.Steps = append(res.Steps, StepResult{Step: step, Duration: time.Since(start)})
	}
	return res, nil
}
