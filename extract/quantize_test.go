package extract

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

// testImages preprocesses the committed test images that decode.
func testImages(t *testing.T) (names []string, data [][]byte, tensors [][]float32) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(imagesDir, "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := imaging.Decode(f, b, imaging.DecodeOptions{})
		if err != nil {
			continue // not an image (the generator script)
		}
		x := make([]float32, 3*224*224)
		err = imaging.Preprocess(img, imaging.ImageNet, x)
		img.Release()
		if err != nil {
			t.Fatal(err)
		}
		names, data, tensors = append(names, filepath.Base(f)), append(data, b), append(tensors, x)
	}
	return names, data, tensors
}

// embedAll embeds every image with the model at path (fc7).
func embedAll(t *testing.T, path string, names []string, data [][]byte) [][]float32 {
	return embedAllAt(t, path, "fc7", names, data)
}

// embedAllAt embeds every image with the model at path, reading layer.
func embedAllAt(t *testing.T, path, layer string, names []string, data [][]byte) [][]float32 {
	t.Helper()
	m, err := LoadModel(context.Background(), path, layer, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var batch []*schema.Prepared
	for i := range names {
		p, err := x.Prepare(names[i], data[i])
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, p)
	}
	res, err := x.Infer(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(res))
	for i, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		out[i] = r.Vector
	}
	return out
}

// TestQuantizeStaticTiny: the tiny model calibrated on the test images,
// quantized to QDQ int8, loads, cuts at fc7 and gives vectors close to
// fp32's on the 25 test images, with each calibration. The default (least
// error ranges and bias correction, issue 13) must beat min/max's min
// cosine 0.9927 (mean 0.9976); the tiny model's 16-channel layers quantize
// worse than VGG19's.
func TestQuantizeStaticTiny(t *testing.T) {
	requireRuntime(t)
	names, data, tensors := testImages(t)
	m, fp32Size := parseTiny(t)
	fp32 := embedAll(t, tinyModel, names, data)
	for _, c := range []struct {
		name      string
		o         CalibrateOptions
		minCosine float64
	}{
		{"default", CalibrateOptions{}, 0.995},
		{"min/max", CalibrateOptions{MinMax: true}, 0.99},
		{"percentile 99.99", CalibrateOptions{Percentile: 99.99}, 0.98},
	} {
		ranges, err := Calibrate(context.Background(), m, tensors, imaging.ImageNet, c.o)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(m.QuantTensors(), m.QuantInputs()...) {
			if _, ok := ranges[name]; !ok {
				t.Fatalf("%s: no range for %s", c.name, name)
			}
		}
		for _, name := range m.QuantInputs() {
			if len(ranges[name].Means) == 0 {
				t.Errorf("%s: no channel means for %s", c.name, name)
			}
		}
		q, err := m.QuantizeStatic(ranges, onnxgraph.QuantOptions{})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, n := range q.Graph.Nodes {
			counts[n.OpType]++
		}
		if counts["Conv"] != 16 || counts["DequantizeLinear"] < 16+3+16+3 || counts["QuantizeLinear"] == 0 {
			t.Errorf("quantized graph ops: %v", counts)
		}
		path := filepath.Join(t.TempDir(), "int8.onnx")
		if _, err := q.Save(path, ""); err != nil {
			t.Fatal(err)
		}
		int8 := embedAll(t, path, names, data)
		lo, sum := 1.0, 0.0
		for i := range fp32 {
			c := Cosine(fp32[i], int8[i])
			lo, sum = min(lo, c), sum+c
		}
		fi, _ := os.Stat(path)
		t.Logf("%s: %d images, cosine to fp32 min %.5f mean %.5f, top-3 overlap %.3f, size %d -> %d bytes",
			c.name, len(names), lo, sum/float64(len(fp32)), NeighbourOverlap(fp32, int8, 3), fp32Size, fi.Size())
		if lo < c.minCosine {
			t.Errorf("%s: min cosine %.5f below %g", c.name, lo, c.minCosine)
		}
	}
}

