package migrations

import (
	"context"
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
