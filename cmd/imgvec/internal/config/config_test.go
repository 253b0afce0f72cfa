package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// The smallest valid config of the issue, with every default filled in.
func TestSmallestConfig(t *testing.T) {
	f, err := ParseEnv("imgvec.yaml", []byte(`
jobs:
  - name: photos
    source: ./photos
    sink: postgres://imgvec@127.0.0.1:5432/imgvec?table=images
    model: vgg19-fc7
    schedule: "*/15 * * * *"
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultJob()
	want.Name, want.Sources, want.Schedule = "photos", []string{"./photos"}, "*/15 * * * *"
	want.Sink = "postgres://imgvec@127.0.0.1:5432/imgvec?table=images"
	if !reflect.DeepEqual(f.Jobs, []Job{want}) {
		t.Errorf("jobs = %+v\nwant %+v", f.Jobs, []Job{want})
	}
	if f.Serve != DefaultServe() {
		t.Errorf("serve = %+v, want the defaults %+v", f.Serve, DefaultServe())
	}
	j, err := f.Job("")
	if err != nil || j.Name != "photos" {
		t.Errorf(`Job("") = %v, %v; want the only job`, j.Name, err)
	}
	if _, err := f.Job("nope"); err == nil || !strings.Contains(err.Error(), "photos") {
		t.Errorf(`Job("nope") = %v; want an error listing the jobs`, err)
	}
}

func TestEveryKey(t *testing.T) {
	f, err := ParseEnv("imgvec.yaml", []byte(`
lock_dsn: postgres://locks@db:5432/imgvec
serve:
  listen: 0.0.0.0:9464
  token_env: MY_TOKEN
  lease_ttl: 1m
  grace: 10s
  run_on_start: true
jobs:
  - name: a_1
    source: [/data/a, file:///data/b]
    sink: sqlite://./a.db
    model: ./m.onnx
    layer: fc6
    decode: fast
    schedule: "30 */5 * * * *"
    time_zone: Europe/Berlin
    batch: 32
    device: cuda:1
    tf32: false
    upload: uint8
    threads: 4
    workers: 2
    max_delete: 10%
    retry_failed: true
    shard: 2/4
    grace: 0s
    index: exact
    include: "**/*.jpg"
    exclude: [tmp/**, "*.bak"]
    ext: [jpg, png]
    follow_symlinks: true
    max_bytes: 1_000_000
    max_pixels: 40000000
    no_normalize: true
    ignore_exif_orientation: true
    download: true
    s3_concurrency: 64
    s3_metadata: true
    allow_private_networks: true
    allow_cidr: [10.0.0.0/8]
    user_agent: bot/1
    url_concurrency: 8
    url_per_host: 2
    url_timeout: 10s
  - name: b
    source: /data/b
    sink: postgres://u@db/imgvec
    index: binary
    lock_dsn: postgres://other@db/x
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantServe := Serve{Listen: "0.0.0.0:9464", TokenEnv: "MY_TOKEN", LeaseTTL: time.Minute, Grace: 10 * time.Second, RunOnStart: true}
	if f.Serve != wantServe {
		t.Errorf("serve = %+v, want %+v", f.Serve, wantServe)
	}
	a := Job{
		Name: "a_1", Sources: []string{"/data/a", "file:///data/b"}, Sink: "sqlite://./a.db", Model: "./m.onnx", Layer: "fc6", Decode: "fast",
		Schedule: "30 */5 * * * *", TimeZone: "Europe/Berlin", Batch: 32, Device: "cuda:1", Upload: "uint8", Threads: 4, Workers: 2,
		MaxDelete: "10%", RetryFailed: true, Shard: "2/4", Grace: 0, Index: "exact", Include: []string{"**/*.jpg"},
		Exclude: []string{"tmp/**", "*.bak"}, Extensions: []string{"jpg", "png"}, FollowSymlinks: true,
		MaxBytes: 1_000_000, MaxPixels: 40_000_000, NoNormalize: true, IgnoreExifOrientation: true, Download: true,
		LockDSN: "postgres://locks@db:5432/imgvec", S3Concurrency: 64, S3Metadata: true,
		AllowPrivateNetworks: true, AllowCIDRs: []string{"10.0.0.0/8"}, UserAgent: "bot/1", URLConcurrency: 8, URLPerHost: 2,
		URLTimeout: 10 * time.Second,
	}
	if !reflect.DeepEqual(f.Jobs[0], a) {
		t.Errorf("job a = %+v\nwant    %+v", f.Jobs[0], a)
	}
	if f.Jobs[1].LockDSN != "postgres://other@db/x" || f.Jobs[1].Index != "binary" || f.Jobs[1].Grace != 10*time.Second {
		t.Errorf("job b = %+v: want its own lock_dsn and index, and serve.grace", f.Jobs[1])
	}
}

// All problems come back together, each with file, line and field, in
// file order.
func TestProblems(t *testing.T) {
	src := `jobs:
  - name: Photos
    source: ./photos
    batch: 0
    schedule: "*/15 * *"
    time_zone: Mars/Olympus
    colour: blue
  - name: dup
    source: []
    grace: soon
    index: binary
  - name: dup
    sink: ftp://x
    source: ./y
    max_delete: lots
    device: tpu
    schedule: "61 * * * *"
    retry_failed: maybe
serve:
  listen: nowhere
  lease_ttl: 0s
  token_env: "not a name"
  extra: 1
`
	_, err := ParseEnv("imgvec.yaml", []byte(src), env(nil))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	want := []string{
		`imgvec.yaml:2: jobs[0].name: "Photos": want lowercase`,
		`imgvec.yaml:4: jobs[0].batch: "0": want a whole number from 1 to 512`,
		`imgvec.yaml:5: jobs[0].schedule: "*/15 * *": expected 5 fields (or 6 with seconds, or a descriptor like @every 15m)`,
		`imgvec.yaml:6: jobs[0].time_zone: "Mars/Olympus": unknown time zone`,
		`imgvec.yaml:7: jobs[0].colour: unknown key (known: allow_cidr, allow_private_networks, batch, decode, device,`,
		`imgvec.yaml:9: jobs[1].source: empty`,
		`imgvec.yaml:10: jobs[1].grace: "soon": want a duration from 0s to 1h`,
		`imgvec.yaml:11: jobs[1].index: "binary": only PostgreSQL sinks`,
		`imgvec.yaml:12: jobs[2].name: "dup": another job has this name (line 8)`,
		`imgvec.yaml:13: jobs[2].sink: "ftp://x": want sqlite://`,
		`imgvec.yaml:15: jobs[2].max_delete: "lots": max-delete "lots": want a count`,
		`imgvec.yaml:16: jobs[2].device: "tpu": parse device "tpu"`,
		`imgvec.yaml:17: jobs[2].schedule: "61 * * * *": end of range (61) above maximum (59)`,
		`imgvec.yaml:18: jobs[2].retry_failed: "maybe": want true or false`,
		`imgvec.yaml:20: serve.listen: "nowhere": want HOST:PORT`,
		`imgvec.yaml:21: serve.lease_ttl: "0s": want a duration from 1s to 1h`,
		`imgvec.yaml:22: serve.token_env: "not a name": want an environment variable name`,
		`imgvec.yaml:23: serve.extra: unknown key (known: grace, lease_ttl, listen, replica_id, run_on_start, token_env)`,
	}
	got := strings.Split(ve.Error(), "\n")
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), ve)
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

func TestStructureProblems(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"empty", ``, `imgvec.yaml:1: jobs: missing`},
		{"no jobs", "serve: {}\n", `imgvec.yaml:1: jobs: missing`},
		{"jobs not a list", "jobs: {name: a}\n", `imgvec.yaml:1: jobs: want a list of jobs`},
		{"empty list", "jobs: []\n", `imgvec.yaml:1: jobs: empty`},
		{"job not a mapping", "jobs:\n  - photos\n", `imgvec.yaml:2: jobs[0]: want a mapping`},
		{"no name", "jobs:\n  - source: x\n", `imgvec.yaml:2: jobs[0].name: missing`},
		{"list where a value goes", "jobs:\n  - name: a\n    source: x\n    sink: [a, b]\n", `imgvec.yaml:4: jobs[0].sink: want a single value, not a list`},
		{"repeated key", "jobs:\n  - name: a\n    source: x\n    name: b\n", `imgvec.yaml:4: jobs[0].name: set twice (first on line 2)`},
		{"two documents", "jobs:\n  - {name: a, source: x}\n---\njobs: []\n", `imgvec.yaml:3: ---: a second YAML document`},
		{"tz prefix", "jobs:\n  - {name: a, source: x, schedule: 'CRON_TZ=UTC * * * * *'}\n", `jobs[0].schedule: "CRON_TZ=UTC * * * * *": parse schedule "CRON_TZ=UTC * * * * *": a time zone prefix is not supported`},
		{"replica id with a control character", "serve:\n  replica_id: \"a\\x1bb\"\n", `serve.replica_id: "a\x1bb": want at most 200 printable`},
		{"index without postgres", "jobs:\n  - {name: a, source: x, index: binary}\n", `jobs[0].index: "binary": only PostgreSQL`},
		{"lock_dsn not postgres", "lock_dsn: sqlite://x\njobs:\n  - {name: a, source: x}\n", `imgvec.yaml:1: lock_dsn: "sqlite://x": want a postgres://`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnv("imgvec.yaml", []byte(tc.src), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := ParseEnv("imgvec.yaml", []byte("jobs: [\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "parse config imgvec.yaml") {
		t.Errorf("syntax error: err = %v, want it wrapped with the file name", err)
	}
	if _, err := ParseEnv("imgvec.yaml", []byte("- a\n"), env(nil)); err == nil {
		t.Error("a top-level list parsed")
	}
}

func TestEnvExpansion(t *testing.T) {
	vars := map[string]string{"PGPASSWORD": "s3cr3t", "EMPTY": "", "BATCH": "8"}
	f, err := ParseEnv("imgvec.yaml", []byte(`
jobs:
  - name: a
    source: ${DATA:-/data}/photos
    sink: postgres://imgvec:${PGPASSWORD}@db:5432/imgvec
    layer: "${EMPTY:-fc6}"
    model: "cost$$5 $HOME ${EMPTY}x"
    batch: ${BATCH}
`), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	j := f.Jobs[0]
	if j.Sources[0] != "/data/photos" || j.Sink != "postgres://imgvec:s3cr3t@db:5432/imgvec" || j.Layer != "fc6" ||
		j.Model != "cost$5 $HOME x" || j.Batch != 8 {
		t.Errorf("expanded job = %+v", j)
	}
	if want := []string{"BATCH", "DATA", "EMPTY", "PGPASSWORD"}; !reflect.DeepEqual(f.Env, want) {
		t.Errorf("Env = %v, want %v", f.Env, want)
	}

	// Unset variables and bad references are problems that name the
	// variable; a value that fails a check is quoted unexpanded.
	_, err = ParseEnv("imgvec.yaml", []byte(`
jobs:
  - name: a
    source: ${NOPE}
    sink: ftp://u:${PGPASSWORD}@x
    model: ${bad name}
    layer: ${UNCLOSED
    device: ${PGPASSWORD}
  - name: b
    source: x
    sink: postgres://u:${NOPE}@db/x
    index: binary
`), env(vars))
	msg := err.Error()
	for _, want := range []string{
		`imgvec.yaml:4: jobs[0].source: environment variable NOPE is not set (write ${NOPE:-default} for a default)`,
		`imgvec.yaml:5: jobs[0].sink: "ftp://u:xxxxx@x": want sqlite://`,
		`imgvec.yaml:6: jobs[0].model: ${bad name}: want ${NAME}`,
		`imgvec.yaml:7: jobs[0].layer: unterminated ${`,
		`imgvec.yaml:8: jobs[0].device: "${PGPASSWORD}": parse device "${PGPASSWORD}": want cpu`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "jobs[1].index") {
		t.Errorf("an index on a sink that failed to expand is reported against the default sink:\n%s", msg)
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Errorf("an error shows the secret:\n%s", msg)
	}
}

func TestAliases(t *testing.T) {
	f, err := ParseEnv("imgvec.yaml", []byte(`
jobs:
  - name: a
    source: &src [/x, /y]
    schedule: &every "@every 15m"
  - name: b
    source: *src
    schedule: *every
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Jobs[1].Sources, []string{"/x", "/y"}) || f.Jobs[1].Schedule != "@every 15m" {
		t.Errorf("job b = %+v", f.Jobs[1])
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "imgvec.yaml")
	if err := os.WriteFile(p, []byte("jobs:\n  - name: a\n    source: /x\n    batch: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":4: jobs[0].batch:") {
		t.Errorf("Load = %v, want a problem on %s:4", err, p)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

// Every numeric key has a declared range: values above the maximum are
// problems naming the range, and the bounds themselves are accepted.
func TestRanges(t *testing.T) {
	_, err := ParseEnv("imgvec.yaml", []byte(`jobs:
  - name: a
    source: x
    batch: 2147483647
    threads: 100000
    workers: 257
    max_bytes: 9_000_000_000
    max_pixels: 99999999999
    grace: 2h
    schedule: "@hourly"
  - name: b
    source: x
    threads: -1
    batch: 99999999999999999999
    s3_concurrency: 0
  - name: c
    source: s3://bucket/p?colour=red
    url_per_host: 1000
    allow_cidr: [10.0.0.300/8]
serve:
  lease_ttl: 720h
  grace: -1s
`), env(nil))
	want := []string{
		`imgvec.yaml:4: jobs[0].batch: "2147483647": want a whole number from 1 to 512`,
		`imgvec.yaml:5: jobs[0].threads: "100000": want a whole number from 0 to 256`,
		`imgvec.yaml:6: jobs[0].workers: "257": want a whole number from 0 to 256`,
		`imgvec.yaml:7: jobs[0].max_bytes: "9_000_000_000": want a whole number from 1 to 4294967296`,
		`imgvec.yaml:8: jobs[0].max_pixels: "99999999999": want a whole number from 1 to 1073741824`,
		`imgvec.yaml:9: jobs[0].grace: "2h": want a duration from 0s to 1h`,
		`imgvec.yaml:13: jobs[1].threads: "-1": want a whole number from 0 to 256`,
		`imgvec.yaml:14: jobs[1].batch: "99999999999999999999": want a whole number from 1 to 512`,
		`imgvec.yaml:15: jobs[1].s3_concurrency: "0": want a whole number from 1 to 1024`,
		`imgvec.yaml:17: jobs[2].source: "s3://bucket/p?colour=red": s3 source s3://bucket/p/: unknown option "colour"`,
		`imgvec.yaml:18: jobs[2].url_per_host: "1000": want a whole number from 1 to 256`,
		`imgvec.yaml:19: jobs[2].allow_cidr[0]: "10.0.0.300/8": want a network such as 10.0.0.0/8`,
		`imgvec.yaml:21: serve.lease_ttl: "720h": want a duration from 1s to 1h`,
		`imgvec.yaml:22: serve.grace: "-1s": want a duration from 0s to 1h`,
	}
	if err == nil {
		t.Fatal("accepted")
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), err)
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
	f, err := ParseEnv("imgvec.yaml", []byte(`jobs:
  - {name: a, source: x, batch: 512, threads: 256, workers: 256, max_bytes: 4294967296, max_pixels: 1073741824, grace: 1h}
  - {name: b, source: x, batch: 1, threads: 0, workers: 0, max_bytes: 1, max_pixels: 1, grace: 0s}
serve: {lease_ttl: 1h, grace: 1h}
`), env(nil))
	if err != nil {
		t.Fatalf("the bounds: %v", err)
	}
	if j := f.Jobs[0]; j.Batch != 512 || j.Threads != 256 || j.Workers != 256 || j.MaxBytes != 4<<30 || j.MaxPixels != 1<<30 || j.Grace != time.Hour {
		t.Errorf("job a = %+v", j)
	}
}

// A URI written with its secrets in the file (not through ${VAR}) is
// quoted masked in problems.
func TestURIProblemsRedacted(t *testing.T) {
	_, err := ParseEnv("imgvec.yaml", []byte(`lock_dsn: sqlite://x?password=pw-top
jobs:
  - name: a
    source: x
    sink: ftp://u:pw-user@x?token=pw-token
    lock_dsn: mysql://db?sslpassword=pw-ssl
`), env(nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`imgvec.yaml:1: lock_dsn: "sqlite://x?password=xxxxx": want a postgres://`,
		`imgvec.yaml:5: jobs[0].sink: "ftp://u:xxxxx@x?token=xxxxx": want sqlite://`,
		`imgvec.yaml:6: jobs[0].lock_dsn: "mysql://db?sslpassword=xxxxx": want a postgres://`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "pw-") {
		t.Errorf("a problem shows a secret:\n%s", err)
	}
}

func TestDecodeKey(t *testing.T) {
	_, err := ParseEnv("x.yaml", []byte("jobs:\n  - {name: a, source: x, decode: quick}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), `x.yaml:2: jobs[0].decode: "quick": decode "quick": want exact or fast`) {
		t.Fatalf("err = %v", err)
	}
}
