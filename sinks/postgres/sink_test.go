package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/x448/float16"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/schema/testenv"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

// testDSN returns the test server's DSN or skips (fails under CI).
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("IMGVEC_TEST_PG_DSN")
	if dsn == "" {
		testenv.Skip(t, "IMGVEC_TEST_PG_DSN is not set; start PostgreSQL with pgvector with `make services` (or `.ci/services/postgres.sh start`) and export the line it prints")
	}
	return dsn
}

// withParams adds imgvec's DSN parameters to dsn.
func withParams(t testing.TB, dsn string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// testSchema returns a fresh schema name on the test server, dropped with
// everything in it at cleanup.
func testSchema(t testing.TB) (dsn, name string) {
	t.Helper()
	dsn = testDSN(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name = "imgvec_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return dsn, name
}

// newTestSink returns an unopened sink over a fresh schema; kv are extra
// DSN parameters (storage).
func newTestSink(t *testing.T, kv ...string) connector.Sink {
	t.Helper()
	dsn, sch := testSchema(t)
	s, err := New(withParams(t, dsn, append([]string{"schema", sch}, kv...)...), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forgeDim writes, behind the sink's back, a row of model with dimension
// dim (and a vector of that length, so the table's CHECK passes).
func forgeDim(t *testing.T, s connector.Sink, model schema.ModelIdentity, dim int) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	vec := "[" + strings.TrimSuffix(strings.Repeat("0,", dim), ",") + "]"
	_, err = c.Exec(ctx, `INSERT INTO `+s.(*Sink).Names().Qualified("")+` (id, source, key, size, model_id, layer, dim, extracted_at, embedding)
		VALUES ('forged', 'forged', 'forged', 1, $1, 'fc7', $2, now(), $3::vector)`, model.ID(), dim, vec)
	if err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	testDSN(t)
	sinktest.Run(t, func(t *testing.T) connector.Sink { return newTestSink(t) }, sinktest.WithForgeDim(forgeDim), sinktest.WithParallel())
}

// halfRound is an element as halfvec stores it: the nearest half-precision
// value (ties to even), as pgvector-go encodes it.
func halfRound(x float32) float32 { return float16.Fromfloat32(x).Float32() }

func TestConformanceHalfvec(t *testing.T) {
	testDSN(t)
	sinktest.Run(t, func(t *testing.T) connector.Sink { return newTestSink(t, "storage", "halfvec") },
		sinktest.WithForgeDim(forgeDim), sinktest.WithVectorPrecision(halfRound), sinktest.WithParallel())
}

func testModel(dim int) schema.ModelIdentity {
	h := sha256.Sum256([]byte("postgres test model"))
	return schema.ModelIdentity{ModelSHA256: hex.EncodeToString(h[:]), Layer: "fc7", Preprocess: "test-v1", Dim: dim}
}

func TestNew(t *testing.T) {
	t.Setenv(EnvDSN, "")
	tests := []struct {
		dsn, schema, table, err string
	}{
		{dsn: "postgres://u@h/db", schema: "public", table: "images"},
		{dsn: "postgresql://u@h:5433/db?sslmode=disable&schema=s1&table=vecs", schema: "s1", table: "vecs"},
		{dsn: "", err: "IMGVEC_PG_DSN"},
		{dsn: "sqlite://x.db", err: "does not start with postgres://"},
		{dsn: `postgres://u@h/db?table=x";drop table y;--`, err: "not valid"},
		{dsn: `postgres://u@h/db?table=x%22%3Bdrop`, err: "lower-case letters"},
		{dsn: "postgres://u@h/db?table=Images", err: "lower-case letters"},
		{dsn: "postgres://u@h/db?schema=pg_catalog", err: "reserved"},
		{dsn: "postgres://u@h/db?table=" + strings.Repeat("t", 64), err: "63"},
		{dsn: "postgres://u@h/db?sslmode=bogus", err: "sslmode"},
		{dsn: "postgres://u@h/db?storage=float16", err: "want vector or halfvec"},
	}
	for _, tt := range tests {
		s, err := New(tt.dsn)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("New(%q) error = %v, want %q", tt.dsn, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tt.dsn, err)
			continue
		}
		if n := s.Names(); n.Schema != tt.schema || n.Table != tt.table {
			t.Errorf("New(%q) names = %+v", tt.dsn, n)
		}
		if _, ok := s.cfg.ConnConfig.RuntimeParams["table"]; ok {
			t.Errorf("New(%q) passes table to the server", tt.dsn)
		}
	}
	t.Setenv(EnvDSN, "postgres://u@h/db?table=from_env")
	if s, err := New(""); err != nil || s.Names().Table != "from_env" {
		t.Errorf("New(\"\") with $%s: %v, %v", EnvDSN, s, err)
	}
}

// The password never appears in errors, whatever fails.
func TestPasswordRedacted(t *testing.T) {
	const pw = "s3cr3t-PW"
	for _, dsn := range []string{
		"postgres://u:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&table=Bad",
		"postgres://u:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&password=" + pw,
		"postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&sslpassword=" + pw,
		"postgres://u@127.0.0.1:1/db?sslmode=bogus&sslpassword=" + pw, // pgx's parse error quotes the DSN
		"postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&api_token=" + pw,
	} {
		s, err := New(dsn)
		if err == nil {
			if strings.Contains(s.URI(), pw) {
				t.Errorf("URI() = %q", s.URI())
			}
			err = s.Open(context.Background(), testModel(8))
			_ = s.Close()
		}
		if err == nil {
			t.Fatalf("%s: no error", strings.ReplaceAll(dsn, pw, "..."))
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestOpenRefusesPendingMigrations(t *testing.T) {
	dsn, sch := testSchema(t)
	ctx := context.Background()
	uri := withParams(t, dsn, "schema", sch)
	s, err := New(uri)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Open(ctx, testModel(8))
	if !errors.Is(err, migrations.ErrPending) || !strings.Contains(err.Error(), "imgvec migrate up --sink") {
		t.Fatalf("Open of an unmigrated schema: %v", err)
	}
	if err := s.OpenRead(ctx); !errors.Is(err, migrations.ErrPending) {
		t.Fatalf("OpenRead of an unmigrated schema: %v", err)
	}
	m, err := s.OpenMigrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx); err != nil || st.Current != 0 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, testModel(8)); err != nil {
		t.Fatalf("Open after migrate up: %v", err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	// Read-only open: status and search work, writes are refused.
	if err := s.OpenRead(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, connector.Batch{Run: &schema.Run{ID: "r"}}); err == nil {
		t.Error("Write through OpenRead: no error")
	}
}

// A hostile table name never reaches the server.
func TestHostileNamesRefused(t *testing.T) {
	for _, name := range []string{`x"; DROP SCHEMA public CASCADE; --`, "a b", "a-b", "ÄÖ", "x.y", strings.Repeat("a", 100)} {
		if _, err := New("postgres://u@h/db?table=" + url.QueryEscape(name)); err == nil {
			t.Errorf("table %q accepted", name)
		}
		if _, err := New("postgres://u@h/db?schema=" + url.QueryEscape(name)); err == nil {
			t.Errorf("schema %q accepted", name)
		}
	}
}
