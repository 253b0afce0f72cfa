package connector_test

import (
	"context"
	"errors"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/schema"
)

// listing is the Source the env's syncers list: the fake itself (in key
// order) unless TestDiffPaths swaps it.
var listing = func(s *connectortest.Source) connector.Source { return s }

// reversedSource lists the fake backwards and promises no order: the
// diff sorts the whole listing on disk before matching it.
type reversedSource struct{ *connectortest.Source }

func (s reversedSource) List(ctx context.Context, fn func(connector.Entry) error) error {
	var entries []connector.Entry
	err := s.Source.List(ctx, func(e connector.Entry) error { entries = append(entries, e); return nil })
	for _, e := range slices.Backward(entries) {
		if err := fn(e); err != nil {
			return err
		}
	}
	return err
}

// ListsInKeyOrder hides the fake's promise.
func (reversedSource) ListsInKeyOrder() bool { return false }

// brokenPromiseSource lists backwards although it promises key order: all
// but the first entry come late, and are matched after the listing
// against the stored items the listing passed.
type brokenPromiseSource struct{ reversedSource }

func (brokenPromiseSource) ListsInKeyOrder() bool { return true }

// The diff's other paths give the same results as the in-order merge the
// other tests take: the tests of the incremental, ledger and delete rules
// run again with a listing in no order, with a listing that breaks its
// promise of order, and with every spill going through the disk.
func TestDiffPaths(t *testing.T) {
	tests := map[string]func(*testing.T){
		"FirstRunThenUnchanged":       TestFirstRunThenUnchanged,
		"IncrementalRules":            TestIncrementalRules,
		"ReuseCallsVectorsBySHA256":   TestReuseCallsVectorsBySHA256,
		"StaleModel":                  TestStaleModel,
		"LedgerRules":                 TestLedgerRules,
		"InvalidKeyRefusedIntoLedger": TestInvalidKeyRefusedIntoLedger,
		"LedgerOtherModelRetried":     TestLedgerOtherModelRetried,
		"FailuresPerStage":            TestFailuresPerStage,
		"DeleteRules":                 TestDeleteRules,
		"PlanDoesNotReadOrWrite":      TestPlanDoesNotReadOrWrite,
		"VanishedBetweenListAndRead":  TestVanishedBetweenListAndRead,
		"InvalidKeyBesideItsEscape":   TestInvalidKeyBesideItsEscape,
	}
	paths := []struct {
		name    string
		listing func(*connectortest.Source) connector.Source
		budget  int
	}{
		{"unordered", func(s *connectortest.Source) connector.Source { return reversedSource{s} }, 0},
		{"broken-order-promise", func(s *connectortest.Source) connector.Source { return brokenPromiseSource{reversedSource{s}} }, 0},
		{"spilled", nil, 1},
		{"unordered-spilled", func(s *connectortest.Source) connector.Source { return reversedSource{s} }, 1},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			if p.listing != nil {
				old := listing
				listing = p.listing
				t.Cleanup(func() { listing = old })
			}
			if p.budget > 0 {
				t.Cleanup(connector.SetSpillBudgets(p.budget))
			}
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for n := range tests {
					if !yield(n) {
						return
					}
				}
			}) {
				t.Run(name, tests[name])
			}
		})
	}
}

// A valid key may equal the escaped form of an invalid one ("x\xff.jpg"
// is stored as `x\xff.jpg`): both are diffed by id, and neither passes
// for the other, nor for vanished.
func TestInvalidKeyBesideItsEscape(t *testing.T) {
	e := newEnv(t, 3)
	raw := "x\xff.jpg"
	e.src.Put(raw, []byte("raw"), t0)
	e.src.Put(schema.EscapeKey(raw), data(7), t0)
	first := e.mustRun()
	if first.Written != 4 || first.Failed != 1 {
		t.Fatalf("first run %+v", first)
	}
	run := e.mustRun()
	if run.Unchanged != 4 || run.Failed != 1 || run.Written != 0 || run.Deleted != 0 {
		t.Errorf("second run %+v: want 4 unchanged, 1 known failure, nothing written or deleted", run)
	}
	e.src.Remove(raw)
	run = e.mustRun()
	if run.Deleted != 1 || run.Unchanged != 4 {
		t.Errorf("after removing the invalid key: run %+v, want it deleted and 4 unchanged", run)
	}
	if _, ok := e.sink.Ledger()[schema.ItemID(srcName, raw)]; ok {
		t.Error("the invalid key's ledger entry was kept")
	}
}

