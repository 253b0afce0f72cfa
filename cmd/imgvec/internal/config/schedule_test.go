package config

import (
	"strings"
	"testing"
	"time"
)

func nextN(t *testing.T, j Job, from time.Time, n int) []time.Time {
	t.Helper()
	s, err := j.CronSchedule()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]time.Time, n)
	for i := range out {
		from = s.Next(from)
		out[i] = from
	}
	return out
}

func TestScheduleForms(t *testing.T) {
	from := time.Date(2026, 1, 1, 10, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec string
		want time.Time
	}{
		{"*/15 * * * *", time.Date(2026, 1, 1, 10, 15, 0, 0, time.UTC)},
		{"30 */15 * * * *", time.Date(2026, 1, 1, 10, 15, 30, 0, time.UTC)}, // seconds first
		{"@hourly", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)},
		{"@every 15m", from.Add(15 * time.Minute)},
		{"0 9 * * MON-FRI", time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)},
	} {
		got := nextN(t, Job{Name: "a", Schedule: tc.spec, TimeZone: "UTC"}, from, 1)[0]
		if !got.Equal(tc.want) {
			t.Errorf("%q: next = %s, want %s", tc.spec, got, tc.want)
		}
	}
	if s, err := (Job{Name: "a", TimeZone: "UTC"}).CronSchedule(); s != nil || err != nil {
		t.Errorf("no schedule: %v, %v; want nil, nil", s, err)
	}
	if _, err := (Job{Name: "a", Schedule: "* *", TimeZone: "UTC"}).CronSchedule(); err == nil || !strings.Contains(err.Error(), "expected 5 fields") {
		t.Errorf("bad spec: %v", err)
	}
}

// A job's fields are read in its time_zone.
func TestScheduleTimeZone(t *testing.T) {
	j := Job{Name: "a", Schedule: "0 9 * * *", TimeZone: "Asia/Tokyo"}
	// 00:30 UTC is 09:30 in Tokyo (UTC+9): the next 09:00 there is
	// 00:00 UTC the next day.
	got := nextN(t, j, time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC), 1)[0]
	if want := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next = %s, want %s", got.UTC(), want)
	}
}

// A schedule that never fires (no 30 February) is a problem naming it,
// not a job that silently never runs.
func TestScheduleNeverFires(t *testing.T) {
	_, err := ParseEnv("imgvec.yaml", []byte("jobs:\n  - name: a\n    source: x\n    schedule: \"0 0 30 2 *\"\n"), env(nil))
	want := `imgvec.yaml:4: jobs[0].schedule: "0 0 30 2 *": never fires: no time in the next 5 years matches it`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v\nwant %s…", err, want)
	}
}
