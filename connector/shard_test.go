package connector_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]connector.Shard{"": {}, "0/1": {I: 0, N: 1}, "2/4": {I: 2, N: 4}, "9999/10000": {I: 9999, N: 10000}} {
		got, err := connector.ParseShard(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseShard(%q) = %+v (%q), %v; want %+v", in, got, got.String(), err, want)
		}
	}
	for _, in := range []string{"4/4", "-1/4", "1/0", "1", "a/b", "1/4/2", "0/10001", " 1/4"} {
		if s, err := connector.ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) = %+v, want an error", in, s)
		}
	}
}

// A listed key's membership is its id's, for any N (the listing hashes
// the key only when sharded).
func TestShardContainsKey(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7} {
		for i := range max(n, 1) {
			s := connector.Shard{I: i, N: n}
			for k := range 200 {
				key := fmt.Sprintf("img/%05d.jpg", k)
				if got, want := s.ContainsKey("file:///photos", key), s.Contains(schema.ItemID("file:///photos", key)); got != want {
					t.Fatalf("shard %+v: ContainsKey(%q) = %v, Contains of its id = %v", s, key, got, want)
				}
			}
		}
	}
}

// TestShardPartition: the N shards of any N partition the ids (each in
// exactly one), evenly, and membership is the documented function of the
// id (its first 64 bits modulo N), so that every platform agrees.
func TestShardPartition(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 16} {
		counts := make([]int, n)
		for k := range 4000 {
			id := schema.ItemID("file:///photos", fmt.Sprintf("img/%05d.jpg", k))
			owners := 0
			for i := range n {
				if (connector.Shard{I: i, N: n}).Contains(id) {
					owners++
					counts[i]++
				}
			}
			if owners != 1 {
				t.Fatalf("N=%d: id %s is in %d shards", n, id, owners)
			}
		}
		for i, c := range counts {
			if want := 4000 / n; c < want*8/10 || c > want*12/10 {
				t.Errorf("N=%d: shard %d has %d of 4000 ids, want about %d", n, i, c, want)
			}
		}
	}
	// Golden values: 0x0123456789abcdef mod 4 = 3, mod 10 = 5.
	id := "0123456789abcdef0000000000000000"
	if !(connector.Shard{I: 3, N: 4}).Contains(id) || !(connector.Shard{I: 5, N: 10}).Contains(id) {
		t.Errorf("id %s: not in shards 3/4 and 5/10", id)
	}
	if !(connector.Shard{I: 0, N: 4}).Contains("not-hex") || !(connector.Shard{}).Contains("anything") {
		t.Error("an id that is not hex belongs to shard 0; every id to the whole source")
	}
	if got := (connector.Shard{I: 2, N: 4}).LeaseName("photos"); got != "photos.shard-2-of-4" {
		t.Errorf("LeaseName = %q", got)
	}
	if got := (connector.Shard{}).LeaseName("photos"); got != "photos" {
		t.Errorf("unsharded LeaseName = %q", got)
	}
}

// TestShardedSyncs: N sharded syncs together write every item once, each
// lists only its slice, and a sync deletes only the vanished items of its
// own slice.
func TestShardedSyncs(t *testing.T) {
	e := newEnv(t, 40)
	const n = 3
	shard := func(i int) func(*connector.Options) {
		return func(o *connector.Options) { o.Shard, o.Job = connector.Shard{I: i, N: n}, "photos" }
	}
	var listed int64
	for i := range n {
		run := e.mustRun(shard(i))
		if run.Shard != fmt.Sprintf("%d/%d", i, n) || run.Listed != run.Extracted || run.Listed == 0 {
			t.Errorf("shard %d: %+v", i, run)
		}
		listed += run.Listed
	}
	if rows := e.sink.Rows(); listed != 40 || len(rows) != 40 {
		t.Fatalf("%d listed, %d rows; want 40 each", listed, len(rows))
	}
	// Remove one key of each shard: shard 0's sync deletes only its own.
	owner := func(k string) int {
		for i := range n {
			if (connector.Shard{I: i, N: n}).Contains(schema.ItemID(srcName, k)) {
				return i
			}
		}
		return -1
	}
	removed := map[int]string{}
	for k := range 40 {
		if o := owner(key(k)); removed[o] == "" {
			removed[o] = key(k)
			e.src.Remove(key(k))
		}
	}
	run := e.mustRun(shard(0))
	if run.Deleted != 1 || run.Unchanged != run.Listed {
		t.Errorf("sync of shard 0 after removing one key per shard: %+v; want 1 deleted", run)
	}
	rows := e.sink.Rows()
	for o, k := range removed {
		if _, kept := rows[schema.ItemID(srcName, k)]; kept != (o != 0) {
			t.Errorf("%s (shard %d/%d): kept = %v after shard 0's sync", k, o, n, kept)
		}
	}
	// A copy, in shard 0, of an item another shard stored reuses its
	// vector: the sha256s of every shard are known.
	copyKey := ""
	for k := 0; copyKey == ""; k++ {
		if c := fmt.Sprintf("copies/%03d.jpg", k); owner(c) == 0 {
			copyKey = c
		}
	}
	var other int
	for other = 0; owner(key(other)) == 0 || removed[owner(key(other))] == key(other); other++ {
	}
	e.src.Put(copyKey, data(other), t0)
	if run := e.mustRun(shard(0)); run.Reused != 1 || run.Extracted != 0 {
		t.Errorf("sync of shard 0 with a copy of shard %d's %s: %+v; want it reused", owner(key(other)), key(other), run)
	}
	// The dry run sees the same slice.
	p, err := e.syncer(shard(1)).Plan(t.Context())
	if err != nil || p.Listed+1 != e.sink.Runs()[firstRunOf(e, "1/3")].Listed || p.Vanished != 1 {
		t.Errorf("plan of shard 1: %+v, %v; want its slice less the removed key, 1 vanished", p, err)
	}
}

