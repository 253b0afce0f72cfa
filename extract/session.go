package extract

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/imgvec/imgvec/extract/onnxgraph"
)

// SessionOptions configures one ONNX Runtime session.
type SessionOptions struct {
	Device Device
	// IntraOpThreads is ONNX Runtime's intra-op thread count. Defaults to
	// runtime.NumCPU().
	IntraOpThreads int
	// NoTF32 turns off TensorFloat-32 on the CUDA provider (use_tf32=0).
	// By default float32 convolutions and matrix products on an Ampere or
	// newer GPU run in TF32 (10-bit mantissa inputs, float32 accumulation):
	// faster and slightly less precise (make bench-gpu prints the cosine to
	// float32). It changes nothing on the CPU, on TensorRT, or for float16
	// models.
	NoTF32 bool
	// ExternalDataDir is the directory the model's external data files are
	// relative to (Model.DataDir); ONNX Runtime reads them from there,
	// whatever the working directory. "" when the model has none.
	ExternalDataDir string
}

// externalDataDirKey is ONNX Runtime's session config key for where the
// external initializers of a model loaded from memory are.
const externalDataDirKey = "session.model_external_initializers_file_folder_path"

// Session runs one ONNX model whose single image input is [N,C,H,W] float32
// (Run), or uint8 pixels [N,H,W,3] for a model that normalises in its graph
// (onnxgraph.PixelInput; RunPixels), and whose output is [N,Dim] float32 (a
// cut model). Run is safe for
// concurrent use: ONNX Runtime allows concurrent runs of one session, and
// every call has its own tensors and run options, so cancelling one call
// never touches another. Close ends the session once no Run is in flight.
type Session struct {
	sess      *ort.DynamicAdvancedSession
	input     string
	output    string
	channels  int
	height    int
	width     int
	dim       int
	pixels    bool // the input is uint8 [N,H,W,3]
	device    Device
	closeOnce sync.Once
}

// NewSession creates a session from the model bytes. It reads the input and
// output names and shapes from the model: exactly one input of rank 4 and
// one output of rank 2 with a fixed width are required.
func NewSession(model []byte, opts SessionOptions) (*Session, error) {
	if err := InitRuntime(); err != nil {
		return nil, err
	}
	// The graph says what the inputs and outputs are; asking ONNX Runtime
	// would load every weight into a throwaway session first.
	g, err := onnxgraph.Parse(model)
	if err != nil {
		return nil, fmt.Errorf("read model inputs and outputs: %w", err)
	}
	rep := g.Inspect()
	ins, outs := rep.Inputs, rep.Outputs
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("model has %d inputs and %d outputs; want one image input and one feature output (cut the model with `imgvec model cut`)", len(ins), len(outs))
	}
	in, out := ins[0], outs[0]
	inDims, outDims := dims(in.Shape), dims(out.Shape)
	pixels := in.ElemType == "uint8"
	if len(inDims) != 4 || (in.ElemType != "float" && !pixels) {
		return nil, fmt.Errorf("model input %q is %s %v; want float [N,C,H,W] (or uint8 [N,H,W,3] pixels)", in.Name, in.ElemType, inDims)
	}
	if pixels { // as NCHW, for the checks and sizes below
		inDims = []int64{inDims[0], inDims[3], inDims[1], inDims[2]}
	}
	if len(outDims) != 2 || outDims[1] <= 0 || out.ElemType != "float" {
		return nil, fmt.Errorf("model output %q is %s %v; want float [N,dim]", out.Name, out.ElemType, outDims)
	}
	if inDims[0] > 0 && inDims[0] != 1 {
		return nil, fmt.Errorf("model input %q has a fixed batch of %d; cut it with `imgvec model cut` to make the batch dynamic", in.Name, inDims[0])
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{in.Name}, []string{out.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("create onnx runtime session on %s: %w", opts.Device, err)
	}
	s := &Session{
		sess: sess, input: in.Name, output: out.Name,
		channels: int(inDims[1]), height: int(inDims[2]), width: int(inDims[3]),
		dim: int(outDims[1]), pixels: pixels, device: opts.Device,
	}
	if s.channels != 3 {
		s.Close()
		return nil, fmt.Errorf("model input %q has %d channels; want 3 (RGB)", in.Name, s.channels)
	}
	return s, nil
}

// dims is a shape with symbolic and unknown dimensions as -1.
func dims(s []onnxgraph.Dim) []int64 {
	d := make([]int64, len(s))
	for i, x := range s {
		d[i] = -1
		if x.Param == "" && x.Value >= 0 {
			d[i] = x.Value
		}
	}
	return d
}

func sessionOptions(opts SessionOptions) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	threads := opts.IntraOpThreads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("set intra-op threads %d: %w", threads, err)
	}
	if opts.ExternalDataDir != "" {
		if err := so.AddSessionConfigEntry(externalDataDirKey, opts.ExternalDataDir); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("set external data directory %s: %w", opts.ExternalDataDir, err)
		}
	}
	if err := appendProvider(so, opts); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

