package extract

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

// runner is what the Extractor needs of a Session; tests substitute one
// that fails on chosen inputs to exercise bisection. Run must be safe for
// concurrent use.
type runner interface {
	Run(ctx context.Context, input []float32, n int, output []float32) error
	RunPixels(ctx context.Context, input []byte, n int, output []float32) error
	InputSize() (height, width int)
	Dim() int
	Close() error
}

// Batch sizes of BatchSize 0 (auto): the CPU gains nothing from larger
// batches; a GPU needs them to be busy, and halves GPUBatch on running out
// of memory until a batch fits.
const (
	DefaultBatch = 16
	GPUBatch     = 256
)

// Upload modes (--upload, upload:): float sends normalised float32 tensors
// to the model; uint8 sends the 8-bit pixels and normalises in the graph
// (Options.PixelUpload).
const (
	UploadFloat = "float"
	UploadUint8 = "uint8"
)

// ParseUpload reads an --upload value ("" is float) and reports whether it
// is uint8.
func ParseUpload(mode string) (pixels bool, err error) {
	return parseMode("upload", mode, UploadFloat, UploadUint8)
}

// Options configures an Extractor.
type Options struct {
	Session SessionOptions
	// Devices, when set, opens one session per device (Session.Device is
	// ignored) and runs each batch on whichever is free; InferConcurrency
	// says how many Infer calls keep them all busy. Several CPU sessions
	// share the cores: without Session.IntraOpThreads each gets
	// runtime.NumCPU()/len(Devices) threads.
	Devices []Device
	// BatchSize is the number of images per inference batch; 0 (auto) is
	// DefaultBatch on the CPU and GPUBatch on a GPU. A run that fails with
	// ErrOutOfMemory is retried in halves, and later runs stay at the size
	// that fitted (see Infer).
	BatchSize int
	// PixelUpload rewrites the model to take uint8 pixels and normalise
	// them in the graph (onnxgraph.PixelInput with the preprocessing's
	// Levels): a quarter of the bytes go to the device, and the vectors are
	// bit-identical (the model id does not change). It gains nothing on the
	// CPU.
	PixelUpload bool
	// NoNormalize keeps raw activations; by default vectors are L2-normalised.
	NoNormalize bool
	Decode      imaging.DecodeOptions
}

// Extractor turns image bytes into vectors. Every method but Close is safe
// for concurrent use: one Extractor (one copy of the weights) serves any
// number of pipelines. Infer keeps no state between calls; each call has
// its own batch buffer and run. Close releases the session; the creator
// closes it, once no call is in flight.
type Extractor struct {
	sess     runner
	sessions int // how many sessions sess runs on
	// runLimit is the most images one run may take: BatchSize until a run
	// ran out of device memory, then the half that fitted. Shared by
	// concurrent calls; it only shrinks.
	runLimit atomic.Int64
	spec     imaging.Spec
	opts     Options
	identity schema.ModelIdentity
	// Pools of one image's tensor and of one run's input, owned by that
	// call until it returns: *[]float32, or *[]byte with PixelUpload.
	tensors sync.Pool
	inputs  sync.Pool
}

