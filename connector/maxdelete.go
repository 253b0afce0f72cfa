package connector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxDelete bounds how many vanished items one sync may delete: either an
// absolute count or a percentage of the items the sink held for the source
// before the run. The zero value means no limit.
type MaxDelete struct {
	limited bool
	count   int64
	percent float64 // used when isPct
	isPct   bool
}

// ParseMaxDelete parses "100" (at most 100 items), "10%" (at most 10% of
// the stored items, rounded down), "0" (no deletes at all) or
// "" / "none" / "unlimited" (no limit).
func ParseMaxDelete(s string) (MaxDelete, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "none", "unlimited":
		return MaxDelete{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
			return MaxDelete{}, fmt.Errorf("max-delete %q: want a count (\"100\") or a percentage between 0%% and 100%% (\"10%%\")", s)
		}
		return MaxDelete{limited: true, percent: v, isPct: true}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return MaxDelete{}, fmt.Errorf("max-delete %q: want a count (\"100\") or a percentage between 0%% and 100%% (\"10%%\")", s)
	}
	return MaxDelete{limited: true, count: n}, nil
}

// MaxDeleteCount returns a guard of at most n deletes.
func MaxDeleteCount(n int64) MaxDelete { return MaxDelete{limited: true, count: max(n, 0)} }

// MaxDeletePercent returns a guard of at most pct percent of the stored items.
func MaxDeletePercent(pct float64) MaxDelete {
	return MaxDelete{limited: true, percent: min(max(pct, 0), 100), isPct: true}
}

// Limited reports whether the guard limits anything.
func (m MaxDelete) Limited() bool { return m.limited }

// Allowed returns how many deletes the guard allows when the sink holds
// stored items for the source (math.MaxInt64 when unlimited).
func (m MaxDelete) Allowed(stored int64) int64 {
	switch {
	case !m.limited:
		return math.MaxInt64
	case m.isPct:
		return int64(math.Floor(m.percent / 100 * float64(stored)))
	default:
		return m.count
	}
}

// Check returns a *DeleteGuardError if deleting n of stored items of source
// exceeds the guard.
func (m MaxDelete) Check(source string, n, stored int64) error {
	if n <= m.Allowed(stored) {
		return nil
	}
	return &DeleteGuardError{Source: source, Deleting: n, Stored: stored, Limit: m}
}

// String returns the flag form: "100", "10%" or "unlimited".
func (m MaxDelete) String() string {
	switch {
	case !m.limited:
		return "unlimited"
	case m.isPct:
		return strconv.FormatFloat(m.percent, 'f', -1, 64) + "%"
	default:
		return strconv.FormatInt(m.count, 10)
	}
}
