package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/schema/testenv"
)

const (
	tinyModel  = "../testdata/models/vgg19-tiny.onnx"
	zooModel   = "../testdata/models/vgg19-zoo-tiny.onnx"
	imagesDir  = "../testdata/images"
	goldenFile = "../testdata/reference/golden/vectors-tiny-fc7.json"
)

func requireRuntime(t *testing.T) {
	t.Helper()
	if _, err := LibraryPath(); err != nil {
		testenv.Skip(t, "ONNX Runtime not installed (run `make setup`): %v", err)
	}
	if err := InitRuntime(); err != nil {
		t.Fatal(err)
	}
}

func loadTiny(t *testing.T, opts Options) *Extractor {
	t.Helper()
	requireRuntime(t)
	m, err := LoadModel(context.Background(), tinyModel, "fc7", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

type golden struct {
	ModelSHA256 string               `json:"model_sha256"`
	Vectors     map[string][]float32 `json:"vectors"`
}

// The reference is Pillow + numpy preprocessing and ONNX Runtime's Python
// package (another release than ours) on the same cut model bytes. Pixels
// are bit-exact (extract/imaging's parity test); what remains is float
// accumulation order inside ONNX Runtime, which differs with the release and
// the batch size: 1e-5 on unit vectors is far below any similarity that
// matters and far above that noise.
const vectorTolerance = 1e-5

func TestGoldenVectors(t *testing.T) {
	var g golden
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(g.Vectors))
	for n := range g.Vectors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, batch := range []int{1, 7} {
		x := loadTiny(t, Options{BatchSize: batch})
		if x.Identity().ModelSHA256 != g.ModelSHA256 {
			t.Fatalf("cut model sha256 %s, golden vectors were made with %s (regenerate: see vectors_golden.py)", x.Identity().ModelSHA256, g.ModelSHA256)
		}
		for start := 0; start < len(names); start += batch {
			end := min(start+batch, len(names))
			var ps []*schema.Prepared
			for _, n := range names[start:end] {
				data, err := os.ReadFile(filepath.Join(imagesDir, n))
				if err != nil {
					t.Fatal(err)
				}
				p, err := x.Prepare(n, data)
				if err != nil {
					t.Fatalf("prepare %s: %v", n, err)
				}
				ps = append(ps, p)
			}
			res, err := x.Infer(context.Background(), ps)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				n := names[start+i]
				if r.Err != nil {
					t.Fatalf("%s: %v", n, r.Err)
				}
				maxDiff, err := maxAbsDiff(r.Vector, g.Vectors[n])
				if err != nil {
					t.Fatalf("batch %d, %s: %v", batch, n, err)
				}
				if maxDiff > vectorTolerance {
					t.Errorf("batch %d, %s: max abs diff %g from the reference > %g", batch, n, maxDiff, vectorTolerance)
				}
				x.Release(ps[i])
			}
		}
	}
}

// maxAbsDiff is the largest |got[i]-want[i]| of a vector and its
// reference. Lengths that differ are an error: comparing a prefix would
// pass a truncated vector, or any vector against a missing reference.
func maxAbsDiff(got, want []float32) (float64, error) {
	if len(got) != len(want) {
		return 0, fmt.Errorf("%d values, the reference has %d", len(got), len(want))
	}
	var m float64
	for i, v := range got {
		m = math.Max(m, math.Abs(float64(v-want[i])))
	}
	return m, nil
}

func TestMaxAbsDiffChecksLengths(t *testing.T) {
	for _, c := range []struct{ got, want []float32 }{
		{[]float32{1, 2}, []float32{1, 2, 3}}, // a prefix of the reference
		{[]float32{1, 2, 3}, []float32{1, 2}},
		{[]float32{1}, nil}, // no reference
	} {
		if d, err := maxAbsDiff(c.got, c.want); err == nil {
			t.Errorf("maxAbsDiff(%v, %v) = %g, nil; want a length error", c.got, c.want, d)
		}
	}
	if d, err := maxAbsDiff([]float32{1, -2}, []float32{1.5, -2}); err != nil || d != 0.5 {
		t.Errorf("maxAbsDiff = %g, %v; want 0.5, nil", d, err)
	}
}