// New opens a session on model (one per device of opts.Devices) and
// returns an Extractor for it.
func New(model *Model, opts Options) (*Extractor, error) {
	so := opts.Session
	so.ExternalDataDir = model.DataDir
	devs := opts.Devices
	if len(devs) == 0 {
		devs = []Device{so.Device}
	}
	if opts.BatchSize <= 0 && devs[0].Kind != "cpu" {
		opts.BatchSize = GPUBatch
	}
	if so.IntraOpThreads <= 0 && len(devs) > 1 && devs[0].Kind == "cpu" {
		so.IntraOpThreads = max(1, runtime.NumCPU()/len(devs))
	}
	graph := model.Bytes
	if opts.PixelUpload {
		m, err := onnxgraph.Parse(graph)
		if err == nil {
			if m, err = m.PixelInput(model.Spec.Levels()); err == nil {
				graph, err = m.Bytes()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("open model %s: %w", model.Name, err)
		}
	}
	sessions := make([]runner, 0, len(devs))
	for _, d := range devs {
		so.Device = d
		sess, err := NewSession(graph, so)
		if err != nil {
			for _, s := range sessions {
				s.Close()
			}
			return nil, fmt.Errorf("open model %s: %w", model.Name, err)
		}
		sessions = append(sessions, sess)
	}
	if len(sessions) == 1 {
		return newExtractor(model, sessions[0], opts)
	}
	return newExtractor(model, newSessionSet(sessions), opts)
}

func newExtractor(model *Model, sess runner, opts Options) (*Extractor, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatch
	}
	spec := model.Spec
	ph, pw := spec.OutputSize()
	if h, w := sess.InputSize(); h != ph || w != pw {
		sess.Close()
		return nil, fmt.Errorf("open model %s: input is %dx%d (HxW) but preprocessing gives %dx%d (choose the model's with --preprocess)", model.Name, h, w, ph, pw)
	}
	if sess.Dim() != model.Dim {
		sess.Close()
		return nil, fmt.Errorf("open model %s: onnx runtime reports output width %d, the graph says %d", model.Name, sess.Dim(), model.Dim)
	}
	// The Extractor keeps no reference to model: ONNX Runtime holds its own
	// copy of the graph, and the model's bytes (over 500 MB for VGG19) can
	// be collected.
	opts.Decode.Spec = spec // decode only what the preprocessing reads
	x := &Extractor{sess: sess, sessions: 1, spec: spec, opts: opts, identity: model.Identity(!opts.NoNormalize)}
	if set, ok := sess.(*sessionSet); ok {
		x.sessions = len(set.all)
	}
	x.runLimit.Store(int64(opts.BatchSize))
	n := 3 * ph * pw
	if opts.PixelUpload {
		x.tensors.New = func() any { t := make([]byte, n); return &t }
		x.inputs.New = func() any { t := make([]byte, opts.BatchSize*n); return &t }
	} else {
		x.tensors.New = func() any { t := make([]float32, n); return &t }
		x.inputs.New = func() any { t := make([]float32, opts.BatchSize*n); return &t }
	}
	return x, nil
}

// Identity names the computation behind every vector this Extractor makes.
func (x *Extractor) Identity() schema.ModelIdentity { return x.identity }

// BatchSize is the configured number of images per Infer call.
func (x *Extractor) BatchSize() int { return x.opts.BatchSize }

// InferConcurrency is how many Infer calls keep every session busy: one
// per device (connector.ConcurrentEmbedder).
func (x *Extractor) InferConcurrency() int { return x.sessions }

// Prepare decodes and preprocesses one image. Errors are *schema.ItemError.
func (x *Extractor) Prepare(key string, data []byte) (*schema.Prepared, error) {
	img, info, err := imaging.Decode(key, data, x.opts.Decode)
	if err != nil {
		return nil, err
	}
	// The image's size as shown, not as decoded (a draft decode is smaller).
	width, height := info.Width, info.Height
	if !x.opts.Decode.IgnoreOrientation && info.Orientation >= 5 && info.Orientation <= 8 {
		width, height = height, width
	}
	p := &schema.Prepared{Key: key, Width: width, Height: height, Format: info.Format}
	tp := x.tensors.Get()
	if x.opts.PixelUpload {
		p.Pixels = *tp.(*[]byte)
		err = imaging.PreprocessPixels(img, x.spec, p.Pixels)
	} else {
		p.Tensor = *tp.(*[]float32)
		err = imaging.Preprocess(img, x.spec, p.Tensor)
	}
	img.Release() // the decoded pixels go back to imaging's pool for the next Decode
	if err != nil {
		x.tensors.Put(tp)
		return nil, &schema.ItemError{Item: key, Stage: "preprocess", Class: schema.FailDecode, Reason: "preprocess failed", Err: err}
	}
	return p, nil
}

// Release returns p's tensor to the pool; p must not be used afterwards.
func (x *Extractor) Release(p *schema.Prepared) {
	switch {
	case p == nil:
	case p.Tensor != nil:
		t := p.Tensor
		p.Tensor = nil
		x.tensors.Put(&t)
	case p.Pixels != nil:
		t := p.Pixels
		p.Pixels = nil
		x.tensors.Put(&t)
	}
}

// Infer runs one batch and returns one Result per input, in order. A batch
// that fails inside the model is bisected so that one bad input fails alone
// (Result.Err, class "infer"); vectors that are not finite fail with class
// "non_finite". The returned error is fatal (cancellation, broken session).
// Infer is safe for concurrent use, also on the same Prepared values (it
// only reads them); cancelling ctx stops this call only.
func (x *Extractor) Infer(ctx context.Context, batch []*schema.Prepared) ([]schema.VectorResult, error) {
	results := make([]schema.VectorResult, len(batch))
	if len(batch) == 0 {
		return results, nil
	}
	if err := x.inferRange(ctx, batch, results); err != nil {
		return nil, err
	}
	return results, nil
}

