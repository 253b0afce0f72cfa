package migrations

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
