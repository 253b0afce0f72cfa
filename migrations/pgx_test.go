package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/schema/testenv"
)

func TestPGNamesValidate(t *testing.T) {
	long := strings.Repeat("a", MaxTableLen+1)
	tests := []struct {
		names PGNames
		err   string
	}{
		{PGNames{"public", "images"}, ""},
		{PGNames{"imgvec_t1", "_x9"}, ""},
		{PGNames{"public", strings.Repeat("a", MaxTableLen)}, ""},
		{PGNames{"public", long}, "leave room"},
		{PGNames{strings.Repeat("s", 64), "images"}, "63"},
		{PGNames{"public", ""}, "empty"},
		{PGNames{"", "images"}, "empty"},
		{PGNames{"public", `images"; DROP TABLE x; --`}, "lower-case"},
		{PGNames{"public", "Images"}, "lower-case"},
		{PGNames{"public", "1images"}, "lower-case"},
		{PGNames{"public", "imäges"}, "lower-case"},
		{PGNames{"pg_catalog", "images"}, "reserved"},
		{PGNames{"public", "a.b"}, "lower-case"},
	}
	for _, tt := range tests {
		err := tt.names.Validate()
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.names, err, tt.err)
		}
		if _, perr := PostgresMigrations(tt.names); (perr == nil) != (err == nil) {
			t.Errorf("PostgresMigrations(%+v) = %v, Validate = %v", tt.names, perr, err)
		}
	}
}

func TestPostgresMigrationsRender(t *testing.T) {
	ms, err := PostgresMigrations(PGNames{Schema: "s1", Table: "images"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations: %+v", ms)
	}
	for _, m := range ms {
		for _, sql := range []string{m.Up, m.Down} {
			if strings.Contains(sql, "{{") || strings.Contains(sql, "}}") {
				t.Errorf("%04d: unexpanded template:\n%s", m.Version, sql)
			}
		}
	}
	for _, want := range []string{`CREATE TABLE "s1"."images" (`, `CREATE TABLE "s1"."images_failures" (`,
		`CREATE INDEX "images_model_sha256" ON "s1"."images"`, `CREATE EXTENSION IF NOT EXISTS vector`} {
		if !strings.Contains(ms[0].Up, want) {
			t.Errorf("0001 up lacks %q", want)
		}
	}
}

// testPG connects to the server named by IMGVEC_TEST_PG_DSN and returns a
// fresh schema name, dropped at cleanup.
func testPG(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	dsn := os.Getenv("IMGVEC_TEST_PG_DSN")
	if dsn == "" {
		testenv.Skip(t, "IMGVEC_TEST_PG_DSN is not set; start PostgreSQL with pgvector with `make services` (or `.ci/services/postgres.sh start`) and export the line it prints")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to IMGVEC_TEST_PG_DSN: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "imgvec_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
		conn.Close(ctx)
	})
	return conn, name
}

func tableExists(t *testing.T, conn *pgx.Conn, qualified string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, qualified).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestPgxUpDownUp(t *testing.T) {
	conn, sch := testPG(t)
	ctx := context.Background()
	names := PGNames{Schema: sch, Table: "images"}
	ms, err := PostgresMigrations(names)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewPgxDriver(conn, names)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(d, ms)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx)
	if err != nil || st.Current != 0 || len(st.Pending) != len(ms) {
		t.Fatalf("status of an empty schema: %+v, %v", st, err)
	}
	if tableExists(t, conn, names.Ledger()) {
		t.Fatal("Status created the ledger")
	}
	if res, err := m.Up(ctx, Options{DryRun: true}); err != nil || len(res.Steps) != len(ms) || tableExists(t, conn, names.Ledger()) {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	tables := []string{names.Qualified(""), names.Qualified("_failures"), names.Qualified("_runs")}
	for round := range 2 {
		if _, err := m.Up(ctx, Options{}); err != nil {
			t.Fatalf("round %d: up: %v", round, err)
		}
		st, err := m.Status(ctx)
		if err != nil || !st.UpToDate() || st.Current != len(ms) || st.Applied[0].Name != "initial" || st.Applied[0].AppliedAt.IsZero() {
			t.Fatalf("round %d: status after up: %+v, %v", round, st, err)
		}
		for _, tb := range tables {
			if !tableExists(t, conn, tb) {
				t.Fatalf("round %d: %s missing after up", round, tb)
			}
		}
		// The table is usable: a vector row of its dimension goes in.
		if _, err := conn.Exec(ctx, `INSERT INTO `+names.Qualified("")+` (id, source, key, size, model_id, dim, extracted_at, embedding)
			VALUES ('x', 's', 'k', 1, 'm', 3, now(), '[1,2,3]')`); err != nil {
			t.Fatalf("round %d: insert: %v", round, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO `+names.Qualified("")+` (id, source, key, size, model_id, dim, extracted_at, embedding)
			VALUES ('y', 's', 'k', 1, 'm', 4, now(), '[1,2,3]')`); err == nil {
			t.Fatalf("round %d: a vector of another length than dim was accepted", round)
		}
		if _, err := m.Down(ctx, Options{TargetVersion: AllVersions}); err != nil {
			t.Fatalf("round %d: down: %v", round, err)
		}
		for _, tb := range tables {
			if tableExists(t, conn, tb) {
				t.Fatalf("round %d: %s still there after down", round, tb)
			}
		}
		if st, err := m.Status(ctx); err != nil || st.Current != 0 {
			t.Fatalf("round %d: status after down: %+v, %v", round, st, err)
		}
	}
}

// Two item tables in one schema keep separate ledgers.
func TestPgxTwoTablesOneSchema(t *testing.T) {
	conn, sch := testPG(t)
	ctx := context.Background()
	for _, table := range []string{"a", "b"} {
		names := PGNames{Schema: sch, Table: table}
		ms, err := PostgresMigrations(names)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := NewPgxDriver(conn, names)
		m, _ := New(d, ms)
		if _, err := m.Up(ctx, Options{}); err != nil {
			t.Fatalf("up %s: %v", table, err)
		}
		if !tableExists(t, conn, names.Qualified("_runs")) {
			t.Fatalf("%s_runs missing", table)
		}
	}
}

// Concurrent migrators wait for each other on the advisory lock: exactly
// one applies each step, the others see ErrConflict (or nothing pending),
// and the schema ends migrated once.
func TestPgxConcurrentMigrators(t *testing.T) {
	conn, sch := testPG(t)
	ctx := context.Background()
	names := PGNames{Schema: sch, Table: "images"}
	ms, err := PostgresMigrations(names)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	applied := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, os.Getenv("IMGVEC_TEST_PG_DSN"))
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close(ctx)
			d, _ := NewPgxDriver(c, names)
			m, _ := New(d, ms)
			res, err := m.Up(ctx, Options{})
			applied[i], errs[i] = len(res.Steps), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil && !errors.Is(errs[i], ErrConflict) {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != len(ms) {
		t.Errorf("%d steps applied in all, want %d", total, len(ms))
	}
	d, _ := NewPgxDriver(conn, names)
	m, _ := New(d, ms)
	if st, err := m.Status(ctx); err != nil || !st.UpToDate() {
		t.Fatalf("status: %+v, %v", st, err)
	}
}
