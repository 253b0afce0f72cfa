package onnxgraph

import (
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

const ortRel = ".cache/onnxruntime/1.30.0/libonnxruntime.so.1"

// ortLibrary finds the ONNX Runtime shared library: $IMGVEC_ORT_LIB, or
// .cache/onnxruntime/1.30.0/libonnxruntime.so.1 in the cwd or a parent.
func ortLibrary() string {
	if p := os.Getenv("IMGVEC_ORT_LIB"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, ortRel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

var (
	ortOnce sync.Once
	ortErr  error
)

// needORT initialises the process-wide ONNX Runtime environment once, or
// skips the test (fails it when CI=true) if the library is missing.
func needORT(t testing.TB) {
	t.Helper()
	lib := ortLibrary()
	if lib == "" {
		msg := "ONNX Runtime library not found: set IMGVEC_ORT_LIB or run .ci/lib/install-onnxruntime.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortErr != nil {
		t.Fatalf("initialise ONNX Runtime from %s: %v", lib, ortErr)
	}
}

// runModel runs model on a float input of the given shape and returns the
// named output's data and shape.
func runModel(t testing.TB, model []byte, input string, x []float32, shape []int64, output string) ([]float32, []int64) {
	t.Helper()
	needORT(t)
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(2); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{input}, []string{output}, opts)
	if err != nil {
		t.Fatalf("load model in ONNX Runtime: %v", err)
	}
	defer s.Destroy()
	in, err := ort.NewTensor(ort.NewShape(shape...), x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := s.Run([]ort.Value{in}, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	defer outs[0].Destroy()
	ot, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		t.Fatalf("output %s is %T, want float32 tensor", output, outs[0])
	}
	return append([]float32(nil), ot.GetData()...), []int64(ot.GetShape())
}

// naturalImage is a deterministic, smooth, image-like input normalised with
// the ImageNet mean and std, repeated batch times.
func naturalImage(side, batch int) []float32 {
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	one := make([]float32, 3*side*side)
	for c := 0; c < 3; c++ {
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				fx, fy := float64(x)/float64(side), float64(y)/float64(side)
				v := 0.5 + 0.3*math.Sin(6*fx+float64(c))*math.Cos(4*fy) + 0.15*math.Sin(40*fx*fy+float64(c))
				if (x/28+y/28)%2 == 0 {
					v -= 0.1
				}
				v = math.Max(0, math.Min(1, v))
				one[(c*side+y)*side+x] = float32((v - mean[c]) / std[c])
			}
		}
	}
	out := make([]float32, 0, len(one)*batch)
	for i := 0; i < batch; i++ {
		out = append(out, one...)
	}
	return out
}
