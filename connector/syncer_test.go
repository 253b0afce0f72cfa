package connector_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/schema"
)

const srcName = "mem://photos"

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// env is a fake source, sink and embedder wired together.
type env struct {
	t     *testing.T
	src   *connectortest.Source
	sink  *connectortest.Sink
	emb   *connectortest.Embedder
	model schema.ModelIdentity
}

func key(i int) string { return fmt.Sprintf("img/%03d.jpg", i) }

func data(i int) []byte { return fmt.Appendf(nil, "image bytes %d", i) }

// newEnv returns an env with n files and checks for goroutine leaks when
// the test ends.
func newEnv(t *testing.T, n int) *env {
	t.Helper()
	noLeaks(t)
	e := &env{
		t:     t,
		src:   connectortest.NewSource(srcName),
		sink:  connectortest.NewSink(),
		model: connectortest.Model("A", 8),
	}
	e.emb = connectortest.NewEmbedder(e.model, 4)
	for i := range n {
		e.src.Put(key(i), data(i), t0.Add(time.Duration(i)*time.Second))
	}
	if err := e.sink.Open(context.Background(), e.model); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) opts(mods ...func(*connector.Options)) connector.Options {
	o := connector.Options{
		Source:         listing(e.src),
		Sink:           e.sink,
		Embedder:       e.emb,
		ReadWorkers:    3,
		PrepareWorkers: 2,
		Linger:         5 * time.Millisecond,
	}
	for _, m := range mods {
		m(&o)
	}
	return o
}

func (e *env) syncer(mods ...func(*connector.Options)) *connector.Syncer {
	e.t.Helper()
	s, err := connector.NewSyncer(e.opts(mods...))
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// run runs a syncer and checks what every run must satisfy.
func (e *env) run(mods ...func(*connector.Options)) (schema.Run, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := e.syncer(mods...).Run(ctx)
	e.checkRun(run, err)
	return run, err
}

// mustRun runs and fails the test on error.
func (e *env) mustRun(mods ...func(*connector.Options)) schema.Run {
	e.t.Helper()
	run, err := e.run(mods...)
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return run
}

func (e *env) checkRun(run schema.Run, err error) {
	e.t.Helper()
	if run.EndedAt.IsZero() || run.Outcome == schema.RunRunning {
		e.t.Errorf("run not finished: %+v", run)
	}
	if err == nil && run.Written+run.Unchanged+run.Failed+run.Skipped != run.Listed {
		e.t.Errorf("counters: written %d + unchanged %d + failed %d + skipped %d != listed %d", run.Written, run.Unchanged, run.Failed, run.Skipped, run.Listed)
	}
	if run.Extracted+run.Reused > run.Written {
		e.t.Errorf("counters: extracted %d + reused %d > written %d", run.Extracted, run.Reused, run.Written)
	}
	if got, ok := e.sink.Runs()[run.ID]; run.ID != "" && (!ok || got.Outcome != run.Outcome || got.Written != run.Written) {
		e.t.Errorf("final run row %+v, want %+v", got, run)
	}
	if n := e.sink.Overlaps(); n != 0 {
		e.t.Errorf("%d overlapping sink calls", n)
	}
	st := e.emb.Stats()
	if st.MaxInFlight > max(1, e.emb.Concurrency) || st.BadReleases != 0 || st.Prepared != st.Released {
		e.t.Errorf("embedder: %v (at most %d Infer calls in flight)", st, max(1, e.emb.Concurrency))
	}
}

// checkConverged checks "nothing lost": every key of the source is stored
// at its current fingerprint and model with the right vector, or is in the
// ledger at its current fingerprint; nothing else is stored.
func (e *env) checkConverged() {
	e.t.Helper()
	rows, ledger := e.sink.Rows(), e.sink.Ledger()
	keys := e.src.Keys()
	for _, k := range keys {
		id := schema.ItemID(srcName, k)
		f, _ := e.src.File(k)
		if r, ok := rows[id]; ok {
			if r.Size != int64(len(f.Data)) || !r.MTime.Equal(f.MTime) || r.ModelID != e.model.ID() || r.Key != k {
				e.t.Errorf("%s: stored %+v, want size %d mtime %v model %s", k, r.Fingerprint, len(f.Data), f.MTime, e.model.ID())
			}
			if !slices.Equal(r.Vector, connectortest.Vector(f.Data, e.model.Dim)) {
				e.t.Errorf("%s: wrong vector", k)
			}
			if _, dup := ledger[id]; dup {
				e.t.Errorf("%s: both stored and in the ledger", k)
			}
			continue
		}
		if l, ok := ledger[id]; ok {
			if !l.SameCheap(schema.Fingerprint{Size: int64(len(f.Data)), MTime: f.MTime}) {
				e.t.Errorf("%s: ledger fingerprint %+v is not current", k, l.Fingerprint)
			}
			continue
		}
		e.t.Errorf("%s: neither stored nor in the ledger", k)
	}
	if n := len(rows) + len(ledger); n > len(keys) {
		e.t.Errorf("sink holds %d rows + %d ledger entries for %d keys", len(rows), len(ledger), len(keys))
	}
}

// noLeaks fails the test if goroutines of package connector started
// during it are still running at its end. It counts only those: tests run
// in synctest bubbles, whose fake clock lets the wait below pass at once,
// so a goroutine of an earlier test still exiting outside the bubble
// (counted by runtime.NumGoroutine) made the check flaky.
func noLeaks(t *testing.T) {
	before, _ := connectorGoroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for n, _ := connectorGoroutines(); n > before && time.Now().Before(deadline); n, _ = connectorGoroutines() {
			time.Sleep(10 * time.Millisecond)
		}
		if n, dump := connectorGoroutines(); n > before {
			t.Errorf("goroutine leak: %d goroutines of package connector before, %d after\n%s", before, n, dump)
		}
	})
}

