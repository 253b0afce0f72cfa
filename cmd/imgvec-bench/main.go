// Command imgvec-bench measures imgvec against baselines on this machine and
// prints a compact, paste-able report (`make bench`):
//
//	go run ./cmd/imgvec-bench extract     # model-only, decode, end-to-end, Python baseline
//	go run ./cmd/imgvec-bench connector   # no-op sync vs a bare walk, backfill overhead
//	go run ./cmd/imgvec-bench all
//	go run ./cmd/imgvec-bench gpu         # GPU img/s per precision and batch (make bench-gpu)
//
// Every ratio compares two numbers measured in the same run on the same
// machine; rates are medians over the repetitions shown. The extract
// benchmarks use a full-size VGG19 with deterministic random weights,
// generated on first use into testdata/models/generated/ (git-ignored);
// --quick uses the committed tiny model and small inputs (a smoke test, its
// numbers mean nothing). Flags: run with -h.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
)

type config struct {
	quick       bool
	images      int
	decodeLarge int
	reps        int
	files       int
	noopDim     int
	model       string
	batches     []int
	batch       int
	threads     int
	python      string
	noPython    bool
	jsonPath    string
	workDir     string
	strict      bool
	verbose     bool
	device      string // gpu: the --device list
}

// env holds what the sections share: the loaded model and the image sets.
type env struct {
	cfg   config
	root  string
	work  string
	logf  func(string, ...any)
	full  bool // the full-size VGG19 (iteration counts depend on it)
	info  modelInfo
	model *extract.Model
	x     *extract.Extractor
	// fastX runs the same model with fast JPEG decoding (--decode fast);
	// opened on first use by fastExtractor.
	fastX *extract.Extractor
	sets  []*imageSet
	load  []phaseLoad
}

// phase runs fn and records how much CPU other processes took meanwhile:
// the machine is shared, and a busy neighbour skews every rate.
func (e *env) phase(name string, fn func() error) error {
	a := sampleCPU()
	err := fn()
	e.load = append(e.load, phaseLoad{Phase: name, Others: othersShare(a, sampleCPU())})
	return err
}

func (e *env) loadModel(ctx context.Context) error {
	if e.x != nil {
		return nil
	}
	path, info, err := resolveModel(e.root, e.cfg.model, e.logf)
	if err != nil {
		return err
	}
	e.logf("loading %s (cut at fc7) ...", path)
	info.Threads = e.cfg.threads
	m, x, err := loadExtractor(ctx, path, e.cfg.batch, e.cfg.threads, &info)
	if err != nil {
		return err
	}
	e.full = m.Dim == 4096
	e.info, e.model, e.x = info, m, x
	return nil
}

// fastExtractor returns an Extractor on the loaded model with
// Spec.FastJPEG set, and that Spec, opening it once. It copies the loaded
// Model rather than reading the file again: the weights are the same.
func (e *env) fastExtractor() (*extract.Extractor, imaging.Spec, error) {
	m := *e.model
	m.Spec.FastJPEG = true
	if e.fastX == nil {
		x, err := extract.New(&m, extractorOptions(e.cfg.batch, e.cfg.threads))
		if err != nil {
			return nil, m.Spec, fmt.Errorf("open the fast-decode extractor: %w", err)
		}
		e.fastX = x
	}
	return e.fastX, m.Spec, nil
}

func (e *env) imageSets() ([]*imageSet, error) {
	if e.sets != nil {
		return e.sets, nil
	}
	for _, sz := range [][2]int{{640, 480}, {4000, 3000}} {
		t0 := time.Now()
		e.logf("generating %d %dx%d JPEGs ...", e.cfg.images, sz[0], sz[1])
		s, err := makeImageSet(e.work, sz[0], sz[1], e.cfg.images)
		if err != nil {
			return nil, err
		}
		s.GenSec = time.Since(t0).Seconds()
		e.sets = append(e.sets, s)
	}
	return e.sets, nil
}

func (e *env) close() {
	if e.x != nil {
		e.x.Close()
	}
	if e.fastX != nil {
		e.fastX.Close()
	}
}

