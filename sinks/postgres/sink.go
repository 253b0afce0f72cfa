package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvector "github.com/pgvector/pgvector-go/pgx"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// Scheme is the URI scheme of this sink ("postgresql://" is accepted too).
const Scheme = "postgres://"

// EnvDSN is the environment variable New reads when given an empty DSN.
const EnvDSN = "IMGVEC_PG_DSN"

// Defaults of the DSN's imgvec parameters.
const (
	DefaultSchema = "public"
	DefaultTable  = "images"
)

// Option configures a Sink.
type Option func(*Sink)

// WithAutoMigrate sets what Open does with pending migrations. Defaults to
// migrations.AutoMigrateNever.
func WithAutoMigrate(mode migrations.AutoMigrate) Option {
	return func(s *Sink) { s.autoMigrate = mode }
}

// WithMaxConns caps the connection pool. Defaults to 4; at least 2, so
// that a sync's writes go on while Stored streams over one connection.
func WithMaxConns(n int32) Option { return func(s *Sink) { s.maxConns = max(n, 2) } }

// Sink is the PostgreSQL + pgvector sink. See the package documentation.
type Sink struct {
	names       migrations.PGNames
	cfg         *pgxpool.Config // parsed DSN without imgvec's parameters
	dsn         string          // as given: its secrets are scrubbed from every error message
	redacted    string          // the DSN with its secrets masked (redact.URI), for messages
	autoMigrate migrations.AutoMigrate
	maxConns    int32
	retryPolicy retry.Policy
	lockWait    LockWait                // WithLockWait; zero until an option sets it: DefaultLockWait
	log         *slog.Logger            // WithLogger; nil: slog.Default()
	strategy    connector.IndexStrategy // WithIndexStrategy
	candidates  int                     // WithCandidates
	storage     Storage                 // the DSN's storage parameter; "" takes the table's
	// storedIDs is set when the last batch written had stored ids: the
	// next one looks before it COPYs (see copyPath).
	storedIDs atomic.Bool

	mu       sync.Mutex // guards the fields below against Open/Close races
	migConn  *pgx.Conn  // plain connection (no vector types) for migrations
	pool     *pgxpool.Pool
	model    schema.ModelIdentity
	opened   bool
	writer   bool        // opened with a model (Open), not OpenRead
	deferred bool        // the model's index is built by BuildDeferredIndex
	stored   Storage     // the embedding column's type, read at Open
	fence    lease.Lease // SetFence: checked in every write transaction
}

var (
	_ connector.Sink          = (*Sink)(nil)
	_ connector.Searcher      = (*Sink)(nil)
	_ connector.StatusReader  = (*Sink)(nil)
	_ connector.VectorScanner = (*Sink)(nil)
)

// New parses dsn, a libpq-style URL
//
//	postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=...&schema=S&table=T&storage=vector|halfvec
//
// ("" reads $IMGVEC_PG_DSN). schema (default public), table (default
// images) and storage (see Storage) are imgvec's own parameters and are not
// sent to the server; the names must be lower-case SQL identifiers
// (migrations.PGNames.Validate). New does no network I/O. The password
// never appears in errors.
func New(dsn string, opts ...Option) (*Sink, error) {
	if dsn == "" {
		dsn = os.Getenv(EnvDSN)
		if dsn == "" {
			return nil, fmt.Errorf("postgres sink: no DSN given and $%s is empty", EnvDSN)
		}
	}
	if !strings.HasPrefix(dsn, Scheme) && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, fmt.Errorf("postgres sink: DSN does not start with %s", Scheme)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// url's error quotes the input: say only where it failed.
		return nil, fmt.Errorf("postgres sink: DSN is not a valid URL")
	}
	s := &Sink{maxConns: 4, retryPolicy: retry.Default, strategy: connector.IndexExact, candidates: DefaultCandidates,
		dsn: dsn, redacted: redact.URI(dsn)}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: DSN query is not valid (escape ';' and '&' inside values)")
	}
	s.names = migrations.PGNames{Schema: DefaultSchema, Table: DefaultTable}
	if v, ok := q["schema"]; ok {
		s.names.Schema = v[len(v)-1]
	}
	if v, ok := q["table"]; ok {
		s.names.Table = v[len(v)-1]
	}
	if v, ok := q["storage"]; ok {
		if s.storage, err = ParseStorage(v[len(v)-1]); err != nil {
			return nil, fmt.Errorf("postgres sink: DSN: %w", err)
		}
	}
	q.Del("schema")
	q.Del("table")
	q.Del("storage")
	clean := *u
	clean.RawQuery = q.Encode()

	if err := s.names.Validate(); err != nil {
		return nil, fmt.Errorf("postgres sink %s: %w", s.redacted, err)
	}
	cfg, err := pgxpool.ParseConfig(clean.String())
	if err != nil {
		return nil, s.wrap("parse DSN", err)
	}
	s.cfg = cfg
	for _, o := range opts {
		o(s)
	}
	if _, err := connector.ParseIndexStrategy(string(s.strategy)); err != nil {
		return nil, fmt.Errorf("postgres sink %s: %w", s.redacted, err)
	}
	if s.storage != "" {
		if _, err := ParseStorage(string(s.storage)); err != nil {
			return nil, fmt.Errorf("postgres sink %s: %w", s.redacted, err)
		}
	}
	return s, nil
}

