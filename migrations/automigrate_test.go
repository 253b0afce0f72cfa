package migrations

import (
	"context"
	"fmt"
	"testing"
)

func TestAutoMigrates(t *testing.T) {
	fresh := Status{Current: 0, Latest: 2, Pending: make([]Migration, 2)}
	behind := Status{Current: 1, Latest: 2, Applied: make([]AppliedVersion, 1), Pending: make([]Migration, 1)}
	holds := func(has bool) DataProbe {
		return func(context.Context) (bool, error) { return has, nil }
	}
	tests := []struct {
		mode  AutoMigrate
		st    Status
		probe DataProbe
		want  bool
	}{
		{AutoMigrateNever, fresh, nil, false},
		{AutoMigrateNever, behind, holds(false), false},
		{AutoMigrateFresh, fresh, nil, true},
		{AutoMigrateFresh, behind, holds(true), false}, // upgrades of data stay explicit
		{AutoMigrateFresh, behind, nil, false},         // unknown: assume data
		{AutoMigrateFresh, behind, holds(false), true}, // an interrupted bootstrap
		{AutoMigrateAlways, fresh, nil, true},
		{AutoMigrateAlways, behind, holds(true), true},
	}
	for _, tt := range tests {
		got, err := tt.mode.Applies(context.Background(), tt.st, tt.probe)
		if err != nil || got != tt.want {
			t.Errorf("%d.Applies(current %d, probe %v) = %v, %v; want %v", tt.mode, tt.st.Current, tt.probe != nil, got, err, tt.want)
		}
	}
}

// racedDriver is a fakeDriver whose first up step finds that a concurrent
// migrator applied it first (it applies it for the other one, then fails
// with ErrConflict), as when the N shards of a job open a fresh sink at
// once.
type racedDriver struct {
	fakeDriver
	raced bool
}

func (d *racedDriver) Apply(ctx context.Context, s Step) error {
	if !d.raced {
		d.raced = true
		if err := d.fakeDriver.Apply(ctx, s); err != nil {
			return err
		}
		return fmt.Errorf("%w: version %d is already applied", ErrConflict, s.Version)
	}
	return d.fakeDriver.Apply(ctx, s)
}

func TestEnsureAfterConcurrentMigrator(t *testing.T) {
	d := &racedDriver{}
	m, err := New(d, testSet(3))
	if err != nil {
		t.Fatal(err)
	}
	empty := func(context.Context) (bool, error) { return false, nil }
	if err := m.Ensure(context.Background(), AutoMigrateFresh, "sqlite://x.db", empty); err != nil {
		t.Fatalf("Ensure after a concurrent migrator applied step 1: %v", err)
	}
	if st, err := m.Status(context.Background()); err != nil || !st.UpToDate() {
		t.Errorf("status after Ensure: %+v, %v; want up to date", st, err)
	}
}
