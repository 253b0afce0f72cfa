package jobrun

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/schema"
)

// fixture is a job over named fake sources writing to one fake sink.
type fixture struct {
	t       *testing.T
	sink    *connectortest.Sink
	emb     *connectortest.Embedder
	sources map[string]*connectortest.Source
	runs    []schema.Run
	errs    []error
}

func newFixture(t *testing.T, names ...string) *fixture {
	t.Helper()
	m := connectortest.Model("m", 8)
	f := &fixture{t: t, sink: connectortest.NewSink(), emb: connectortest.NewEmbedder(m, 4), sources: map[string]*connectortest.Source{}}
	if err := f.sink.Open(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, n := range names {
		src := connectortest.NewSource(n)
		for i := range 6 {
			src.Put(fmt.Sprintf("%s/%d.jpg", n, i), []byte(n+fmt.Sprint(i)), t0)
		}
		f.sources[n] = src
	}
	return f
}

func (f *fixture) job(sources ...string) Job {
	return Job{
		Sources: sources,
		Open: func(ref string) (connector.Source, error) {
			src, ok := f.sources[ref]
			if !ok {
				return nil, fmt.Errorf("open source %s: no such source", ref)
			}
			return src, nil
		},
		Template: connector.Options{Sink: f.sink, Embedder: f.emb, Kind: connector.KindSync, Job: "j"},
		Finished: func(run schema.Run, err error) {
			f.runs = append(f.runs, run)
			f.errs = append(f.errs, err)
		},
	}
}

func (f *fixture) sourcesRun() []string {
	var out []string
	for _, r := range f.runs {
		out = append(out, r.Source)
	}
	return out
}

func TestRunsEverySourceInOrder(t *testing.T) {
	f := newFixture(t, "a", "b", "c")
	if err := Run(t.Context(), t.Context(), f.job("c", "a", "b"), Lease{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.sourcesRun(), ","); got != "c,a,b" {
		t.Errorf("sources run %s, want c,a,b", got)
	}
	for _, r := range f.runs {
		if r.Outcome != schema.RunOK || r.Written != 6 || r.Job != "j" {
			t.Errorf("run %+v", r)
		}
	}
	if n := len(f.sink.Rows()); n != 18 {
		t.Errorf("%d rows, want 18", n)
	}
}

func TestIncompleteListingEndsOnlyItsSource(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.sources["a"].ListErr = errors.New("unreadable folder")
	f.sources["a"].ListErrAfter = 2
	err := Run(t.Context(), t.Context(), f.job("a", "b"), Lease{})
	if !errors.Is(err, connector.ErrIncompleteListing) {
		t.Fatalf("err = %v, want the incomplete listing", err)
	}
	if got := strings.Join(f.sourcesRun(), ","); got != "a,b" {
		t.Errorf("sources run %s, want a,b: an incomplete listing ends only its source", got)
	}
}

func TestFatalErrorEndsTheJob(t *testing.T) {
	f := newFixture(t, "a", "b")
	err := Run(t.Context(), t.Context(), f.job("missing", "a"), Lease{})
	if err == nil || !strings.Contains(err.Error(), "no such source") {
		t.Fatalf("err = %v", err)
	}
	if len(f.runs) != 1 || f.runs[0].ID != "" {
		t.Errorf("runs %+v: only the failed open, no run row", f.runs)
	}
}

func TestSoftStopDrainsAndStartsNoOtherSource(t *testing.T) {
	f := newFixture(t, "a", "b")
	soft, stop := context.WithCancel(t.Context())
	f.sources["a"].OnList = func(i int, _ string) {
		if i == 3 {
			stop()
		}
	}
	err := Run(soft, t.Context(), f.job("a", "b"), Lease{})
	if !errors.Is(err, connector.ErrStopped) {
		t.Fatalf("err = %v, want ErrStopped", err)
	}
	if len(f.runs) != 1 || f.runs[0].Outcome != schema.RunCancelled {
		t.Fatalf("runs %+v, want a's run cancelled and no other", f.runs)
	}
	if f.sources["b"].TotalReads() != 0 {
		t.Error("source b was read after the stop")
	}
}

// A lease that is lost while the job runs stops it, and its commits are
// refused.
func TestLostLeaseStopsTheRunAndGuardsCommits(t *testing.T) {
	f := newFixture(t, "a")
	store := lease.NewFileStore(filepath.Join(t.TempDir(), "db"))
	held, err := lease.Hold(t.Context(), store, "j", "me", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.sources["a"].OnList = func(i int, _ string) {
		if i == 1 {
			if err := held.Release(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	err = Run(t.Context(), t.Context(), f.job("a"), Lease{Held: held})
	if err == nil {
		t.Fatal("the run went on without its lease")
	}
	if n := len(f.sink.Rows()); n != 0 {
		t.Errorf("%d rows written after the lease was lost", n)
	}
}

// Holding the lease, the runner closes the job's runs a dead runner left
// open before it starts.
func TestAbandonsDeadRunnersRuns(t *testing.T) {
	f := newFixture(t, "a")
	dead := schema.Run{ID: "dead", Job: "j", Kind: connector.KindSync, Source: "a", ModelID: f.emb.Identity().ID(),
		StartedAt: time.Now().Add(-time.Hour).UTC(), Outcome: schema.RunRunning}
	if err := f.sink.Write(t.Context(), connector.Batch{Run: &dead}); err != nil {
		t.Fatal(err)
	}
	store := lease.NewFileStore(filepath.Join(t.TempDir(), "db"))
	held, err := lease.Hold(t.Context(), store, "j", "me", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(context.Background())
	if err := Run(t.Context(), t.Context(), f.job("a"), Lease{Held: held}); err != nil {
		t.Fatal(err)
	}
	if got := f.sink.Runs()["dead"].Outcome; got != schema.RunAbandoned {
		t.Errorf("the dead runner's run is %s, want abandoned", got)
	}
}
