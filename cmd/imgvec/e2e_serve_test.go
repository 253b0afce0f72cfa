package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/schema"
)

// serveProc is `imgvec serve` running in the background.
type serveProc struct {
	*bgRun
	base string // http://127.0.0.1:PORT
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeConfig writes an imgvec.yaml for one job called photos.
func writeConfig(t *testing.T, dir, src, sink, schedule string, extra ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "jobs:\n  - name: photos\n    source: %s\n    sink: %s\n    model: %s\n    schedule: %q\n", src, sink, e2eModel, schedule)
	for _, kv := range extra {
		if strings.HasPrefix(kv, "serve.") {
			continue
		}
		fmt.Fprintf(&b, "    %s\n", kv)
	}
	b.WriteString("serve:\n")
	for _, kv := range extra {
		if rest, ok := strings.CutPrefix(kv, "serve."); ok {
			fmt.Fprintf(&b, "  %s\n", rest)
		}
	}
	path := filepath.Join(dir, "imgvec.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServe(t *testing.T, dir, cfg string, args ...string) *serveProc {
	t.Helper()
	addr := freeAddr(t)
	p := &serveProc{bgRun: startBG(t, dir, append([]string{"serve", "--config", cfg, "--listen", addr}, args...)...), base: "http://" + addr}
	waitFor(t, 20*time.Second, "serve to answer /healthz", p, func() bool {
		code, _ := p.get("/healthz")
		return code == http.StatusOK
	})
	return p
}

func (p *serveProc) get(path string) (int, string) {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *serveProc) post(path string) int {
	resp, err := http.Post(p.base+path, "", nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metrics scrapes /metrics: series (name{labels} as printed) → value.
func (p *serveProc) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := p.get("/metrics")
	if code != http.StatusOK {
		return nil
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// metric is one series' value (0 when absent).
func (p *serveProc) metric(t *testing.T, series string) float64 { return p.metrics(t)[series] }

// sumMetric adds the values of every series of name whose labels include
// all of want (e.g. `job="photos"`).
func (p *serveProc) sumMetric(t *testing.T, name string, want ...string) float64 {
	var sum float64
	for k, v := range p.metrics(t) {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// waitFor polls cond every 50 ms until it holds or d passes (then fails,
// with p's output when p is set).
func waitFor(t *testing.T, d time.Duration, what string, p *serveProc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				select {
				case <-p.done:
					out = p.summary() + "\n" + p.stderr.String()
				default:
					out = "(still running)"
				}
			}
			t.Fatalf("waited %s for %s\n%s", d, what, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const (
	jp         = `job="photos"`
	leaseHeld  = `imgvec_lease_held{job="photos"}`
	jobRunning = `imgvec_job_running{job="photos"}`
)

// TestE2EServeMetricsAndTrigger: a run with known outcomes (the generated
// collection: 200 distinct images, 4 byte copies, 10 bad files of known
// classes) shows in /metrics with the right values; a manual trigger runs
// again; SIGTERM stops cleanly and hands the lock file over.
func TestE2EServeMetricsAndTrigger(t *testing.T) {
	dir, src, db := generatedSQLite(t)
	cfg := writeConfig(t, dir, src, "sqlite://"+db, "@every 1h", "serve.run_on_start: true")
	p := startServe(t, dir, cfg)

	startRuns := `imgvec_runs_total{job="photos",outcome="partial",trigger="start"}`
	waitFor(t, 60*time.Second, "the start-up run", p, func() bool { return p.metric(t, startRuns) == 1 })
	st := readDB(t, db)
	if n := checkInvariant(t, st, src, refModelID(t, st), true); n > 0 {
		t.Fatalf("%d invariant violations", n)
	}
	m := p.metrics(t)
	item := func(o string) float64 { return m[`imgvec_items_total{job="photos",outcome="`+o+`"}`] }
	if got, want := item("extracted")+item("reused"), float64(genGood+genDups); got != want || got != float64(len(st.Items)) {
		t.Errorf("extracted+reused = %v, want %v (rows: %d)", got, want, len(st.Items))
	}
	if got := item("failed"); got != float64(len(genBadClasses)) || got != float64(len(st.Failures)) {
		t.Errorf("failed = %v, want %d (ledger: %d)", got, len(genBadClasses), len(st.Failures))
	}
	byClass := map[schema.FailureClass]int{}
	for _, c := range genBadClasses {
		byClass[c]++
	}
	for c, n := range byClass {
		if got := m[`imgvec_item_failures_total{class="`+string(c)+`",job="photos"}`]; got != float64(n) {
			t.Errorf("failures of class %s = %v, want %d", c, got, n)
		}
	}
	if got := m[`imgvec_batch_items_sum{job="photos",stage="infer"}`]; got != item("extracted") {
		t.Errorf("items through the model %v, want %v extracted", got, item("extracted"))
	}
	if got := m[`imgvec_batch_items_sum{job="photos",stage="write"}`]; got != float64(genGood+genDups+len(genBadClasses)) {
		t.Errorf("items committed %v", got)
	}
	// Every batch closed for a reason. The run's last batch usually closes
	// at the end of its input, but on a loaded machine it may linger out
	// first: either way one batch closed for a reason other than size.
	if m[`imgvec_batches_total{job="photos",reason="end"}`]+m[`imgvec_batches_total{job="photos",reason="linger"}`] < 1 ||
		m[`imgvec_batches_total{job="photos",reason="size"}`]+m[`imgvec_batches_total{job="photos",reason="linger"}`]+
			m[`imgvec_batches_total{job="photos",reason="end"}`] != m[`imgvec_batch_items_count{job="photos",stage="write"}`] {
		t.Errorf("batches by reason (size %v, linger %v, end %v) do not add up to the %v commits",
			m[`imgvec_batches_total{job="photos",reason="size"}`], m[`imgvec_batches_total{job="photos",reason="linger"}`],
			m[`imgvec_batches_total{job="photos",reason="end"}`], m[`imgvec_batch_items_count{job="photos",stage="write"}`])
	}
	for _, stage := range []string{"read", "decode", "infer", "write"} {
		if m[`imgvec_stage_duration_seconds_count{job="photos",stage="`+stage+`"}`] == 0 {
			t.Errorf("no %s latencies", stage)
		}
	}
	if m[`imgvec_last_success_timestamp_seconds{job="photos"}`] < float64(time.Now().Add(-time.Minute).Unix()) ||
		m[leaseHeld] != 1 || m[`imgvec_run_duration_seconds_count{job="photos",outcome="partial"}`] != 1 {
		t.Errorf("last success / lease / run duration: %v %v %v", m[`imgvec_last_success_timestamp_seconds{job="photos"}`],
			m[leaseHeld], m[`imgvec_run_duration_seconds_count{job="photos",outcome="partial"}`])
	}

	// The lease is held between runs: a one-shot run of the job is refused.
	r := mustCode(t, 1, dir, "sync", "-q", "--config", cfg, "--job", "photos")
	if !strings.Contains(r.stderr, "running elsewhere") {
		t.Errorf("one-shot sync while serve holds the job:\n%s", r)
	}

	if code := p.post("/v1/jobs/photos/run"); code != http.StatusAccepted {
		t.Fatalf("trigger: HTTP %d", code)
	}
	waitFor(t, 30*time.Second, "the manual run", p, func() bool {
		return p.metric(t, `imgvec_runs_total{job="photos",outcome="partial",trigger="manual"}`) == 1
	})
	if got := p.metric(t, `imgvec_items_total{job="photos",outcome="unchanged"}`); got != float64(genGood+genDups) {
		t.Errorf("unchanged after the manual run: %v", got)
	}
	if code := p.post("/v1/jobs/nope/run"); code != http.StatusNotFound {
		t.Errorf("unknown job: HTTP %d", code)
	}
	if code, body := p.get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d %s", code, body)
	}

	p.kill(syscall.SIGTERM)
	p.wait(t, 20*time.Second)
	if p.code() != 0 {
		t.Fatalf("serve after SIGTERM: %s\n%s", p.summary(), p.stderr.String())
	}
	// The lock file was handed over: the one-shot run goes ahead.
	r = mustCode(t, 3, dir, "sync", "-q", "--config", cfg, "--job", "photos")
	if l := parseRunLine(t, r); l.Unchanged != int64(genGood+genDups) {
		t.Errorf("one-shot after serve: %+v", l)
	}
	st = readDB(t, db)
	checkOracleSQLite(t, st, src, refModelID(t, st))
}

// generatedSQLite copies the generated collection into a temporary folder
// (dir/src) beside a SQLite database path (dir/imgvec.db).
func generatedSQLite(t *testing.T) (dir, src, db string) {
	t.Helper()
	needBinary(t)
	dir = t.TempDir()
	src = filepath.Join(dir, "src")
	copyTree(t, generated(t), src)
	return dir, src, filepath.Join(dir, "imgvec.db")
}

// refModelID is the model id the rows carry.
func refModelID(t *testing.T, st dbState) string {
	t.Helper()
	for _, it := range st.Items {
		return it.ModelID
	}
	t.Fatal("no rows")
	return ""
}

// TestE2EServeSIGTERMDuringRun: SIGTERM in the middle of a run stops it
// within the grace period with whole batches committed; the next serve's
// run completes the work.
func TestE2EServeSIGTERMDuringRun(t *testing.T) {
	dir, src, db := generatedSQLite(t)
	// Batches of one on one thread: the run lasts long enough to be hit.
	cfg := writeConfig(t, dir, src, "sqlite://"+db, "@every 1h", "batch: 1", "threads: 1", "workers: 1", "grace: 20s",
		"serve.run_on_start: true")
	p := startServe(t, dir, cfg)
	waitFor(t, 60*time.Second, "the run to commit a few batches", p, func() bool {
		return p.metric(t, `imgvec_batch_items_count{job="photos",stage="write"}`) >= 3
	})
	running := p.metric(t, jobRunning) == 1
	p.kill(syscall.SIGTERM)
	p.wait(t, 25*time.Second)
	if p.code() != 0 {
		t.Fatalf("serve after SIGTERM: %s\n%s", p.summary(), p.stderr.String())
	}
	st := readDB(t, db)
	model := refModelID(t, st)
	if n := checkInvariant(t, st, src, model, false); n > 0 {
		t.Fatalf("%d invariant violations after SIGTERM", n)
	}
	last := st.Runs[len(st.Runs)-1]
	if running && last.Outcome != string(schema.RunCancelled) {
		t.Errorf("run stopped by SIGTERM: outcome %s (%s)", last.Outcome, last.Error)
	}
	t.Logf("stopped after %d rows and %d ledger entries (run %s)", len(st.Items), len(st.Failures), last.Outcome)

	q := startServe(t, dir, cfg)
	waitFor(t, 90*time.Second, "the next run", q, func() bool {
		return q.metric(t, `imgvec_runs_total{job="photos",outcome="partial",trigger="start"}`) == 1
	})
	q.kill(syscall.SIGTERM)
	q.wait(t, 20*time.Second)
	st = readDB(t, db)
	if n := checkInvariant(t, st, src, model, true); n > 0 {
		t.Fatalf("%d invariant violations after the next run", n)
	}
	checkOracleSQLite(t, st, src, model)
}

// TestE2EServeReplicasPostgres: two serve processes against one
// PostgreSQL run the job once per tick (one holds the lease, the other
// skips); SIGKILL the holder and the other takes over once the lease
// expires; SIGSTOP the new holder in the middle of a run, let a third take
// over, SIGCONT it: it cannot commit, and the database converges.
func TestE2EServeReplicasPostgres(t *testing.T) {
	needBinary(t)
	sinkURI := pgSink(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	copyTree(t, filepath.Join("..", "..", "testdata", "images"), src)
	os.RemoveAll(filepath.Join(src, "bad"))
	cfg := writeConfig(t, dir, src, sinkURI, "*/2 * * * * *", "serve.lease_ttl: 3s")

	a := startServe(t, dir, cfg)
	waitFor(t, 30*time.Second, "replica A to take the lease and run", a, func() bool {
		return a.metric(t, leaseHeld) == 1 && a.sumMetric(t, "imgvec_runs_total", jp) >= 1
	})
	b := startServe(t, dir, cfg)
	waitFor(t, 30*time.Second, "replica B to skip ticks held by A", b, func() bool {
		return b.metric(t, `imgvec_runs_skipped_total{job="photos",reason="lease_held"}`) >= 2
	})
	if n := b.sumMetric(t, "imgvec_runs_total", jp); n != 0 {
		t.Fatalf("replica B ran %v times while A held the lease", n)
	}
	aRuns := a.sumMetric(t, "imgvec_runs_total", jp)
	if got := countRuns(t, sinkURI); got != int(aRuns) {
		// a run row per run of A: none of B, none twice per tick
		t.Logf("runs table has %d runs, A reported %v (a tick may be in progress)", got, aRuns)
	}

	// SIGKILL the holder: B takes over after the lease expires.
	a.kill(syscall.SIGKILL)
	a.wait(t, 10*time.Second)
	waitFor(t, 20*time.Second, "replica B to take over", b, func() bool {
		return b.metric(t, leaseHeld) == 1 && b.sumMetric(t, "imgvec_runs_total", jp) >= 1
	})

	// A third replica waits behind B.
	c := startServe(t, dir, cfg)
	waitFor(t, 30*time.Second, "replica C to skip ticks held by B", c, func() bool {
		return c.metric(t, `imgvec_runs_skipped_total{job="photos",reason="lease_held"}`) >= 1
	})
	// New work, so that B's next run lasts: the generated collection.
	copyTree(t, generated(t), filepath.Join(src, "more"))
	waitFor(t, 30*time.Second, "B to be in the middle of a run", b, func() bool {
		m := b.metrics(t)
		// B's earlier runs found nothing new: any inference is this run's.
		return m[jobRunning] == 1 && m[`imgvec_batch_items_sum{job="photos",stage="infer"}`] > 0
	})
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "replica C to take over from the stopped B", c, func() bool {
		return c.metric(t, leaseHeld) == 1
	})
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B to notice it lost the lease", b, func() bool {
		return b.metric(t, `imgvec_lease_events_total{event="lost",job="photos"}`) == 1
	})
	waitFor(t, 30*time.Second, "B's interrupted run to end", b, func() bool { return b.metric(t, jobRunning) == 0 })
	// B's open transaction was ended by the server while B was stopped,
	// or B's next commit met the fence: either way its run failed.
	if _, body := b.get("/v1/jobs"); !strings.Contains(body, "job lease lost") {
		t.Errorf("B's run after SIGCONT did not fail on the lost lease: %s", body)
	}
	waitFor(t, 90*time.Second, "C to complete a run", c, func() bool {
		return c.metric(t, `imgvec_runs_total{job="photos",outcome="partial",trigger="schedule"}`) >= 1
	})
	b.kill(syscall.SIGTERM)
	c.kill(syscall.SIGTERM)
	b.wait(t, 30*time.Second)
	c.wait(t, 30*time.Second)
	checkPGConverged(t, sinkURI, src)
	if models := status(t, dir, sinkURI).Models; len(models) != 1 {
		t.Errorf("status: %d models stored, want 1: %+v", len(models), models)
	} else {
		checkOraclePG(t, sinkURI, src, models[0].ModelID)
	}
	pgQuery(t, sinkURI, func(c *pgx.Conn, sch string) {
		var abandoned int
		if err := c.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{sch, "images_runs"}.Sanitize()+
			` WHERE outcome = 'abandoned'`).Scan(&abandoned); err != nil {
			t.Fatal(err)
		}
		if abandoned < 1 {
			t.Errorf("B's interrupted run was not closed as abandoned by C")
		}
	})
}

// TestE2EServeTwoJobsOneModel: two jobs of the same model share one
// extractor and run at the same time (run on start) on one folder into two
// databases. Every stored vector is that of its own file (the vector
// oracle) and the databases agree key by key.
func TestE2EServeTwoJobsOneModel(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Enough distinct images for the two runs' batches to overlap many
	// times: with an extractor shared unsafely, about a fifth of the
	// vectors were another image's.
	const images = 300
	for i := range images {
		writeJPEG(t, filepath.Join(src, fmt.Sprintf("img%03d.jpg", i)), i)
	}
	var cfg strings.Builder
	for _, job := range []string{"a", "b"} {
		if job == "a" {
			cfg.WriteString("jobs:\n")
		}
		fmt.Fprintf(&cfg, "  - name: %s\n    source: %s\n    sink: sqlite://%s\n    model: %s\n    schedule: \"@every 1h\"\n",
			job, src, filepath.Join(dir, job+".db"), e2eModel)
	}
	cfgPath := filepath.Join(dir, "imgvec.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startServe(t, dir, cfgPath, "--run-on-start")
	waitFor(t, 3*time.Minute, "both start-up runs", p, func() bool {
		return p.sumMetric(t, "imgvec_runs_total", `job="a"`) == 1 && p.sumMetric(t, "imgvec_runs_total", `job="b"`) == 1
	})
	took := time.Since(start)
	for _, job := range []string{"a", "b"} {
		if n := p.metric(t, `imgvec_runs_total{job="`+job+`",outcome="ok",trigger="start"}`); n != 1 {
			t.Errorf("job %s: start-up run did not end ok", job)
		}
	}
	p.kill(syscall.SIGTERM)
	p.wait(t, 20*time.Second)
	if n := strings.Count(p.stderr.String(), "model loaded"); n != 1 {
		t.Errorf("the model was loaded %d times, want once for both jobs (one shared extractor)", n)
	}
	t.Logf("two runs of %d images each in %s", images, took.Round(time.Millisecond))

	var states []dbState
	for _, job := range []string{"a", "b"} {
		st := readDB(t, filepath.Join(dir, job+".db"))
		model := refModelID(t, st)
		if n := checkInvariant(t, st, src, model, true); n > 0 {
			t.Fatalf("job %s: %d invariant violations", job, n)
		}
		if len(st.Items) != images {
			t.Errorf("job %s: %d rows, want %d", job, len(st.Items), images)
		}
		checkOracleSQLite(t, st, src, model)
		states = append(states, st)
	}
	sameState(t, states[0], states[1])
}

// countRuns is the number of run rows.
func countRuns(t *testing.T, sinkURI string) int {
	t.Helper()
	var n int
	pgQuery(t, sinkURI, func(c *pgx.Conn, schemaName string) {
		if err := c.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{schemaName, "images_runs"}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
	})
	return n
}

// pgQuery connects to the test server with the sink's schema.
func pgQuery(t *testing.T, sinkURI string, fn func(c *pgx.Conn, schemaName string)) {
	t.Helper()
	dsn, schemaName := os.Getenv("IMGVEC_TEST_PG_DSN"), ""
	if i := strings.Index(sinkURI, "schema="); i >= 0 {
		schemaName, _, _ = strings.Cut(sinkURI[i+len("schema="):], "&")
	}
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	fn(c, schemaName)
}

// checkPGConverged: every listed file is stored or in the ledger exactly
// once, at its current sha256, and no run is left "running".
func checkPGConverged(t *testing.T, sinkURI, src string) {
	t.Helper()
	files := listTree(t, src)
	source := "file://" + filepath.ToSlash(src)
	pgQuery(t, sinkURI, func(c *pgx.Conn, sch string) {
		ctx := context.Background()
		seen := map[string]string{}
		for _, table := range []string{"images", "images_failures"} {
			rows, err := c.Query(ctx, `SELECT key, sha256 FROM `+pgx.Identifier{sch, table}.Sanitize()+` WHERE source = $1`, source)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var k, sha string
				if err := rows.Scan(&k, &sha); err != nil {
					t.Fatal(err)
				}
				if _, dup := seen[k]; dup {
					t.Errorf("%s: stored twice", k)
				}
				seen[k] = sha
			}
			rows.Close()
		}
		for k, fp := range files {
			sha, ok := seen[k]
			if !ok {
				t.Errorf("%s: neither stored nor in the ledger", k)
			} else if sha != "" && sha != fp.SHA256 {
				t.Errorf("%s: stored sha256 %.12s, file %.12s", k, sha, fp.SHA256)
			}
		}
		if len(seen) != len(files) {
			t.Errorf("%d keys stored, %d files", len(seen), len(files))
		}
		var running int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{sch, "images_runs"}.Sanitize()+` WHERE outcome = 'running'`).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running != 0 {
			t.Errorf("%d runs left running", running)
		}
	})
}
