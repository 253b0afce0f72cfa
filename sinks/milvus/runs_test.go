package milvus

import (
	"context"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

// TestRunsRebuild: migration 0002 rebuilds NAME_runs with the shard,
// skipped and runner fields (Milvus cannot add fields), keeping every
// row; down drops them again. A rebuild interrupted at any point (a
// partial copy beside the old collection, the old one dropped, the copy
// left behind) completes when run again.
func TestRunsRebuild(t *testing.T) {
	milvustest.Each(t, func(t *testing.T, addr string) {
		base := testBase(t, addr)
		ctx := context.Background()
		m := model(8)
		s := newTestSink(t, addr, base)
		open(t, s, m)
		now := time.Now().UTC().Truncate(time.Millisecond)
		runner := schema.Runner{Host: "h", BootID: "b", PIDNS: "pid:[1]", PID: 7, Start: 99}
		runs := []schema.Run{
			{ID: "r1", Job: "photos", Kind: "sync", Source: "file:///d", ModelID: m.ID(), StartedAt: now, EndedAt: now, Outcome: schema.RunOK, Listed: 3, Written: 3},
			{ID: "r2", Job: "photos", Kind: "sync", Source: "file:///d", Shard: "1/4", ModelID: m.ID(), StartedAt: now.Add(time.Second),
				Outcome: schema.RunRunning, Listed: 4, Skipped: 4, Runner: runner},
		}
		for i := range runs {
			if err := s.Write(ctx, connector.Batch{Run: &runs[i]}); err != nil {
				t.Fatal(err)
			}
		}
		checkRuns := func(when string, wantShard bool) {
			t.Helper()
			st, err := s.Status(ctx)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if len(st.Runs) != 2 {
				t.Fatalf("%s: %d runs, want 2", when, len(st.Runs))
			}
			got := st.Runs[0] // newest: r2
			if got.ID != "r2" || got.Listed != 4 || (got.Shard == "1/4") != wantShard || (got.Runner == runner) != wantShard || (got.Skipped == 4) != wantShard {
				t.Errorf("%s: run r2 = %+v (shard, skipped and runner kept: %v)", when, got, wantShard)
			}
		}
		checkRuns("written", true)
		s.Close()

		mig, err := s.OpenMigrator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mig.Down(ctx, migrations.Options{}); err != nil {
			t.Fatal(err)
		}
		layout := func() int {
			coll, err := s.c.DescribeCollection(ctx, s.cfg.runsName())
			if err != nil {
				t.Fatal(err)
			}
			if sameFields(coll.Schema, runsSchemaV("", 2)) {
				return 2
			}
			return 1
		}
		if v := layout(); v != 1 {
			t.Fatalf("after migrate down: runs layout %d, want 1", v)
		}
		// A crash after a partial copy: the old collection and a copy
		// holding one row.
		tmp := s.cfg.runsName() + "_rebuild"
		if err := create(ctx, s.c, runsSchemaV(tmp, 2), placeholderIndex()); err != nil {
			t.Fatal(err)
		}
		if err := s.upsertRuns(ctx, s.c, tmp, 2, runs[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := mig.Up(ctx, migrations.Options{}); err != nil {
			t.Fatal(err)
		}
		if v := layout(); v != 2 {
			t.Fatalf("after migrate up: runs layout %d, want 2", v)
		}
		// A crash after the old collection was dropped, then one after the
		// copy back: each rebuild again completes.
		if err := s.copyRuns(ctx, s.cfg.runsName(), tmp, 2, runsSchemaV("", 2)); err != nil {
			t.Fatal(err)
		}
		if err := s.c.DropCollection(ctx, s.cfg.runsName()); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := s.rebuildRuns(ctx, 2); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.c.HasCollection(ctx, tmp); err != nil || ok {
			t.Errorf("the copy %s is left after the rebuild (%v)", tmp, err)
		}
		s.Close()

		s2 := newTestSink(t, addr, base)
		open(t, s2, m)
		s = s2
		checkRuns("after down and up (the down dropped the new fields)", false)
		runs[1].Shard, runs[1].Skipped, runs[1].Runner = "1/4", 4, runner
		if err := s.Write(ctx, connector.Batch{Run: &runs[1]}); err != nil {
			t.Fatal(err)
		}
		checkRuns("rewritten after the rebuild", true)
		if n, err := s.AbandonDeadRuns(ctx, "h", func(r schema.Runner) bool { return r == runner }, now, "gone"); err != nil || n != 1 {
			t.Errorf("AbandonDeadRuns = %d, %v; want 1 (runs record their runner now)", n, err)
		}
	})
}
