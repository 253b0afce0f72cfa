package migrations

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// fakeDriver records applied versions in memory.
type fakeDriver struct {
	applied []AppliedVersion
	calls   []string
	failAt  int // version whose up step fails
}

func (d *fakeDriver) Applied(context.Context) ([]AppliedVersion, error) {
	return append([]AppliedVersion(nil), d.applied...), nil
}

func (d *fakeDriver) Apply(_ context.Context, s Step) error {
	if s.Direction == DirectionUp && s.Version == d.failAt {
		return errors.New("boom")
	}
	d.calls = append(d.calls, string(s.Direction)+":"+s.Name)
	switch s.Direction {
	case DirectionUp:
		d.applied = append(d.applied, AppliedVersion{Version: s.Version, Name: s.Name})
	case DirectionDown:
		d.applied = d.applied[:len(d.applied)-1]
	}
	return nil
}

func testSet(n int) []Migration {
	var ms []Migration
	for i := 1; i <= n; i++ {
		name := string(rune('a' + i - 1))
		ms = append(ms, Migration{
			Version: i, Name: name,
			Up:   "CREATE TABLE t_" + name + " (x INTEGER);",
			Down: "DROP TABLE t_" + name + ";",
		})
	}
	return ms
}

func versions(st Status) (applied, pending []int) {
	for _, a := range st.Applied {
		applied = append(applied, a.Version)
	}
	for _, p := range st.Pending {
		pending = append(pending, p.Version)
	}
	return
}

func stepNames(r Result) string {
	var s []string
	for _, st := range r.Steps {
		s = append(s, string(st.Direction)+":"+st.Name)
	}
	return strings.Join(s, ",")
}

func TestMigratorPlans(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		start     int // versions applied before
		up        bool
		opts      Options
		wantSteps string
	}{
		{"up all", 0, true, Options{}, "up:a,up:b,up:c,up:d"},
		{"up max steps", 0, true, Options{MaxSteps: 2}, "up:a,up:b"},
		{"up to target", 1, true, Options{TargetVersion: 3}, "up:b,up:c"},
		{"up when current", 4, true, Options{}, ""},
		{"down one step by default", 4, false, Options{}, "down:d"},
		{"down to target", 4, false, Options{TargetVersion: 1}, "down:d,down:c,down:b"},
		{"down all", 3, false, Options{TargetVersion: AllVersions}, "down:c,down:b,down:a"},
		{"down max steps", 4, false, Options{MaxSteps: 2}, "down:d,down:c"},
		{"down on empty", 0, false, Options{}, ""},
	}
	for _, tt := range tests {
		for _, dry := range []bool{false, true} {
			name := tt.name
			if dry {
				name += " dry run"
			}
			t.Run(name, func(t *testing.T) {
				d := &fakeDriver{}
				m, err := New(d, testSet(4))
				if err != nil {
					t.Fatal(err)
				}
				if tt.start > 0 {
					if _, err := m.Up(ctx, Options{TargetVersion: tt.start}); err != nil {
						t.Fatal(err)
					}
				}
				before := len(d.calls)
				opts := tt.opts
				opts.DryRun = dry
				var res Result
				if tt.up {
					res, err = m.Up(ctx, opts)
				} else {
					res, err = m.Down(ctx, opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := stepNames(res); got != tt.wantSteps {
					t.Errorf("steps = %q, want %q", got, tt.wantSteps)
				}
				executed := strings.Join(d.calls[before:], ",")
				if dry && executed != "" {
					t.Errorf("dry run executed %q", executed)
				}
				if !dry && executed != tt.wantSteps {
					t.Errorf("executed %q, want %q", executed, tt.wantSteps)
				}
			})
		}
	}
}

func TestMigratorBadTargets(t *testing.T) {
	ctx := context.Background()
	m, _ := New(&fakeDriver{}, testSet(2))
	if _, err := m.Up(ctx, Options{TargetVersion: 3}); err == nil {
		t.Error("up to unknown version: no error")
	}
	if _, err := m.Down(ctx, Options{TargetVersion: 3}); err == nil {
		t.Error("down to unknown version: no error")
	}
}

func TestMigratorStopsAtFailingStep(t *testing.T) {
	d := &fakeDriver{failAt: 2}
	m, _ := New(d, testSet(3))
	res, err := m.Up(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "0002_b") {
		t.Fatalf("error = %v, want one naming 0002_b", err)
	}
	if got := stepNames(res); got != "up:a" {
		t.Fatalf("steps = %q", got)
	}
}

func TestMigratorUnknownVersion(t *testing.T) {
	d := &fakeDriver{applied: []AppliedVersion{{Version: 1}, {Version: 2}, {Version: 3}}}
	m, _ := New(d, testSet(2))
	if _, err := m.Status(context.Background()); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Status error = %v, want ErrUnknownVersion", err)
	}
	if _, err := m.Up(context.Background(), Options{}); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Up error = %v, want ErrUnknownVersion", err)
	}
}

