package sinktest

import (
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// testAbandonRuns: a sink that implements connector.RunAbandoner closes the
// job's runs left "running", and only those.
func testAbandonRuns(t *testing.T, e *env) {
	ra, ok := e.s.(connector.RunAbandoner)
	if !ok {
		t.Logf("%T does not implement connector.RunAbandoner: killed runs stay \"running\"", e.s)
		return
	}
	m := testModel("a", 8)
	e.open(m)
	left := testRun("left", src, m, baseTime)
	left.Job = "photos"
	ended := testRun("ended", src, m, baseTime.Add(time.Minute))
	ended.Job, ended.Outcome, ended.EndedAt = "photos", schema.RunOK, baseTime.Add(2*time.Minute)
	other := testRun("other", src, m, baseTime.Add(3*time.Minute))
	other.Job = "other"
	adHoc := testRun("ad-hoc", src, m, baseTime.Add(4*time.Minute))
	adHoc.Job = ""
	for _, r := range []*schema.Run{left, ended, other, adHoc} {
		e.write(connector.Batch{Run: r})
	}
	at := baseTime.Add(time.Hour)
	const reason = "runner died"
	n, err := ra.AbandonRuns(e.ctx, "photos", at, reason)
	if err != nil || n != 1 {
		t.Fatalf("AbandonRuns(photos) = %d, %v; want 1", n, err)
	}
	want := map[string]schema.Run{"left": *left, "ended": *ended, "other": *other, "ad-hoc": *adHoc}
	w := want["left"]
	w.Outcome, w.EndedAt, w.Error = schema.RunAbandoned, at, reason
	want["left"] = w
	st := e.status()
	if len(st.Runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(st.Runs), len(want))
	}
	for _, r := range st.Runs {
		e.checkRun(r, want[r.ID])
	}
	if n, err := ra.AbandonRuns(e.ctx, "photos", at, reason); err != nil || n != 0 {
		t.Errorf("second AbandonRuns(photos) = %d, %v; want 0", n, err)
	}
}

// testAbandonDeadRuns: a sink that implements connector.DeadRunAbandoner
// stores each run's Runner (Status returns it) and closes the open runs of
// the given host whose runner gone judges dead: never those of another
// host (gone does not even see them), nor ended ones, nor live ones.
func testAbandonDeadRuns(t *testing.T, e *env) {
	da, ok := e.s.(connector.DeadRunAbandoner)
	if !ok {
		t.Logf("%T does not implement connector.DeadRunAbandoner: killed one-shot runs stay \"running\"", e.s)
		return
	}
	m := testModel("a", 8)
	e.open(m)
	runner := func(host string, pid int64) schema.Runner {
		return schema.Runner{Host: host, BootID: "boot-1", PIDNS: "pid:[4026531836]", PID: pid, Start: 1000 + pid}
	}
	runs := map[string]*schema.Run{}
	for i, c := range []struct {
		id     string
		runner schema.Runner
		ended  bool
	}{
		{"dead", runner("here", 11), false},
		{"alive", runner("here", 12), false},
		{"dead-but-ended", runner("here", 11), true},
		{"elsewhere", runner("there", 11), false},
		{"unknown", schema.Runner{}, false},
	} {
		r := testRun(c.id, src, m, baseTime.Add(time.Duration(i)*time.Minute))
		r.Job, r.Runner = "", c.runner
		if c.ended {
			r.Outcome, r.EndedAt = schema.RunOK, r.StartedAt.Add(time.Second)
		}
		runs[c.id] = r
		e.write(connector.Batch{Run: r})
	}
	at := baseTime.Add(time.Hour)
	const reason = "runner process gone"
	var judged []schema.Runner
	gone := func(r schema.Runner) bool {
		judged = append(judged, r)
		return r.PID == 11
	}
	n, err := da.AbandonDeadRuns(e.ctx, "here", gone, at, reason)
	if err != nil || n != 1 {
		t.Fatalf("AbandonDeadRuns(here) = %d, %v; want 1", n, err)
	}
	for _, r := range judged {
		if r.Host != "here" {
			t.Errorf("gone was asked about a runner of host %q", r.Host)
		}
	}
	if len(judged) != 2 {
		t.Errorf("gone judged %d runners, want the 2 open runs of host here", len(judged))
	}
	want := map[string]schema.Run{}
	for id, r := range runs {
		want[id] = *r
	}
	w := want["dead"]
	w.Outcome, w.EndedAt, w.Error = schema.RunAbandoned, at, reason
	want["dead"] = w
	st := e.status()
	if len(st.Runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(st.Runs), len(want))
	}
	for _, r := range st.Runs {
		e.checkRun(r, want[r.ID])
	}
	if n, err := da.AbandonDeadRuns(e.ctx, "here", gone, at, reason); err != nil || n != 0 {
		t.Errorf("second AbandonDeadRuns(here) = %d, %v; want 0", n, err)
	}
}
