package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed postgres/*.sql
var postgresFiles embed.FS

// MaxIdentifierLen is PostgreSQL's limit on identifier length (NAMEDATALEN-1);
// longer names are silently truncated by the server, so they are refused.
const MaxIdentifierLen = 63

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ValidIdentifier refuses a schema or table name that is not 1 to 63
// characters of [a-z0-9_] starting with a letter or underscore, or that
// begins with "pg_" (reserved for system schemas). Names that pass need no
// quoting, but are quoted with pgx.Identifier all the same.
func ValidIdentifier(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", what)
	case len(name) > MaxIdentifierLen:
		return fmt.Errorf("%s name %q is %d characters long; PostgreSQL allows %d", what, name, len(name), MaxIdentifierLen)
	case !identRE.MatchString(name):
		return fmt.Errorf("%s name %q: use lower-case letters, digits and underscores, starting with a letter or underscore", what, name)
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("%s name %q: names starting with pg_ are reserved", what, name)
	}
	return nil
}

// PGNames are the identifiers the PostgreSQL sink's tables derive from: the
// schema, and the items table whose name prefixes the others
// (TABLE_failures, TABLE_runs and the indexes).
type PGNames struct {
	Schema string
	Table  string
}

// pgSuffixes are every suffix the templates append to the table name; the
// longest bounds the table name's length.
var pgSuffixes = []string{"", "_failures", "_runs", "_model_sha256", "_source", "_failures_source",
	"_failures_last_seen", "_runs_started_at", "_leases", "_runs_job", "_runs_open", "_source_key", "_failures_key", "_runs_shard"}

// MaxTableLen is the longest items table name whose derived names fit in
// MaxIdentifierLen.
var MaxTableLen = func() int {
	n := 0
	for _, s := range pgSuffixes {
		n = max(n, len(s))
	}
	return MaxIdentifierLen - n
}()

// Validate checks both names (see ValidIdentifier) and that every name
// derived from Table fits in 63 characters.
func (n PGNames) Validate() error {
	if err := ValidIdentifier("schema", n.Schema); err != nil {
		return err
	}
	if err := ValidIdentifier("table", n.Table); err != nil {
		return err
	}
	if len(n.Table) > MaxTableLen {
		return fmt.Errorf("table name %q is %d characters long; at most %d leave room for the names derived from it (%s_failures_last_seen)",
			n.Table, len(n.Table), MaxTableLen, n.Table)
	}
	return nil
}

// Qualified returns the quoted schema-qualified name of Table+suffix.
func (n PGNames) Qualified(suffix string) string {
	return pgx.Identifier{n.Schema, n.Table + suffix}.Sanitize()
}

// Ledger returns the quoted schema-qualified migration ledger table.
func (n PGNames) Ledger() string { return pgx.Identifier{n.Schema, LedgerTable}.Sanitize() }

// PostgresMigrations returns the PostgreSQL sink's migrations
// (migrations/postgres) for the tables named by names, validated by Parse.
// The files are text/template templates whose only inputs are identifiers
// derived from the validated names and quoted with pgx.Identifier:
// {{schema}}, {{table "SUFFIX"}} (schema-qualified) and {{name "SUFFIX"}}
// (unqualified, for indexes).
func PostgresMigrations(names PGNames) ([]Migration, error) {
	if err := names.Validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(postgresFiles, "postgres")
	if err != nil {
		return nil, err
	}
	ms, err := Parse(sub)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, s := range pgSuffixes {
		known[s] = true
	}
	suffix := func(s string) (string, error) {
		if !known[s] {
			return "", fmt.Errorf("unknown table suffix %q (add it to pgSuffixes)", s)
		}
		return s, nil
	}
	funcs := template.FuncMap{
		"schema": func() string { return pgx.Identifier{names.Schema}.Sanitize() },
		"table": func(s string) (string, error) {
			s, err := suffix(s)
			return names.Qualified(s), err
		},
		"name": func(s string) (string, error) {
			s, err := suffix(s)
			return pgx.Identifier{names.Table + s}.Sanitize(), err
		},
	}
	render := func(version int, dir, text string) (string, error) {
		tpl, err := template.New(fmt.Sprintf("%04d.%s", version, dir)).Funcs(funcs).Option("missingkey=error").Parse(text)
		if err != nil {
			return "", fmt.Errorf("%w: %04d %s: %v", ErrInvalidSet, version, dir, err)
		}
		var b strings.Builder
		if err := tpl.Execute(&b, nil); err != nil {
			return "", fmt.Errorf("%w: %04d %s: %v", ErrInvalidSet, version, dir, err)
		}
		return b.String(), nil
	}
	for i := range ms {
		if ms[i].Up, err = render(ms[i].Version, "up", ms[i].Up); err != nil {
			return nil, err
		}
		if ms[i].Down, err = render(ms[i].Version, "down", ms[i].Down); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// PgxConn is what PgxDriver needs: *pgx.Conn and *pgxpool.Pool have it.
// Migrations should run on connections WITHOUT pgvector's types registered
// (registering them fails while the extension does not exist yet).
type PgxConn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PGLockKey is the pg_advisory_xact_lock key every imgvec migration step
// takes first, so concurrent migrators of one database wait for each other
// (also across schemas: CREATE SCHEMA/EXTENSION IF NOT EXISTS race
// otherwise). The lock is transaction-scoped: it cannot outlive the step.
const PGLockKey int64 = 0x696d677665630001 // "imgvec" 0001

// ErrExtensionPermission is wrapped by Apply's error when the database
// user may not create the vector extension.
var ErrExtensionPermission = errors.New("permission denied to create extension vector")

// ErrExtensionMissing is wrapped by Apply's error when the server has no
// pgvector installed.
var ErrExtensionMissing = errors.New("extension vector is not installed on the server")

// PgxDriver is a Driver for PostgreSQL over pgx. Its ledger is
// SCHEMA.imgvec_migrations with one row per (table, version), so several
// item tables may share a schema.
type PgxDriver struct {
	conn  PgxConn
	names PGNames
}

// NewPgxDriver returns a Driver that migrates the tables named by names
// through conn.
func NewPgxDriver(conn PgxConn, names PGNames) (*PgxDriver, error) {
	if conn == nil {
		return nil, errors.New("migrations: nil pgx connection")
	}
	if err := names.Validate(); err != nil {
		return nil, err
	}
	return &PgxDriver{conn: conn, names: names}, nil
}

// Applied implements Driver. It writes nothing.
func (d *PgxDriver) Applied(ctx context.Context) ([]AppliedVersion, error) {
	var exists bool
	if err := d.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, d.names.Ledger()).Scan(&exists); err != nil {
		return nil, fmt.Errorf("postgres: look for %s: %w", d.names.Ledger(), err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := d.conn.Query(ctx, `SELECT version, name, applied_at FROM `+d.names.Ledger()+` WHERE tbl = $1 ORDER BY version`, d.names.Table)
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", d.names.Ledger(), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppliedVersion, error) {
		var a AppliedVersion
		err := r.Scan(&a.Version, &a.Name, &a.AppliedAt)
		a.AppliedAt = a.AppliedAt.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", d.names.Ledger(), err)
	}
	return out, nil
}

// Apply implements Driver: one transaction that takes the advisory lock,
// creates the schema and the ledger if absent, checks the ledger, runs the
// step and records it.
func (d *PgxDriver) Apply(ctx context.Context, step Step) (err error) {
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, PGLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{d.names.Schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", d.names.Schema, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+d.names.Ledger()+` (
	tbl        text NOT NULL,
	version    integer NOT NULL,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tbl, version)
)`); err != nil {
		return fmt.Errorf("create %s: %w", d.names.Ledger(), err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+d.names.Ledger()+` WHERE tbl = $1 AND version = $2`,
		d.names.Table, step.Version).Scan(&n); err != nil {
		return fmt.Errorf("read %s: %w", d.names.Ledger(), err)
	}
	switch {
	case step.Direction == DirectionUp && n != 0:
		return fmt.Errorf("%w: version %d is already applied", ErrConflict, step.Version)
	case step.Direction == DirectionDown && n == 0:
		return fmt.Errorf("%w: version %d is not applied", ErrConflict, step.Version)
	}
	// No arguments: pgx sends the step with the simple protocol, so a file
	// may hold several statements.
	if _, err := tx.Exec(ctx, step.SQL); err != nil {
		return explainPgError(err)
	}
	switch step.Direction {
	case DirectionUp:
		_, err = tx.Exec(ctx, `INSERT INTO `+d.names.Ledger()+` (tbl, version, name, applied_at) VALUES ($1, $2, $3, $4)`,
			d.names.Table, step.Version, step.Name, time.Now().UTC())
	case DirectionDown:
		_, err = tx.Exec(ctx, `DELETE FROM `+d.names.Ledger()+` WHERE tbl = $1 AND version = $2`, d.names.Table, step.Version)
	default:
		err = errors.New("unknown direction " + string(step.Direction))
	}
	if err != nil {
		return fmt.Errorf("record version %d in %s: %w", step.Version, d.names.Ledger(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// explainPgError turns the errors of CREATE EXTENSION vector into ones that
// say what to do.
func explainPgError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "vector") {
		return err
	}
	switch {
	case pe.Code == "42501" && strings.Contains(pe.Message, "extension"):
		return fmt.Errorf("%w: the database user may not create it; a database administrator (superuser, or the database owner where pgvector is trusted) must run `CREATE EXTENSION IF NOT EXISTS vector;` in this database once, then rerun `imgvec migrate up`: %w",
			ErrExtensionPermission, err)
	case pe.Code == "58P01" || pe.Code == "0A000" || strings.Contains(pe.Message, "is not available"):
		return fmt.Errorf("%w: install the pgvector extension on the PostgreSQL server (its vector.control and vector.so), then rerun `imgvec migrate up`: %w",
			ErrExtensionMissing, err)
	}
	return err
}