// providerOptions are the execution provider's options for opts.Device
// (nil on the CPU).
func providerOptions(opts SessionOptions) map[string]string {
	d := opts.Device
	switch d.Kind {
	case "cuda":
		tf32 := "1"
		if opts.NoTF32 {
			tf32 = "0"
		}
		return map[string]string{"device_id": fmt.Sprint(d.ID), "use_tf32": tf32}
	case "tensorrt":
		return map[string]string{"device_id": fmt.Sprint(d.ID)}
	}
	return nil
}

func appendProvider(so *ort.SessionOptions, opts SessionOptions) error {
	d := opts.Device
	noProvider := func(err error) error {
		return fmt.Errorf("device %s: this ONNX Runtime library has no usable %s execution provider "+
			"(use --device cpu, or run `make setup-gpu`, or point IMGVEC_ORT_LIB at an onnxruntime-gpu %s build with its provider libraries, CUDA and cuDNN installed): %w",
			d, d.Kind, ORTVersion, err)
	}
	switch d.Kind {
	case "", "cpu":
		return nil
	case "cuda":
		preloadGPULibraries()
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return noProvider(err)
		}
		defer co.Destroy()
		if err := co.Update(providerOptions(opts)); err != nil {
			return noProvider(err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return noProvider(err)
		}
		return nil
	case "tensorrt":
		preloadGPULibraries()
		to, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return noProvider(err)
		}
		defer to.Destroy()
		if err := to.Update(providerOptions(opts)); err != nil {
			return noProvider(err)
		}
		if err := so.AppendExecutionProviderTensorRT(to); err != nil {
			return noProvider(err)
		}
		return nil
	}
	return fmt.Errorf("unknown device kind %q", d.Kind)
}

// InputSize is the model's input height and width.
func (s *Session) InputSize() (height, width int) { return s.height, s.width }

// Dim is the width of the model's output.
func (s *Session) Dim() int { return s.dim }

// Run runs n images laid out NCHW in input (len n*3*H*W) and writes n*Dim
// floats into output. Cancelling ctx terminates this run in flight, and
// no other. Run is safe for concurrent use; input and output belong to the
// caller and must not be shared with another call in flight.
func (s *Session) Run(ctx context.Context, input []float32, n int, output []float32) error {
	if s.pixels {
		return fmt.Errorf("run batch of %d: the model takes uint8 pixels (RunPixels)", n)
	}
	return run(ctx, s, ort.NewShape(int64(n), int64(s.channels), int64(s.height), int64(s.width)), input, n, output)
}

// RunPixels is Run for a model whose input is uint8 pixels: n images laid
// out NHWC in input (len n*H*W*3).
func (s *Session) RunPixels(ctx context.Context, input []byte, n int, output []float32) error {
	if !s.pixels {
		return fmt.Errorf("run batch of %d: the model takes float tensors (Run)", n)
	}
	return run(ctx, s, ort.NewShape(int64(n), int64(s.height), int64(s.width), int64(s.channels)), input, n, output)
}

func run[T float32 | byte](ctx context.Context, s *Session, shape ort.Shape, input []T, n int, output []float32) error {
	if want := n * s.channels * s.height * s.width; len(input) != want || len(output) != n*s.dim {
		return fmt.Errorf("run batch of %d: input has %d values (want %d), output %d (want %d)", n, len(input), want, len(output), n*s.dim)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := ort.NewTensor(shape, input)
	if err != nil {
		return fmt.Errorf("run batch of %d: input tensor: %w", n, err)
	}
	defer in.Destroy()
	out, err := ort.NewTensor(ort.NewShape(int64(n), int64(s.dim)), output)
	if err != nil {
		return fmt.Errorf("run batch of %d: output tensor: %w", n, err)
	}
	defer out.Destroy()

	// ONNX Runtime does not watch ctx: a watcher flips the terminate flag
	// of this call's own run options (a shared flag would stop every
	// concurrent run), and is always stopped before they are destroyed.
	ro, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("run batch of %d: run options: %w", n, err)
	}
	defer ro.Destroy()
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = ro.Terminate()
		close(terminated)
	})
	err = s.sess.RunWithOptions([]ort.Value{in}, []ort.Value{out}, ro)
	if !stop() {
		<-terminated
		return fmt.Errorf("run batch of %d: %w", n, context.Cause(ctx))
	}
	if err != nil {
		if outOfMemory(err) {
			return fmt.Errorf("run batch of %d on %s: %w: %w", n, s.device, ErrOutOfMemory, err)
		}
		return fmt.Errorf("run batch of %d on %s: %w", n, s.device, err)
	}
	return nil
}

// ErrOutOfMemory is wrapped by a Run that failed because the device could
// not allocate the batch's tensors: a smaller batch may fit.
var ErrOutOfMemory = errors.New("out of device memory")

// outOfMemory tells an allocation failure from ONNX Runtime's message (its
// C API gives one error code for every failure of a run): the CUDA
// runtime's, cuBLAS's and cuDNN's allocation errors and the arena's.
func outOfMemory(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"out of memory", "failed to allocate memory", "alloc_failed", "cudaerrormemoryallocation"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Close releases the session. It is safe to call more than once; it must
// not be called while a Run is in flight.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.sess.Destroy() })
	return err
}
