package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Numeric flags outside their declared range are usage errors naming the
// flag, the value and the range, before anything is loaded; the same
// values in a config are problems of config check, and serve refuses them.
func TestE2EFlagRanges(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sync", "--source", "x", "--batch", "2147483647"}, `invalid argument "2147483647" for "--batch" flag: want a whole number from 1 to 512`},
		{[]string{"backfill", "--source", "x", "--threads", "100000"}, `invalid argument "100000" for "--threads" flag: want a whole number from 0 to 256`},
		{[]string{"sync", "--source", "x", "--workers", "257"}, `"--workers" flag: want a whole number from 0 to 256`},
		{[]string{"sync", "--source", "x", "--max-bytes", "0"}, `"--max-bytes" flag: want a whole number from 1 to 4294967296`},
		{[]string{"sync", "--source", "x", "--grace", "720h"}, `invalid argument "720h" for "--grace" flag: want a duration from 0s to 1h`},
		{[]string{"embed", "x", "--out", "x.npy", "--max-pixels", "99999999999"}, `"--max-pixels" flag: want a whole number from 1 to 1073741824`},
		{[]string{"embed", "x", "--out", "x.npy", "--batch", "0"}, `"--batch" flag: want a whole number from 1 to 512`},
		{[]string{"search", "--image", "x.jpg", "-k", "1000000"}, `"-k, --k" flag: want a whole number from 1 to 10000`},
		{[]string{"search", "--image", "x.jpg", "--threads", "-1"}, `"--threads" flag: want a whole number from 0 to 256`},
	} {
		if r := mustCode(t, exitUsage, tmp, tc.args...); !strings.Contains(r.stderr, tc.want) {
			t.Errorf("imgvec %s: stderr lacks %q\n%s", strings.Join(tc.args, " "), tc.want, r)
		}
	}

	writeText(t, filepath.Join(tmp, "big.yaml"), `jobs:
  - name: photos
    source: src
    schedule: "@hourly"
    batch: 2147483647
    threads: 100000
serve:
  lease_ttl: 720h
`)
	r := mustCode(t, exitUsage, tmp, "config", "check", "--config", "big.yaml")
	for _, want := range []string{
		`big.yaml:5: jobs[0].batch: "2147483647": want a whole number from 1 to 512`,
		`big.yaml:6: jobs[0].threads: "100000": want a whole number from 0 to 256`,
		`big.yaml:8: serve.lease_ttl: "720h": want a duration from 1s to 1h`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config check: stderr lacks %q\n%s", want, r)
		}
	}
	if r := mustCode(t, exitUsage, tmp, "serve", "--config", "big.yaml"); !strings.Contains(r.stderr, "big.yaml:5: jobs[0].batch") {
		t.Errorf("serve with an out-of-range config:\n%s", r)
	}
}

