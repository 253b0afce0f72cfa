package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load time zone %s: %v", name, err)
	}
	return loc
}

func TestParseSpecNext(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	tokyo := mustZone(t, "Asia/Tokyo")
	from := time.Date(2026, 5, 12, 10, 7, 30, 0, time.UTC) // a Tuesday
	tests := []struct {
		spec string
		loc  *time.Location
		want time.Time
	}{
		{"*/15 * * * *", nil, time.Date(2026, 5, 12, 10, 15, 0, 0, time.UTC)},
		{"  */15 * * * *  ", nil, time.Date(2026, 5, 12, 10, 15, 0, 0, time.UTC)},
		{"0 3 * * *", nil, time.Date(2026, 5, 13, 3, 0, 0, 0, time.UTC)},
		{"0 3 * * *", time.UTC, time.Date(2026, 5, 13, 3, 0, 0, 0, time.UTC)},
		// 03:00 in New York (EDT, UTC-4) is 07:00 UTC, still ahead today.
		{"0 3 * * *", ny, time.Date(2026, 5, 13, 3, 0, 0, 0, ny)},
		{"0 20 * * *", tokyo, time.Date(2026, 5, 12, 20, 0, 0, 0, tokyo)},
		{"45 */10 * * * *", nil, time.Date(2026, 5, 12, 10, 10, 45, 0, time.UTC)},
		{"0 9 * * MON-FRI", nil, time.Date(2026, 5, 13, 9, 0, 0, 0, time.UTC)},
		{"0 9 * * 0", nil, time.Date(2026, 5, 17, 9, 0, 0, 0, time.UTC)},
		{"@hourly", nil, time.Date(2026, 5, 12, 11, 0, 0, 0, time.UTC)},
		{"@daily", ny, time.Date(2026, 5, 13, 0, 0, 0, 0, ny)},
		{"@midnight", nil, time.Date(2026, 5, 13, 0, 0, 0, 0, time.UTC)},
		{"@weekly", nil, time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)},
		{"@monthly", nil, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"@yearly", nil, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@annually", nil, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@every 15m", nil, from.Add(15 * time.Minute)},
		{"@every 1s", ny, from.Add(time.Second)},
		{"@every 1h30m", nil, from.Add(90 * time.Minute)},
		// Rare but real days are not "never".
		{"0 0 29 2 *", nil, time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		// Day of month and day of week both set: either matches (cron's rule).
		{"0 0 30 2 TUE", nil, time.Date(2027, 2, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			sched, err := ParseSpec(tt.spec, tt.loc)
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.spec, err)
			}
			if got := sched.Next(from); !got.Equal(tt.want) {
				t.Errorf("Next(%v) = %v, want %v", from, got, tt.want)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		spec string
		want []string // substrings of the error
	}{
		{"", []string{"empty", "expected 5 fields"}},
		{"   ", []string{"empty", "expected 5 fields"}},
		{"* * *", []string{`"* * *"`, "found 3", "expected 5 fields"}},
		{"* * * * * * *", []string{"found 7", "6 with a leading seconds field"}},
		{"61 * * * *", []string{`"61 * * * *"`, "61", "expected 5 fields"}},
		{"* 24 * * *", []string{"24"}},
		{"* * * * 7", []string{"7"}},
		{"* * * FOO *", []string{"FOO"}},
		{"@fortnightly", []string{"@fortnightly", "descriptor"}},
		{"@every", []string{`"@every DURATION"`}},
		{"@every soon", []string{"soon", `"@every DURATION"`}},
		{"@every 0s", []string{"at least 1s"}},
		{"@every -5m", []string{"at least 1s"}},
		{"@every 500ms", []string{"at least 1s"}},
		{"@every 1.5s", []string{"whole number of seconds"}},
		{"TZ=America/New_York 0 3 * * *", []string{"time zone prefix", "job's time zone"}},
		{"CRON_TZ=UTC", []string{"time zone prefix"}},
		// Well formed, but no such day: the job would never run.
		{"0 0 30 2 *", []string{`"0 0 30 2 *"`, "never fires", "5 years"}},
		{"0 0 31 4,6,9,11 *", []string{"never fires"}},
		{"0 0 0 31 2 *", []string{"never fires"}},
		{"TZ=", []string{"time zone prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseSpec(tt.spec, nil)
			if err == nil {
				t.Fatalf("ParseSpec(%q) succeeded (next %v), want an error", tt.spec, s.Next(time.Now()))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseSpec(%q) error %q does not contain %q", tt.spec, err, w)
				}
			}
		})
	}
}

