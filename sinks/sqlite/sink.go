package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	vec "github.com/asg017/sqlite-vec-go-bindings/cgo"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// Scheme is the URI scheme of this sink.
const Scheme = "sqlite://"

// DefaultPath is the database file used for a bare "sqlite://".
const DefaultPath = "./imgvec.db"

// BusyTimeout is how long a connection waits for another writer's lock.
const BusyTimeout = 10 * time.Second

// Option configures a Sink.
type Option func(*Sink)

// WithAutoMigrate sets what Open does with pending migrations. Defaults to
// migrations.AutoMigrateNever.
func WithAutoMigrate(mode migrations.AutoMigrate) Option {
	return func(s *Sink) { s.autoMigrate = mode }
}

// Sink is the SQLite + sqlite-vec sink. See the package documentation.
type Sink struct {
	path        string
	autoMigrate migrations.AutoMigrate

	mu     sync.Mutex // guards the fields below against Open/Close races
	writer *sql.DB    // one connection, BEGIN IMMEDIATE transactions
	reader *sql.DB    // read-only connections (WAL readers)
	model  schema.ModelIdentity
	opened bool
}

var (
	_ connector.Sink          = (*Sink)(nil)
	_ connector.Searcher      = (*Sink)(nil)
	_ connector.StatusReader  = (*Sink)(nil)
	_ connector.VectorScanner = (*Sink)(nil)
)

