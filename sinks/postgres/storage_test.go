package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// columnType is the type the server has for the embedding column.
func columnType(t *testing.T, dsn string, names migrations.PGNames) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var typ string
	if err := c.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attname = 'embedding'`, names.Qualified("")).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	return typ
}

// The storage is chosen while the table is empty; afterwards a DSN that
// asks for the other one is refused with the fix, and a DSN without the
// parameter takes the table's.
func TestStorageChosenWhileEmpty(t *testing.T) {
	ctx := context.Background()
	dsn, sch := testSchema(t)
	open := func(storage string) (*Sink, error) {
		kv := []string{"schema", sch}
		if storage != "" {
			kv = append(kv, "storage", storage)
		}
		s, err := New(withParams(t, dsn, kv...), WithAutoMigrate(migrations.AutoMigrateFresh))
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Open(ctx, testModel(4))
	}
	s, err := open("halfvec")
	if err != nil {
		t.Fatal(err)
	}
	if s.Storage() != StorageHalfvec || columnType(t, dsn, s.Names()) != "halfvec" {
		t.Fatalf("a new table with storage=halfvec: Storage() = %q, column %s", s.Storage(), columnType(t, dsn, s.Names()))
	}
	m := testModel(4)
	r := schema.Record{ID: "a", Source: "src", Key: "a.jpg", ModelID: m.ID(), Vector: []float32{0.1, 1.0 / 3, -2, 1e-9}}
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{r}}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	for i, x := range r.Vector {
		if got.Vector[i] != halfRound(x) {
			t.Errorf("element %d: stored %g, want %g (half precision of %g)", i, got.Vector[i], halfRound(x), x)
		}
	}
	// Beyond half precision's range: refused before any I/O, naming the item.
	big := r
	big.ID, big.Key, big.Vector = "b", "b.jpg", []float32{1, 70000, 0, 0}
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{big}}); err == nil ||
		!strings.Contains(err.Error(), "b.jpg") || !strings.Contains(err.Error(), "halfvec") {
		t.Errorf("Write of 70000 into halfvec: %v", err)
	}
	if _, ok, _ := s.Get(ctx, "b"); ok {
		t.Error("the refused row was written")
	}
	_ = s.Close()

	// The table has rows: storage=vector is refused with the fix.
	s, err = open("vector")
	_ = s.Close()
	if !errors.Is(err, ErrStorageMismatch) || !strings.Contains(err.Error(), "ALTER TABLE") ||
		!strings.Contains(err.Error(), "storage=halfvec") {
		t.Fatalf("Open with storage=vector of a halfvec table with rows: %v", err)
	}
	if err := s.OpenRead(ctx); !errors.Is(err, ErrStorageMismatch) {
		t.Fatalf("OpenRead with storage=vector of a halfvec table: %v", err)
	}
	_ = s.Close()
	// No parameter: the table's storage.
	s, err = open("")
	if err != nil || s.Storage() != StorageHalfvec {
		t.Fatalf("Open without storage of a halfvec table: %q, %v", s.Storage(), err)
	}
	if err := s.Delete(ctx, "src", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	// Empty again: the DSN's storage applies.
	s, err = open("vector")
	if err != nil || s.Storage() != StorageVector || columnType(t, dsn, s.Names()) != "vector" {
		t.Fatalf("Open with storage=vector of an empty halfvec table: %q, %v", s.Storage(), err)
	}
	_ = s.Close()
}

// `imgvec migrate up` with storage=halfvec creates a halfvec table.
func TestMigrateWithStorage(t *testing.T) {
	ctx := context.Background()
	dsn, sch := testSchema(t)
	s, err := New(withParams(t, dsn, "schema", sch, "storage", "halfvec"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if typ := columnType(t, dsn, s.Names()); typ != "halfvec" {
		t.Fatalf("migrate up with storage=halfvec: column %s", typ)
	}
}