// connectorGoroutines counts the goroutines running code of package
// connector (not its tests or subpackages), with their stacks.
func connectorGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	var n int
	var dump strings.Builder
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "github.com/imgvec/imgvec/connector.") {
			n++
			dump.WriteString(g + "\n\n")
		}
	}
	return n, dump.String()
}

func TestFirstRunThenUnchanged(t *testing.T) {
	e := newEnv(t, 10)
	run := e.mustRun()
	if run.Outcome != schema.RunOK || run.Listed != 10 || run.Written != 10 || run.Extracted != 10 || run.Kind != connector.KindSync {
		t.Fatalf("first run %+v", run)
	}
	e.checkConverged()
	st := e.emb.Stats()
	if st.Inferred != 10 {
		t.Errorf("inferred %d, want 10", st.Inferred)
	}
	for _, b := range st.Batches {
		if len(b) > 4 {
			t.Errorf("batch of %d > batch size 4", len(b))
		}
	}

	// Second run: same size and mtime, same model: skipped without reading.
	reads := e.src.TotalReads()
	run = e.mustRun()
	if run.Outcome != schema.RunOK || run.Unchanged != 10 || run.Written != 0 {
		t.Fatalf("second run %+v", run)
	}
	if n := e.src.TotalReads(); n != reads {
		t.Errorf("second run read %d items, want 0", n-reads)
	}
	if st2 := e.emb.Stats(); st2.InferCalls != st.InferCalls {
		t.Errorf("second run ran the model")
	}
}

// TestInferWorkersPerDevice: an Embedder on several devices
// (ConcurrentEmbedder) gets one Infer in flight per device, and every item
// is still inferred once and committed.
func TestInferWorkersPerDevice(t *testing.T) { synctest.Test(t, testInferWorkersPerDevice) }

func testInferWorkersPerDevice(t *testing.T) {
	e := newEnv(t, 40)
	e.emb.Concurrency = 3
	e.emb.InferDelay = time.Second
	run := e.mustRun()
	if run.Outcome != schema.RunOK || run.Extracted != 40 {
		t.Fatalf("run %+v", run)
	}
	e.checkConverged()
	st := e.emb.Stats()
	if st.MaxInFlight != 3 || st.Inferred != 40 || st.BadReleases != 0 || st.Released != st.Prepared {
		t.Errorf("want 3 Infer calls in flight and every item inferred once: %s", st)
	}
	keys := st.InferredKeys()
	slices.Sort(keys)
	if len(slices.Compact(keys)) != 40 {
		t.Errorf("%d distinct keys inferred, want 40", len(keys))
	}
}

