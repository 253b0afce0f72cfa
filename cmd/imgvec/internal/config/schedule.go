package config

import (
	"errors"
	"strings"
	"time"

	"github.com/imgvec/imgvec/connector/schedule"
)

var errFieldCount = errors.New("expected 5 fields (or 6 with seconds, or a descriptor like @every 15m)")

// checkSchedule validates a spec with the scheduler's own parser. The
// field count is checked first for a short message on the commonest
// mistake; otherwise the parser's cause is reported without its wrapping,
// which repeats the spec the message already quotes.
func checkSchedule(spec string) error {
	if spec == "" {
		return nil // no schedule: a job for the one-shot commands
	}
	if !strings.HasPrefix(strings.TrimSpace(spec), "@") && !strings.Contains(spec, "=") {
		if n := len(strings.Fields(spec)); n != 5 && n != 6 {
			return errFieldCount
		}
	}
	_, err := schedule.ParseSpec(spec, time.UTC)
	if cause := errors.Unwrap(err); cause != nil {
		return cause
	}
	return err
}