// Names are the schema and items table the sink uses.
func (s *Sink) Names() migrations.PGNames { return s.names }

// URI is the DSN with its secrets (password, sslpassword, …) replaced by
// xxxxx (redact.URI).
func (s *Sink) URI() string { return s.redacted }

// TimePrecision is the resolution at which stored times round-trip:
// timestamptz keeps microseconds. mtime is stored as Unix nanoseconds and
// round-trips exactly.
func (s *Sink) TimePrecision() time.Duration { return time.Microsecond }

// redactedError keeps the cause for errors.Is/As but scrubs the DSN's
// secrets from its text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// wrap prefixes err with the sink and the operation and scrubs the DSN's
// secrets from the message.
func (s *Sink) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := redact.Scrub(fmt.Sprintf("postgres sink %s: %s: %v", s.redacted, op, err), s.dsn)
	return &redactedError{msg: msg, err: err}
}

func (s *Sink) migrator() (*migrations.Migrator, error) {
	ms, err := migrations.PostgresMigrations(s.names)
	if err != nil {
		return nil, err
	}
	d, err := migrations.NewPgxDriver(s.migConn, s.names)
	if err != nil {
		return nil, err
	}
	return migrations.New(lockWaitingDriver{d, s}, ms)
}

// lockWaitingDriver retries a migration step that met a locked table (see
// locks.go): each step is one transaction, so a rerun is safe.
type lockWaitingDriver struct {
	*migrations.PgxDriver
	s *Sink
}

func (d lockWaitingDriver) Apply(ctx context.Context, step migrations.Step) error {
	return d.s.waitLocks(ctx, fmt.Sprintf("migration %d %s", step.Version, step.Direction), d.s.migConn, func() error {
		return d.PgxDriver.Apply(ctx, step)
	})
}

// connectMigrator opens the plain migration connection: no pgvector types
// are registered on it, so it works before the extension exists.
func (s *Sink) connectMigrator(ctx context.Context) error {
	if s.migConn != nil {
		return nil
	}
	cc := s.cfg.ConnConfig.Copy()
	if _, set := cc.RuntimeParams["lock_timeout"]; !set {
		cc.RuntimeParams["lock_timeout"] = s.lockTimeoutMS()
	}
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return s.wrap("connect", err)
	}
	s.migConn = c
	return nil
}

// OpenMigrator connects without the model checks of Open and returns the
// runner for `imgvec migrate up|down|status`. The Migrator is valid until
// Close.
func (s *Sink) OpenMigrator(ctx context.Context) (*migrations.Migrator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connectMigrator(ctx); err != nil {
		return nil, err
	}
	m, err := s.migrator()
	if err != nil {
		return nil, s.wrap("migrations", err)
	}
	return m, nil
}

