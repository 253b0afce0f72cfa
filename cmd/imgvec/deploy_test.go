package main

// Checks of the deployment files (docker-compose.yml at the top level and
// cmd/imgvec/deploy/) against each other and against the example config
// they run. No Docker engine or cluster is needed: the files are parsed.

import (
	"bufio"
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/connector/schedule"
)

const repoRoot = "../.."

type composeFile struct {
	Services map[string]composeService
	Volumes  map[string]any
}

type composeService struct {
	Image string
	Build *struct {
		Context    string
		Dockerfile string
	}
	Command     any // a string or a list
	Environment map[string]string
	Volumes     []string
	Ports       []string
	Healthcheck *struct {
		Test []string
	}
	DependsOn map[string]struct {
		Condition string
	} `yaml:"depends_on"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

// composeVar is compose's interpolation: ${VAR}, ${VAR:-default},
// ${VAR:?message}.
var composeVar = regexp.MustCompile(`\$\{(\w+)(?:(:-|:\?)([^}]*))?\}`)

// interpolate resolves compose variables as `docker compose up` would with
// none of them set, except that a required one gets a stand-in value.
func interpolate(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		p := composeVar.FindStringSubmatch(m)
		switch p[2] {
		case ":-":
			return p[3]
		case ":?":
			return "required-" + p[1]
		}
		return ""
	})
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func commandArgs(cmd any) []string {
	switch c := cmd.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		out := make([]string, len(c))
		for i, a := range c {
			out[i], _ = a.(string)
		}
		return out
	}
	return nil
}

// flagValue returns the value after --name in args.
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// containerPorts lists the container side of compose port mappings
// ("127.0.0.1:5432:5432" → 5432).
func containerPorts(s composeService) []string {
	var out []string
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(p, "/")
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

// loadDeployConfig parses the example config with the environment the
// compose service gives it.
func loadDeployConfig(t *testing.T, path string, env map[string]string) *config.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the config compose mounts: %v", err)
	}
	f, err := config.ParseEnv(path, data, func(k string) (string, bool) {
		v, ok := env[k]
		return interpolate(v), ok
	})
	if err != nil {
		t.Fatalf("the config compose mounts does not validate with compose's environment:\n%v", err)
	}
	return f
}

// longestGrace is how long a stopping `imgvec serve` may take to drain.
func longestGrace(f *config.File) time.Duration {
	var g time.Duration
	for _, j := range f.Jobs {
		g = max(g, j.Grace)
	}
	return g
}

func TestDockerCompose(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"etcd", "minio", "milvus", "postgres", "imgvec"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml: no service %q", name)
		}
	}
	for name, s := range c.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s: no healthcheck", name)
		}
		if s.Build == nil {
			if _, tag, ok := strings.Cut(s.Image, ":"); !ok || tag == "" || tag == "latest" {
				t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(interpolate(v), ":")
			if _, named := c.Volumes[src]; !named && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				t.Errorf("service %s: volume %q is neither declared nor a path", name, v)
			}
		}
	}
	// Milvus reaches etcd and MinIO by service name.
	milvus := c.Services["milvus"]
	for _, k := range []string{"ETCD_ENDPOINTS", "MINIO_ADDRESS"} {
		host, _, err := net.SplitHostPort(milvus.Environment[k])
		if _, ok := c.Services[host]; err != nil || !ok {
			t.Errorf("milvus: %s=%q does not name a service", k, milvus.Environment[k])
		}
	}
	for _, dep := range []string{"etcd", "minio"} {
		if milvus.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("milvus: does not wait for %s to be healthy", dep)
		}
	}

	im := c.Services["imgvec"]
	if im.Build == nil || im.Build.Context != "." {
		t.Fatalf("imgvec: want build.context . (the repository root), got %+v", im.Build)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, im.Build.Dockerfile)); err != nil {
		t.Errorf("imgvec: build.dockerfile: %v", err)
	}
	args := commandArgs(im.Command)
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("imgvec: command %v does not run serve", args)
	}
	cfgPath := flagValue(args, "--config")
	if cfgPath == "" {
		t.Fatalf("imgvec: command %v has no --config", args)
	}

	// The volumes: the config file (a bind mount to the --config path) and
	// the folders the jobs read.
	mounts := map[string]string{} // container path → host path
	for _, v := range im.Volumes {
		parts := strings.Split(interpolate(v), ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	hostCfg, ok := mounts[cfgPath]
	if !ok {
		t.Fatalf("imgvec: no volume mounts a file at %s (the --config path)", cfgPath)
	}
	f := loadDeployConfig(t, filepath.Join(repoRoot, hostCfg), im.Environment)

	for _, v := range f.Env {
		if _, ok := im.Environment[v]; !ok {
			t.Errorf("the config references ${%s}; the imgvec service does not set it", v)
		}
	}
	if _, ok := im.Environment[f.Serve.TokenEnv]; !ok {
		t.Errorf("serve.token_env is %s; the imgvec service does not set it (serve listens beyond loopback)", f.Serve.TokenEnv)
	}

	// serve.listen, the published port and the healthcheck agree.
	host, port, err := net.SplitHostPort(f.Serve.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("serve.listen %s is loopback inside the container: the published port cannot reach it", f.Serve.Listen)
	}
	if !slices.Contains(containerPorts(im), port) {
		t.Errorf("serve.listen port %s is not published (ports %v)", port, im.Ports)
	}
	if hc := strings.Join(im.Healthcheck.Test, " "); !strings.Contains(hc, ":"+port+"/healthz") {
		t.Errorf("imgvec healthcheck %q does not hit /healthz on %s", hc, port)
	}
	if d, err := time.ParseDuration(im.StopGracePeriod); err != nil || d <= longestGrace(f) {
		t.Errorf("imgvec: stop_grace_period %q must be longer than the jobs' grace %s (SIGKILL would cut the grace short)", im.StopGracePeriod, longestGrace(f))
	}

	// Every job: sources are mounted folders that exist; sinks and lease
	// databases are compose services on the ports they listen on, and
	// imgvec waits for them to be healthy.
	for _, j := range f.Jobs {
		for _, src := range j.Sources {
			var host string
			for target, h := range mounts {
				if src == target || strings.HasPrefix(src, target+"/") {
					host = filepath.Join(h, strings.TrimPrefix(src, target))
				}
			}
			if host == "" {
				t.Errorf("job %s: source %s is not inside a volume of the imgvec service", j.Name, src)
			} else if fi, err := os.Stat(filepath.Join(repoRoot, host)); err != nil || !fi.IsDir() {
				t.Errorf("job %s: source %s is mounted from %s, which is not a folder here: %v", j.Name, src, host, err)
			}
		}
		for _, uri := range []string{j.Sink, j.LockDSN} {
			if uri == "" || strings.HasPrefix(uri, "sqlite:") {
				continue
			}
			u, err := url.Parse(uri)
			if err != nil {
				t.Errorf("job %s: %s: %v", j.Name, redact.URI(uri), err)
				continue
			}
			svc, ok := c.Services[u.Hostname()]
			if !ok {
				t.Errorf("job %s: %s: host %s is not a compose service", j.Name, redact.URI(uri), u.Hostname())
				continue
			}
			if !slices.Contains(containerPorts(svc), u.Port()) {
				t.Errorf("job %s: %s: service %s does not listen on %s (ports %v)", j.Name, redact.URI(uri), u.Hostname(), u.Port(), svc.Ports)
			}
			if im.DependsOn[u.Hostname()].Condition != "service_healthy" {
				t.Errorf("imgvec: does not wait for %s (job %s) to be healthy", u.Hostname(), j.Name)
			}
		}
	}

	// What `imgvec config check` adds to the file's own validation.
	if err := checkSinks(f); err != nil {
		t.Errorf("config check of the mounted config: %v", err)
	}
}

// The systemd unit runs serve on the example config and gives it time to
// drain on stop.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("deploy/imgvec.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	start := strings.Fields(strings.Join(keys["ExecStart"], " "))
	if len(start) < 2 || filepath.Base(start[0]) != "imgvec" || start[1] != "serve" || flagValue(start, "--config") == "" {
		t.Fatalf("ExecStart %v: want imgvec serve --config FILE", start)
	}
	cfg := flagValue(start, "--config")
	if pre := strings.Join(keys["ExecStartPre"], " "); !strings.Contains(pre, "imgvec config check --config "+cfg) {
		t.Errorf("ExecStartPre %q: want imgvec config check --config %s", pre, cfg)
	}
	f := loadDeployConfig(t, filepath.Join("deploy", filepath.Base(cfg)), map[string]string{"POSTGRES_PASSWORD": "x"})
	stop, err := strconv.Atoi(strings.Join(keys["TimeoutStopSec"], ""))
	if err != nil || time.Duration(stop)*time.Second <= longestGrace(f) {
		t.Errorf("TimeoutStopSec %v must be a number of seconds longer than the jobs' grace %s", keys["TimeoutStopSec"], longestGrace(f))
	}
	if got := strings.Join(keys["KillSignal"], ""); got != "SIGTERM" {
		t.Errorf("KillSignal %q: serve drains on SIGTERM", got)
	}
}

// The Kubernetes objects of cmd/imgvec/deploy, as far as the files use
// them: field names and types follow the batch/v1 and core/v1 API, and the
// files are decoded strictly (loadKube), so a misspelt or misplaced field
// fails the test as the API server would refuse it.
type kubeObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct{ Name string }
}

type kubeJob struct {
	kubeObject `yaml:",inline"`
	Spec       kubeJobSpec
}

type kubeCronJob struct {
	kubeObject `yaml:",inline"`
	Spec       struct {
		Schedule                   string
		TimeZone                   string `yaml:"timeZone"`
		ConcurrencyPolicy          string `yaml:"concurrencyPolicy"`
		StartingDeadlineSeconds    int    `yaml:"startingDeadlineSeconds"`
		SuccessfulJobsHistoryLimit int    `yaml:"successfulJobsHistoryLimit"`
		FailedJobsHistoryLimit     int    `yaml:"failedJobsHistoryLimit"`
		JobTemplate                struct {
			Spec kubeJobSpec
		} `yaml:"jobTemplate"`
	}
}

type kubeJobSpec struct {
	CompletionMode       string `yaml:"completionMode"`
	Completions          *int
	Parallelism          *int
	BackoffLimit         *int `yaml:"backoffLimit"`
	BackoffLimitPerIndex *int `yaml:"backoffLimitPerIndex"`
	MaxFailedIndexes     *int `yaml:"maxFailedIndexes"`
	PodFailurePolicy     *struct {
		Rules []struct {
			Action      string
			OnExitCodes *struct {
				ContainerName string `yaml:"containerName"`
				Operator      string
				Values        []int
			} `yaml:"onExitCodes"`
		}
	} `yaml:"podFailurePolicy"`
	Template struct {
		Spec kubePodSpec
	}
}

type kubePodSpec struct {
	RestartPolicy                 string `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
		FSGroup      int  `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name  string
		Image string
		Args  []string
		Env   []struct {
			Name      string
			Value     string
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
				FieldRef     *struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		}
		Resources struct {
			Requests map[string]string
			Limits   map[string]string
		}
		VolumeMounts []struct {
			Name      string
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	Volumes []struct {
		Name                  string
		ConfigMap             *struct{ Name string } `yaml:"configMap"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	}
}

