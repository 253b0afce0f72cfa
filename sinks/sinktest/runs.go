package sinktest

import (
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// testAbandonRuns: a sink that implements connector.RunAbandoner closes the
// runs of the job's shard left "running", and only those: not another
// shard's, whose runner may be alive.
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
	shardLeft := testRun("shard-left", src, m, baseTime.Add(5*time.Minute))
	shardLeft.Job, shardLeft.Shard = "photos", "2/4"
	for _, r := range []*schema.Run{left, ended, other, adHoc, shardLeft} {
		e.write(connector.Batch{Run: r})
	}
	at := baseTime.Add(time.Hour)
	const reason = "runner died"
	n, err := ra.AbandonRuns(e.ctx, "photos", "", at, reason)
	if err != nil || n != 1 {
		t.Fatalf("AbandonRuns(photos) = %d, %v; want 1", n, err)
	}
	want := map[string]schema.Run{"left": *left, "ended": *ended, "other": *other, "ad-hoc": *adHoc, "shard-left": *shardLeft}
	w := want["left"]
	w.Outcome, w.EndedAt, w.Error = schema.RunAbandoned, at, reason
	want["left"] = w
	e.checkRuns(want)
	if n, err := ra.AbandonRuns(e.ctx, "photos", "", at, reason); err != nil || n != 0 {
		t.Errorf("second AbandonRuns(photos) = %d, %v; want 0", n, err)
	}
	if n, err := ra.AbandonRuns(e.ctx, "photos", "2/4", at, reason); err != nil || n != 1 {
		t.Errorf("AbandonRuns(photos, 2/4) = %d, %v; want 1 (the shard's open run)", n, err)
	}
}

// testLatestRuns: a sink that implements connector.LatestRunReader returns
// the newest run of each shard of a job over a source, whole, and no run
// of another job or source.
func testLatestRuns(t *testing.T, e *env) {
	lr, ok := e.s.(connector.LatestRunReader)
	if !ok {
		t.Logf("%T does not implement connector.LatestRunReader: shard counts are not checked", e.s)
		return
	}
	m := testModel("a", 8)
	e.open(m)
	if runs, err := lr.LatestRuns(e.ctx, "photos", src); err != nil || len(runs) != 0 {
		t.Fatalf("LatestRuns of a job without runs = %v, %v", runs, err)
	}
	run := func(id, job, source, shard string, minute int, outcome schema.RunOutcome) *schema.Run {
		r := testRun(id, source, m, baseTime.Add(time.Duration(minute)*time.Minute))
		r.Job, r.Shard, r.Outcome = job, shard, outcome
		if outcome != schema.RunRunning {
			r.EndedAt = r.StartedAt.Add(30 * time.Second)
		}
		e.write(connector.Batch{Run: r})
		return r
	}
	run("old-0", "photos", src, "0/2", 0, schema.RunOK)
	new0 := run("new-0", "photos", src, "0/2", 1, schema.RunFailed)
	run("old-1", "photos", src, "1/2", 0, schema.RunOK)
	new1 := run("new-1", "photos", src, "1/2", 2, schema.RunRunning)
	whole := run("whole", "photos", src, "", 3, schema.RunOK)
	run("other-job", "other", src, "0/2", 4, schema.RunOK)
	run("other-source", "photos", src+"-2", "0/2", 5, schema.RunOK)
	runs, err := lr.LatestRuns(e.ctx, "photos", src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]schema.Run{new0.ID: *new0, new1.ID: *new1, whole.ID: *whole}
	if len(runs) != len(want) {
		t.Fatalf("LatestRuns = %d runs (%v), want %d", len(runs), runs, len(want))
	}
	for _, r := range runs {
		e.checkRun(r, want[r.ID])
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
	e.checkRuns(want)
	if n, err := da.AbandonDeadRuns(e.ctx, "here", gone, at, reason); err != nil || n != 0 {
		t.Errorf("second AbandonDeadRuns(here) = %d, %v; want 0", n, err)
	}
}
