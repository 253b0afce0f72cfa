package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

func testStatusRuns(t *testing.T, e *env) {
	m := testModel("a", 8)
	e.open(m)
	if st := e.status(); len(st.Models) != 0 || st.Failures != 0 || len(st.Runs) != 0 || len(st.Recent) != 0 {
		t.Fatalf("status of an empty store: %+v", st)
	}
	r1 := testRun("run-1", src, m, baseTime)
	r2 := testRun("run-2", src, m, baseTime.Add(time.Minute))
	r3 := testRun("run-3", src, m, baseTime.Add(2*time.Minute))
	r3.Shard = "3/4"
	e.write(connector.Batch{Run: r1})
	e.write(connector.Batch{Run: r2})
	e.write(connector.Batch{Run: r3})
	// Progress, then the end of run 2.
	done := *r2
	done.EndedAt = done.StartedAt.Add(30 * time.Second)
	done.Outcome = schema.RunPartial
	done.Error = "1 item failed"
	done.Listed, done.Written, done.Failed, done.Skipped = 23, 18, 2, 3
	e.write(connector.Batch{Run: &done, Upserts: []schema.Record{rec(m, src, "x.jpg", "x", vecOf(8, 1))}})
	for i := range 12 {
		e.write(connector.Batch{Failures: []schema.Failure{
			failure(m, src, fmt.Sprintf("f%02d.jpg", i), schema.FailDecode, baseTime.Add(time.Duration(i)*time.Second)),
		}})
	}

	st := e.status()
	if len(st.Runs) != 3 {
		t.Fatalf("Status.Runs has %d runs, want 3", len(st.Runs))
	}
	e.checkRun(st.Runs[0], *r3)
	e.checkRun(st.Runs[1], done)
	e.checkRun(st.Runs[2], *r1)
	if st.Failures != 12 || st.ByClass[string(schema.FailDecode)] != 12 {
		t.Errorf("Failures = %d, ByClass = %v; want 12 decode", st.Failures, st.ByClass)
	}
	if len(st.Recent) != 10 || st.Recent[0].Key != "f11.jpg" || st.Recent[9].Key != "f02.jpg" {
		t.Errorf("Recent = %d entries from %v; want the 10 newest, f11.jpg first", len(st.Recent), st.Recent)
	}
	if len(st.Models) != 1 || st.Models[0].Rows != 1 || st.Models[0].Dim != 8 {
		t.Errorf("Models = %+v", st.Models)
	}
	for i := range 10 {
		e.write(connector.Batch{Run: testRun(fmt.Sprintf("run-%02d", 10+i), src, m, baseTime.Add(time.Hour+time.Duration(i)*time.Minute))})
	}
	if st := e.status(); len(st.Runs) != 10 || st.Runs[0].ID != "run-19" {
		t.Errorf("after 13 runs, Status.Runs = %d runs, newest %v; want 10, run-19", len(st.Runs), st.Runs[0].ID)
	}
}
