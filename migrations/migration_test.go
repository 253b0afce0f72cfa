package migrations

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func files(names ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for _, n := range names {
		m[n] = &fstest.MapFile{Data: []byte("SELECT 1; -- " + n)}
	}
	return m
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []int  // versions, when valid
		wantErr string // substring, when invalid
	}{
		{
			name: "valid",
			fsys: files("0002_b.down.sql", "0001_a.up.sql", "0001_a.down.sql", "0002_b.up.sql", "README.md"),
			want: []int{1, 2},
		},
		{
			name:    "gap",
			fsys:    files("0001_a.up.sql", "0001_a.down.sql", "0003_c.up.sql", "0003_c.down.sql"),
			wantErr: "gap: version 0002 is missing",
		},
		{
			name:    "gap at start",
			fsys:    files("0002_b.up.sql", "0002_b.down.sql"),
			wantErr: "gap: version 0001 is missing",
		},
		{
			name:    "duplicate version",
			fsys:    files("0001_a.up.sql", "0001_a.down.sql", "0001_b.up.sql", "0001_b.down.sql"),
			wantErr: "duplicate version 0001",
		},
		{
			name:    "missing down",
			fsys:    files("0001_a.up.sql", "0001_a.down.sql", "0002_b.up.sql"),
			wantErr: "0002_b has no .down.sql",
		},
		{
			name:    "missing up",
			fsys:    files("0001_a.down.sql"),
			wantErr: "0001_a has no .up.sql",
		},
		{
			name:    "bad name",
			fsys:    files("0001_a.up.sql", "0001_a.down.sql", "2_b.up.sql"),
			wantErr: `"2_b.up.sql" does not match`,
		},
		{
			name:    "version zero",
			fsys:    files("0000_a.up.sql", "0000_a.down.sql"),
			wantErr: "versions start at 0001",
		},
		{
			name:    "empty set",
			fsys:    files(),
			wantErr: "no migrations",
		},
		{
			name: "empty file",
			fsys: fstest.MapFS{
				"0001_a.up.sql":   {Data: []byte("CREATE TABLE t (x);")},
				"0001_a.down.sql": {Data: []byte(" \n")},
			},
			wantErr: "is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := Parse(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidSet) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want ErrInvalidSet containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tt.want) {
				t.Fatalf("got %d migrations, want %d", len(ms), len(tt.want))
			}
			for i, m := range ms {
				if m.Version != tt.want[i] || m.Up == "" || m.Down == "" {
					t.Errorf("migration %d = %+v", i, m)
				}
			}
		})
	}
}

func TestNewRejectsInvalidSet(t *testing.T) {
	d := &fakeDriver{}
	if _, err := New(d, []Migration{{Version: 1, Up: "x", Down: "y"}, {Version: 3, Up: "x", Down: "y"}}); !errors.Is(err, ErrInvalidSet) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := New(d, []Migration{{Version: 1, Up: "x", Down: "y"}, {Version: 1, Up: "x", Down: "y"}}); !errors.Is(err, ErrInvalidSet) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestSQLiteMigrationsParse(t *testing.T) {
	ms, err := SQLiteMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "initial" {
		t.Fatalf("unexpected sqlite migrations: %+v", ms)
	}
}