// Migrate applies every pending migration (`imgvec migrate up`).
func (s *Sink) Migrate(ctx context.Context) (migrations.Result, error) {
	m, err := s.OpenMigrator(ctx)
	if err != nil {
		return migrations.Result{}, err
	}
	res, err := m.Up(ctx, migrations.Options{})
	if err != nil {
		return res, s.wrap("migrate up", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.settledStorage(ctx, true)
	return res, err
}

// Open connects, checks the schema and the model, and makes the sink ready.
// Migrations are applied only as WithAutoMigrate allows; otherwise a pending
// migration fails with an error wrapping migrations.ErrPending that names
// `imgvec migrate up --sink DSN`. Rows of model.ID() with another dimension
// fail Open (ErrDimensionMismatch); rows of other model ids do not.
func (s *Sink) Open(ctx context.Context, model schema.ModelIdentity) error {
	if err := model.Validate(); err != nil {
		return fmt.Errorf("postgres sink %s: %w", s.redacted, err)
	}
	return s.open(ctx, s.autoMigrate, &model)
}

// OpenRead opens an existing, migrated schema for reading only (Status,
// Search, Get) without a model. Writes through a sink opened this way are
// refused.
func (s *Sink) OpenRead(ctx context.Context) error {
	return s.open(ctx, migrations.AutoMigrateNever, nil)
}

func (s *Sink) open(ctx context.Context, mode migrations.AutoMigrate, model *schema.ModelIdentity) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return fmt.Errorf("postgres sink %s: already open", s.redacted)
	}
	defer func() {
		if err != nil {
			s.closeLocked()
		}
	}()
	if err := s.connectMigrator(ctx); err != nil {
		return err
	}
	m, err := s.migrator()
	if err != nil {
		return s.wrap("migrations", err)
	}
	if err := m.Ensure(ctx, mode, "'"+s.redacted+"'", s.holdsData); err != nil {
		return s.wrap("table "+s.names.Qualified(""), err)
	}
	if s.stored, err = s.settledStorage(ctx, model != nil); err != nil {
		return err
	}
	// The plain connection is only for migrations: release it now.
	_ = s.migConn.Close(ctx)
	s.migConn = nil

	cfg := s.cfg.Copy()
	if !strings.Contains(s.cfg.ConnString(), "pool_max_conns") {
		cfg.MaxConns = s.maxConns
	}
	// pgvector's types are registered on pool connections only, after the
	// migrations made sure the extension exists.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		return pgxvector.RegisterTypes(ctx, c)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return s.wrap("connect", err)
	}
	s.pool = pool
	if err := pool.Ping(ctx); err != nil {
		return s.wrap("connect (is the vector extension installed? run `imgvec migrate up`)", err)
	}
	if model != nil {
		if err := s.checkDim(ctx, *model); err != nil {
			return err
		}
		s.model = *model
		s.writer = true
		if err := s.checkDeferred(ctx); err != nil {
			return err
		}
	}
	s.opened = true
	return nil
}

// settledStorage is settleStorage waiting for a locked table (locks.go):
// its conversion is one statement, checked again before each try.
func (s *Sink) settledStorage(ctx context.Context, mayConvert bool) (st Storage, err error) {
	err = s.waitLocks(ctx, "settle the storage of "+s.names.Qualified("")+".embedding", s.migConn, func() (err error) {
		st, err = s.settleStorage(ctx, mayConvert)
		return err
	})
	return st, err
}

// ErrDimensionMismatch is wrapped by Open's error when rows stored under
// the model id have another dimension than the model gives.
var ErrDimensionMismatch = errors.New("dimension mismatch")

func (s *Sink) checkDim(ctx context.Context, model schema.ModelIdentity) error {
	id := model.ID()
	var dim, n int64
	err := s.waitLocks(ctx, "check stored dimension", s.pool, func() error {
		return s.lockedTx(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT dim, count(*) FROM `+s.names.Qualified("")+
				` WHERE model_id = $1 AND dim <> $2 GROUP BY dim ORDER BY count(*) DESC LIMIT 1`, id, model.Dim).Scan(&dim, &n)
		})
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return s.wrap("check stored dimension", err)
	}
	return fmt.Errorf("postgres sink %s: %w: %d rows of model %s have dimension %d but the model gives %d; "+
		"the rows were written under the same model id by something else. Remove them with "+
		"`DELETE FROM %s WHERE model_id = '%s';` (the next sync re-embeds them) or use another table",
		s.redacted, ErrDimensionMismatch, n, id, dim, model.Dim, s.names.Qualified(""), id)
}

// Close releases the connections. It is safe to call more than once; the
// Sink may be opened again afterwards.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *Sink) closeLocked() error {
	var err error
	if s.pool != nil {
		s.pool.Close()
	}
	if s.migConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.migConn.Close(ctx)
		cancel()
	}
	s.pool, s.migConn, s.opened, s.writer, s.deferred, s.stored = nil, nil, false, false, false, ""
	s.model, s.fence = schema.ModelIdentity{}, lease.Lease{}
	return s.wrap("close", err)
}

// state returns the pool and model, or an error if not open.
func (s *Sink) state(write bool) (*pgxpool.Pool, schema.ModelIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.opened:
		return nil, s.model, fmt.Errorf("postgres sink %s: not open", s.redacted)
	case write && !s.writer:
		return nil, s.model, fmt.Errorf("postgres sink %s: opened for reading only", s.redacted)
	}
	return s.pool, s.model, nil
}
