package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks/milvus"
	"github.com/imgvec/imgvec/sinks/postgres"
	"github.com/imgvec/imgvec/sinks/sqlite"
)

// Sink is what every registered sink is: it syncs, searches, reports and
// streams its vectors in key order (export, dupes, map).
type Sink interface {
	connector.Sink
	connector.Searcher
	connector.StatusReader
	connector.VectorScanner
	// OpenRead opens for reading only (Status, Search, Get, Stored: what
	// `sync --dry-run` plans from, ScanVectors) without a model, and never
	// creates or migrates anything.
	OpenRead(ctx context.Context) error
}

// Options are what a command asks of a sink beyond its URI.
type Options struct {
	// AutoMigrate says what Open may do to a database that is missing or
	// behind (migrations.AutoMigrateFresh for sync, backfill and serve:
	// a brand-new database is created; upgrades stay explicit).
	AutoMigrate migrations.AutoMigrate
	// Index is the vector index strategy the sink maintains ("" or
	// connector.IndexExact: none). Only sinks with Driver.Indexes take
	// another.
	Index connector.IndexStrategy
}

// Driver is one sink's entry in the table.
type Driver struct {
	Name    string   // for messages: "PostgreSQL"
	Schemes []string // URI schemes; the first is the canonical one
	Form    string   // the URI's form, for messages
	// Indexes is true for sinks that implement connector.IndexManager and
	// take Options.Index.
	Indexes bool
	// LockStore is true for sinks whose database can hold the job leases
	// of other sinks (a job's lock_dsn); they are LeaseKeepers.
	LockStore bool
	// New validates uri and returns the sink, closed, without I/O.
	New func(uri string, o Options) (Sink, error)
}

// drivers is the registry: one line per sink.
var drivers = []Driver{
	{Name: "SQLite", Schemes: []string{"sqlite"}, Form: "sqlite://PATH", New: newSQLite},
	{Name: "PostgreSQL", Schemes: []string{"postgres", "postgresql"}, Form: "postgres://USER@HOST:PORT/DB?schema=S&table=T", Indexes: true, LockStore: true, New: newPostgres},
	{Name: "Milvus", Schemes: []string{"milvus"}, Form: "milvus://HOST:PORT?collection=NAME", New: newMilvus},
}

func newSQLite(uri string, o Options) (Sink, error) {
	return sqlite.New(uri, sqlite.WithAutoMigrate(o.AutoMigrate))
}

func newPostgres(uri string, o Options) (Sink, error) {
	return postgres.New(uri, postgres.WithAutoMigrate(o.AutoMigrate), postgres.WithIndexStrategy(o.Index))
}

func newMilvus(uri string, o Options) (Sink, error) {
	return milvus.New(uri, milvus.WithAutoMigrate(o.AutoMigrate))
}

// URIError is New's and Lookup's error: the URI or the options cannot be
// used, found without I/O (a usage mistake).
type URIError struct{ Err error }

func (e *URIError) Error() string { return e.Err.Error() }
func (e *URIError) Unwrap() error { return e.Err }

// Lookup returns the driver of uri's scheme.
func Lookup(uri string) (Driver, error) {
	if scheme, _, ok := strings.Cut(uri, "://"); ok {
		for _, d := range drivers {
			if slices.Contains(d.Schemes, strings.ToLower(scheme)) {
				return d, nil
			}
		}
	}
	return Driver{}, &URIError{fmt.Errorf("sink %q: %s", Redact(uri), Want())}
}

// Want says which URIs the registry takes, for messages.
func Want() string {
	forms := make([]string, len(drivers))
	for i, d := range drivers {
		forms[i] = d.Form
	}
	return "want " + strings.Join(forms, ", ")
}

// Indexed names the sinks that take Options.Index ("PostgreSQL").
func Indexed() string {
	var names []string
	for _, d := range drivers {
		if d.Indexes {
			names = append(names, d.Name)
		}
	}
	return strings.Join(names, ", ")
}

// New validates uri and o and returns the sink, closed, without I/O.
func New(uri string, o Options) (Sink, error) {
	d, err := Lookup(uri)
	if err != nil {
		return nil, err
	}
	if o.Index == "" {
		o.Index = connector.IndexExact
	}
	if _, err := connector.ParseIndexStrategy(string(o.Index)); err != nil {
		return nil, &URIError{err}
	}
	if o.Index != connector.IndexExact && !d.Indexes {
		return nil, &URIError{fmt.Errorf("index %s: %s sinks keep no vector index (searches are exact); only %s sinks do", o.Index, d.Name, Indexed())}
	}
	s, err := d.New(uri, o)
	if err != nil {
		return nil, &URIError{err}
	}
	return s, nil
}

// Redact masks the secrets of a sink or lock URI (redact.URI).
func Redact(uri string) string { return redact.URI(uri) }

// LeaseKeeper is the capability of a sink that keeps job leases itself
// (PostgreSQL: a lease table in the same database; SQLite: lock files
// beside the database). A sink that is also lease.Fenceable checks the
// lease inside each commit. Leases needs no open sink.
type LeaseKeeper interface {
	Leases() lease.Store
}

// Migrator is the capability of a sink with schema migrations
// (`imgvec migrate`). The caller closes the sink, which closes the
// migrator's connection.
type Migrator interface {
	OpenMigrator(ctx context.Context) (*migrations.Migrator, error)
}

// ReadMigrator is the capability of a sink whose Migrator would otherwise
// open its storage for writing (SQLite: the file, read-write, creating it):
// OpenMigratorRead opens it read-only for `imgvec migrate status` and the
// dry runs, which only read the ledger. The caller closes the sink.
type ReadMigrator interface {
	OpenMigratorRead(ctx context.Context) (*migrations.Migrator, error)
}

// Prober is the capability of a sink that answers readiness its own way,
// without an OpenRead (SQLite: the database's folder exists; the first run
// creates the file).
type Prober interface {
	Probe(ctx context.Context) error
}

// Lazy is the capability of a sink whose storage its first write creates
// (SQLite: the database file). Absent reports, creating nothing, whether
// that storage does not exist yet, and names it; Migrations lists what
// creating it applies.
type Lazy interface {
	Absent() (name string, absent bool, err error)
	Migrations() ([]migrations.Migration, error)
}

// probeTimeout bounds a readiness check that has to reach a server.
const probeTimeout = 3 * time.Second

// Probe checks, for a readiness probe, that the sink s (New's, not open)
// could serve a run: its Prober, or a read-only open within 3 s (a
// database that exists but is not migrated yet counts: the first run
// migrates it). s is left closed.
func Probe(ctx context.Context, s Sink) error {
	if p, ok := s.(Prober); ok {
		return p.Probe(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := s.OpenRead(ctx)
	if errors.Is(err, migrations.ErrPending) {
		err = nil
	}
	return errors.Join(err, s.Close())
}
