package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/schema"
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

// TestE2ESyncWaitsForLockedTable: a sync meeting a table another session
// holds locked logs the blocker at every lock_timeout (the DSN's, 500ms
// here), goes on when the lock is released, and the run's recorded
// duration ("took", and ended_at − started_at in the run row) includes the
// wait.
func TestE2ESyncWaitsForLockedTable(t *testing.T) {
	needBinary(t)
	sinkURI := pgSink(t) + "&lock_timeout=500ms"
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	copyTree(t, filepath.Join("..", "..", "testdata", "images"), src)
	os.RemoveAll(filepath.Join(src, "bad"))
	args := []string{"sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel}
	mustCode(t, exitOK, dir, args...)

	ctx := context.Background()
	cfg, err := pgx.ParseConfig(os.Getenv("IMGVEC_TEST_PG_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "e2e-locker"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sch string
	pgQuery(t, sinkURI, func(_ *pgx.Conn, s string) { sch = s })
	if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{sch, "images"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	p := startBG(t, dir, args...)
	waitFor(t, 30*time.Second, "the sync to wait for the lock", nil, func() bool {
		var waiting bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass)`,
			pgx.Identifier{sch, "images"}.Sanitize()).Scan(&waiting)
		return err == nil && waiting
	})
	time.Sleep(time.Until(locked.Add(2 * time.Second)))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 60*time.Second)
	if p.code() != exitOK {
		t.Fatalf("sync after the lock was released: %s\n%s", p.summary(), p.stderr.String())
	}
	if log := p.stderr.String(); !strings.Contains(log, "waiting for a lock held by another session") || !strings.Contains(log, "e2e-locker") {
		t.Errorf("no lock wait logged:\n%s", p.stderr.String())
	}
	var took time.Duration
	pgQuery(t, sinkURI, func(c *pgx.Conn, s string) {
		var secs float64
		if err := c.QueryRow(ctx, `SELECT extract(epoch FROM ended_at - started_at) FROM `+pgx.Identifier{s, "images_runs"}.Sanitize()+
			` ORDER BY started_at DESC LIMIT 1`).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		took = time.Duration(secs * float64(time.Second))
	})
	if took < 1500*time.Millisecond {
		t.Fatalf("the run recorded %s; the table was locked for 2s of it", took)
	}
}

// TestE2EKilledOneShotRunAbandoned: a one-shot sync without --job (no
// lease) killed with SIGKILL mid-run leaves its run "running"; the next
// run on the host proves its process gone and closes it as "abandoned"
// (status shows it).
func TestE2EKilledOneShotRunAbandoned(t *testing.T) {
	needBinary(t)
	dir := generated(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "imgvec.db")
	sinkURI := "sqlite://" + db
	args := []string{"sync", "-q", "--source", dir, "--sink", sinkURI, "--model", e2eModel, "--batch", "4"}
	p := startBG(t, tmp, args...)
	waitForRows(t, p, db, 8)
	if p.kill(syscall.SIGKILL) {
		t.Fatalf("the sync ended before its SIGKILL: %s", p.summary())
	}
	p.wait(t, 30*time.Second)
	outcomes := func() map[string]int {
		n := map[string]int{}
		for _, r := range status(t, tmp, sinkURI).Runs {
			n[r.Outcome]++
		}
		return n
	}
	if got := outcomes(); got[string(schema.RunRunning)] != 1 {
		t.Fatalf("after the kill: runs %v, want 1 running", got)
	}
	mustCode(t, exitItemFailures, tmp, args...)
	got := outcomes()
	if got[string(schema.RunAbandoned)] != 1 || got[string(schema.RunRunning)] != 0 || got[string(schema.RunPartial)] != 1 {
		t.Fatalf("after the rerun: runs %v, want 1 abandoned and 1 partial", got)
	}
}
