package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

func newTestSink(t *testing.T) connector.Sink {
	t.Helper()
	s, err := New(Scheme+filepath.Join(t.TempDir(), "imgvec.db"), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forgeDim writes, behind the sink's back, a row of model with dimension
// dim (whose vector length matches, so the table's CHECK passes).
func forgeDim(t *testing.T, s connector.Sink, model schema.ModelIdentity, dim int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+s.(*Sink).Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`INSERT INTO items (id, source, key, size, model_id, layer, dim, extracted_at, vector)
		VALUES ('forged', 'forged', 'forged', 1, ?, 'fc7', ?, ?, ?)`,
		model.ID(), dim, formatTime(time.Now()), encodeVector(make([]float32, dim)))
	if err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, newTestSink, sinktest.WithForgeDim(forgeDim), sinktest.WithParallel())
}

func testModel(dim int) schema.ModelIdentity {
	h := sha256.Sum256([]byte("sqlite test model"))
	return schema.ModelIdentity{ModelSHA256: hex.EncodeToString(h[:]), Layer: "fc7", Preprocess: "test-v1", Dim: dim}
}

func TestNew(t *testing.T) {
	tests := []struct {
		uri, path, err string
	}{
		{uri: "sqlite://", path: DefaultPath},
		{uri: "sqlite://./x/y.db", path: "./x/y.db"},
		{uri: "sqlite:///abs/imgvec.db", path: "/abs/imgvec.db"},
		{uri: "sqlite://rel.db", path: "rel.db"},
		{uri: "postgres://x", err: "does not start with sqlite://"},
		{uri: "sqlite://:memory:", err: "give a file path"},
		{uri: "sqlite://file:x.db", err: "give a file path"},
		{uri: "sqlite://x.db?mode=ro", err: "query and fragment"},
	}
	for _, tt := range tests {
		s, err := New(tt.uri)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("New(%q) error = %v, want %q", tt.uri, err, tt.err)
			}
			continue
		}
		if err != nil || s.Path() != tt.path {
			t.Errorf("New(%q) = %v, %v; want path %q", tt.uri, s, err, tt.path)
		}
		if _, err := os.Stat(tt.path); err == nil && tt.path != DefaultPath {
			t.Errorf("New(%q) touched the file system", tt.uri)
		}
	}
}

func TestOpenRefusesMissingFileAndPendingMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub dir", "a b%20c.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	m := testModel(8)

	s, _ := New(Scheme + path)
	err := s.Open(ctx, m)
	if err == nil || !strings.Contains(err.Error(), "imgvec migrate up --sink sqlite://"+path) {
		t.Fatalf("Open of a missing file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open without auto-migrate created the file: %v", err)
	}

	// An existing database with a pending migration.
	mig, err := s.OpenMigrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mig.Status(ctx)
	if err != nil || st.Current != 0 || len(st.Pending) != mig.Latest() {
		t.Fatalf("status of a new file: %+v, %v", st, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("OpenMigrator did not create the file: %v", err)
	}
	err = s.Open(ctx, m)
	if !errors.Is(err, migrations.ErrPending) || !strings.Contains(err.Error(), "imgvec migrate up --sink sqlite://"+path) {
		t.Fatalf("Open with pending migrations: %v", err)
	}

	// migrate up, then Open works; migrate down makes it pending again.
	if res, err := s.Migrate(ctx); err != nil || len(res.Steps) != mig.Latest() {
		t.Fatalf("Migrate: %+v, %v", res, err)
	}
	s.Close()
	if err := s.Open(ctx, m); err != nil {
		t.Fatalf("Open after migrate up: %v", err)
	}
	s.Close()
	mig, _ = s.OpenMigrator(ctx)
	if _, err := mig.Down(ctx, migrations.Options{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Open(ctx, m); !errors.Is(err, migrations.ErrPending) {
		t.Fatalf("Open after migrate down: %v", err)
	}
}

func TestAutoMigrate(t *testing.T) {
	ctx := context.Background()
	m := testModel(8)
	dir := t.TempDir()

	// Fresh: a missing file is created and migrated.
	path := filepath.Join(dir, "fresh.db")
	s, _ := New(Scheme+path, WithAutoMigrate(migrations.AutoMigrateFresh))
	if err := s.Open(ctx, m); err != nil {
		t.Fatalf("fresh auto-migrate: %v", err)
	}
	var mode string
	if err := s.writer.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v", mode, err)
	}
	var fk, busy int
	if err := s.writer.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys %d, %v", fk, err)
	}
	if err := s.writer.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(BusyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout %d, %v", busy, err)
	}
	s.Close()

	// Fresh: a database whose creation was interrupted after its first
	// migration (a killed sync) still holds nothing, and is completed; once
	// it holds data, an upgrade is explicit.
	path3 := filepath.Join(dir, "interrupted.db")
	s3, _ := New(Scheme+path3, WithAutoMigrate(migrations.AutoMigrateFresh))
	mig, err := s3.OpenMigrator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mig.Up(ctx, migrations.Options{MaxSteps: 1}); err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if err := s3.Open(ctx, m); err != nil {
		t.Fatalf("interrupted creation not completed: %v", err)
	}
	if err := s3.Write(ctx, connector.Batch{Run: &schema.Run{ID: "r", StartedAt: time.Now(), Outcome: schema.RunRunning}}); err != nil {
		t.Fatal(err)
	}
	s3.Close()
	mig, _ = s3.OpenMigrator(ctx)
	if _, err := mig.Down(ctx, migrations.Options{}); err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if err := s3.Open(ctx, m); !errors.Is(err, migrations.ErrPending) {
		t.Fatalf("pending upgrade of a database with data: %v", err)
	}

	// Always applies whatever is pending.
	path2 := filepath.Join(dir, "always.db")
	s2, _ := New(Scheme+path2, WithAutoMigrate(migrations.AutoMigrateAlways))
	if err := s2.Open(ctx, m); err != nil {
		t.Fatalf("always auto-migrate: %v", err)
	}
	s2.Close()
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "newer.db")
	s, _ := New(Scheme+path, WithAutoMigrate(migrations.AutoMigrateFresh))
	if err := s.Open(ctx, testModel(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.Exec(`INSERT INTO imgvec_migrations (version, name, applied_at) VALUES (999, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Open(ctx, testModel(8)); !errors.Is(err, migrations.ErrUnknownVersion) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestWriteBeforeOpen(t *testing.T) {
	s, _ := New(Scheme + filepath.Join(t.TempDir(), "x.db"))
	if err := s.Write(context.Background(), connector.Batch{}); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Fatalf("Write before Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close of an unopened sink: %v", err)
	}
}

// Searches and status reads run concurrently with the writer.
func TestConcurrentReadsDuringWrites(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t).(*Sink)
	m := testModel(8)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		for i := range 50 {
			var b connector.Batch
			for j := range 20 {
				key := filepath.Join("k", string(rune('a'+i%26)), string(rune('a'+j)))
				v := make([]float32, 8)
				v[j%8], v[(j+1)%8] = 1, float32(i)
				b.Upserts = append(b.Upserts, schema.Record{ID: schema.ItemID("s", key), Source: "s", Key: key,
					ModelID: m.ID(), Vector: v, ExtractedAt: time.Now()})
			}
			if err := s.Write(ctx, b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	q := []float32{1, 0, 0, 0, 0, 0, 0, 0}
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		if _, err := s.Search(ctx, m.ID(), q, 5); err != nil {
			t.Fatalf("Search during writes: %v", err)
		}
		if _, err := s.Status(ctx); err != nil {
			t.Fatalf("Status during writes: %v", err)
		}
	}
}

// A zero vector has no cosine distance: such rows sort last, with NaN.
func TestSearchZeroVectorRowsLast(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t).(*Sink)
	m := testModel(4)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mk := func(key string, v ...float32) schema.Record {
		return schema.Record{ID: key, Source: "s", Key: key, ModelID: m.ID(), Vector: v}
	}
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{
		mk("zero", 0, 0, 0, 0), mk("far", -1, 0, 0, 0), mk("near", 1, 0.1, 0, 0),
	}}); err != nil {
		t.Fatal(err)
	}
	hits, err := s.Search(ctx, m.ID(), []float32{1, 0, 0, 0}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 3 || hits[0].Key != "near" || hits[1].Key != "far" || hits[2].Key != "zero" || !math.IsNaN(hits[2].Distance) {
		t.Fatalf("hits = %+v", hits)
	}
	if _, err := s.Search(ctx, m.ID(), []float32{0, 0, 0, 0}, 5); err == nil {
		t.Error("Search with a zero query vector: no error")
	}
}

// Invalid batches are refused before any I/O: even with the database gone.
func TestWriteValidatesBeforeIO(t *testing.T) {
	ctx := context.Background()
	s := newTestSink(t).(*Sink)
	m := testModel(4)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.writer.Close()
	err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{
		{ID: "ok", Key: "ok.jpg", ModelID: m.ID(), Vector: []float32{1, 2, 3, 4}},
		{ID: "x", Key: "bad.jpg", ModelID: m.ID(), Vector: []float32{1, float32(math.NaN()), 3, 4}},
	}})
	if err == nil || !strings.Contains(err.Error(), "bad.jpg") || strings.Contains(err.Error(), "closed") {
		t.Fatalf("Write error = %v, want a validation error naming bad.jpg", err)
	}
}