// Report is what --json writes.
type Report struct {
	Command   string           `json:"command"`
	Started   time.Time        `json:"started"`
	TotalSec  float64          `json:"total_s"`
	Host      hostInfo         `json:"host"`
	Quick     bool             `json:"quick"`
	Reps      int              `json:"reps"`
	Extract   *extractReport   `json:"extract,omitempty"`
	Connector *connectorReport `json:"connector,omitempty"`
	GPU       *gpuReport       `json:"gpu,omitempty"`
	Targets   []target         `json:"targets"`
	LoadAvg   float64          `json:"loadavg_1m_at_start"`
	Load      []phaseLoad      `json:"load"`
}

type hostInfo struct {
	OS, Arch  string
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu"`
	Go        string `json:"go"`
	ORT       string `json:"ort_version"`
	ORTLib    string `json:"ort_lib"`
	GOMAXPROC int    `json:"gomaxprocs"`
}

type target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Op    string  `json:"op"` // ">=" or "<="
	Want  float64 `json:"want"`
	Pass  bool    `json:"pass"`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: imgvec-bench [flags] extract|connector|all [flags]

  extract    model-only img/s per batch, decode+preprocess per core vs
             image/jpeg+x/image/draw, end-to-end img/s, Python baseline and
             vector parity
  connector  no-op sync of --files unchanged files vs filepath.WalkDir+Lstat,
             backfill into SQLite vs model-only
  all        both
  gpu        model-only and end-to-end img/s at batch 32/64/128 on --device,
             fp32/TF32/fp16 and uint8 upload, 640x480 and 12 MP JPEGs, and
             each variant's cosine to fp32 (make bench-gpu); fails at once,
             in one line, where the device cannot run a model

flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("imgvec-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.BoolVar(&cfg.quick, "quick", false, "smoke-test sizes: tiny model, 2 images per set, 2 reps, 2000 files (numbers mean nothing)")
	fs.IntVar(&cfg.images, "images", 0, "images per JPEG set (default 32; quick 2)")
	fs.IntVar(&cfg.decodeLarge, "decode-large", 0, "12 MP images in the decode+preprocess benchmark (default min(8, images); quick 1)")
	fs.IntVar(&cfg.reps, "reps", 0, "repetitions of each timed measurement (default 3; quick 2)")
	fs.IntVar(&cfg.files, "files", 0, "files in the no-op sync tree (default 100000; quick 2000)")
	fs.IntVar(&cfg.noopDim, "noop-dim", 0, "vector dimension stored for the no-op sync tree (default 4096, the fc7 width; quick 8)")
	fs.StringVar(&cfg.model, "model", "", `"full" (generated VGG19, default), "tiny" (default with --quick) or an .onnx path`)
	batches := fs.String("batches", "1,4,8,16,32", "model-only batch sizes")
	fs.IntVar(&cfg.batch, "batch", 16, "batch size of the end-to-end and backfill pipelines")
	fs.IntVar(&cfg.threads, "threads", 0, "ONNX Runtime intra-op threads (default: number of CPUs)")
	fs.StringVar(&cfg.python, "python", "", "Python with numpy, pillow, onnxruntime (default .cache/venv/bin/python)")
	fs.BoolVar(&cfg.noPython, "no-python", false, "skip the Python baseline")
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&cfg.workDir, "workdir", "", "keep generated images and the file tree here and reuse them (default: a temp dir, removed)")
	fs.BoolVar(&cfg.strict, "strict", false, "exit 1 when a target is missed")
	fs.BoolVar(&cfg.verbose, "v", true, "progress on stderr")
	fs.StringVar(&cfg.device, "device", "cuda:0", "gpu: the device (or list, cuda:0,cuda:1) to measure; cpu with --quick is the smoke test")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")

	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmd := fs.Arg(0)
	if fs.NArg() > 0 {
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "imgvec-bench: unexpected arguments %q\n", fs.Args())
			return 2
		}
	}
	switch cmd {
	case "extract", "connector", "all", "gpu":
	case "":
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "imgvec-bench: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	for _, f := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 {
			fmt.Fprintf(stderr, "imgvec-bench: bad --batches %q\n", *batches)
			return 2
		}
		cfg.batches = append(cfg.batches, b)
	}
	def := func(v *int, normal, quick int) {
		if *v <= 0 {
			*v = normal
			if cfg.quick {
				*v = quick
			}
		}
	}
	def(&cfg.images, 32, 2)
	def(&cfg.reps, 3, 2)
	def(&cfg.files, 100_000, 2000)
	def(&cfg.noopDim, 4096, 8)
	def(&cfg.threads, runtime.NumCPU(), runtime.NumCPU())
	def(&cfg.decodeLarge, min(8, cfg.images), 1)
	if cfg.batch < 1 {
		cfg.batch = 16
	}
	if cfg.model == "" && cfg.quick {
		cfg.model = "tiny"
	}

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "imgvec-bench:", err)
		return 1
	}
	if cfg.python == "" {
		cfg.python = filepath.Join(root, ".cache/venv/bin/python")
	}
	work := cfg.workDir
	if work == "" {
		work, err = os.MkdirTemp("", "imgvec-bench-")
		if err != nil {
			fmt.Fprintln(stderr, "imgvec-bench:", err)
			return 1
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		fmt.Fprintln(stderr, "imgvec-bench:", err)
		return 1
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "imgvec-bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "imgvec-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	e := &env{cfg: cfg, root: root, work: work, logf: func(f string, a ...any) {
		if cfg.verbose {
			fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(f, a...))
		}
	}}
	defer e.close()

	rep := &Report{Command: cmd, Started: start.UTC(), Quick: cfg.quick, Reps: cfg.reps, Host: host(), LoadAvg: loadAvg()}
	if cmd == "extract" || cmd == "all" {
		if rep.Extract, err = runExtract(ctx, e); err != nil {
			fmt.Fprintln(stderr, "imgvec-bench extract:", err)
			return 1
		}
	}
	if cmd == "connector" || cmd == "all" {
		if rep.Connector, err = runConnector(ctx, e); err != nil {
			fmt.Fprintln(stderr, "imgvec-bench connector:", err)
			return 1
		}
	}
	if cmd == "gpu" {
		if rep.GPU, err = runGPU(ctx, e); err != nil {
			fmt.Fprintln(stderr, "imgvec-bench gpu:", err)
			return 1
		}
	}
	rep.TotalSec = time.Since(start).Seconds()
	rep.Load = e.load
	rep.Targets = targets(rep)
	writeText(stdout, rep)
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "imgvec-bench: write json:", err)
			return 1
		}
	}
	if cfg.strict {
		for _, t := range rep.Targets {
			if !t.Pass {
				return 1
			}
		}
	}
	return 0
}