func TestIdentityAndNormalization(t *testing.T) {
	x := loadTiny(t, Options{})
	raw := loadTiny(t, Options{NoNormalize: true})
	id, rid := x.Identity(), raw.Identity()
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
	if id.Dim != 64 || id.Layer != "fc7" || !id.Normalized || rid.Normalized || id.ID() == rid.ID() {
		t.Fatalf("identities %+v / %+v", id, rid)
	}
	data, err := os.ReadFile(filepath.Join(imagesDir, "landscape.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []*Extractor{x, raw} {
		p, err := ex.Prepare("landscape.jpg", data)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ex.Infer(context.Background(), []*schema.Prepared{p})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		var sum float64
		for _, v := range res[0].Vector {
			sum += float64(v) * float64(v)
		}
		if norm := math.Sqrt(sum); ex == x && math.Abs(norm-1) > 1e-5 {
			t.Errorf("normalised vector has norm %g", norm)
		} else if ex == raw && math.Abs(norm-1) < 1e-3 {
			t.Errorf("raw vector has norm %g, expected an unnormalised activation", norm)
		}
	}
}

func TestLoadModel(t *testing.T) {
	ctx := context.Background()
	m, err := LoadModel(ctx, tinyModel, "", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Layer != "fc7" || m.Dim != 64 {
		t.Fatalf("default layer: %s %d", m.Layer, m.Dim)
	}
	// A model that is already cut is used as it is.
	cut := filepath.Join(t.TempDir(), "cut.onnx")
	if err := os.WriteFile(cut, m.Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := LoadModel(ctx, cut, "fc7", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != m.SHA256 {
		t.Errorf("re-loading a cut model changed its bytes")
	}
	// The Model Zoo layout (MXNet names, weights listed as inputs, fixed batch).
	zoo, err := LoadModel(ctx, zooModel, "fc7", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if zoo.Dim != 64 {
		t.Errorf("zoo fc7 dim %d", zoo.Dim)
	}
	fc6, err := LoadModel(ctx, tinyModel, "fc6", LoadOptions{})
	if err != nil || fc6.Layer != "fc6" || fc6.SHA256 == m.SHA256 {
		t.Errorf("fc6: %v %+v", err, fc6)
	}
	if _, err := LoadModel(ctx, tinyModel, "fc42", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "layers: ") {
		t.Errorf("unknown layer: %v", err)
	}
	t.Setenv("IMGVEC_CACHE_DIR", t.TempDir())
	if _, err := LoadModel(ctx, "vgg19-fc7", "", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "imgvec model fetch vgg19-fc7") {
		t.Errorf("uncached preset: %v", err)
	}
	if _, err := LoadModel(ctx, "no-such-model", "", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "not a preset") {
		t.Errorf("unknown model: %v", err)
	}
}

func TestZooModelRunsBatched(t *testing.T) {
	requireRuntime(t)
	m, err := LoadModel(context.Background(), zooModel, "fc7", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(m, Options{BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	data, _ := os.ReadFile(filepath.Join(imagesDir, "portrait.jpg"))
	var ps []*schema.Prepared
	for range 3 {
		p, err := x.Prepare("portrait.jpg", data)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	res, err := x.Infer(context.Background(), ps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		if res[i].Err != nil || len(res[i].Vector) != 64 {
			t.Fatalf("row %d: %v", i, res[i].Err)
		}
		for j := range res[i].Vector {
			if res[i].Vector[j] != res[0].Vector[j] {
				t.Fatalf("row %d differs from row 0 for the same image", i)
			}
		}
	}
}

// poisonRunner fails any batch holding a tensor whose first value is
// poison, and returns NaN for a tensor whose first value is nanMarker.
type poisonRunner struct {
	dim, calls int
}

const (
	poison    = 999
	nanMarker = 777
)

func (r *poisonRunner) Run(_ context.Context, in []float32, n int, out []float32) error {
	r.calls++
	per := len(in) / n
	for i := 0; i < n; i++ {
		if in[i*per] == poison {
			return errors.New("simulated model failure")
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < r.dim; j++ {
			out[i*r.dim+j] = in[i*per] + float32(j)
			if in[i*per] == nanMarker {
				out[i*r.dim+j] = float32(math.NaN())
			}
		}
	}
	return nil
}
func (r *poisonRunner) RunPixels(context.Context, []byte, int, []float32) error {
	return errors.New("poisonRunner takes float input")
}
func (r *poisonRunner) InputSize() (int, int) { return 224, 224 }
func (r *poisonRunner) Dim() int              { return r.dim }
func (r *poisonRunner) Close() error          { return nil }

func TestInferBisectsPoisonInputs(t *testing.T) {
	model := &Model{Name: "fake", SHA256: strings.Repeat("a", 64), Layer: "fc7", Dim: 4, Spec: imaging.ImageNet}
	r := &poisonRunner{dim: 4}
	x, err := newExtractor(model, r, Options{BatchSize: 8, NoNormalize: true})
	if err != nil {
		t.Fatal(err)
	}
	firsts := []float32{1, poison, 2, 3, nanMarker, 4, poison, 5}
	batch := make([]*schema.Prepared, len(firsts))
	for i, f := range firsts {
		ten := make([]float32, 3*224*224)
		ten[0] = f
		batch[i] = &schema.Prepared{Key: string(rune('a' + i)), Tensor: ten}
	}
	res, err := x.Infer(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range firsts {
		switch f {
		case poison:
			if schema.ClassOf(res[i].Err) != schema.FailInfer {
				t.Errorf("%d: want infer failure, got %v", i, res[i].Err)
			}
		case nanMarker:
			if schema.ClassOf(res[i].Err) != schema.FailNonFinite {
				t.Errorf("%d: want non_finite, got %v", i, res[i].Err)
			}
		default:
			if res[i].Err != nil || res[i].Vector[0] != f {
				t.Errorf("%d: want vector starting %v, got %v %v", i, f, res[i].Vector, res[i].Err)
			}
		}
	}
	if r.calls > 2*len(firsts) {
		t.Errorf("bisection made %d runs for %d inputs", r.calls, len(firsts))
	}
	// Cancellation is fatal, not a per-item failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	x.sess = &cancelRunner{poisonRunner{dim: 4}}
	if _, err := x.Infer(ctx, batch[:2]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled infer: %v", err)
	}
}

type cancelRunner struct{ poisonRunner }

func (r *cancelRunner) Run(ctx context.Context, _ []float32, _ int, _ []float32) error {
	return ctx.Err()
}

func TestRunCancelled(t *testing.T) {
	x := loadTiny(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := x.sess.(*Session)
	in := make([]float32, 3*224*224)
	out := make([]float32, 64)
	if err := s.Run(ctx, in, 1, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("run with cancelled context: %v", err)
	}
	// The session still works afterwards.
	if err := s.Run(context.Background(), in, 1, out); err != nil {
		t.Fatalf("run after cancellation: %v", err)
	}
}

// TestInferConcurrent: goroutines sharing one Extractor (as serve's jobs
// of one model do) get, bit for bit, the vectors a sequential Infer gives
// for the same batches; and one goroutine whose runs are cancelled in
// flight neither fails nor changes the others' concurrent runs.
func TestInferConcurrent(t *testing.T) {
	x := loadTiny(t, Options{BatchSize: 4})
	prepared := prepareTestImages(t, x)
	var err error
	// Every worker has a batch of its own (different images in a different
	// order), all of one size, so that any buffer shared between calls
	// would be overwritten by another worker's images of the same size.
	const workers, rounds = 4, 20
	batches := make([][]*schema.Prepared, workers+1)
	for w := range batches {
		for i := range 4 {
			batches[w] = append(batches[w], prepared[(w*3+i*5)%len(prepared)])
		}
	}
	// The cancelled worker's batch is bigger, so that its runs last long
	// enough to be cancelled in flight.
	batches[workers] = prepared[:12]
	want := make([][]schema.VectorResult, len(batches))
	var runTime time.Duration
	for w, b := range batches {
		// Twice: the first run of a batch size includes ONNX Runtime's
		// planning for that shape; the second is the run time to cancel.
		for range 2 {
			start := time.Now()
			if want[w], err = x.Infer(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			runTime = time.Since(start)
		}
	}

	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	check := func(who string, w int, got []schema.VectorResult) {
		for i, r := range got {
			if r.Err != nil {
				report("%s, %s: %v", who, batches[w][i].Key, r.Err)
				continue
			}
			for j, v := range r.Vector {
				if math.Float32bits(v) != math.Float32bits(want[w][i].Vector[j]) {
					report("%s, %s: vector[%d] = %v, a sequential Infer gives %v", who, batches[w][i].Key, j, v, want[w][i].Vector[j])
					break
				}
			}
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				who := fmt.Sprintf("worker %d, round %d", w, round)
				got, err := x.Infer(context.Background(), batches[w])
				if err != nil {
					report("%s: %v", who, err)
					continue
				}
				check(who, w, got)
			}
		}()
	}
	var cancelled atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for round := range rounds {
			ctx, cancel := context.WithCancel(context.Background())
			timer := time.AfterFunc(time.Duration(rng.Int64N(int64(runTime))), cancel)
			got, err := x.Infer(ctx, batches[workers])
			timer.Stop()
			cancel()
			switch {
			case errors.Is(err, context.Canceled):
				cancelled.Add(1)
			case err != nil:
				report("cancelled worker, round %d: %v, want context.Canceled", round, err)
			default:
				check(fmt.Sprintf("cancelled worker, round %d (not cancelled in time)", round), workers, got)
			}
		}
	}()
	wg.Wait()
	t.Logf("a sequential run of %d images took %s; %d of %d runs of the cancelled worker were cancelled",
		len(batches[workers]), runTime.Round(time.Microsecond), cancelled.Load(), rounds)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}
	if cancelled.Load() == 0 {
		t.Errorf("no run was cancelled: the test did not exercise cancellation")
	}
}

// prepareTestImages prepares every test image x can decode (at least 8),
// released when the test ends.
func prepareTestImages(t *testing.T, x *Extractor) []*schema.Prepared {
	t.Helper()
	ents, err := os.ReadDir(imagesDir)
	if err != nil {
		t.Fatal(err)
	}
	var prepared []*schema.Prepared
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(imagesDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if p, err := x.Prepare(e.Name(), data); err == nil {
			prepared = append(prepared, p)
			t.Cleanup(func() { x.Release(p) })
		}
	}
	if len(prepared) < 8 {
		t.Fatalf("only %d test images prepared", len(prepared))
	}
	return prepared
}

func TestCUDAUnavailableIsClear(t *testing.T) {
	requireRuntime(t)
	m, err := LoadModel(context.Background(), tinyModel, "fc7", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSession(m.Bytes, SessionOptions{Device: Device{Kind: "cuda"}})
	if err == nil {
		t.Skip("this ONNX Runtime library has a working CUDA provider")
	}
	for _, want := range []string{"cuda:0", "CUDA", "--device cpu", "IMGVEC_ORT_LIB"} {
		if !strings.Contains(err.Error(), want) && !strings.Contains(err.Error(), strings.ToLower(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLibraryPathMissing(t *testing.T) {
	t.Setenv("IMGVEC_ORT_LIB", filepath.Join(t.TempDir(), "nope.so"))
	_, err := LibraryPath()
	if !errors.Is(err, ErrNoRuntime) || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("missing library: %v", err)
	}
}

// TestLibraryPathPrefersGPUBuild: where `make setup-gpu` put the CUDA build
// beside the CPU one, it is the library loaded.
func TestLibraryPathPrefersGPUBuild(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("IMGVEC_ORT_LIB", "")
	t.Setenv("IMGVEC_CACHE_DIR", cache)
	put := func(kind string) string {
		p := filepath.Join(cache, kind, ORTVersion, ortLibName)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cpu := put("onnxruntime")
	if p, err := LibraryPath(); err != nil || p != cpu {
		t.Fatalf("CPU build only: %q, %v", p, err)
	}
	gpu := put("onnxruntime-gpu")
	if p, err := LibraryPath(); err != nil || p != gpu {
		t.Fatalf("both builds: %q, %v; want %s", p, err, gpu)
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]string{"": "cpu", "cpu": "cpu", "cuda": "cuda:0", "CUDA:1": "cuda:1", "gpu:2": "cuda:2", "tensorrt:3": "tensorrt:3"} {
		d, err := ParseDevice(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDevice(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, bad := range []string{"cpu:1", "cuda:-1", "cuda:x", "tpu"} {
		if _, err := ParseDevice(bad); err == nil {
			t.Errorf("ParseDevice(%q) accepted", bad)
		}
	}
}

func TestParseDevices(t *testing.T) {
	for in, want := range map[string]string{"cpu": "cpu", "cpu,cpu": "cpu cpu", "cuda:0, cuda:1": "cuda:0 cuda:1", "gpu:1,cuda:0": "cuda:1 cuda:0", "trt:2": "tensorrt:2"} {
		devs, err := ParseDevices(in)
		var got []string
		for _, d := range devs {
			got = append(got, d.String())
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("ParseDevices(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for bad, why := range map[string]string{
		"cuda:0,cuda:0":                    "listed twice",
		"cuda,cuda:0":                      "listed twice",
		"cpu,cuda:0":                       "different kinds",
		"cuda:0,tensorrt:1":                "different kinds",
		"cuda:0,":                          "entry 2 is empty",
		"cuda:256":                         "0 to 255",
		"cuda:0,npu":                       "want cpu, cuda",
		strings.Repeat("cpu,", 16) + "cpu": "at most 16",
	} {
		if _, err := ParseDevices(bad); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseDevices(%q) = %v; want an error saying %q", bad, err, why)
		}
	}
}

// TestMultiDeviceBitIdentical: an Extractor on two CPU sessions runs
// concurrent batches on both and gives, bit for bit, the vectors of one
// session.
func TestMultiDeviceBitIdentical(t *testing.T) {
	one := loadTiny(t, Options{BatchSize: 4})
	two := loadTiny(t, Options{BatchSize: 4, Devices: []Device{{Kind: "cpu"}, {Kind: "cpu"}}})
	if one.InferConcurrency() != 1 || two.InferConcurrency() != 2 {
		t.Fatalf("InferConcurrency %d and %d, want 1 and 2", one.InferConcurrency(), two.InferConcurrency())
	}
	prepared := prepareTestImages(t, one)
	var batches [][]*schema.Prepared
	for i := 0; i < len(prepared); i += 3 {
		batches = append(batches, prepared[i:min(i+3, len(prepared))])
	}
	got := make([][]schema.VectorResult, len(batches))
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Go(func() { got[i], errs[i] = two.Infer(context.Background(), b) })
	}
	wg.Wait()
	for i, b := range batches {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		want, err := one.Infer(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			if want[j].Err != nil || got[i][j].Err != nil {
				t.Fatalf("%s: %v / %v", b[j].Key, want[j].Err, got[i][j].Err)
			}
			for k, v := range got[i][j].Vector {
				if math.Float32bits(v) != math.Float32bits(want[j].Vector[k]) {
					t.Fatalf("%s: vector[%d] = %v on two sessions, %v on one", b[j].Key, k, v, want[j].Vector[k])
				}
			}
		}
	}
}

// TestProviderOptionsTF32: the CUDA provider gets use_tf32=1 unless NoTF32,
// and its device ordinal; TensorRT gets no CUDA-only option, the CPU none.
func TestProviderOptionsTF32(t *testing.T) {
	for _, tc := range []struct {
		opts SessionOptions
		want map[string]string
	}{
		{SessionOptions{Device: Device{Kind: "cuda", ID: 1}}, map[string]string{"device_id": "1", "use_tf32": "1"}},
		{SessionOptions{Device: Device{Kind: "cuda"}, NoTF32: true}, map[string]string{"device_id": "0", "use_tf32": "0"}},
		{SessionOptions{Device: Device{Kind: "tensorrt", ID: 2}}, map[string]string{"device_id": "2"}},
		{SessionOptions{Device: Device{Kind: "cpu"}}, nil},
	} {
		if got := providerOptions(tc.opts); !maps.Equal(got, tc.want) {
			t.Errorf("providerOptions(%+v) = %v, want %v", tc.opts, got, tc.want)
		}
	}
}

// oomRunner fails any run of more than fit images with ErrOutOfMemory, as
// the CUDA provider does when a batch's tensors do not fit, and records
// the size of every run.
type oomRunner struct {
	poisonRunner
	fit  int
	runs []int
}

func (r *oomRunner) Run(ctx context.Context, in []float32, n int, out []float32) error {
	r.runs = append(r.runs, n)
	if n > r.fit {
		return fmt.Errorf("run batch of %d on cuda:0: %w: CUDA failure 2: out of memory", n, ErrOutOfMemory)
	}
	return r.poisonRunner.Run(ctx, in, n, out)
}

// TestInferHalvesOnOutOfMemory: a batch that does not fit is retried in
// halves until the runs fit, every image once and in order; later batches
// start at the size that fitted; a device that cannot hold one image is a
// fatal error, not a failure of the images.
func TestInferHalvesOnOutOfMemory(t *testing.T) {
	model := &Model{Name: "fake", SHA256: strings.Repeat("a", 64), Layer: "fc7", Dim: 4, Spec: imaging.ImageNet}
	r := &oomRunner{poisonRunner: poisonRunner{dim: 4}, fit: 3}
	x, err := newExtractor(model, r, Options{BatchSize: 8, NoNormalize: true})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*schema.Prepared, 8)
	for i := range batch {
		ten := make([]float32, 3*224*224)
		ten[0] = float32(i + 1)
		batch[i] = &schema.Prepared{Key: fmt.Sprint(i), Tensor: ten}
	}
	check := func(res []schema.VectorResult) {
		t.Helper()
		for i, v := range res {
			if v.Err != nil || v.Vector[0] != float32(i+1) {
				t.Errorf("image %d: %v %v", i, v.Vector, v.Err)
			}
		}
	}
	res, err := x.Infer(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	check(res)
	// 8 fails, 4 fails, then runs of 2.
	if want := []int{8, 4, 2, 2, 2, 2}; !slices.Equal(r.runs, want) {
		t.Errorf("runs %v, want %v", r.runs, want)
	}
	r.runs = nil
	if res, err = x.Infer(context.Background(), batch[:5]); err != nil {
		t.Fatal(err)
	}
	check(res)
	if want := []int{2, 2, 1}; !slices.Equal(r.runs, want) {
		t.Errorf("the next batch ran as %v, want %v", r.runs, want)
	}

	r.fit = 0
	if _, err := x.Infer(context.Background(), batch[:3]); !errors.Is(err, ErrOutOfMemory) {
		t.Errorf("no image fits: %v, want a fatal ErrOutOfMemory", err)
	}
}

func TestOutOfMemoryMessages(t *testing.T) {
	for msg, want := range map[string]bool{
		"CUDA failure 2: out of memory ; GPU=0":                                                        true,
		"BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer of size 1048576": true,
		"CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED":                                                 true,
		"CUDNN failure 4: CUDNN_STATUS_ALLOC_FAILED":                                                   true,
		"Got invalid dimensions for input: data for the following indices":                             false,
		"CUDA failure 700: an illegal memory access was encountered":                                   false,
	} {
		if got := outOfMemory(errors.New(msg)); got != want {
			t.Errorf("outOfMemory(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestPixelUploadBitIdentical: a model rewritten to take uint8 pixels and
// normalise them in the graph gives, bit for bit, the vectors of the float
// path, on every test image.
func TestPixelUploadBitIdentical(t *testing.T) {
	float := loadTiny(t, Options{BatchSize: 4})
	pixels := loadTiny(t, Options{BatchSize: 4, PixelUpload: true})
	if pixels.Identity() != float.Identity() {
		t.Errorf("pixel upload changed the model identity: %+v vs %+v", pixels.Identity(), float.Identity())
	}
	want := prepareTestImages(t, float)
	got := prepareTestImages(t, pixels)
	if got[0].Tensor != nil || len(got[0].Pixels) != 3*224*224 {
		t.Fatalf("pixel upload prepared %d floats, %d bytes; want 0 and %d", len(got[0].Tensor), len(got[0].Pixels), 3*224*224)
	}
	wantRes, err := float.Infer(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	gotRes, err := pixels.Infer(context.Background(), got)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if wantRes[i].Err != nil || gotRes[i].Err != nil {
			t.Fatalf("%s: %v / %v", want[i].Key, wantRes[i].Err, gotRes[i].Err)
		}
		for k, v := range gotRes[i].Vector {
			if math.Float32bits(v) != math.Float32bits(wantRes[i].Vector[k]) {
				t.Fatalf("%s: vector[%d] = %v from pixels, %v from floats", want[i].Key, k, v, wantRes[i].Vector[k])
			}
		}
	}
}