func firstRunOf(e *env, shard string) string {
	for id, r := range e.sink.Runs() {
		if r.Shard == shard {
			return id
		}
	}
	return ""
}

// TestShardCountChange: a run with another shard count than the job's
// unfinished runs is refused (ShardLayoutError) and writes nothing; once
// the old count's shards all finished, or with Reshard, it runs.
func TestShardCountChange(t *testing.T) {
	e := newEnv(t, 12)
	with := func(s string, reshard bool) func(*connector.Options) {
		return func(o *connector.Options) {
			o.Job, o.Reshard = "photos", reshard
			o.Shard, _ = connector.ParseShard(s)
		}
	}
	e.mustRun(with("0/2", false))
	runsBefore := len(e.sink.Runs())
	_, err := e.syncer(with("0/3", false)).Run(t.Context())
	var le *connector.ShardLayoutError
	if !errors.As(err, &le) || le.Layout != 2 || !slices.Equal(le.Unfinished, []string{"1/2 (never run)"}) || !strings.Contains(err.Error(), "--reshard") {
		t.Fatalf("0/3 after 0/2 alone: %v; want a ShardLayoutError naming 1/2", err)
	}
	if _, err := e.syncer(with("", false)).Run(t.Context()); !errors.As(err, &le) {
		t.Errorf("an unsharded run after 0/2 alone: %v; want a ShardLayoutError", err)
	}
	if len(e.sink.Runs()) != runsBefore {
		t.Error("a refused run wrote a run row")
	}
	// Another job is another history.
	e.mustRun(func(o *connector.Options) { o.Job, o.Shard = "other", connector.Shard{I: 0, N: 3} })
	// A failed 1/2 is unfinished too; --reshard runs anyway.
	e.sink.Write(t.Context(), connector.Batch{Run: &schema.Run{ID: "z-failed", Job: "photos", Source: srcName, Shard: "1/2",
		StartedAt: time.Now(), EndedAt: time.Now(), Outcome: schema.RunFailed}})
	if _, err := e.syncer(with("0/3", false)).Run(t.Context()); !errors.As(err, &le) || le.Unfinished[0] != "1/2 (failed)" {
		t.Errorf("0/3 after a failed 1/2: %v", err)
	}
	e.mustRun(with("2/3", true))
	// Now the job's newest layout is 3 ways: 0/3 and 1/3 run without the
	// flag, and the 2-way layout is refused in turn until they are done.
	e.mustRun(with("0/3", false))
	if _, err := e.syncer(with("1/2", false)).Run(t.Context()); !errors.As(err, &le) || le.Layout != 3 {
		t.Errorf("1/2 while 1/3 never ran: %v; want a ShardLayoutError on 3 shards", err)
	}
	e.mustRun(with("1/3", false))
	if rows := e.sink.Rows(); len(rows) != 12 {
		t.Errorf("%d rows after 3 shards, want 12", len(rows))
	}
	e.mustRun(with("", false)) // the 3-way layout finished: switching back is allowed
}

// TestPolicySkips: an item the source skips by policy (opted_out) is in
// the ledger but counted as skipped, not failed: the run is ok, and the
// next run skips it again unread.
func TestPolicySkips(t *testing.T) {
	e := newEnv(t, 5)
	e.src.ReadErr = map[string]error{key(1): &schema.ItemError{Stage: "read", Class: schema.FailOptedOut, Reason: "X-Robots-Tag: noai"}}
	run := e.mustRun()
	if run.Outcome != schema.RunOK || run.Skipped != 1 || run.Failed != 0 || run.Written != 4 {
		t.Errorf("first run: %+v; want ok, 1 skipped, 0 failed", run)
	}
	if f, ok := e.sink.Ledger()[schema.ItemID(srcName, key(1))]; !ok || f.Class != schema.FailOptedOut {
		t.Errorf("ledger entry %+v; want opted_out", f)
	}
	reads := e.src.Reads(key(1))
	run = e.mustRun()
	if run.Outcome != schema.RunOK || run.Skipped != 1 || run.Failed != 0 || run.Unchanged != 4 || e.src.Reads(key(1)) != reads {
		t.Errorf("second run: %+v, %d reads of the skipped item; want ok, 1 skipped unread", run, e.src.Reads(key(1))-reads)
	}
	p, err := e.syncer().Plan(t.Context())
	if err != nil || p.SkippedKnown != 1 || p.FailedKnown != 0 {
		t.Errorf("plan: %+v, %v; want 1 known policy skip", p, err)
	}
}
