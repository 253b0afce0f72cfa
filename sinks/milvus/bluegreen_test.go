package milvus

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

// aliasOf connects a client of its own (closed after t) and returns it with
// a function naming the collection the alias base points to.
func aliasOf(t *testing.T, addr, base string) (client.Client, func() string) {
	t.Helper()
	ctx := context.Background()
	c, err := client.NewClient(ctx, client.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, func() string {
		t.Helper()
		coll, err := c.DescribeCollection(ctx, base) // through the alias
		if err != nil {
			t.Fatalf("describe alias %s: %v", base, err)
		}
		return coll.Name
	}
}

// A model change is blue/green: the new model's collection is filled
// while the alias stays on the old one, the alias moves when a run of the
// new model completes, and the old collection is dropped after the grace
// period.
func TestBlueGreenModelSwitch(t *testing.T) {
	milvustest.Each(t, testBlueGreenModelSwitch)
}

func testBlueGreenModelSwitch(t *testing.T, addr string) {
	base := testBase(t, addr)
	ctx := context.Background()
	c, aliasTarget := aliasOf(t, addr, base)
	run := func(m schema.ModelIdentity, id string, outcome schema.RunOutcome) *schema.Run {
		now := time.Now().UTC()
		return &schema.Run{ID: id, Kind: "sync", Source: "file:///bg", ModelID: m.ID(), StartedAt: now, EndedAt: now, Outcome: outcome}
	}
	a, b := model(8), schema.ModelIdentity{ModelSHA256: model(8).ModelSHA256, Layer: "fc6", Preprocess: "test-v1", Dim: 16}

	s := newTestSink(t, addr, base)
	open(t, s, a)
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{record(a, "file:///bg", "1.jpg", 1)}, Run: run(a, "r1", schema.RunOK)}); err != nil {
		t.Fatal(err)
	}
	if got := aliasTarget(); got != base+"_v1" {
		t.Fatalf("alias after the first model's run: %s, want %s_v1", got, base)
	}
	s.Close()

	open(t, s, b)
	// While the new model fills, readers stay on the old collection; a run
	// that failed does not switch.
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{record(b, "file:///bg", "1.jpg", 2)}, Run: run(b, "r2", schema.RunFailed)}); err != nil {
		t.Fatal(err)
	}
	if got := aliasTarget(); got != base+"_v1" {
		t.Fatalf("alias while the new model fills: %s, want %s_v1", got, base)
	}
	if err := s.Write(ctx, connector.Batch{Run: run(b, "r3", schema.RunPartial)}); err != nil {
		t.Fatal(err)
	}
	if got := aliasTarget(); got != base+"_v2" {
		t.Fatalf("alias after the new model's complete run: %s, want %s_v2", got, base)
	}
	s.Close()

	// Within the grace period the old collection stays searchable.
	open(t, s, b)
	if hits, err := s.Search(ctx, a.ID(), record(a, "", "", 1).Vector, 3); err != nil || len(hits) != 1 {
		t.Errorf("old model during the grace period: %d hits, %v", len(hits), err)
	}
	s.Close()
	// After it, the next Open drops it.
	short, err := New("milvus://" + addr + "?collection=" + base + "&grace=0s")
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	open(t, short, b)
	if ok, err := c.HasCollection(ctx, base+"_v1"); err != nil || ok {
		t.Errorf("retired collection after the grace period: exists %v, %v", ok, err)
	}
	if hits, err := short.Search(ctx, b.ID(), record(b, "", "", 2).Vector, 3); err != nil || len(hits) != 1 {
		t.Errorf("new model after the drop: %d hits, %v", len(hits), err)
	}
	st, err := short.Status(ctx)
	if err != nil || len(st.Models) != 1 || st.Models[0].ModelID != b.ID() {
		t.Errorf("status after the drop: %+v %v", st.Models, err)
	}
}

// With several sources in one sink, the alias moves to the new model's
// collection only once every source the old one was complete for (and
// still holds rows of) has had a complete run of the new model.
func TestBlueGreenWaitsForEverySource(t *testing.T) {
	milvustest.Each(t, testBlueGreenWaitsForEverySource)
}

func testBlueGreenWaitsForEverySource(t *testing.T, addr string) {
	base := testBase(t, addr)
	ctx := context.Background()
	_, aliasTarget := aliasOf(t, addr, base)
	a, b := model(8), schema.ModelIdentity{ModelSHA256: model(8).ModelSHA256, Layer: "fc6", Preprocess: "test-v1", Dim: 16}
	sync := func(s *Sink, m schema.ModelIdentity, source string, n int) {
		t.Helper()
		now := time.Now().UTC()
		run := &schema.Run{ID: source + m.ID(), Kind: "sync", Source: source, ModelID: m.ID(), StartedAt: now, EndedAt: now, Outcome: schema.RunOK}
		if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{record(m, source, "1.jpg", n)}, Run: run}); err != nil {
			t.Fatal(err)
		}
	}
	s := newTestSink(t, addr, base)
	open(t, s, a)
	sync(s, a, "file:///x", 1)
	sync(s, a, "file:///y", 2)
	sync(s, a, "file:///gone", 3)
	gone := record(a, "file:///gone", "1.jpg", 3)
	if err := s.Delete(ctx, "file:///gone", []string{gone.ID}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	open(t, s, b)
	sync(s, b, "file:///x", 4)
	if got := aliasTarget(); got != base+"_v1" {
		t.Fatalf("alias after the new model's run of one of two sources: %s, want %s_v1", got, base)
	}
	sync(s, b, "file:///y", 5)
	if got := aliasTarget(); got != base+"_v2" {
		t.Fatalf("alias after both sources: %s, want %s_v2 (the emptied source must not hold it back)", got, base)
	}
}

// migrate down drops the item collections and their meta rows (items/,
// complete/, current), so that a later up starts clean; the migration
// ledger stays in NAME_meta.
func TestMigrateDownForgetsItemCollections(t *testing.T) {
	milvustest.Each(t, func(t *testing.T, addr string) {
		base := testBase(t, addr)
		ctx := context.Background()
		m := model(8)
		s := newTestSink(t, addr, base)
		open(t, s, m)
		now := time.Now().UTC()
		run := &schema.Run{ID: "r1", Kind: "sync", Source: "file:///d", ModelID: m.ID(), StartedAt: now, EndedAt: now, Outcome: schema.RunOK}
		if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{record(m, "file:///d", "1.jpg", 1)}, Run: run}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		mig, err := s.OpenMigrator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mig.Down(ctx, migrations.Options{TargetVersion: migrations.AllVersions}); err != nil {
			t.Fatal(err)
		}
		names, err := CollectionNames(ctx, s.c)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasPrefix(name, base+"_") && name != base+"_meta" {
				t.Errorf("after migrate down: collection %s left", name)
			}
		}
		for _, prefix := range []string{metaItemsPrefix, metaCompletePrefix, metaCurrent} {
			if rows, err := s.metaScan(ctx, prefix); err != nil || len(rows) > 0 {
				t.Errorf("after migrate down: meta rows %s*: %v %v", prefix, rows, err)
			}
		}
	})
}
