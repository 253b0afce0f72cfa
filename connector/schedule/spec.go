package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts 5 fields, 6 with a leading seconds field, and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// expected is appended to every parse error so that a config author sees
// the accepted forms next to what went wrong.
const expected = `expected 5 fields "minute hour day-of-month month day-of-week", ` +
	`6 with a leading seconds field, or a descriptor such as @hourly or "@every 15m"`

// ErrNeverFires is the cause of ParseSpec's error for a spec that is well
// formed but matches no time: robfig/cron looks five years ahead and then
// gives up, so such a job would silently never run.
var ErrNeverFires = errors.New("never fires: no time in the next 5 years matches it (a day its month does not have, such as 30 February?)")

// ParseSpec parses a schedule (see "Schedules" in the package doc) whose
// times are wall-clock times in loc (UTC when nil).
func ParseSpec(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if loc == nil {
		loc = time.UTC
	}
	switch {
	case spec == "":
		return nil, fmt.Errorf("parse schedule: empty; %s", expected)
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		// Refused rather than passed on: the job's time zone is its own
		// setting, and cron's parser panics on a prefix with no spec after it.
		return nil, fmt.Errorf("parse schedule %q: a time zone prefix is not supported; set the job's time zone instead", spec)
	case strings.HasPrefix(spec, "@every"):
		return parseEvery(spec)
	}
	sched, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w; %s", spec, err, expected)
	}
	// The parser leaves Location at time.Local, which would make times
	// depend on the machine's zone; every descriptor but @every and every
	// field spec is a *cron.SpecSchedule.
	sched.(*cron.SpecSchedule).Location = loc
	if sched.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("parse schedule %q: %w", spec, ErrNeverFires)
	}
	return sched, nil
}

// parseEvery parses "@every DURATION" itself because cron silently rounds
// durations under a second up and fractions of a second down.
func parseEvery(spec string) (cron.Schedule, error) {
	arg, ok := strings.CutPrefix(spec, "@every ")
	if !ok {
		return nil, fmt.Errorf("parse schedule %q: expected \"@every DURATION\", such as \"@every 15m\"", spec)
	}
	d, err := time.ParseDuration(strings.TrimSpace(arg))
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w; expected \"@every DURATION\", such as \"@every 15m\"", spec, err)
	}
	if d < time.Second || d%time.Second != 0 {
		return nil, fmt.Errorf("parse schedule %q: the interval must be a whole number of seconds, at least 1s", spec)
	}
	return cron.Every(d), nil
}
