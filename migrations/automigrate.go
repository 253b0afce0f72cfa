package migrations

import (
	"context"
	"fmt"
)

// AutoMigrate says what a sink's Open does with pending migrations. Every
// SQL sink takes it (WithAutoMigrate) and applies it with Applies.
type AutoMigrate int

const (
	// AutoMigrateNever refuses to open a schema with pending migrations.
	// The default.
	AutoMigrateNever AutoMigrate = iota
	// AutoMigrateFresh migrates a schema that has no migration applied yet
	// (a brand-new database or table), but refuses an existing one with
	// pending migrations, so that upgrades stay an explicit
	// `imgvec migrate up`. This is what `imgvec sync` uses.
	AutoMigrateFresh
	// AutoMigrateAlways applies every pending migration at Open.
	AutoMigrateAlways
)

// Applies reports whether Open applies the pending migrations of st.
func (mode AutoMigrate) Applies(st Status) bool {
	switch mode {
	case AutoMigrateAlways:
		return true
	case AutoMigrateFresh:
		return st.Current == 0 && len(st.Applied) == 0
	}
	return false
}

// Ensure brings the schema up to date as mode allows, at a sink's Open:
// nothing to do when nothing is pending; the pending migrations applied
// when mode.Applies; otherwise an error wrapping ErrPending that gives the
// command which fixes it (`imgvec migrate up --sink SINK`; sink is the
// sink's URI as the user should type it, secrets redacted).
func (m *Migrator) Ensure(ctx context.Context, mode AutoMigrate, sink string) error {
	st, err := m.Status(ctx)
	if err != nil {
		return fmt.Errorf("schema status: %w", err)
	}
	if st.UpToDate() {
		return nil
	}
	if !mode.Applies(st) {
		return fmt.Errorf("%w: schema is at version %d, this imgvec needs %d; run `imgvec migrate up --sink %s`",
			ErrPending, st.Current, st.Latest, sink)
	}
	if _, err := m.Up(ctx, Options{}); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}