// --job follows the config's job-name rule on every command that takes
// it: a name that would build a lock path outside the database's folder,
// or any name a config could not define, is a usage error, and so is an
// explicitly empty one (it would silently take no lease).
func TestE2EJobFlagName(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "a", "b", "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "a", "b")
	for _, name := range []string{"../../evil", "A B", "", "x/y", strings.Repeat("a", 64)} {
		for _, cmd := range [][]string{
			{"sync", "--source", "src", "--sink", "sqlite://./db/x.db"},
			{"backfill", "--source", "src", "--sink", "sqlite://./db/x.db"},
			{"search", "--image", "x.jpg", "--config", "imgvec.yaml"},
			{"status", "--sink", "sqlite://./db/x.db"},
			{"migrate", "status", "--sink", "sqlite://./db/x.db"},
		} {
			r := mustCode(t, exitUsage, dir, append(cmd, "--job", name)...)
			if !strings.Contains(r.stderr, `for "--job" flag: `) || !strings.Contains(r.stderr, "want lowercase letters, digits, _ and -") {
				t.Errorf("imgvec %s --job %q: want a usage error naming --job and the rule\n%s", strings.Join(cmd, " "), name, r)
			}
		}
	}
	// Nothing was created: no lock file, here or outside the folder.
	err := filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("a refused run left %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A well-formed schedule that matches no time (30 February) is a config
// error naming it; config check never prints the zero time as a next run.
func TestE2EScheduleNeverFires(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	writeText(t, filepath.Join(tmp, "imgvec.yaml"), "jobs:\n  - name: photos\n    source: src\n    schedule: \"0 0 30 2 *\"\n")
	r := mustCode(t, exitUsage, tmp, "config", "check", "--config", "imgvec.yaml")
	if want := `imgvec.yaml:4: jobs[0].schedule: "0 0 30 2 *": never fires: no time in the next 5 years matches it`; !strings.Contains(r.stderr, want) {
		t.Errorf("config check: stderr lacks %q\n%s", want, r)
	}
	if strings.Contains(r.stdout+r.stderr, "0001-01-01") {
		t.Errorf("config check prints the zero time:\n%s", r)
	}
	mustCode(t, exitUsage, tmp, "serve", "--config", "imgvec.yaml")
}

// secretURIs are sink URIs carrying the secret in every place a URI can:
// userinfo, password and sslpassword parameters, a token parameter.
const uriSecret = "Zq7-S3cr3t-pw"

var secretURIs = []string{
	"postgres://imgvec:" + uriSecret + "@127.0.0.1:1/imgvec?connect_timeout=2",
	"postgres://imgvec@127.0.0.1:1/imgvec?connect_timeout=2&password=" + uriSecret,
	"postgresql://imgvec@127.0.0.1:1/imgvec?connect_timeout=2&sslmode=disable&sslpassword=" + uriSecret,
	"postgres://imgvec@127.0.0.1:1/imgvec?sslmode=bogus&sslpassword=" + uriSecret, // pgx's parse error quotes the DSN
	"milvus://127.0.0.1:1?collection=c&token=" + uriSecret,
	"sqlite://./imgvec.db?password=" + uriSecret,
}

func noSecret(t *testing.T, what string, out string) {
	t.Helper()
	if strings.Contains(out, uriSecret) {
		t.Errorf("%s shows the secret:\n%s", what, out)
	}
}

// The secret of a sink or lock URI appears in no output: errors and logs
// (text and JSON) of status and sync, and config check. serve's outputs
// are TestE2EServeSecretsNeverShown's.
func TestE2ESecretsNeverShown(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	for _, uri := range secretURIs {
		for _, format := range []string{"text", "json"} {
			r := imgvec(t, tmp, "status", "--log-format", format, "--log-level", "debug", "--sink", uri)
			if r.code == exitOK {
				t.Errorf("status --sink %s: exit 0", uri)
			}
			noSecret(t, "status --log-format "+format, r.String())
			r = imgvec(t, tmp, "migrate", "up", "--log-format", format, "--sink", uri)
			noSecret(t, "migrate up --log-format "+format, r.String())
		}
	}

	// config check prints every sink masked, and every refused one too.
	var ok, bad strings.Builder
	ok.WriteString("lock_dsn: postgres://locks:" + uriSecret + "@127.0.0.1:1/locks?password=" + uriSecret + "\njobs:\n")
	bad.WriteString("jobs:\n")
	for i, uri := range secretURIs {
		b := &ok
		if strings.Contains(uri, "bogus") || strings.HasPrefix(uri, "milvus") || strings.HasPrefix(uri, "sqlite") {
			b = &bad
		}
		b.WriteString("  - {name: j" + string(rune('a'+i)) + ", source: src, sink: \"" + uri + "\"}\n")
	}
	writeText(t, filepath.Join(tmp, "ok.yaml"), ok.String())
	writeText(t, filepath.Join(tmp, "bad.yaml"), bad.String())
	writeText(t, filepath.Join(tmp, "invalid.yaml"), "jobs:\n  - {name: zz, source: src, sink: \"ftp://u:"+uriSecret+"@h?token="+uriSecret+"\"}\n")
	r := mustCode(t, exitOK, tmp, "config", "check", "--config", "ok.yaml")
	noSecret(t, "config check", r.String())
	if !strings.Contains(r.stdout, "postgres://imgvec:xxxxx@127.0.0.1:1/imgvec") || !strings.Contains(r.stdout, "sslpassword=xxxxx") {
		t.Errorf("config check does not print the sinks masked:\n%s", r)
	}
	r = mustCode(t, exitUsage, tmp, "config", "check", "--config", "bad.yaml")
	noSecret(t, "config check of sinks the sinks refuse", r.String())
	if n := strings.Count(r.stderr, "bad.yaml: job "); n != 3 {
		t.Errorf("config check of bad.yaml: %d sink errors, want 3\n%s", n, r)
	}
	r = mustCode(t, exitUsage, tmp, "config", "check", "--config", "invalid.yaml")
	noSecret(t, "config check of an invalid sink", r.String())

	// A one-shot run with the file: the lock database's error is masked.
	writeText(t, filepath.Join(tmp, "one.yaml"), "lock_dsn: postgres://locks@127.0.0.1:1/l?connect_timeout=2&password="+uriSecret+
		"\njobs:\n  - {name: a, source: src, sink: sqlite://./one.db, model: "+e2eModel+"}\n")
	if err := os.MkdirAll(filepath.Join(tmp, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if e2eORTErr == nil {
		for _, format := range []string{"text", "json"} {
			r = imgvec(t, tmp, "sync", "-q", "--log-format", format, "--config", "one.yaml")
			if r.code != exitFatal || !strings.Contains(r.stderr, "job lease database") {
				t.Errorf("sync with an unreachable lock_dsn: want exit 1 naming the lease database\n%s", r)
			}
			noSecret(t, "sync --log-format "+format, r.String())
		}
	}
}

// serve's outputs show no secret: /readyz (the sink is unreachable),
// /v1/jobs (the run's error), and its logs, text and JSON.
func TestE2EServeSecretsNeverShown(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, uri := range secretURIs[:3] {
		format := []string{"text", "json"}[i%2]
		cfg := writeConfig(t, tmp, "src", uri, "@hourly", "serve.run_on_start: true")
		p := startServe(t, tmp, cfg, "--log-format", format)
		var jobs string
		waitFor(t, 30*time.Second, "the failed start-up run in /v1/jobs", p, func() bool {
			_, jobs = p.get("/v1/jobs")
			return strings.Contains(jobs, `"last_error"`)
		})
		noSecret(t, "/v1/jobs", jobs)
		code, ready := p.get("/readyz")
		if code != 503 || !strings.Contains(ready, "sink unreachable") {
			t.Errorf("/readyz = %d %s; want 503 with the sink unreachable", code, ready)
		}
		noSecret(t, "/readyz", ready)
		p.kill(syscall.SIGTERM)
		p.wait(t, 30*time.Second)
		noSecret(t, "serve's log ("+format+")", p.stdout.String()+p.stderr.String())
		if !strings.Contains(p.stderr.String(), "127.0.0.1:1") {
			t.Errorf("serve's log does not report the failed run:\n%s", p.stderr.String())
		}
	}
}
