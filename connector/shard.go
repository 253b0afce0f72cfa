package connector

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/imgvec/imgvec/schema"
)

// MaxShards bounds N in a shard I/N: more workers than this over one
// collection would each list it whole for a sliver of the work.
const MaxShards = 10_000

// Shard is one slice I of N of a source: the items whose id
// (schema.ItemID) falls in slice I. The zero Shard is the whole source.
//
// Membership is a function of the id alone, the same on every platform:
// the id's first 16 hex digits read as a big-endian uint64, modulo N. The
// id is itself a sha256, so slices are even. N runs with shards 0/N …
// N-1/N partition any set of ids: each id is in exactly one.
type Shard struct {
	I, N int // 0 <= I < N; N == 0: unsharded
}

// ParseShard parses "I/N" (0 <= I < N <= MaxShards). The empty string is
// the zero Shard (unsharded).
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, ierr := strconv.Atoi(is)
	n, nerr := strconv.Atoi(ns)
	switch {
	case !ok || ierr != nil || nerr != nil:
		return Shard{}, fmt.Errorf("shard %q: want I/N, e.g. 0/4", s)
	case n < 1 || n > MaxShards:
		return Shard{}, fmt.Errorf("shard %q: N must be 1 to %d", s, MaxShards)
	case i < 0 || i >= n:
		return Shard{}, fmt.Errorf("shard %q: I must be 0 to N-1 (%d)", s, n-1)
	}
	return Shard{I: i, N: n}, nil
}

// String is "I/N", or "" for the whole source: the form run rows record.
func (s Shard) String() string {
	if s.N == 0 {
		return ""
	}
	return strconv.Itoa(s.I) + "/" + strconv.Itoa(s.N)
}

// Contains reports whether the item id is in the slice (always, when
// unsharded). An id that does not start with 16 hex digits (schema.ItemID
// never makes one) is in slice 0, so that it still has one owner.
func (s Shard) Contains(id string) bool {
	if s.N <= 1 {
		return true
	}
	var h uint64
	if len(id) >= 16 {
		h, _ = strconv.ParseUint(id[:16], 16, 64) // not hex: 0
	}
	return h%uint64(s.N) == uint64(s.I)
}

// containsKey is Contains of the id of source's item key, which it
// computes (a sha256) only when the source is sharded.
func (s Shard) containsKey(source, key string) bool {
	return s.N <= 1 || s.Contains(schema.ItemID(source, key))
}

// LeaseName is the name of job's lease for this shard: the job itself
// when unsharded, else JOB.shard-I-of-N (job names have no dot), so that
// the N shards of a job run at once, one runner each.
func (s Shard) LeaseName(job string) string {
	if s.N == 0 {
		return job
	}
	return fmt.Sprintf("%s.shard-%d-of-%d", job, s.I, s.N)
}

// LatestRunReader is implemented by sinks that can read a job's run
// history: LatestRuns returns, among the runs of job over source, the most
// recent (by StartedAt, then ID) of each distinct Run.Shard value, in any
// order. Syncer.Run uses it to refuse a change of shard count while the
// job's runs under the old count are unfinished (ShardLayoutError).
type LatestRunReader interface {
	LatestRuns(ctx context.Context, job, source string) ([]schema.Run, error)
}

// ShardLayoutError refuses a run whose shard count N differs from the
// count M of the job's most recent run over the source while the M-shard
// layout is unfinished: some shard I/M has no run, or its latest run did
// not finish (running, failed, cancelled, abandoned). A rerun of shard I
// with another count would not cover shard I/M's items, and runs of two
// counts hold different leases, so they could run over the same items at
// once. Options.Reshard (--reshard) runs anyway: the caller then runs all
// N shards of the new layout.
type ShardLayoutError struct {
	Job, Source string
	Shard       Shard    // the refused run's
	Layout      int      // M, the count of the job's most recent run (1: unsharded)
	Unfinished  []string // shards of layout M without a finished run, "I/M (outcome)"
}

func (e *ShardLayoutError) Error() string {
	return fmt.Sprintf("job %q over %s: shard %s refused: the job's runs are split %d way(s) and not finished (%s); rerun those with their shard (--shard I/%d), or pass --reshard to switch to %d shards and then run all of them",
		e.Job, e.Source, cmp.Or(e.Shard.String(), "(whole source)"), e.Layout, strings.Join(e.Unfinished, ", "), e.Layout, e.Shard.layout())
}

// maxNamed bounds the unfinished shards a ShardLayoutError names.
const maxNamed = 10

// NewerRun reports whether run a started after b (by StartedAt, then ID:
// ids start with the start time): the order of LatestRunReader.
func NewerRun(a, b schema.Run) bool {
	return a.StartedAt.After(b.StartedAt) || (a.StartedAt.Equal(b.StartedAt) && a.ID > b.ID)
}

// layout is the shard count, 1 for the whole source.
func (s Shard) layout() int { return max(s.N, 1) }

// checkLayout applies the ShardLayoutError rule to the latest run of each
// shard of the job's source (LatestRunReader) for a run of shard s.
func checkLayout(job, source string, s Shard, latest []schema.Run) error {
	if len(latest) == 0 {
		return nil
	}
	newest := latest[0]
	for _, r := range latest[1:] {
		if NewerRun(r, newest) {
			newest = r
		}
	}
	last, err := ParseShard(newest.Shard)
	if err != nil || last.layout() == s.layout() {
		return nil // a shard this version cannot read constrains nothing
	}
	m := last.layout()
	byIndex := make(map[int]schema.Run, m)
	for _, r := range latest {
		sh, err := ParseShard(r.Shard)
		if old, seen := byIndex[sh.I]; err == nil && sh.layout() == m && (!seen || NewerRun(r, old)) {
			byIndex[sh.I] = r // "" and "0/1" are both shard 0 of 1
		}
	}
	var unfinished []string
	for i := range m {
		name := Shard{I: i, N: m}.String()
		switch r, ok := byIndex[i]; {
		case !ok:
			unfinished = append(unfinished, name+" (never run)")
		case r.Outcome != schema.RunOK && r.Outcome != schema.RunPartial:
			unfinished = append(unfinished, name+" ("+string(r.Outcome)+")")
		}
	}
	if len(unfinished) == 0 {
		return nil
	}
	if len(unfinished) > maxNamed {
		unfinished = append(unfinished[:maxNamed], fmt.Sprintf("and %d more", len(unfinished)-maxNamed))
	}
	return &ShardLayoutError{Job: job, Source: source, Shard: s, Layout: m, Unfinished: unfinished}
}