func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate&_busy_timeout=5000&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestSQLDriverRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	m, err := New(NewSQLDriver(db, SQLiteDialect), testSet(3))
	if err != nil {
		t.Fatal(err)
	}

	// Status and a dry run write nothing, not even the ledger table.
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, p := versions(st); a != nil || !reflect.DeepEqual(p, []int{1, 2, 3}) || st.Current != 0 || st.UpToDate() {
		t.Fatalf("fresh status: applied %v pending %v current %d", a, p, st.Current)
	}
	if res, err := m.Up(ctx, Options{DryRun: true}); err != nil || len(res.Steps) != 3 || res.Steps[0].SQL == "" {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if got := tables(t, db); got != nil {
		t.Fatalf("dry run created tables %v", got)
	}

	if _, err := m.Up(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := tables(t, db), []string{LedgerTable, "t_a", "t_b", "t_c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables after up = %v, want %v", got, want)
	}
	st, _ = m.Status(ctx)
	if a, p := versions(st); !reflect.DeepEqual(a, []int{1, 2, 3}) || p != nil || st.Current != 3 || st.Applied[2].AppliedAt.IsZero() {
		t.Fatalf("status after up: %+v", st)
	}

	if _, err := m.Down(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := tables(t, db), []string{LedgerTable, "t_a", "t_b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables after down = %v, want %v", got, want)
	}
	if _, err := m.Down(ctx, Options{TargetVersion: AllVersions}); err != nil {
		t.Fatal(err)
	}
	if got, want := tables(t, db), []string{LedgerTable}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables after down all = %v, want %v", got, want)
	}
	if _, err := m.Up(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Status(ctx)
	if !st.UpToDate() || st.Current != 3 {
		t.Fatalf("status after up-down-up: %+v", st)
	}
}

func TestSQLDriverFailedStepRollsBack(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	ms := testSet(2)
	ms[1].Up = "CREATE TABLE t_b (x INTEGER); INSERT INTO no_such_table VALUES (1);"
	m, _ := New(NewSQLDriver(db, SQLiteDialect), ms)
	if _, err := m.Up(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "0002_b") {
		t.Fatalf("error = %v", err)
	}
	// Step 1 applied and recorded; step 2's table creation rolled back with it.
	if got, want := tables(t, db), []string{LedgerTable, "t_a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
	st, _ := m.Status(ctx)
	if a, p := versions(st); !reflect.DeepEqual(a, []int{1}) || !reflect.DeepEqual(p, []int{2}) {
		t.Fatalf("applied %v pending %v", a, p)
	}
}

func TestSQLDriverConflict(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	d := NewSQLDriver(db, SQLiteDialect)
	ms := testSet(1)
	step := Step{Direction: DirectionUp, Version: 1, Name: "a", SQL: ms[0].Up}
	if err := d.Apply(ctx, step); err != nil {
		t.Fatal(err)
	}
	// A second migrator that read the ledger before the first one applied.
	if err := d.Apply(ctx, step); !errors.Is(err, ErrConflict) {
		t.Fatalf("second apply: %v, want ErrConflict", err)
	}
	down := Step{Direction: DirectionDown, Version: 1, Name: "a", SQL: ms[0].Down}
	if err := d.Apply(ctx, down); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, down); !errors.Is(err, ErrConflict) {
		t.Fatalf("second down: %v, want ErrConflict", err)
	}
}

func TestSQLiteSchemaUpDownUp(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	ms, err := SQLiteMigrations()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := New(NewSQLDriver(db, SQLiteDialect), ms)
	for i, step := range []func() (Result, error){
		func() (Result, error) { return m.Up(ctx, Options{}) },
		func() (Result, error) { return m.Down(ctx, Options{TargetVersion: AllVersions}) },
		func() (Result, error) { return m.Up(ctx, Options{}) },
	} {
		if _, err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if got, want := tables(t, db), []string{"failures", LedgerTable, "items", "runs"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
}