// loadKube decodes a manifest of cmd/imgvec/deploy strictly into v.
func loadKube(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// checkPodRunsJob checks that pod runs `imgvec CMD --config FILE --job
// NAME` with the config from a mounted ConfigMap and every ${VAR} of it
// set (from a Secret or a value), and a termination grace longer than the
// job's; it returns the job and the container's args.
func checkPodRunsJob(t *testing.T, pod kubePodSpec, cmd string) (config.Job, []string) {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	if len(ctr.Args) == 0 || ctr.Args[0] != cmd {
		t.Fatalf("args %v: want imgvec %s --config FILE --job NAME", ctr.Args, cmd)
	}
	cfgPath, jobName := flagValue(ctr.Args, "--config"), flagValue(ctr.Args, "--job")
	var fromConfigMap bool
	for _, m := range ctr.VolumeMounts {
		found := false
		for _, v := range pod.Volumes {
			found = found || v.Name == m.Name
			if v.Name == m.Name && v.ConfigMap != nil && filepath.Dir(cfgPath) == m.MountPath {
				fromConfigMap = true
			}
		}
		if !found {
			t.Errorf("volumeMount %s: no such volume", m.Name)
		}
	}
	if !fromConfigMap {
		t.Errorf("--config %s is not in a mounted ConfigMap", cfgPath)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
		if e.Value == "" && (e.ValueFrom == nil || (e.ValueFrom.SecretKeyRef == nil && e.ValueFrom.FieldRef == nil)) {
			t.Errorf("env %s: neither a value, a Secret nor a field", e.Name)
		}
	}
	// Every ${VAR} of the file must be set by the pod: the whole file is
	// expanded when the command loads it.
	f := loadDeployConfig(t, "deploy/imgvec.yaml", env)
	j, err := f.Job(jobName)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(pod.TerminationGracePeriodSeconds)*time.Second <= j.Grace {
		t.Errorf("terminationGracePeriodSeconds %d must be longer than the job's grace %s", pod.TerminationGracePeriodSeconds, j.Grace)
	}
	return j, ctr.Args
}

// checkCronSchedule checks that a CronJob fires on the job's schedule, in
// its time zone, never two runs at once.
func checkCronSchedule(t *testing.T, cj kubeCronJob, j config.Job) {
	t.Helper()
	if cj.APIVersion != "batch/v1" || cj.Kind != "CronJob" || cj.Spec.ConcurrencyPolicy != "Forbid" {
		t.Errorf("%s %s, concurrencyPolicy %q: want a batch/v1 CronJob with Forbid", cj.APIVersion, cj.Kind, cj.Spec.ConcurrencyPolicy)
	}
	if cj.Spec.Schedule != j.Schedule {
		t.Errorf("CronJob schedule %q, job %s's is %q", cj.Spec.Schedule, j.Name, j.Schedule)
	}
	if _, err := schedule.ParseSpec(cj.Spec.Schedule, nil); err != nil {
		t.Error(err)
	}
	want, _ := time.LoadLocation(j.TimeZone)
	got, err := time.LoadLocation(cj.Spec.TimeZone)
	if err != nil || !sameZone(got, want) {
		t.Errorf("CronJob timeZone %q, job %s's time_zone is %q", cj.Spec.TimeZone, j.Name, j.TimeZone)
	}
}

// The CronJob runs a job of the example config with `imgvec sync` on the
// job's schedule, never two at once, secrets from a Secret.
func TestKubernetesCronJob(t *testing.T) {
	var cj kubeCronJob
	loadKube(t, "cronjob.yaml", &cj)
	j, _ := checkPodRunsJob(t, cj.Spec.JobTemplate.Spec.Template.Spec, "sync")
	checkCronSchedule(t, cj, j)
}

// checkIndexedShards checks an Indexed Job whose pod I runs shard I of N
// (N = completions): --shard $(JOB_COMPLETION_INDEX)/N expands, as
// Kubernetes expands args, to a valid shard I/N for every index; each
// index is retried on its own (backoffLimitPerIndex, with enough retries
// to outlast a killed pod's lease), and exit codes 2 and 3 fail the index
// at once.
func checkIndexedShards(t *testing.T, js kubeJobSpec, args []string) {
	t.Helper()
	pod := js.Template.Spec
	if js.CompletionMode != "Indexed" || js.Completions == nil || js.Parallelism == nil || *js.Parallelism > *js.Completions {
		t.Fatalf("completionMode %q, completions %v, parallelism %v: want an Indexed Job, parallelism at most completions",
			js.CompletionMode, js.Completions, js.Parallelism)
	}
	n := *js.Completions
	if js.BackoffLimitPerIndex == nil || *js.BackoffLimitPerIndex < 2 || js.BackoffLimit != nil {
		t.Errorf("backoffLimitPerIndex %v, backoffLimit %v: want retries per index (at least 2: a retry may find the dead pod's lease for its TTL)",
			js.BackoffLimitPerIndex, js.BackoffLimit)
	}
	if js.MaxFailedIndexes == nil || *js.MaxFailedIndexes > n {
		t.Errorf("maxFailedIndexes %v: want at most completions (%d)", js.MaxFailedIndexes, n)
	}
	if pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q: backoffLimitPerIndex needs Never", pod.RestartPolicy)
	}
	failIndex := false
	if js.PodFailurePolicy != nil {
		for _, r := range js.PodFailurePolicy.Rules {
			if r.Action == "FailIndex" && r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" &&
				r.OnExitCodes.ContainerName == pod.Containers[0].Name && slices.Equal(r.OnExitCodes.Values, []int{2, 3}) {
				failIndex = true
			}
		}
	}
	if !failIndex {
		t.Error("podFailurePolicy: want FailIndex on the imgvec container's exit codes 2 and 3")
	}
	declared := false
	for _, e := range pod.Containers[0].Env {
		if e.Name == "JOB_COMPLETION_INDEX" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			declared = true
		}
	}
	if !declared {
		t.Error("env: want JOB_COMPLETION_INDEX from the job-completion-index annotation (so that args can use it)")
	}
	arg := flagValue(args, "--shard")
	for i := range n {
		got, err := connector.ParseShard(kubeExpand(arg, map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(i)}))
		if err != nil || got != (connector.Shard{I: i, N: n}) {
			t.Errorf("index %d: --shard %s gives %+v, %v; want shard %d/%d", i, arg, got, err, i, n)
		}
	}
}