// repoRoot finds the module root (go.mod of github.com/imgvec/imgvec) from
// the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/imgvec/imgvec\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the imgvec repository (no go.mod of github.com/imgvec/imgvec above the working directory)")
		}
		dir = parent
	}
}

func host() hostInfo {
	h := hostInfo{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), CPU: cpuModel(),
		Go: runtime.Version(), ORT: extract.ORTVersion, GOMAXPROC: runtime.GOMAXPROCS(0)}
	if p, err := extract.LibraryPath(); err == nil {
		h.ORTLib = p
	}
	return h
}

func targets(r *Report) []target {
	var ts []target
	add := func(name string, v float64, op string, want float64) {
		pass := v >= want
		if op == "<=" {
			pass = v <= want
		}
		ts = append(ts, target{Name: name, Value: v, Op: op, Want: want, Pass: pass})
	}
	if x := r.Extract; x != nil {
		for _, d := range x.Decode {
			if d.Set == set12MP {
				add("fast ÷ exact decode+preprocess (Extractor.Prepare), "+d.Set, d.FastRatio, ">=", fastPrepareWant)
			}
		}
		for _, row := range x.EndToEnd {
			add("end-to-end ÷ model-only, "+row.label(), row.Ratio, ">=", row.want())
		}
		if x.Python != nil {
			for _, p := range x.Python.Sets {
				if p.Set == set12MP && p.Error == "" {
					add("ours ÷ python, 4000x3000", p.Ratio, ">=", 1.2)
				}
			}
		}
	}
	if c := r.Connector; c != nil {
		if c.NoOp != nil {
			add("no-op sync time ÷ walk time", c.NoOp.Ratio, "<=", 3)
			add("no-op sync files/s", c.NoOp.SyncFilesPS, ">=", 100_000)
		}
		if c.Backfill != nil {
			add("sqlite backfill ÷ model-only, "+c.Backfill.Set, c.Backfill.Ratio, ">=", 0.9)
		}
	}
	return ts
}