func TestIncrementalRules(t *testing.T) {
	type want struct {
		written, extracted, reused, unchanged, failed, deleted int64
		reads                                                  []string // keys read in the second run
	}
	tests := []struct {
		name   string
		change func(e *env)
		want   want
	}{
		{"nothing changed", func(e *env) {}, want{unchanged: 4}},
		{"new key", func(e *env) { e.src.Put("new.jpg", []byte("fresh"), t0) },
			want{written: 1, extracted: 1, unchanged: 4, reads: []string{"new.jpg"}}},
		{"content changed", func(e *env) { e.src.Put(key(1), []byte("edited"), t0.Add(time.Hour)) },
			want{written: 1, extracted: 1, unchanged: 3, reads: []string{key(1)}}},
		{"size changed, same mtime", func(e *env) {
			f, _ := e.src.File(key(1))
			e.src.Put(key(1), []byte("much longer content now"), f.MTime)
		}, want{written: 1, extracted: 1, unchanged: 3, reads: []string{key(1)}}},
		{"touched: metadata only", func(e *env) { e.src.Touch(key(2), t0.Add(time.Hour)) },
			want{written: 1, unchanged: 3, reads: []string{key(2)}}},
		{"copy reuses the vector", func(e *env) { e.src.Put("copy.jpg", data(0), t0) },
			want{written: 1, reused: 1, unchanged: 4, reads: []string{"copy.jpg"}}},
		{"move reuses the vector and deletes the old key", func(e *env) {
			e.src.Remove(key(3))
			e.src.Put("moved/3.jpg", data(3), t0)
		}, want{written: 1, reused: 1, unchanged: 3, deleted: 1, reads: []string{"moved/3.jpg"}}},
		{"changed to the bytes of another item reuses", func(e *env) { e.src.Put(key(1), data(2), t0.Add(time.Hour)) },
			want{written: 1, reused: 1, unchanged: 3, reads: []string{key(1)}}},
		{"vanished key deleted", func(e *env) { e.src.Remove(key(0)) },
			want{unchanged: 3, deleted: 1}},
		{"changed to corrupt bytes: row replaced by ledger entry", func(e *env) {
			e.src.Put(key(1), []byte("corrupt now"), t0.Add(time.Hour))
		}, want{failed: 1, unchanged: 3, reads: []string{key(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4)
			e.mustRun()
			before := map[string]int{}
			for _, k := range e.src.Keys() {
				before[k] = e.src.Reads(k)
			}
			tc.change(e)
			infers := e.emb.Stats().Inferred
			run, err := e.run(func(o *connector.Options) { o.MaxDelete = connector.MaxDeleteCount(1) })
			if err != nil {
				t.Fatal(err)
			}
			got := want{run.Written, run.Extracted, run.Reused, run.Unchanged, run.Failed, run.Deleted, nil}
			for _, k := range e.src.Keys() {
				if e.src.Reads(k) > before[k] {
					got.reads = append(got.reads, k)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if n := e.emb.Stats().Inferred - infers; int64(n) != tc.want.extracted+tc.want.failed {
				// failures here are decode failures: they never reach the model
				if !(tc.want.failed > 0 && n == 0) {
					t.Errorf("inferred %d items, want %d", n, tc.want.extracted)
				}
			}
			e.checkConverged()
		})
	}
}

func TestReuseCallsVectorsBySHA256(t *testing.T) {
	e := newEnv(t, 3)
	e.mustRun()
	e.src.Put("a/copy.jpg", data(1), t0)
	e.src.Put("b/copy.jpg", data(1), t0)
	run := e.mustRun()
	if run.Reused != 2 || run.Extracted != 0 {
		t.Fatalf("run %+v", run)
	}
	if n := e.sink.BySHACalls(); n != 2 {
		t.Errorf("VectorsBySHA256 called %d times, want 2", n)
	}
	e.checkConverged()
}

func TestStaleModel(t *testing.T) {
	e := newEnv(t, 6)
	e.mustRun()
	// Same collection, new model: every row is stale and is re-embedded.
	e.model = connectortest.Model("B", 8)
	e.emb = connectortest.NewEmbedder(e.model, 4)
	if err := e.sink.Open(context.Background(), e.model); err != nil {
		t.Fatal(err)
	}
	p, err := e.syncer().Plan(context.Background())
	if err != nil || p.Stale != 6 || p.ToRead() != 6 {
		t.Fatalf("plan %+v, %v", p, err)
	}
	run := e.mustRun()
	if run.Written != 6 || run.Extracted != 6 || run.Unchanged != 0 || run.ModelID != e.model.ID() {
		t.Fatalf("run %+v", run)
	}
	e.checkConverged()
	// A stale row whose bytes are stored under the current model reuses.
	e.sink.Put(schema.Record{Source: srcName, Key: "old.jpg", ModelID: connectortest.Model("A", 8).ID(), Dim: 8,
		Fingerprint: schema.Fingerprint{Size: int64(len(data(2))), MTime: t0}, Vector: make([]float32, 8)})
	e.src.Put("old.jpg", data(2), t0)
	run = e.mustRun()
	if run.Reused != 1 || run.Extracted != 0 {
		t.Fatalf("run %+v", run)
	}
	e.checkConverged()
}

func TestLedgerRules(t *testing.T) {
	e := newEnv(t, 3)
	bad := "bad.jpg"
	e.src.Put(bad, []byte("corrupt bytes"), t0)
	run := e.mustRun()
	if run.Outcome != schema.RunPartial || run.Failed != 1 || run.Written != 3 {
		t.Fatalf("first run %+v", run)
	}
	l := e.sink.Ledger()[schema.ItemID(srcName, bad)]
	if l.Stage != "decode" || l.Class != schema.FailDecode || l.ModelID != e.model.ID() || l.SHA256 == "" {
		t.Fatalf("ledger entry %+v", l)
	}
	e.checkConverged()

	steps := []struct {
		name        string
		change      func()
		retry       bool
		wantReads   int // reads of bad.jpg in this run
		wantFailed  int64
		wantWritten int64
	}{
		{"same fingerprint: skipped, counted failed", func() {}, false, 0, 1, 0},
		{"retry-failed: tried again", func() {}, true, 1, 1, 0},
		{"touched: tried again", func() { e.src.Touch(bad, t0.Add(time.Minute)) }, false, 1, 1, 0},
		{"same again: skipped", func() {}, false, 0, 1, 0},
		{"fixed: extracted, ledger entry removed", func() { e.src.Put(bad, []byte("good now"), t0.Add(time.Hour)) }, false, 1, 0, 1},
	}
	for _, st := range steps {
		st.change()
		reads := e.src.Reads(bad)
		run, err := e.run(func(o *connector.Options) { o.RetryFailed = st.retry })
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := e.src.Reads(bad) - reads; got != st.wantReads || run.Failed != st.wantFailed || run.Written != st.wantWritten {
			t.Errorf("%s: reads %d failed %d written %d, want %d %d %d", st.name, got, run.Failed, run.Written, st.wantReads, st.wantFailed, st.wantWritten)
		}
		e.checkConverged()
	}
	if _, ok := e.sink.Ledger()[schema.ItemID(srcName, bad)]; ok {
		t.Error("ledger entry of the fixed item remains")
	}
}

// A key that is not valid UTF-8 becomes an invalid_key ledger entry
// without being read: no sink can store it. The entry keeps the raw key's
// id, so the next run skips it as a known failure and does not delete it.
func TestInvalidKeyRefusedIntoLedger(t *testing.T) {
	e := newEnv(t, 3)
	bad := "dir/bad\xff\\name.jpg"
	e.src.Put(bad, data(99), t0)
	plan, err := e.syncer().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan.InvalidKeys != 1 || plan.New != 3 || !strings.Contains(plan.String(), "1 keys not valid UTF-8") {
		t.Errorf("dry run: %d invalid keys, %d new, want 1 and 3: %s", plan.InvalidKeys, plan.New, plan)
	}
	run := e.mustRun()
	if run.Outcome != schema.RunPartial || run.Failed != 1 || run.Written != 3 {
		t.Fatalf("first run %+v", run)
	}
	if n := e.src.Reads(bad); n != 0 {
		t.Errorf("the invalid key was read %d times", n)
	}
	for _, r := range e.sink.Rows() {
		if !utf8.ValidString(r.Key) {
			t.Errorf("row %s stored with key %q", r.ID, r.Key)
		}
	}
	id := schema.ItemID(srcName, bad)
	l, ok := e.sink.Ledger()[id]
	if !ok || l.Class != schema.FailInvalidKey || l.Stage != "list" || l.Key != `dir/bad\xff\\name.jpg` || l.Size != int64(len(data(99))) ||
		!strings.Contains(l.Reason, "not valid UTF-8") {
		t.Fatalf("ledger entry %+v (found %t)", l, ok)
	}
	for i, retry := range []bool{false, true} {
		run, err := e.run(func(o *connector.Options) { o.RetryFailed = retry })
		if err != nil || run.Outcome != schema.RunPartial || run.Failed != 1 || run.Deleted != 0 {
			t.Fatalf("run %d (retry %t): %+v, %v", i+2, retry, run, err)
		}
		if wantUnchanged := int64(3); run.Unchanged != wantUnchanged {
			t.Errorf("run %d: unchanged %d, want %d", i+2, run.Unchanged, wantUnchanged)
		}
	}
	if n := e.src.Reads(bad); n != 0 {
		t.Errorf("the invalid key was read %d times", n)
	}
	if _, ok := e.sink.Ledger()[id]; !ok || len(e.sink.Ledger()) != 1 {
		t.Errorf("ledger after the later runs: %v", e.sink.Ledger())
	}
}

func TestLedgerOtherModelRetried(t *testing.T) {
	e := newEnv(t, 0)
	e.src.Put("x.jpg", []byte("fine"), t0)
	e.sink.PutFailure(schema.Failure{Source: srcName, Key: "x.jpg", ModelID: "fc7-0000000000000000",
		Fingerprint: schema.Fingerprint{Size: 4, MTime: t0}, Stage: "infer", Class: schema.FailInfer})
	run := e.mustRun()
	if run.Written != 1 || run.Failed != 0 || e.src.Reads("x.jpg") != 1 {
		t.Fatalf("run %+v", run)
	}
	e.checkConverged()
}

func TestFailuresPerStage(t *testing.T) {
	e := newEnv(t, 5)
	add := func(k string, b []byte) { e.src.Put(k, b, t0) }
	add("read-io.jpg", []byte("x"))
	add("too-large.jpg", []byte("xx"))
	add("empty.jpg", nil)
	add("corrupt.jpg", []byte("corrupt!"))
	add("preprocess.jpg", []byte("pp"))
	add("panic.jpg", []byte("boom"))
	add("infer.jpg", []byte("inf"))
	add("nan.jpg", []byte("nan"))
	e.src.ReadErr = map[string]error{
		"read-io.jpg":   errors.New("disk on fire"),
		"too-large.jpg": fmt.Errorf("size 2 above cap 1: %w", connector.ErrTooLarge),
	}
	e.emb.PrepareErr = map[string]*schema.ItemError{
		"preprocess.jpg": {Stage: "preprocess", Class: schema.FailTooLarge, Reason: "too many pixels"},
	}
	e.emb.PreparePanic = map[string]bool{"panic.jpg": true}
	e.emb.InferErr = map[string]*schema.ItemError{"infer.jpg": {Stage: "infer", Class: schema.FailInfer, Reason: "bad input"}}
	e.emb.NaN = map[string]bool{"nan.jpg": true}

	run, err := e.run()
	if err != nil {
		t.Fatalf("per-item failures failed the run: %v", err)
	}
	if run.Outcome != schema.RunPartial || run.Written != 5 || run.Failed != 8 || run.Listed != 13 {
		t.Fatalf("run %+v", run)
	}
	want := map[string][2]string{
		"read-io.jpg":    {"read", "io"},
		"too-large.jpg":  {"read", "too_large"},
		"empty.jpg":      {"read", "empty"},
		"corrupt.jpg":    {"decode", "decode"},
		"preprocess.jpg": {"preprocess", "too_large"},
		"panic.jpg":      {"decode", "decode"},
		"infer.jpg":      {"infer", "infer"},
		"nan.jpg":        {"infer", "non_finite"},
	}
	ledger := e.sink.Ledger()
	for k, w := range want {
		l, ok := ledger[schema.ItemID(srcName, k)]
		if !ok {
			t.Errorf("%s: not in the ledger", k)
			continue
		}
		if l.Stage != w[0] || string(l.Class) != w[1] || l.Reason == "" || l.Key != k || l.Attempts != 1 {
			t.Errorf("%s: ledger %s/%s %q, want %s/%s", k, l.Stage, l.Class, l.Reason, w[0], w[1])
		}
	}
	if r := ledger[schema.ItemID(srcName, "read-io.jpg")].Reason; !strings.Contains(r, "disk on fire") {
		t.Errorf("reason %q does not name the cause", r)
	}
	e.checkConverged()
	// Known failures are not retried: nothing is read again.
	reads := e.src.TotalReads()
	run = e.mustRun()
	if run.Failed != 8 || run.Unchanged != 5 || e.src.TotalReads() != reads {
		t.Errorf("second run %+v, %d reads", run, e.src.TotalReads()-reads)
	}
}

func TestFatalErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		want  string
	}{
		{"infer", func(e *env) { e.emb.Fatal = map[string]error{key(9): errors.New("session broken")} }, "session broken"},
		{"write", func(e *env) {
			e.sink.FailWrite = func(n int, _ connector.Batch) error {
				if n == 3 {
					return errors.New("disk full")
				}
				return nil
			}
		}, "disk full"},
		{"stored", func(e *env) { e.sink.StoredErr = errors.New("no such table") }, "no such table"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 30)
			e.src.Put(key(0), data(0), t0) // and one vanished row that must survive
			e.sink.Put(schema.Record{Source: srcName, Key: "gone.jpg", ModelID: e.model.ID(), Vector: make([]float32, 8)})
			tc.setup(e)
			run, err := e.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if run.Outcome != schema.RunFailed || !strings.Contains(run.Error, tc.want) {
				t.Errorf("run %+v", run)
			}
			if _, ok := e.sink.Rows()[schema.ItemID(srcName, "gone.jpg")]; !ok {
				t.Error("a failed run deleted")
			}
			e.emb.Fatal, e.sink.FailWrite, e.sink.StoredErr = nil, nil, nil
			e.mustRun()
			e.checkConverged()
		})
	}
}

