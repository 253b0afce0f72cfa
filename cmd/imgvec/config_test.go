package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
)

func parseJob(t *testing.T, src string) config.Job {
	t.Helper()
	f, err := config.ParseEnv("imgvec.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	j, err := f.Job("")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// A key left out of the file and a flag left off the command line mean
// the same: the config's defaults are the flags' defaults.
func TestConfigDefaultsAreFlagDefaults(t *testing.T) {
	var flags config.Job
	registerRunFlags(pflag.NewFlagSet("sync", pflag.ContinueOnError), &flags, connector.KindSync)
	got := parseJob(t, "jobs:\n  - {name: a, source: /x}\n")
	flags.Name, flags.Sources = "a", []string{"/x"}
	flags.Schedule, flags.TimeZone = got.Schedule, got.TimeZone // serve's keys: no flag
	if !reflect.DeepEqual(got, flags) {
		t.Errorf("a job with only a name and a source:\n%+v\nflag defaults:\n%+v", got, flags)
	}
}

// A flag given on the command line wins over the config; the config wins
// over the flags' defaults.
func TestFlagsOverrideConfig(t *testing.T) {
	fileJob := parseJob(t, `
jobs:
  - name: photos
    source: [/a, /b]
    sink: sqlite://./cfg.db
    batch: 8
    device: cuda
    include: ["*.jpg"]
    grace: 5s
    max_delete: 10%
    retry_failed: true
`)
	var j config.Job
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	registerRunFlags(fs, &j, connector.KindSync)
	if err := fs.Parse([]string{"--batch", "4", "--include", "x/**", "--include", "y/**", "--source", "/c", "--retry-failed=false"}); err != nil {
		t.Fatal(err)
	}
	if err := applyJob(fs, func() { j = fileJob }); err != nil {
		t.Fatal(err)
	}
	want := fileJob
	want.Batch = 4
	want.Include = []string{"x/**", "y/**"}
	want.Sources = []string{"/c"}
	want.RetryFailed = false
	if !reflect.DeepEqual(j, want) {
		t.Errorf("job = %+v\nwant  %+v", j, want)
	}
	if j.Sink != "sqlite://./cfg.db" || j.Device != "cuda" || j.Grace != 5*time.Second || j.MaxDelete != "10%" || j.Name != "photos" {
		t.Errorf("config values lost: %+v", j)
	}
}

// TestBatchAuto: --batch auto and batch: auto are Job.Batch 0 (the
// extractor sizes batches by device); anything else is a number in range.
func TestBatchAuto(t *testing.T) {
	if j := parseJob(t, "jobs:\n  - name: a\n    source: /a\n    batch: auto\n"); j.Batch != 0 {
		t.Errorf("batch: auto gave %d, want 0", j.Batch)
	}
	var j config.Job
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	registerRunFlags(fs, &j, connector.KindSync)
	if j.Batch != config.DefaultBatch {
		t.Errorf("--batch defaults to %d, want %d", j.Batch, config.DefaultBatch)
	}
	if err := fs.Parse([]string{"--batch", "auto"}); err != nil || j.Batch != 0 || fs.Lookup("batch").Value.String() != "auto" {
		t.Errorf("--batch auto: %v, batch %d", err, j.Batch)
	}
	err := fs.Parse([]string{"--batch", "lots"})
	if err == nil || !strings.Contains(err.Error(), "want a whole number from 1 to 512, or auto") {
		t.Errorf("--batch lots: %v", err)
	}
}

// The one-shot commands run a config job; flags given explicitly win.
func TestE2EConfig(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	copyTree(t, e2eImages, filepath.Join(tmp, "src"))
	os.RemoveAll(filepath.Join(tmp, "src", "bad"))
	n := int64(len(goodImages(t)))
	writeText(t, filepath.Join(tmp, "imgvec.yaml"), `
jobs:
  - name: photos
    source: ${SRC:-src}
    sink: sqlite://./cfg.db
    model: `+e2eModel+`
    batch: 4
    schedule: "@every 15m"
  - name: other
    source: src
`)

	r := mustCode(t, exitOK, tmp, "config", "check", "--config", "imgvec.yaml")
	for _, want := range []string{"imgvec.yaml: OK, 2 job(s)", "job photos", "sqlite://./cfg.db", "@every 15m (UTC)", "next runs", "none: for the one-shot commands (imgvec serve needs one)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config check output lacks %q:\n%s", want, r)
		}
	}

	r = mustCode(t, exitOK, tmp, "sync", "-q", "--config", "imgvec.yaml", "--job", "photos")
	if rl := parseRunLine(t, r); rl.Listed != n || rl.Written != n {
		t.Errorf("sync --config: %+v, want %d listed and written", rl, n)
	}
	st := readDB(t, filepath.Join(tmp, "cfg.db"))
	if len(st.Items) != int(n) {
		t.Fatalf("cfg.db holds %d items, want %d", len(st.Items), n)
	}
	var jobs []string
	db, err := sql.Open("sqlite3", filepath.Join(tmp, "cfg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT job FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if rows.Close(); !reflect.DeepEqual(jobs, []string{"photos"}) {
		t.Errorf("runs recorded with jobs %q, want [photos]", jobs)
	}

	// search and status read the job's sink (and search its model).
	if hits := search(t, tmp, "--config", "imgvec.yaml", "--job", "photos", "--image", "src/small.jpg", "-k", "1"); len(hits) != 1 || hits[0].Key != "small.jpg" {
		t.Errorf("search --config: %+v", hits)
	}
	if r := mustCode(t, exitOK, tmp, "status", "--config", "imgvec.yaml", "--job", "photos"); !strings.Contains(r.stdout, "recent runs") {
		t.Errorf("status --config:\n%s", r)
	}

	// --sink on the command line overrides the job's.
	mustCode(t, exitOK, tmp, "backfill", "-q", "--config", "imgvec.yaml", "--job", "photos", "--sink", "sqlite://./flag.db")
	if st := readDB(t, filepath.Join(tmp, "flag.db")); len(st.Items) != int(n) {
		t.Errorf("flag.db holds %d items, want %d", len(st.Items), n)
	}

	// A two-job file needs --job; an unknown job or an invalid file is a
	// usage error naming the problem.
	if r := mustCode(t, exitUsage, tmp, "sync", "--config", "imgvec.yaml"); !strings.Contains(r.stderr, "name one with --job") {
		t.Errorf("sync without --job:\n%s", r)
	}
	if r := mustCode(t, exitUsage, tmp, "status", "--config", "imgvec.yaml", "--job", "nope"); !strings.Contains(r.stderr, `no job "nope" (jobs: photos, other)`) {
		t.Errorf("unknown job:\n%s", r)
	}
	writeText(t, filepath.Join(tmp, "bad.yaml"), "jobs:\n  - name: photos\n    source: src\n    schedule: \"*/15 * *\"\n    batch: lots\n")
	r = mustCode(t, exitUsage, tmp, "config", "check", "--config", "bad.yaml")
	for _, want := range []string{
		`bad.yaml:4: jobs[0].schedule: "*/15 * *": expected 5 fields`,
		`bad.yaml:5: jobs[0].batch: "lots": want a whole number`,
		`config check: bad.yaml: 2 problem(s)`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config check of an invalid file: stderr lacks %q\n%s", want, r)
		}
	}
	if r := mustCode(t, exitUsage, tmp, "sync", "--config", "bad.yaml"); !strings.Contains(r.stderr, "bad.yaml:5: jobs[0].batch") {
		t.Errorf("sync with an invalid config:\n%s", r)
	}
}

func writeText(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