// inferRange runs batch, bisecting on a model error until single items.
func (x *Extractor) inferRange(ctx context.Context, batch []*schema.Prepared, results []schema.VectorResult) error {
	vecs, err := x.run(ctx, batch)
	if err == nil {
		for i, p := range batch {
			results[i] = x.finish(p.Key, vecs[i*x.identity.Dim:(i+1)*x.identity.Dim])
		}
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, ErrOutOfMemory) {
		// run already halved down to single images: the device cannot
		// hold one, which is no fault of the image.
		return err
	}
	if len(batch) == 1 {
		results[0] = schema.VectorResult{Err: &schema.ItemError{Item: batch[0].Key, Stage: "infer", Class: schema.FailInfer, Reason: "model rejected input", Err: err}}
		return nil
	}
	mid := len(batch) / 2
	if err := x.inferRange(ctx, batch[:mid], results[:mid]); err != nil {
		return err
	}
	return x.inferRange(ctx, batch[mid:], results[mid:])
}

// run runs batch in runs of at most runLimit images and returns its
// vectors. A run that fails with ErrOutOfMemory lowers runLimit to half of
// it and is retried in runs of the new limit: every image runs once in the
// end, and the vectors are in batch order. ErrOutOfMemory is returned only
// when a single image does not fit.
func (x *Extractor) run(ctx context.Context, batch []*schema.Prepared) ([]float32, error) {
	if x.opts.PixelUpload {
		return runBatch(ctx, x, batch, func(p *schema.Prepared) []byte { return p.Pixels }, x.sess.RunPixels)
	}
	return runBatch(ctx, x, batch, func(p *schema.Prepared) []float32 { return p.Tensor }, x.sess.Run)
}

// runBatch is run for one kind of input: image gives each image's values,
// and runFn runs them.
func runBatch[T float32 | byte](ctx context.Context, x *Extractor, batch []*schema.Prepared, image func(*schema.Prepared) []T,
	runFn func(ctx context.Context, input []T, n int, output []float32) error) ([]float32, error) {
	ph, pw := x.spec.OutputSize()
	per := 3 * ph * pw
	for _, p := range batch {
		if len(image(p)) != per {
			return nil, fmt.Errorf("infer %s: input has %d values, want %d", p.Key, len(image(p)), per)
		}
	}
	buf := x.inputs.Get().(*[]T)
	defer x.inputs.Put(buf)
	// The output is handed to callers, so it is not reused.
	dim := x.identity.Dim
	out := make([]float32, len(batch)*dim)
	for done := 0; done < len(batch); {
		n := min(len(batch)-done, int(x.runLimit.Load()))
		if cap(*buf) < n*per {
			*buf = make([]T, n*per)
		}
		in := (*buf)[:n*per]
		for i, p := range batch[done : done+n] {
			copy(in[i*per:], image(p))
		}
		err := runFn(ctx, in, n, out[done*dim:(done+n)*dim])
		switch {
		case err == nil:
			done += n
		case errors.Is(err, ErrOutOfMemory) && n > 1 && ctx.Err() == nil:
			x.lowerRunLimit(n / 2)
		default:
			return nil, err
		}
	}
	return out, nil
}

// lowerRunLimit sets runLimit to limit unless another run lowered it
// further meanwhile.
func (x *Extractor) lowerRunLimit(limit int) {
	for {
		cur := x.runLimit.Load()
		if cur <= int64(limit) || x.runLimit.CompareAndSwap(cur, int64(limit)) {
			return
		}
	}
}

// finish checks and normalises one vector.
func (x *Extractor) finish(key string, v []float32) schema.VectorResult {
	// v is one Dim-long row of the output: the check can only find NaN or
	// Inf.
	if err := schema.CheckVector(v, x.identity.Dim); err != nil {
		return schema.VectorResult{Err: &schema.ItemError{Item: key, Stage: "infer", Class: schema.FailNonFinite, Reason: "model output: " + err.Error(), Err: err}}
	}
	var sum float64
	for _, f := range v {
		sum += float64(f) * float64(f)
	}
	if !x.opts.NoNormalize && sum > 0 {
		inv := float32(1 / math.Sqrt(sum))
		for i := range v {
			v[i] *= inv
		}
	}
	return schema.VectorResult{Vector: v}
}

// Close releases the session.
func (x *Extractor) Close() error { return x.sess.Close() }