func TestDeleteRules(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		maxDelete string
		listErr   bool
		empty     bool
		wantErr   string
		deleted   int64
	}{
		{"sync deletes vanished", connector.KindSync, "", false, false, "", 3},
		{"backfill never deletes", connector.KindBackfill, "", false, false, "", 0},
		{"count within guard", connector.KindSync, "3", false, false, "", 3},
		{"count above guard", connector.KindSync, "2", false, false, "refusing to delete 3 of 10", 0},
		{"zero allows none", connector.KindSync, "0", false, false, "--max-delete=0", 0},
		{"percent within guard", connector.KindSync, "30%", false, false, "", 3},
		{"percent above guard", connector.KindSync, "20%", false, false, "(30.0%), above --max-delete=20% (at most 2)", 0},
		{"incomplete listing never deletes", connector.KindSync, "", true, false, "incomplete listing", 0},
		{"empty listing never deletes", connector.KindSync, "", false, true, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 10)
			e.mustRun()
			for i := range 3 {
				e.src.Remove(key(i))
			}
			e.src.Put("new.jpg", []byte("new"), t0)
			if tc.empty {
				for _, k := range e.src.Keys() {
					e.src.Remove(k)
				}
			}
			if tc.listErr {
				e.src.ListErr = errors.New("permission denied: img/sub")
				e.src.ListErrAfter = 2
			}
			md, err := connector.ParseMaxDelete(tc.maxDelete)
			if err != nil {
				t.Fatal(err)
			}
			mods := func(o *connector.Options) { o.Kind = tc.kind; o.MaxDelete = md }
			plan, _ := e.syncer(mods).Plan(context.Background())
			if plan.ToDelete != tc.deleted || (plan.DeleteErr != nil) != (tc.wantErr != "" && !tc.listErr) {
				t.Errorf("plan %v", plan)
			}
			rowsBefore := len(e.sink.Rows())
			run, err := e.run(mods)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if run.Deleted != tc.deleted {
				t.Errorf("deleted %d, want %d", run.Deleted, tc.deleted)
			}
			if got := len(e.sink.Rows()); tc.deleted == 0 && got < rowsBefore {
				t.Errorf("rows %d -> %d without deletes", rowsBefore, got)
			}
			var ge *connector.DeleteGuardError
			if strings.Contains(tc.wantErr, "max-delete") {
				if !errors.As(err, &ge) || ge.Deleting != 3 || ge.Stored != 10 {
					t.Errorf("guard error %#v", err)
				}
				if run.Outcome != schema.RunFailed || run.Written != 1 {
					t.Errorf("run %+v: the new item must be written, the run failed", run)
				}
			}
			if tc.listErr && (!errors.Is(err, connector.ErrIncompleteListing) || run.Listed != 2) {
				t.Errorf("listing error: %v, run %+v", err, run)
			}
			if tc.deleted > 0 {
				e.checkConverged()
			}
		})
	}
}

