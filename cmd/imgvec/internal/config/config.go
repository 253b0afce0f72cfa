package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	// The scheduler resolves time_zone names at run time; embedding the
	// zone database keeps that working in minimal containers that ship no
	// /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/imgvec/imgvec/connector/schedule"
	"github.com/imgvec/imgvec/connector/urlsource"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
)

// Defaults of the keys a job may leave out. The one-shot commands' flags
// default to the same values, so a key left out of the file and a flag left
// off the command line mean the same thing.
const (
	DefaultSink     = "sqlite://./imgvec.db"
	DefaultModel    = "vgg19-fc7"
	DefaultTimeZone = "UTC"
	DefaultBatch    = 16
	DefaultDevice   = "cpu"
	DefaultGrace    = 30 * time.Second
	DefaultMaxBytes = int64(512 << 20)
	// DefaultS3Concurrency keeps a real endpoint's latency (tens of ms per
	// GET) from bounding throughput.
	DefaultS3Concurrency = 32
	// URL sources: fetches in flight, in all and per host (politeness),
	// and one try's deadline.
	DefaultURLConcurrency = 32
	DefaultURLPerHost     = 4
	DefaultURLTimeout     = 2 * time.Minute
	DefaultUserAgent      = urlsource.DefaultUserAgent

	DefaultListen   = "127.0.0.1:9464"
	DefaultTokenEnv = "IMGVEC_SERVE_TOKEN"
	DefaultLeaseTTL = 30 * time.Second
)

// DefaultMaxPixels is the decoder's own limit.
const DefaultMaxPixels = int64(imaging.DefaultMaxPixels)

// File is a parsed, validated imgvec.yaml.
type File struct {
	// Path is the name the file was loaded or parsed under.
	Path string
	Jobs []Job
	// Serve configures `imgvec serve`.
	Serve Serve
	// LockDSN (lock_dsn) is the PostgreSQL database holding job leases,
	// the default of every job's lock_dsn.
	LockDSN string
	// Env lists the environment variables the file references, sorted.
	Env []string
}

// Serve is the `serve:` section.
type Serve struct {
	// Listen is the HTTP address (default 127.0.0.1:9464).
	Listen string
	// TokenEnv (token_env) names the environment variable holding the
	// bearer token of POST /v1/jobs/{name}/run (default IMGVEC_SERVE_TOKEN).
	TokenEnv string
	// LeaseTTL (lease_ttl) is how long a job lease lasts unrenewed
	// (default 30s).
	LeaseTTL time.Duration
	// Grace is the default of every job's grace (default 30s).
	Grace time.Duration
	// RunOnStart (run_on_start) runs every job once at start.
	RunOnStart bool
	// ReplicaID (replica_id) is this replica's identity in job leases:
	// stable across its restarts, unique among live replicas (default:
	// HOST/LISTEN-ADDRESS; --replica-id wins). ${HOSTNAME} or a pod name
	// fits a StatefulSet.
	ReplicaID string
}

// Job is one entry of `jobs:`. The YAML keys are the snake_case names of
// the one-shot commands' flags (max_delete for --max-delete, ext for --ext).
type Job struct {
	Name string
	// Sources (`source:`, a string or a list) are folders, file:// URIs,
	// s3://BUCKET/PREFIX references or URL manifests (.jsonl, .csv, .tsv,
	// optionally .gz; a path or an http(s) URL).
	Sources []string
	Sink    string
	Model   string
	Layer   string
	Pool    string // pooling of a token output: cls, mean
	// Preprocess is a recipe name or a preprocessor_config.json path.
	Preprocess string
	// Decode is the decode mode: exact (default) or fast (JPEG at a
	// reduced DCT scale; part of the model id).
	Decode   string
	Schedule string
	TimeZone string // time_zone
	Batch    int
	Device   string
	// TF32 (tf32) lets the CUDA provider run float32 in TensorFloat-32
	// (default true).
	TF32 bool
	// Upload (upload) is what goes to the device: float (default) or
	// uint8 pixels normalised in the graph.
	Upload    string
	Threads   int
	Workers   int
	MaxDelete string // max_delete
	// RetryFailed (retry_failed) retries ledger items that did not change.
	RetryFailed bool
	// Shard ("I/N", shard) makes each run handle only shard I of N of the
	// job's items (connector.Shard); "" = all of them.
	Shard string
	// Grace is how long in-flight batches may take to commit after
	// SIGTERM before the run is cancelled (default serve.grace).
	Grace      time.Duration
	Index      string
	Include    []string
	Exclude    []string
	Extensions []string // ext
	// FollowSymlinks is follow_symlinks.
	FollowSymlinks        bool
	MaxBytes              int64 // max_bytes
	MaxPixels             int64 // max_pixels
	NoNormalize           bool  // no_normalize
	IgnoreExifOrientation bool  // ignore_exif_orientation
	Download              bool
	LockDSN               string // lock_dsn
	// S3Concurrency (s3_concurrency) is the requests in flight per S3
	// source.
	S3Concurrency int
	// S3Metadata (s3_metadata) stores objects' user metadata with their
	// rows.
	S3Metadata bool
	// AllowPrivateNetworks (allow_private_networks) lets URL sources
	// fetch from loopback, private and link-local addresses.
	AllowPrivateNetworks bool
	// AllowCIDRs (allow_cidr) opens these networks to URL sources.
	AllowCIDRs []string
	// UserAgent (user_agent) of URL sources' requests.
	UserAgent string
	// URLConcurrency (url_concurrency) and URLPerHost (url_per_host) bound
	// a URL source's fetches in flight, in all and per host.
	URLConcurrency int
	URLPerHost     int
	// URLTimeout (url_timeout) bounds one try of one fetch.
	URLTimeout time.Duration
}

