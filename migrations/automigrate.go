package migrations

import (
	"context"
	"errors"
	"fmt"
)

// AutoMigrate says what a sink's Open does with pending migrations. Every
// SQL sink takes it (WithAutoMigrate) and applies it with Applies.
type AutoMigrate int

const (
	// AutoMigrateNever refuses to open a schema with pending migrations.
	// The default.
	AutoMigrateNever AutoMigrate = iota
	// AutoMigrateFresh migrates a schema that holds no data: one with no
	// migration applied yet (a brand-new database or table), or one whose
	// first migrations were interrupted (a sync killed while it created
	// the database) and whose tables are still empty. It refuses a schema
	// that holds data and has pending migrations, so that upgrades stay an
	// explicit `imgvec migrate up`. This is what `imgvec sync` uses.
	AutoMigrateFresh
	// AutoMigrateAlways applies every pending migration at Open.
	AutoMigrateAlways
)

// Applies reports whether Open applies the pending migrations of st;
// holdsData says whether the sink's tables hold any data (only asked of
// AutoMigrateFresh with migrations applied).
func (mode AutoMigrate) Applies(ctx context.Context, st Status, holdsData DataProbe) (bool, error) {
	switch mode {
	case AutoMigrateAlways:
		return true, nil
	case AutoMigrateFresh:
		if st.Current == 0 && len(st.Applied) == 0 {
			return true, nil
		}
		if holdsData == nil {
			return false, nil
		}
		has, err := holdsData(ctx)
		if err != nil {
			return false, fmt.Errorf("look for data: %w", err)
		}
		return !has, nil
	}
	return false, nil
}

// DataProbe reports whether a sink's tables hold any row (items, ledger or
// runs). It is called only once the first migration is applied. nil means
// unknown: treated as holding data.
type DataProbe func(ctx context.Context) (bool, error)

// Ensure brings the schema up to date as mode allows, at a sink's Open:
// nothing to do when nothing is pending; the pending migrations applied
// when mode.Applies; otherwise an error wrapping ErrPending that gives the
// command which fixes it (`imgvec migrate up --sink SINK`; sink is the
// sink's URI as the user should type it, secrets redacted).
//
// Processes that open one fresh sink at once (the N shards of a job
// starting together) race to migrate it: a step another migrator applied
// first fails with ErrConflict, and Ensure then reads the ledger again and
// goes on from there. Each conflict means another step was applied, so it
// ends.
func (m *Migrator) Ensure(ctx context.Context, mode AutoMigrate, sink string, holdsData DataProbe) error {
	for {
		st, err := m.Status(ctx)
		if err != nil {
			return fmt.Errorf("schema status: %w", err)
		}
		if st.UpToDate() {
			return nil
		}
		apply, err := mode.Applies(ctx, st, holdsData)
		if err != nil {
			return err
		}
		if !apply {
			return fmt.Errorf("%w: schema is at version %d, this imgvec needs %d; run `imgvec migrate up --sink %s`",
				ErrPending, st.Current, st.Latest, sink)
		}
		_, err = m.Up(ctx, Options{})
		switch {
		case errors.Is(err, ErrConflict):
			continue // a concurrent migrator applied a step first
		case err != nil:
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	}
}
