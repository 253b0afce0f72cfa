package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Dialect is what SQLDriver needs to know about a database/sql back end.
type Dialect struct {
	// Name is used in error messages.
	Name string
	// LedgerExists is a query returning one row with the number of tables
	// named by its single argument (the ledger table).
	LedgerExists string
	// CreateLedger creates the ledger table if it does not exist.
	CreateLedger string
	// Placeholder returns the n-th (1-based) bind parameter.
	Placeholder func(n int) string
	// Begin, when non-nil, runs first in every migration transaction
	// (e.g. taking a transaction-scoped lock).
	Begin string
}

// SQLiteDialect is the dialect of github.com/mattn/go-sqlite3. Migrations run in
// the transaction that database/sql begins; with the DSN parameter
// _txlock=immediate that transaction takes the write lock at once, which
// serialises concurrent migrators.
var SQLiteDialect = Dialect{
	Name:         "sqlite",
	LedgerExists: `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
	CreateLedger: `CREATE TABLE IF NOT EXISTS ` + LedgerTable + ` (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`,
	Placeholder: func(int) string { return "?" },
}

// SQLDriver is a Driver over database/sql.
type SQLDriver struct {
	db      *sql.DB
	dialect Dialect
}

// NewSQLDriver returns a Driver that migrates db.
func NewSQLDriver(db *sql.DB, dialect Dialect) *SQLDriver {
	return &SQLDriver{db: db, dialect: dialect}
}

const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Applied implements Driver.
func (d *SQLDriver) Applied(ctx context.Context) ([]AppliedVersion, error) {
	return d.applied(ctx, d.db)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (d *SQLDriver) applied(ctx context.Context, q querier) ([]AppliedVersion, error) {
	var n int
	if err := q.QueryRowContext(ctx, d.dialect.LedgerExists, LedgerTable).Scan(&n); err != nil {
		return nil, fmt.Errorf("%s: look for %s: %w", d.dialect.Name, LedgerTable, err)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT version, name, applied_at FROM `+LedgerTable+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", d.dialect.Name, LedgerTable, err)
	}
	defer rows.Close()
	var out []AppliedVersion
	for rows.Next() {
		var a AppliedVersion
		var at string
		if err := rows.Scan(&a.Version, &a.Name, &at); err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", d.dialect.Name, LedgerTable, err)
		}
		a.AppliedAt, _ = time.Parse(timeLayout, at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", d.dialect.Name, LedgerTable, err)
	}
	return out, nil
}

// Apply implements Driver.
func (d *SQLDriver) Apply(ctx context.Context, step Step) (err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d.dialect.Begin != "" {
		if _, err := tx.ExecContext(ctx, d.dialect.Begin); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.dialect.CreateLedger); err != nil {
		return fmt.Errorf("create %s: %w", LedgerTable, err)
	}
	p := d.dialect.Placeholder
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+LedgerTable+` WHERE version = `+p(1), step.Version).Scan(&n); err != nil {
		return fmt.Errorf("read %s: %w", LedgerTable, err)
	}
	switch {
	case step.Direction == DirectionUp && n != 0:
		return fmt.Errorf("%w: version %d is already applied", ErrConflict, step.Version)
	case step.Direction == DirectionDown && n == 0:
		return fmt.Errorf("%w: version %d is not applied", ErrConflict, step.Version)
	}
	if _, err := tx.ExecContext(ctx, step.SQL); err != nil {
		return err
	}
	switch step.Direction {
	case DirectionUp:
		_, err = tx.ExecContext(ctx, `INSERT INTO `+LedgerTable+` (version, name, applied_at) VALUES (`+p(1)+`, `+p(2)+`, `+p(3)+`)`,
			step.Version, step.Name, time.Now().UTC().Format(timeLayout))
	case DirectionDown:
		_, err = tx.ExecContext(ctx, `DELETE FROM `+LedgerTable+` WHERE version = `+p(1), step.Version)
	default:
		err = errors.New("unknown direction " + string(step.Direction))
	}
	if err != nil {
		return fmt.Errorf("record version %d in %s: %w", step.Version, LedgerTable, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