func TestPlanDoesNotReadOrWrite(t *testing.T) {
	e := newEnv(t, 6)
	e.src.Put("bad.jpg", []byte("corrupt"), t0)
	e.mustRun()
	writes := len(e.sink.Applied())
	reads := e.src.TotalReads()

	e.src.Put("new.jpg", []byte("new"), t0)                 // new
	e.src.Put("copy.jpg", data(1), t0)                      // new, reuse candidate
	e.src.Touch(key(0), t0.Add(time.Hour))                  // changed (metadata only)
	e.src.Put(key(1), []byte("edited!"), t0.Add(time.Hour)) // changed
	e.src.Remove(key(5))                                    // vanished
	e.sink.Put(schema.Record{Source: srcName, Key: key(4), ModelID: "fc7-00", Vector: make([]float32, 8),
		Fingerprint: schema.Fingerprint{Size: int64(len(data(4))), MTime: t0.Add(4 * time.Second)}}) // stale

	s := e.syncer(func(o *connector.Options) {
		o.Embedder = nil
		o.Model = e.model
		o.MaxDelete = connector.MaxDeleteCount(5)
	})
	p, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Plan{Source: srcName, ModelID: e.model.ID(), Kind: "sync", Stored: 7, Listed: 8,
		New: 2, Changed: 2, Unchanged: 2, Stale: 1, FailedKnown: 1, ReuseCandidates: 3, ToDelete: 1, Vanished: 1}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("plan\n got %+v\nwant %+v", p, want)
	}
	if got := p.Estimate(2); got != 3*time.Second { // 6 to read at 2/s
		t.Errorf("estimate %v", got)
	}
	if len(e.sink.Applied()) != writes || e.src.TotalReads() != reads {
		t.Error("plan wrote or read")
	}
	if _, err := s.Run(context.Background()); err == nil {
		t.Error("run without an embedder succeeded")
	}
}