// outOfOrderSink streams its stored items backwards: a broken Stored
// contract.
type outOfOrderSink struct{ *connectortest.Sink }

func (s outOfOrderSink) Stored(ctx context.Context, source string, fn func(connector.StoredItem) error) error {
	var items []connector.StoredItem
	if err := s.Sink.Stored(ctx, source, func(it connector.StoredItem) error { items = append(items, it); return nil }); err != nil {
		return err
	}
	for _, it := range slices.Backward(items) {
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// A sink whose stored items come out of order would make listed items
// look vanished: the run fails and deletes nothing.
func TestStoredOutOfOrderFailsTheRun(t *testing.T) {
	e := newEnv(t, 5)
	e.mustRun()
	e.src.Remove(key(4))
	s, err := connector.NewSyncer(e.opts(func(o *connector.Options) { o.Sink = outOfOrderSink{e.sink} }))
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "out of order") || run.Deleted != 0 {
		t.Fatalf("run %+v, err %v; want a failure naming the order and no deletes", run, err)
	}
	if len(e.sink.Rows()) != 5 {
		t.Errorf("%d rows left, want 5", len(e.sink.Rows()))
	}
}

// A failing stored stream fails Plan and Run with an error that names it.
func TestStoredErrorFailsDiff(t *testing.T) {
	e := newEnv(t, 3)
	e.sink.StoredErr = errors.New("disk on fire")
	_, err := e.syncer().Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "read stored items of") || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("plan: %v", err)
	}
	run, err := e.run()
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || run.Outcome != schema.RunFailed {
		t.Errorf("run %+v: %v", run, err)
	}
}

// The diff's memory does not grow with the collection (issue 14): a no-op
// sync of 300k synthetic items keeps its live heap within a fixed budget
// (the diff's two Bloom filters, chunks and spill buffers), where holding
// every stored item in maps took 109 MB here. The 1M and 10M
// numbers come from `make bench-scale`.
func TestNoOpSyncMemoryBounded(t *testing.T) {
	const n = 300_000
	if testing.Short() {
		t.Skip("skipped with -short: a 300k-item sync")
	}
	ctx := context.Background()
	y := connectortest.Synthetic{Source: "synthetic://bounded", N: n}
	model := connectortest.Model("bounded", 8)
	sink := connectortest.NewSyntheticSink(y, model)
	if err := sink.Open(ctx, model); err != nil {
		t.Fatal(err)
	}
	s, err := connector.NewSyncer(connector.Options{Source: connectortest.SyntheticSource{Synthetic: y}, Sink: sink,
		Embedder: connectortest.NewEmbedder(model, 8), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	peak := watchHeap(t)
	run, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.Unchanged != n || run.Written != 0 || run.Deleted != 0 {
		t.Fatalf("run %+v: not a no-op", run)
	}
	const limit = 48 << 20
	p := peak()
	t.Logf("live heap peak %d MB", p>>20)
	if p > limit {
		t.Errorf("live heap peaked at %d MB during a no-op sync of %d items, want at most %d MB", p>>20, n, limit>>20)
	}
}

// watchHeap samples the live heap (as of the last GC) every millisecond until the
// returned function is called, which returns the peak.
func watchHeap(t *testing.T) func() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	stop := sync.OnceValue(func() uint64 { close(done); wg.Wait(); return peak })
	t.Cleanup(func() { stop() })
	return stop
}
