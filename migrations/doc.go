// Package migrations holds every SQL sink's schema as embedded, numbered
// migration files and the runner that applies them.
//
// # Files
//
// Each sink has a folder (sqlite/, later postgres/) of files named
// NNNN_name.up.sql and NNNN_name.down.sql: four decimal digits, starting at
// 0001, without gaps or duplicates, each version with both halves. Parse
// rejects any other set with an error wrapping ErrInvalidSet, so a bad file
// fails the build's tests, not a user's database. A released file is never
// edited; a change is a new version.
//
// # Ledger
//
// The table imgvec_migrations (LedgerTable) has one row per applied version
// (version, name, applied_at). A database without it is at version 0.
//
// # Runner
//
// A Migrator runs a sink's migrations through a Driver, the two-method
// interface a sink implements over its own connection type (SQLDriver does
// it for database/sql; a pgx driver needs no database/sql). Contract:
//
//   - Status reads the ledger and writes nothing. A ledger version this
//     build does not know fails with ErrUnknownVersion (a newer imgvec
//     migrated the database).
//   - Up applies pending versions in ascending order; Down rolls back
//     applied versions in descending order (one step by default, or down to
//     Options.TargetVersion, or everything with AllVersions).
//   - Each step is ONE transaction that runs the SQL and inserts or deletes
//     the step's ledger row, so a crash leaves a step applied and recorded,
//     or neither. The driver re-checks the ledger inside that transaction
//     and fails with ErrConflict if a concurrent migrator got there first.
//   - A failing step stops the run; the steps before it stay applied, and
//     the error names the failing version.
//   - Options.DryRun returns the planned steps (with their SQL) and executes
//     nothing.
//
// Sinks refuse to open a database with pending migrations (their error
// wraps ErrPending and names `imgvec migrate up --sink URI`), so a schema
// change is always an explicit step, except where a sink documents an
// auto-migrate option for a brand-new database.
package migrations