// The timed tests run in synctest bubbles: their delays take no real time
// and their timelines are exact.
func TestHardCancelLeavesWholeBatches(t *testing.T) {
	synctest.Test(t, testHardCancelLeavesWholeBatches)
}

func testHardCancelLeavesWholeBatches(t *testing.T) {
	e := newEnv(t, 40)
	e.emb.InferDelay = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.sink.OnWrite = func(n int, _ connector.Batch) {
		if n == 3 { // the run row, then two batches
			cancel()
		}
	}
	s := e.syncer()
	run, err := s.Run(ctx)
	e.checkRun(run, err)
	if !errors.Is(err, context.Canceled) || run.Outcome != schema.RunCancelled {
		t.Fatalf("run %+v, err %v", run, err)
	}
	// Every applied batch holds exactly the items of one Infer call.
	batches := map[string]bool{}
	for _, b := range e.emb.Stats().Batches {
		slices.Sort(b)
		batches[strings.Join(b, ",")] = true
	}
	stored := 0
	for _, b := range e.sink.Applied() {
		if len(b.Upserts) == 0 {
			continue
		}
		var keys []string
		for _, r := range b.Upserts {
			keys = append(keys, r.Key)
		}
		slices.Sort(keys)
		if !batches[strings.Join(keys, ",")] {
			t.Errorf("applied batch %v is not one inference batch", keys)
		}
		stored += len(keys)
	}
	if got := len(e.sink.Rows()); got != stored || got == 0 || got == 40 {
		t.Errorf("%d rows, %d in applied batches (want some but not all of 40)", got, stored)
	}
	if got := e.sink.Runs()[run.ID]; got.Outcome != schema.RunCancelled {
		t.Errorf("run row %+v", got)
	}
	// Rerun: resumes, converges.
	e.emb.InferDelay = 0
	run2 := e.mustRun()
	if run2.Unchanged != int64(stored) || run2.Extracted != int64(40-stored) {
		t.Errorf("rerun %+v after %d stored", run2, stored)
	}
	e.checkConverged()
}

func TestSoftStopDrains(t *testing.T) { synctest.Test(t, testSoftStopDrains) }

func testSoftStopDrains(t *testing.T) {
	e := newEnv(t, 60)
	e.sink.Put(schema.Record{Source: srcName, Key: "gone.jpg", ModelID: e.model.ID(), Vector: make([]float32, 8)})
	e.emb.InferDelay = 30 * time.Millisecond
	var s *connector.Syncer
	var once sync.Once
	e.emb.OnInfer = func([]string) { once.Do(func() { s.Stop() }) }
	var progress []connector.Progress
	var mu sync.Mutex
	s = e.syncer(func(o *connector.Options) {
		o.Progress = func(p connector.Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }
		o.ProgressEvery = 5 * time.Millisecond
	})
	run, err := s.Run(context.Background())
	e.checkRun(run, err)
	if !errors.Is(err, connector.ErrStopped) || run.Outcome != schema.RunCancelled {
		t.Fatalf("run %+v, err %v", run, err)
	}
	// Everything that reached the model was committed.
	rows := e.sink.Rows()
	for _, k := range e.emb.Stats().InferredKeys() {
		if _, ok := rows[schema.ItemID(srcName, k)]; !ok {
			t.Errorf("%s went through the model but was not committed", k)
		}
	}
	if run.Written == 0 || run.Written >= 60 || e.src.TotalReads() >= 60 {
		t.Errorf("written %d, read %d: want the in-flight items only", run.Written, e.src.TotalReads())
	}
	if run.Written+run.Unchanged+run.Failed > run.Listed {
		t.Errorf("counters %+v", run)
	}
	if _, ok := rows[schema.ItemID(srcName, "gone.jpg")]; !ok || run.Deleted != 0 {
		t.Error("a stopped run deleted")
	}
	mu.Lock()
	last := progress[len(progress)-1]
	sawStopping := slices.ContainsFunc(progress, func(p connector.Progress) bool { return p.Stopping })
	mu.Unlock()
	if !last.Last || last.Run.Outcome != schema.RunCancelled || !sawStopping {
		t.Errorf("progress: last %+v, saw stopping %v", last, sawStopping)
	}
	s.Stop() // idempotent, after the run
	e.emb.InferDelay, e.emb.OnInfer = 0, nil
	run = e.mustRun()
	if run.Deleted != 1 {
		t.Errorf("rerun %+v", run)
	}
	e.checkConverged()
}

func TestSoftStopGraceExpires(t *testing.T) { synctest.Test(t, testSoftStopGraceExpires) }