// DefaultJob is a job with every optional key at its default.
func DefaultJob() Job {
	return Job{
		Sink: DefaultSink, Model: DefaultModel, Decode: extract.DecodeExact, TimeZone: DefaultTimeZone, Batch: DefaultBatch,
		Device: DefaultDevice, TF32: true, Upload: extract.UploadFloat, Grace: DefaultGrace, MaxBytes: DefaultMaxBytes, MaxPixels: DefaultMaxPixels,
		S3Concurrency: DefaultS3Concurrency, URLConcurrency: DefaultURLConcurrency, URLPerHost: DefaultURLPerHost,
		URLTimeout: DefaultURLTimeout, UserAgent: DefaultUserAgent,
	}
}

// DefaultServe is the serve section with every key at its default.
func DefaultServe() Serve {
	return Serve{Listen: DefaultListen, TokenEnv: DefaultTokenEnv, LeaseTTL: DefaultLeaseTTL, Grace: DefaultGrace}
}

// Load reads and parses the file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data, expanding ${VAR} from the process environment. name
// (a path, as given) begins every message.
func Parse(name string, data []byte) (*File, error) {
	return ParseEnv(name, data, os.LookupEnv)
}

// ParseEnv is Parse with lookup in place of the process environment.
func ParseEnv(name string, data []byte, lookup func(string) (string, bool)) (*File, error) {
	d := &decoder{file: name, lookup: lookup, env: map[string]bool{}}
	f, err := d.decodeFile(data)
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", name, err)
	}
	if len(d.problems) > 0 {
		// Checks that need a whole job (missing keys, unique names) run
		// after its keys; sorting puts every problem in file order.
		slices.SortStableFunc(d.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &ValidationError{Problems: d.problems}
	}
	f.Path = name
	for v := range d.env {
		f.Env = append(f.Env, v)
	}
	slices.Sort(f.Env)
	return f, nil
}

// Job returns the job called name. An empty name selects the only job of a
// one-job file.
func (f *File) Job(name string) (Job, error) {
	if name == "" && len(f.Jobs) == 1 {
		return f.Jobs[0], nil
	}
	names := make([]string, len(f.Jobs))
	for i, j := range f.Jobs {
		if j.Name == name {
			return j, nil
		}
		names[i] = j.Name
	}
	if name == "" {
		return Job{}, fmt.Errorf("config %s has %d jobs (%s): name one with --job", f.Path, len(f.Jobs), strings.Join(names, ", "))
	}
	return Job{}, fmt.Errorf("config %s: no job %q (jobs: %s)", f.Path, name, strings.Join(names, ", "))
}

// CronSchedule parses the job's schedule in its time zone with
// schedule.ParseSpec, the scheduler's parser. It is nil (and
// the error nil) for a job without a schedule.
func (j Job) CronSchedule() (cron.Schedule, error) {
	if j.Schedule == "" {
		return nil, nil
	}
	loc, err := time.LoadLocation(j.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("job %s: time_zone %q: %w", j.Name, j.TimeZone, err)
	}
	s, err := schedule.ParseSpec(j.Schedule, loc)
	if err != nil {
		return nil, fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
	}
	return s, nil
}

// Problem is one thing wrong with a file.
type Problem struct {
	File  string
	Line  int
	Field string // e.g. jobs[0].schedule
	Msg   string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Field, p.Msg)
}

// ValidationError lists every problem found in a file.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each Problem to errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

var errNotMapping = errors.New("the file must be a YAML mapping with a jobs: list")
