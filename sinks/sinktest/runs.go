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
