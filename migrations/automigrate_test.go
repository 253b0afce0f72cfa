package migrations

import "testing"

func TestAutoMigrates(t *testing.T) {
	fresh := Status{Current: 0, Latest: 2, Pending: make([]Migration, 2)}
	behind := Status{Current: 1, Latest: 2, Applied: make([]AppliedVersion, 1), Pending: make([]Migration, 1)}
	tests := []struct {
		mode AutoMigrate
		st   Status
		want bool
	}{
		{AutoMigrateNever, fresh, false},
		{AutoMigrateNever, behind, false},
		{AutoMigrateFresh, fresh, true},
		{AutoMigrateFresh, behind, false}, // upgrades stay explicit
		{AutoMigrateAlways, fresh, true},
		{AutoMigrateAlways, behind, true},
	}
	for _, tt := range tests {
		if got := tt.mode.Applies(tt.st); got != tt.want {
			t.Errorf("%d.Applies( current %d) = %v, want %v", tt.mode, tt.st.Current, got, tt.want)
		}
	}
}