// New parses uri ("sqlite://PATH"; "sqlite://" alone means ./imgvec.db)
// and validates it without touching the file system.
func New(uri string, opts ...Option) (*Sink, error) {
	path, ok := strings.CutPrefix(uri, Scheme)
	if !ok {
		return nil, fmt.Errorf("sqlite sink: uri %q does not start with %s", redact.URI(uri), Scheme)
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		return nil, fmt.Errorf("sqlite sink: uri %q: query and fragment are not supported", redact.URI(uri))
	}
	switch {
	case path == "":
		path = DefaultPath
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite sink: uri %q: give a file path (sqlite://PATH)", redact.URI(uri))
	case strings.ContainsRune(path, 0):
		return nil, fmt.Errorf("sqlite sink: uri %q: NUL in path", redact.URI(uri))
	}
	s := &Sink{path: path}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Path is the database file.
func (s *Sink) Path() string { return s.path }

// URI is the sink's URI as the CLI accepts it.
func (s *Sink) URI() string { return Scheme + s.path }

// TimePrecision is the resolution at which stored times (mtime, extraction,
// ledger and run times) round-trip: every time is kept to the nanosecond.
// mtime is limited to the years 1678-2262 (Unix nanoseconds in an int64).
func (s *Sink) TimePrecision() time.Duration { return time.Nanosecond }

var autoOnce sync.Once

// dsn builds the go-sqlite3 DSN. The path goes into a file: URI, where '%',
// '?' and '#' must be escaped.
func (s *Sink) dsn(mode string, write bool) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(s.path)
	q := fmt.Sprintf("mode=%s&_busy_timeout=%d&_foreign_keys=on&_synchronous=NORMAL", mode, BusyTimeout.Milliseconds())
	if write {
		q += "&_journal_mode=WAL&_txlock=immediate"
	}
	return "file:" + p + "?" + q
}

// connect opens the writer and reader pools. create allows creating a
// missing file.
func (s *Sink) connect(ctx context.Context, create bool) error {
	autoOnce.Do(vec.Auto)
	mode := "rw"
	if create {
		mode = "rwc"
	} else if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite sink %s: database file does not exist; create it with `imgvec migrate up --sink %s`", s.path, s.URI())
	}
	w, err := sql.Open("sqlite3", s.dsn(mode, true))
	if err != nil {
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	// One writer connection: writes are serialised here, not by
	// SQLITE_BUSY retries.
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	var jm string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&jm); err != nil {
		w.Close()
		return fmt.Errorf("sqlite sink %s: open: %w", s.path, err)
	}
	if !strings.EqualFold(jm, "wal") {
		w.Close()
		return fmt.Errorf("sqlite sink %s: journal mode is %q, want wal (is the file on a file system without shared memory?)", s.path, jm)
	}
	var v string
	if err := w.QueryRowContext(ctx, `SELECT vec_version()`).Scan(&v); err != nil {
		w.Close()
		return fmt.Errorf("sqlite sink %s: sqlite-vec is not loaded: %w", s.path, err)
	}
	r, err := sql.Open("sqlite3", s.dsn("ro", false))
	if err != nil {
		w.Close()
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	r.SetMaxOpenConns(4)
	s.writer, s.reader = w, r
	return nil
}

func (s *Sink) migrator() (*migrations.Migrator, error) { return newMigrator(s.writer) }

// newMigrator returns the migration runner over db.
func newMigrator(db *sql.DB) (*migrations.Migrator, error) {
	ms, err := migrations.SQLiteMigrations()
	if err != nil {
		return nil, err
	}
	return migrations.New(migrations.NewSQLDriver(db, migrations.SQLiteDialect), ms)
}

// OpenMigrator opens the database file, creating it if absent, without the
// model checks of Open, and returns the runner for `imgvec migrate
// up|down|status`. The Migrator is valid until Close.
func (s *Sink) OpenMigrator(ctx context.Context) (*migrations.Migrator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil {
		if err := s.connect(ctx, true); err != nil {
			return nil, err
		}
	}
	return s.migrator()
}

// OpenMigratorRead opens the existing database file read-only, as OpenRead
// does (it creates nothing and reads from a read-only directory or file),
// without its schema checks, and returns the runner for `imgvec migrate
// status` and the dry runs of up and down: they only read the ledger; a
// step it would apply fails, the connection being read-only. The Migrator
// is valid until Close.
func (s *Sink) OpenMigratorRead(ctx context.Context) (*migrations.Migrator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reader == nil {
		if err := s.connectRead(ctx); err != nil {
			return nil, err
		}
	}
	return newMigrator(s.reader)
}

// Migrate applies every pending migration (`imgvec migrate up`). It opens
// the file like OpenMigrator.
func (s *Sink) Migrate(ctx context.Context) (migrations.Result, error) {
	m, err := s.OpenMigrator(ctx)
	if err != nil {
		return migrations.Result{}, err
	}
	return m.Up(ctx, migrations.Options{})
}

// Open connects, checks the schema and the model, and makes the sink ready.
// It applies migrations only as WithAutoMigrate allows; otherwise a pending
// migration fails with an error wrapping migrations.ErrPending that names
// `imgvec migrate up --sink sqlite://PATH`. Rows of model.ID() with another
// dimension fail Open with a hint; rows of other model ids (any dimension)
// do not.
func (s *Sink) Open(ctx context.Context, model schema.ModelIdentity) error {
	if err := model.Validate(); err != nil {
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	return s.open(ctx, s.autoMigrate, &model)
}

// OpenRead opens an existing, migrated database for reading only (Status,
// Search, Get) without a model: `imgvec status` needs no model. It opens
// the file read-only and creates nothing (no database, no -wal or -shm
// file); a missing or unreadable file, or a read-only directory where
// SQLite cannot create the WAL index that even readers need, fails with
// an error that says which. Writes through a sink opened this way are
// refused.
func (s *Sink) OpenRead(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return fmt.Errorf("sqlite sink %s: already open", s.path)
	}
	if err := s.connectRead(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.closeLocked()
		}
	}()
	m, err := newMigrator(s.reader)
	if err != nil {
		return err
	}
	if err := m.Ensure(ctx, migrations.AutoMigrateNever, s.URI(), nil); err != nil {
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	s.opened = true
	return nil
}

// connectRead opens the read-only pool alone, after checking that the
// file exists and can be read, and reads the schema once so that a
// database SQLite cannot open read-only fails here with a precise error.
func (s *Sink) connectRead(ctx context.Context) error {
	autoOnce.Do(vec.Auto)
	f, err := os.Open(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlite sink %s: database file does not exist; create it with `imgvec migrate up --sink %s`", s.path, s.URI())
	case err != nil:
		return fmt.Errorf("sqlite sink %s: cannot read the database file: %w", s.path, err)
	}
	info, err := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("sqlite sink %s: cannot read the database file: %w", s.path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("sqlite sink %s: not a regular file", s.path)
	}
	dsn := s.dsn("ro", false)
	if !exists(s.path+"-wal") && !exists(s.path+"-shm") {
		// No connection has the database open (the last one to close
		// removes both files) and the file holds every commit: read it as
		// it is. A read-only connection would otherwise create -wal and
		// -shm, owned by whoever reads, and could not remove them.
		dsn += "&immutable=1"
	}
	r, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	r.SetMaxOpenConns(4)
	var n int64
	if err := r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		r.Close()
		if !exists(s.path + "-shm") {
			dir := filepath.Dir(s.path)
			return fmt.Errorf("sqlite sink %s: cannot open read-only: the database is in WAL mode and SQLite cannot create %s-shm, "+
				"which readers need too (is the directory %s read-only for this user?); make it writable, or run where a writer "+
				"holds the database open, or read a copy: %w", s.path, filepath.Base(s.path), dir, err)
		}
		return fmt.Errorf("sqlite sink %s: cannot open read-only: %w", s.path, err)
	}
	s.reader = r
	return nil
}