// TestMSERange: the long tail of an exponential sample (like a Relu's
// outputs) is clipped: its few values' clipping error costs less than
// coarser steps for all the others; a uniform sample keeps its range.
func TestMSERange(t *testing.T) {
	sample := make([]float32, 200000)
	for i := range sample {
		sample[i] = float32(i%100) / 100
	}
	if r := mseRange(sample, onnxgraph.Range{Min: 0, Max: 0.99}); r.Max < 0.98 {
		t.Errorf("uniform sample: range %v, want about [0, 0.99]", r)
	}
	hi := float32(0)
	for i := range sample {
		sample[i] = float32(-math.Log((float64(i) + 0.5) / float64(len(sample))))
		hi = max(hi, sample[i])
	}
	if r := mseRange(sample, onnxgraph.Range{Min: 0, Max: hi}); r.Max > 0.9*hi || r.Max < 0.3*hi {
		t.Errorf("exponential sample up to %g: range %v, want its tail clipped", hi, r)
	}
}

// TestQuantizeNeedsOpset13: per-channel DequantizeLinear needs opset 13; an
// older model (the Model Zoo's opset 7) is refused with that reason.
func TestQuantizeNeedsOpset13(t *testing.T) {
	b, err := os.ReadFile(zooModel)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgraph.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.QuantizeStatic(nil, onnxgraph.QuantOptions{}); err == nil || !strings.Contains(err.Error(), "opset 13") {
		t.Fatalf("err = %v", err)
	}
}

// TestQuantizeDynamicTiny: Linear-only dynamic int8 keeps the tensor names
// (fc7 is read by name: the Gemm nodes are gone) and stays close to fp32
// (measured min cosine 0.99989 on the test images).
func TestQuantizeDynamicTiny(t *testing.T) {
	requireRuntime(t)
	names, data, _ := testImages(t)
	m, _ := parseTiny(t)
	l, err := m.Resolve("fc7")
	if err != nil {
		t.Fatal(err)
	}
	q, err := m.QuantizeDynamic(onnxgraph.QuantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range q.Graph.Nodes {
		if n.OpType == "Gemm" {
			t.Fatalf("Gemm %s left float", n.Name)
		}
	}
	path := filepath.Join(t.TempDir(), "dyn.onnx")
	if _, err := q.Save(path, ""); err != nil {
		t.Fatal(err)
	}
	fp32 := embedAllAt(t, tinyModel, l.Tensor, names, data)
	dyn := embedAllAt(t, path, l.Tensor, names, data)
	for i := range fp32 {
		if c := Cosine(fp32[i], dyn[i]); c < 0.999 {
			t.Errorf("%s: cosine %.5f below 0.999", names[i], c)
		}
	}
}

// TestFloat16Tiny: the tiny model cut at fc7 and converted to float16
// loads with float32 input and output, finds fc7, and gives vectors close
// to float32's (ONNX Runtime's CPU provider casts where it has no float16
// kernel).
func TestFloat16Tiny(t *testing.T) {
	requireRuntime(t)
	names, data, _ := testImages(t)
	m, _ := parseTiny(t)
	cut, _, err := m.CutModel("fc7", onnxgraph.CutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cut.Float16()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fp16.onnx")
	if _, err := h.Save(path, ""); err != nil {
		t.Fatal(err)
	}
	rep := h.Inspect()
	if rep.Inputs[0].ElemType != "float" || rep.Outputs[0].ElemType != "float" {
		t.Fatalf("float16 model input %s, output %s: want float", rep.Inputs[0].ElemType, rep.Outputs[0].ElemType)
	}
	fp32 := embedAll(t, tinyModel, names, data)
	fp16 := embedAll(t, path, names, data)
	lo := 1.0
	for i := range fp32 {
		lo = min(lo, Cosine(fp32[i], fp16[i]))
	}
	t.Logf("float16: min cosine to float32 %.6f on %d images", lo, len(names))
	if lo < 0.999 {
		t.Errorf("min cosine %.6f below 0.999", lo)
	}
}

// parseTiny parses the committed tiny model and returns its size in bytes.
func parseTiny(t *testing.T) (*onnxgraph.Model, int) {
	t.Helper()
	b, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgraph.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m, len(b)
}