func testSoftStopGraceExpires(t *testing.T) {
	e := newEnv(t, 20)
	e.emb.InferDelay = 10 * time.Second // honours ctx
	var s *connector.Syncer
	var once sync.Once
	e.emb.OnInfer = func([]string) { once.Do(func() { go s.Stop() }) }
	s = e.syncer(func(o *connector.Options) { o.Grace = 50 * time.Millisecond })
	start := time.Now()
	run, err := s.Run(context.Background())
	e.checkRun(run, err)
	if !errors.Is(err, connector.ErrGraceExpired) || run.Outcome != schema.RunCancelled {
		t.Fatalf("run %+v, err %v", run, err)
	}
	if d := time.Since(start); d != 50*time.Millisecond {
		t.Errorf("took %v, want the grace (50ms)", d)
	}
	if len(e.sink.Rows()) != 0 {
		t.Error("abandoned batch written")
	}
}

func TestStopBeforeRun(t *testing.T) {
	e := newEnv(t, 5)
	s := e.syncer()
	s.Stop()
	run, err := s.Run(context.Background())
	if !errors.Is(err, connector.ErrStopped) || run.Outcome != schema.RunCancelled {
		t.Fatalf("run %+v, err %v", run, err)
	}
	if e.src.TotalReads() != 0 || len(e.sink.Applied()) != 0 {
		t.Error("a stopped syncer did work")
	}
	if _, err := s.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestWriteBatchesIncludeRunRow(t *testing.T) {
	e := newEnv(t, 9)
	e.mustRun()
	applied := e.sink.Applied()
	if applied[0].Run == nil || applied[0].Run.Outcome != schema.RunRunning {
		t.Errorf("first write %+v: want the run row", applied[0])
	}
	var written int64
	for _, b := range applied[1 : len(applied)-1] {
		written += int64(len(b.Upserts))
		if b.Run == nil || b.Run.Written != written {
			t.Errorf("batch run row %+v, want written %d", b.Run, written)
		}
	}
}

func TestNewSyncerValidates(t *testing.T) {
	e := newEnv(t, 0)
	for name, mod := range map[string]func(*connector.Options){
		"no source":     func(o *connector.Options) { o.Source = nil },
		"no sink":       func(o *connector.Options) { o.Sink = nil },
		"no model":      func(o *connector.Options) { o.Embedder = nil },
		"bad kind":      func(o *connector.Options) { o.Kind = "mirror" },
		"model differs": func(o *connector.Options) { o.Model = connectortest.Model("other", 8) },
	} {
		if _, err := connector.NewSyncer(e.opts(mod)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// recorder is a BatchObserver that sums what it is told.
type recorder struct {
	mu          sync.Mutex
	items       map[connector.Stage]int
	calls       map[connector.Stage]int
	committed   int
	classes     map[schema.FailureClass]int
	closed      []connector.BatchReason // why each write batch closed, in order
	closedItems int
}

func newRecorder() *recorder {
	return &recorder{items: map[connector.Stage]int{}, calls: map[connector.Stage]int{}, classes: map[schema.FailureClass]int{}}
}

func (r *recorder) StageDone(s connector.Stage, n int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	r.items[s] += n
	r.calls[s]++
}

func (r *recorder) Committed(n int, failures []schema.FailureClass) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed += n
	for _, c := range failures {
		r.classes[c]++
	}
}

func (r *recorder) BatchClosed(reason connector.BatchReason, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = append(r.closed, reason)
	r.closedItems += n
}

// In a synctest bubble no time passes, so the linger never closes a batch.
func TestObserver(t *testing.T) { synctest.Test(t, testObserver) }

func testObserver(t *testing.T) {
	e := newEnv(t, 9)
	e.src.Put("corrupt.jpg", []byte("corrupt!"), t0)
	e.src.Put("empty.jpg", nil, t0)
	e.src.Put("gone.jpg", []byte("x"), t0)
	e.src.ReadErr = map[string]error{"gone.jpg": errors.New("vanished")}
	r := newRecorder()
	run := e.mustRun(func(o *connector.Options) { o.Observer = r })
	if run.Listed != 12 {
		t.Fatalf("run %+v", run)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[connector.Stage]int{
		connector.StageRead:   11, // every item read, the empty one included
		connector.StageDecode: 10, // the non-empty ones
		connector.StageInfer:  9,  // the decodable ones
		connector.StageWrite:  12,
	}
	for s, n := range want {
		if r.items[s] != n {
			t.Errorf("stage %s: %d items reported, want %d", s, r.items[s], n)
		}
	}
	if r.calls[connector.StageInfer] < 3 { // batches of 4
		t.Errorf("%d infer batches reported", r.calls[connector.StageInfer])
	}
	if r.committed != 12 || r.classes[schema.FailDecode] != 1 || r.classes[schema.FailEmpty] != 1 || r.classes[schema.FailIO] != 1 {
		t.Errorf("committed %d, classes %v", r.committed, r.classes)
	}
	// 9 items for the model in batches of 4; the 3 failures ride along.
	reasons := []connector.BatchReason{connector.BatchFull, connector.BatchFull, connector.BatchEnd}
	if !slices.Equal(r.closed, reasons) || r.closedItems != 12 {
		t.Errorf("batches closed by %v with %d items, want %v with 12", r.closed, r.closedItems, reasons)
	}
}

// replacingSource is an ItemReader whose reads find every item replaced
// since the listing (a new ETag) and give metadata.
type replacingSource struct{ *connectortest.Source }

func (s replacingSource) ReadItem(ctx context.Context, e connector.Entry, _ *schema.Fingerprint) (connector.Content, error) {
	b, err := s.Read(ctx, e.Key)
	if err != nil {
		return connector.Content{}, err
	}
	e.ETag, e.Size = "replaced", int64(len(b))
	return connector.Content{Data: b, Entry: e, Metadata: map[string]string{"from": e.Key}}, nil
}

func TestItemReaderFingerprintAndMetadata(t *testing.T) {
	e := newEnv(t, 3)
	e.mustRun(func(o *connector.Options) { o.Source = replacingSource{e.src} })
	rows := e.sink.Rows()
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for _, r := range rows {
		if r.ETag != "replaced" || r.Metadata["from"] != r.Key {
			t.Errorf("%s: stored ETag %q, metadata %v; want the fingerprint and metadata ReadItem gave", r.Key, r.ETag, r.Metadata)
		}
	}
}

// revalidatingSource lists without fingerprints (Entry.Revalidate) and
// answers NotModified when the stored ETag is the item's; keys in gone
// are gone (ErrGone).
type revalidatingSource struct {
	*connectortest.Source
	gone map[string]bool
}

func (s revalidatingSource) List(ctx context.Context, fn func(connector.Entry) error) error {
	return s.Source.List(ctx, func(e connector.Entry) error {
		return fn(connector.Entry{Key: e.Key, Revalidate: true})
	})
}

func (s revalidatingSource) ReadItem(ctx context.Context, e connector.Entry, stored *schema.Fingerprint) (connector.Content, error) {
	if s.gone[e.Key] {
		return connector.Content{}, fmt.Errorf("read %s: 404: %w", e.Key, connector.ErrGone)
	}
	b, err := s.Read(ctx, e.Key)
	if err != nil {
		return connector.Content{}, err
	}
	etag := fmt.Sprintf("%x", sha256.Sum256(b))[:8]
	if stored != nil && stored.ETag == etag {
		return connector.Content{NotModified: true}, nil
	}
	return connector.Content{Data: b, Entry: connector.Entry{Key: e.Key, Size: int64(len(b)), ETag: etag}}, nil
}

func TestRevalidateNotModifiedAndGone(t *testing.T) {
	e := newEnv(t, 3)
	src := revalidatingSource{e.src, map[string]bool{}}
	use := func(o *connector.Options) { o.Source = src }
	if r := e.mustRun(use); r.Extracted != 3 {
		t.Fatalf("first run: %+v", r)
	}
	// Not modified: read (revalidated), unchanged, nothing written.
	if r := e.mustRun(use); r.Unchanged != 3 || r.Written != 0 {
		t.Errorf("revalidated run: %+v; want 3 unchanged, nothing written", r)
	}
	// Changed bytes behind the same key: re-extracted.
	e.src.Put(key(1), []byte("new bytes"), t0)
	if r := e.mustRun(use); r.Extracted != 1 || r.Unchanged != 2 {
		t.Errorf("run after a change: %+v; want 1 extracted, 2 unchanged", r)
	}
	// Gone once: ledger (class gone), kept; gone twice: deleted.
	src.gone[key(0)] = true
	if r := e.mustRun(use); r.Failed != 1 || r.Deleted != 0 {
		t.Errorf("first gone run: %+v; want 1 failed, none deleted", r)
	}
	id := schema.ItemID(srcName, key(0))
	if f, ok := e.sink.Ledger()[id]; !ok || f.Class != schema.FailGone {
		t.Errorf("ledger entry of the gone item: %+v, %v; want class gone", f, ok)
	}
	none, err := connector.ParseMaxDelete("0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.run(use, func(o *connector.Options) { o.MaxDelete = none })
	var dg *connector.DeleteGuardError
	if !errors.As(err, &dg) || r.Deleted != 0 {
		t.Errorf("second gone run under --max-delete=0: %+v, %v; want the delete guard", r, err)
	}
	if r := e.mustRun(use); r.Failed != 1 || r.Deleted != 1 {
		t.Errorf("second gone run: %+v; want 1 failed, 1 deleted", r)
	}
	if _, ok := e.sink.Ledger()[id]; ok {
		t.Error("the item gone twice is still in the ledger")
	}
	if _, ok := e.sink.Rows()[id]; ok {
		t.Error("the item gone twice still has a row")
	}
}

// An item that vanishes between the listing and its read is a vanished
// item, not a failure.
func TestVanishedBetweenListAndRead(t *testing.T) {
	e := newEnv(t, 3)
	e.mustRun()
	e.src.Touch(key(1), t0.Add(time.Hour)) // changed: it will be read
	e.src.Put("img/new.jpg", []byte("new"), t0)
	e.src.ReadErr = map[string]error{key(1): fs.ErrNotExist, "img/new.jpg": fs.ErrNotExist}
	r := e.mustRun()
	if r.Listed != 2 || r.Failed != 0 || r.Deleted != 1 || r.Unchanged != 2 {
		t.Errorf("run: %+v; want 2 listed (2 unchanged), none failed, 1 deleted", r)
	}
	if len(e.sink.Rows()) != 2 || len(e.sink.Ledger()) != 0 {
		t.Errorf("%d rows, %d ledger entries; want 2, 0", len(e.sink.Rows()), len(e.sink.Ledger()))
	}
}