// The backfill Indexed Job: N GPU pods, pod I backfilling shard I/N.
func TestKubernetesIndexedBackfill(t *testing.T) {
	var job kubeJob
	loadKube(t, "backfill-job.yaml", &job)
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Fatalf("%s %s: want a batch/v1 Job", job.APIVersion, job.Kind)
	}
	_, args := checkPodRunsJob(t, job.Spec.Template.Spec, "backfill")
	checkIndexedShards(t, job.Spec, args)
	ctr := job.Spec.Template.Spec.Containers[0]
	if ctr.Resources.Limits["nvidia.com/gpu"] != "1" || !strings.HasPrefix(flagValue(args, "--device"), "cuda") {
		t.Errorf("limits %v, --device %q: want one nvidia.com/gpu per pod, used with --device cuda", ctr.Resources.Limits, flagValue(args, "--device"))
	}
}

// The sharded CronJob: each scheduled run is an Indexed Job of N pods,
// pod I syncing shard I/N.
func TestKubernetesShardedCronJob(t *testing.T) {
	var cj kubeCronJob
	loadKube(t, "cronjob-sharded.yaml", &cj)
	js := cj.Spec.JobTemplate.Spec
	j, args := checkPodRunsJob(t, js.Template.Spec, "sync")
	checkCronSchedule(t, cj, j)
	checkIndexedShards(t, js, args)
}

// sameZone compares zones by their offsets over a year (Etc/UTC and UTC
// are one zone under two names).
func sameZone(a, b *time.Location) bool {
	for d := 0; d < 365; d += 7 {
		t := time.Date(2026, 1, 1+d, 12, 0, 0, 0, time.UTC)
		_, oa := t.In(a).Zone()
		_, ob := t.In(b).Zone()
		if oa != ob {
			return false
		}
	}
	return true
}