// TestDaylightSaving pins what the package doc promises for America/New_York
// in 2026: spring forward on 8 March 02:00 → 03:00, fall back on 1 November
// 02:00 → 01:00.
func TestDaylightSaving(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	at := func(month time.Month, day, hour, min int, zone string) time.Time {
		// Build the instant from the named offset, so that the two 01:30s
		// of the fall-back day are told apart.
		off := map[string]int{"EST": -5, "EDT": -4}[zone]
		return time.Date(2026, month, day, hour, min, 0, 0, time.FixedZone(zone, off*3600))
	}
	tests := []struct {
		name string
		spec string
		from time.Time
		want []time.Time
	}{
		{
			name: "02:30 daily is skipped on the spring-forward day",
			spec: "30 2 * * *",
			from: at(time.March, 6, 12, 0, "EST"),
			want: []time.Time{
				at(time.March, 7, 2, 30, "EST"),
				at(time.March, 9, 2, 30, "EDT"),
				at(time.March, 10, 2, 30, "EDT"),
			},
		},
		{
			name: "02:30 daily runs once on the fall-back day",
			spec: "30 2 * * *",
			from: at(time.October, 30, 12, 0, "EDT"),
			want: []time.Time{
				at(time.October, 31, 2, 30, "EDT"),
				at(time.November, 1, 2, 30, "EST"),
				at(time.November, 2, 2, 30, "EST"),
			},
		},
		{
			name: "01:30 daily runs twice on the fall-back day",
			spec: "30 1 * * *",
			from: at(time.October, 31, 12, 0, "EDT"),
			want: []time.Time{
				at(time.November, 1, 1, 30, "EDT"),
				at(time.November, 1, 1, 30, "EST"),
				at(time.November, 2, 1, 30, "EST"),
			},
		},
		{
			name: "hourly runs at 01:00 twice on the fall-back day",
			spec: "0 * * * *",
			from: at(time.November, 1, 0, 0, "EDT"),
			want: []time.Time{
				at(time.November, 1, 1, 0, "EDT"),
				at(time.November, 1, 1, 0, "EST"),
				at(time.November, 1, 2, 0, "EST"),
			},
		},
		{
			name: "hourly has no 02:00 on the spring-forward day",
			spec: "0 * * * *",
			from: at(time.March, 8, 0, 30, "EST"),
			want: []time.Time{
				at(time.March, 8, 1, 0, "EST"),
				at(time.March, 8, 3, 0, "EDT"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := ParseSpec(tt.spec, ny)
			if err != nil {
				t.Fatal(err)
			}
			next := tt.from
			for i, want := range tt.want {
				next = sched.Next(next)
				if !next.Equal(want) {
					t.Fatalf("run %d: got %v, want %v", i+1, next.In(ny), want.In(ny))
				}
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"*/15 * * * *", "0 0 3 * * *", "@every 15m", "@daily",
		"TZ=UTC 0 * * * *", "1-5/2 JAN-MAR/2 ? * SUN", "@every", "0 0 31 2 *"} {
		f.Add(s)
	}
	from := time.Date(2026, 11, 1, 0, 30, 0, 0, time.UTC)
	ny := mustZone(f, "America/New_York")
	f.Fuzz(func(t *testing.T, spec string) {
		sched, err := ParseSpec(spec, ny)
		if err != nil {
			return
		}
		// A schedule that parses must compute a next time without
		// panicking; zero means "none within five years".
		if next := sched.Next(from); !next.IsZero() && !next.After(from) {
			t.Fatalf("ParseSpec(%q).Next(%v) = %v, not after", spec, from, next)
		}
	})
}