// open connects, migrates as mode allows, and checks model's dimension
// when there is one.
func (s *Sink) open(ctx context.Context, mode migrations.AutoMigrate, model *schema.ModelIdentity) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return fmt.Errorf("sqlite sink %s: already open", s.path)
	}
	if s.writer == nil {
		if err := s.connect(ctx, mode != migrations.AutoMigrateNever); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			s.closeLocked()
		}
	}()
	m, err := s.migrator()
	if err != nil {
		return err
	}
	if err := m.Ensure(ctx, mode, s.URI(), s.holdsData); err != nil {
		return fmt.Errorf("sqlite sink %s: %w", s.path, err)
	}
	if model != nil {
		if err := s.checkDim(ctx, *model); err != nil {
			return err
		}
		s.model = *model
	}
	s.opened = true
	return nil
}

// ErrDimensionMismatch is wrapped by Open's error when rows stored under
// the model id have another dimension than the model gives.
var ErrDimensionMismatch = errors.New("dimension mismatch")

func (s *Sink) checkDim(ctx context.Context, model schema.ModelIdentity) error {
	id := model.ID()
	// One index probe (items_model_dim) finds a mismatch; only then count.
	var dim int64
	err := s.writer.QueryRowContext(ctx,
		`SELECT dim FROM items WHERE model_id = ? AND dim <> ? LIMIT 1`, id, model.Dim).Scan(&dim)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("sqlite sink %s: check stored dimension: %w", s.path, err)
	}
	var n int64
	if err := s.writer.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE model_id = ? AND dim = ?`, id, dim).Scan(&n); err != nil {
		return fmt.Errorf("sqlite sink %s: check stored dimension: %w", s.path, err)
	}
	return fmt.Errorf("sqlite sink %s: %w: %d rows of model %s have dimension %d but the model gives %d; "+
		"the rows were written under the same model id by something else. Remove them with "+
		"`sqlite3 %s \"DELETE FROM items WHERE model_id = '%s'\"` (the next sync re-embeds them) or use another --sink",
		s.path, ErrDimensionMismatch, n, id, dim, model.Dim, s.path, id)
}

// Close releases the connections. It is safe to call more than once; the
// Sink may be opened again afterwards.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *Sink) closeLocked() error {
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	s.reader, s.writer, s.opened = nil, nil, false
	s.model = schema.ModelIdentity{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite sink %s: close: %w", s.path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writable returns the writer connection and model, or an error if the
// sink is not open or was opened with OpenRead.
func (s *Sink) writable() (*sql.DB, schema.ModelIdentity, error) {
	w, _, model, err := s.state()
	if err == nil && w == nil {
		err = fmt.Errorf("sqlite sink %s: opened read-only", s.path)
	}
	return w, model, err
}

// state returns the open connections and model, or an error if not open.
func (s *Sink) state() (w, r *sql.DB, model schema.ModelIdentity, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		return nil, nil, model, fmt.Errorf("sqlite sink %s: not open", s.path)
	}
	return s.writer, s.reader, s.model, nil
}
