package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// postJSON posts to p and decodes the JSON answer.
func (p *serveProc) postJSON(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(p.base+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("POST %s: %d %q: %v", path, resp.StatusCode, b, err)
	}
	return resp.StatusCode, body
}

func waitReady(t *testing.T, p *serveProc) {
	t.Helper()
	waitFor(t, 60*time.Second, "serve to be ready", p, func() bool {
		code, _ := p.get("/readyz")
		return code == http.StatusOK
	})
}

// checkHeldElsewhere: a trigger of a job leased by another replica answers
// 409 naming the holder and the lease's expiry.
func checkHeldElsewhere(t *testing.T, p *serveProc, holder string, ttl time.Duration) {
	t.Helper()
	code, body := p.postJSON(t, "/v1/jobs/photos/run")
	if code != http.StatusConflict || body["holder"] != holder {
		t.Fatalf("trigger on a replica not holding the lease: %d %v; want 409 naming holder %s", code, body, holder)
	}
	exp, err := time.Parse(time.RFC3339Nano, body["expires"].(string))
	if err != nil || exp.Before(time.Now()) || exp.After(time.Now().Add(ttl+time.Minute)) {
		t.Fatalf("expires %v (%v): want within the lease TTL %s from now", body["expires"], err, ttl)
	}
}

// TestE2ELeaseRestartedReplica: a replica SIGKILLed while it holds a
// job's lease (TTL 10 minutes, never waited out here) is restarted with the
// same --replica-id: it takes its lease back at once and runs. Another
// replica's trigger answers 409 with the holder and expiry instead of
// "started" followed by a skip.
func TestE2ELeaseRestartedReplica(t *testing.T) {
	needBinary(t)
	sinkURI := pgSink(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	copyTree(t, filepath.Join("..", "..", "testdata", "images"), src)
	os.RemoveAll(filepath.Join(src, "bad"))
	const ttl = 10 * time.Minute
	cfg := writeConfig(t, dir, src, sinkURI, "@every 1h", "serve.lease_ttl: 10m")

	a := startServe(t, dir, cfg, "--replica-id", "replica-a", "--run-on-start")
	waitFor(t, 60*time.Second, "replica A to take the lease and run", a, func() bool {
		return a.metric(t, leaseHeld) == 1 && a.sumMetric(t, "imgvec_runs_total", jp) >= 1
	})
	a.kill(syscall.SIGKILL)
	a.wait(t, 10*time.Second)

	b := startServe(t, dir, cfg, "--replica-id", "replica-b")
	waitReady(t, b)
	checkHeldElsewhere(t, b, "replica-a", ttl)

	a2 := startServe(t, dir, cfg, "--replica-id", "replica-a")
	waitReady(t, a2)
	if code, body := a2.postJSON(t, "/v1/jobs/photos/run"); code != http.StatusAccepted {
		t.Fatalf("trigger on the restarted holder: %d %v; want 202", code, body)
	}
	waitFor(t, 30*time.Second, "restarted A to take its lease back and run", a2, func() bool {
		return a2.metric(t, leaseHeld) == 1 && a2.sumMetric(t, "imgvec_runs_total", jp) >= 1
	})
	if n := a2.sumMetric(t, "imgvec_runs_skipped_total", jp); n != 0 {
		t.Errorf("restarted A skipped %v runs", n)
	}
	checkHeldElsewhere(t, b, "replica-a", ttl)
	a2.kill(syscall.SIGTERM)
	b.kill(syscall.SIGTERM)
	a2.wait(t, 30*time.Second)
	b.wait(t, 30*time.Second)
}
