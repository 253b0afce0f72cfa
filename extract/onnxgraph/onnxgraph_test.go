package onnxgraph

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func gen(t testing.TB, o VGGOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := VGG19(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parse(t testing.TB, b []byte) *Model {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var namings = []Naming{Torchvision, ModelZoo, Caffe2}

// expected names of the generated models' layers.
var wantLayers = map[Naming]map[string]string{
	Torchvision: {"fc6": "/classifier/classifier.1/Relu_output_0", "fc7": "/classifier/classifier.4/Relu_output_0", "fc8": "logits", "pool5": "/features/features.36/MaxPool_output_0"},
	ModelZoo:    {"fc6": "vgg0_dense0_relu_fwd", "fc7": "vgg0_dense1_relu_fwd", "fc8": "vgg0_dense2_fwd", "pool5": "vgg0_pool4_fwd"},
	Caffe2:      {"fc6": "fc6_2", "fc7": "fc7_2", "fc8": "fc8_1", "pool5": "pool5_1"},
}

var inputName = map[Naming]string{Torchvision: "x", ModelZoo: "data", Caffe2: "data_0"}

func TestParseRejectsBadInput(t *testing.T) {
	model := gen(t, VGGOptions{Naming: ModelZoo})
	cases := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotONNX, "empty"},
		{"lfs pointer", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"), ErrNotONNX, "Git LFS pointer"},
		{"png", []byte("\x89PNG\r\n\x1a\n...."), ErrNotONNX, "image"},
		{"html", []byte("<!DOCTYPE html><html>404</html>"), ErrNotONNX, "HTML"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, ErrNotONNX, "gzip"},
		{"text", []byte("hello, this is not a model at all"), ErrNotONNX, ""},
		{"valid proto no graph", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), ErrNotONNX, "no graph"},
		{"truncated half", model[:len(model)/2], ErrTruncated, "truncated"},
		{"truncated tail", model[:len(model)-3], ErrTruncated, "truncated"},
		{"truncated head", model[:40], ErrTruncated, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", m.Inspect())
			}
			if !errors.Is(err, c.want) {
				t.Errorf("error %q does not wrap %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	model := gen(f, VGGOptions{Naming: Caffe2})
	f.Add(model)
	f.Add(model[:len(model)/3])
	f.Add(gen(f, VGGOptions{Naming: Torchvision})[:2000])
	f.Add([]byte("\x08\x03\x3a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		r := m.Inspect()
		for _, l := range r.Layers {
			_, _, _ = m.Cut(l.Name)
		}
		if _, err := m.Bytes(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGenerateDeterministicAndRoundTrip(t *testing.T) {
	for _, n := range namings {
		a := gen(t, VGGOptions{Naming: n, Seed: 7})
		b := gen(t, VGGOptions{Naming: n, Seed: 7})
		c := gen(t, VGGOptions{Naming: n, Seed: 8})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: same seed, different bytes", n)
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds, same bytes", n)
		}
		if len(a) > 2<<20 {
			t.Errorf("%s: tiny model is %d bytes, want < 2 MB", n, len(a))
		}
		m := parse(t, a)
		out, err := m.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, a) {
			t.Errorf("%s: parse + write changed the model (%d -> %d bytes)", n, len(a), len(out))
		}
	}
}

func TestInspect(t *testing.T) {
	d := VGGOptions{}.Dims()
	for _, n := range namings {
		t.Run(n.String(), func(t *testing.T) {
			r := parse(t, gen(t, VGGOptions{Naming: n})).Inspect()
			if len(r.Inputs) != 1 || r.Inputs[0].Name != inputName[n] || r.Inputs[0].ElemType != "float" || len(r.Inputs[0].Shape) != 4 {
				t.Fatalf("inputs = %v", r.Inputs)
			}
			wantBatch := "1"
			if n == Torchvision {
				wantBatch = "batch"
			}
			if got := r.Inputs[0].Shape[0].String(); got != wantBatch {
				t.Errorf("input batch dim %q, want %q", got, wantBatch)
			}
			if n != Torchvision && r.WeightInputs != r.Initializers {
				t.Errorf("%d of %d initializers are graph inputs, want all", r.WeightInputs, r.Initializers)
			}
			dims := map[string]int{"fc6": d.FC[0], "fc7": d.FC[1], "fc8": d.FC[2], "pool5": d.Conv[4] * 49}
			for name, tensor := range wantLayers[n] {
				l, ok := r.Layer(name)
				if !ok {
					t.Fatalf("no layer %s in %v", name, r.LayerNames())
				}
				if l.Tensor != tensor || l.Dim != dims[name] || l.Shape[0] != -1 {
					t.Errorf("%s = %+v, want tensor %s dim %d", name, l, tensor, dims[name])
				}
			}
			if _, ok := r.Layer("avgpool"); ok {
				t.Error("VGG has no avgpool layer")
			}
		})
	}
}

func TestCutStructure(t *testing.T) {
	for _, n := range namings {
		t.Run(n.String(), func(t *testing.T) {
			src := parse(t, gen(t, VGGOptions{Naming: n}))
			// An unknown top-level field must survive the rewrite.
			orig, _ := src.Bytes()
			extra := protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("keep me"))
			m := parse(t, append(append([]byte{}, orig...), extra...))
			out, l, err := m.Cut("FC7")
			if err != nil {
				t.Fatal(err)
			}
			if l.Name != "fc7" || l.Tensor != wantLayers[n]["fc7"] || l.Dim != 64 {
				t.Errorf("layer = %+v", l)
			}
			if !bytes.Contains(out, extra) {
				t.Error("unknown top-level field lost")
			}
			c := parse(t, out)
			if c.IRVersion != m.IRVersion || len(c.Opsets) != 1 || c.Opsets[0] != m.Opsets[0] {
				t.Errorf("ir %d opsets %v, want %d %v", c.IRVersion, c.Opsets, m.IRVersion, m.Opsets)
			}
			r := c.Inspect()
			if len(r.Outputs) != 1 || r.Outputs[0].String() != l.Tensor+" float [N,64]" {
				t.Errorf("outputs = %v", r.Outputs)
			}
			if len(r.Inputs) != 1 || r.Inputs[0].String() != inputName[n]+" float [N,3,224,224]" {
				t.Errorf("inputs = %v", r.Inputs)
			}
			if _, ok := r.Layer("fc8"); ok {
				t.Error("fc8 survived the cut")
			}
			for _, tn := range c.Graph.Initializers {
				if strings.Contains(tn.Name, "classifier.6") || strings.Contains(tn.Name, "dense2") || strings.HasPrefix(tn.Name, "fc8") {
					t.Errorf("fc8 initializer %s kept", tn.Name)
				}
			}
			used := map[string]bool{}
			for _, nd := range c.Graph.Nodes {
				for _, in := range nd.Inputs {
					used[in] = true
				}
			}
			for _, v := range c.Graph.Inputs {
				if !used[v.Name] {
					t.Errorf("unused graph input %s kept", v.Name)
				}
			}
			if r.WeightInputs != 0 && r.WeightInputs != r.Initializers {
				t.Errorf("%d of %d initializers listed as inputs", r.WeightInputs, r.Initializers)
			}
			if n == Caffe2 {
				for _, nd := range c.Graph.Nodes {
					if nd.OpType == "Reshape" {
						v, err := c.Initializer(nd.Inputs[1]).Int64s()
						if err != nil || v[0] != 0 {
							t.Errorf("reshape shape %v (%v), want batch 0", v, err)
						}
					}
				}
			}
			// The source model is unchanged.
			if again, _ := m.Bytes(); !bytes.Equal(again, append(orig, extra...)) {
				t.Error("Cut modified its model")
			}
		})
	}
}

func TestCutErrors(t *testing.T) {
	m := parse(t, gen(t, VGGOptions{Naming: Torchvision}))
	_, _, err := m.Cut("fc9")
	if !errors.Is(err, ErrNoSuchLayer) || !strings.Contains(err.Error(), "fc7") {
		t.Errorf("Cut(fc9) = %v, want ErrNoSuchLayer listing candidates", err)
	}
	_, _, err = m.Cut("x")
	if !errors.Is(err, ErrNoSuchLayer) {
		t.Errorf("Cut(input) = %v", err)
	}
	// A raw tensor name works too.
	_, l, err := m.Cut("/features/features.35/Relu_output_0")
	if err != nil || l.Dim != 16*14*14 {
		t.Errorf("Cut(raw tensor) = %+v, %v", l, err)
	}
}

// floats reads an initializer.
func floats(t testing.TB, m *Model, name string) []float32 {
	t.Helper()
	tn := m.Initializer(name)
	if tn == nil {
		t.Fatalf("no initializer %s", name)
	}
	v, err := tn.Floats()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dense computes W x + b for W [out, in] (Gemm transB=1), per batch row.
func dense(x []float32, w, b []float32, relu bool) []float32 {
	in := len(w) / len(b)
	rows := len(x) / in
	out := make([]float32, rows*len(b))
	for r := 0; r < rows; r++ {
		for o := range b {
			s := float64(b[o])
			for i := 0; i < in; i++ {
				s += float64(w[o*in+i]) * float64(x[r*in+i])
			}
			if relu && s < 0 {
				s = 0
			}
			out[r*len(b)+o] = float32(s)
		}
	}
	return out
}

func fcWeights(n Naming, k int) (w, b string) {
	switch n {
	case Torchvision:
		return "classifier." + string(rune('0'+3*k)) + ".weight", "classifier." + string(rune('0'+3*k)) + ".bias"
	case ModelZoo:
		return "vgg0_dense" + string(rune('0'+k)) + "_weight", "vgg0_dense" + string(rune('0'+k)) + "_bias"
	}
	return "fc" + string(rune('6'+k)) + "_w_0", "fc" + string(rune('6'+k)) + "_b_0"
}

func close32(a, b []float32, tol float64) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol*(1+math.Abs(float64(b[i]))) {
			return i, false
		}
	}
	return 0, true
}

// checkFeatures checks a [batch, dim] output: finite, non-negative, not all
// zero, and the same for every batch position (the inputs are identical).
func checkFeatures(t *testing.T, v []float32, shape []int64, batch, dim int) {
	t.Helper()
	if len(shape) != 2 || shape[0] != int64(batch) || shape[1] != int64(dim) {
		t.Fatalf("output shape %v, want [%d %d]", shape, batch, dim)
	}
	nonzero := 0
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || x < 0 {
			t.Fatalf("output value %v is not finite and non-negative", x)
		}
		if x > 0 {
			nonzero++
		}
	}
	if nonzero < len(v)/10 {
		t.Errorf("only %d of %d values are positive", nonzero, len(v))
	}
	for r := 1; r < batch; r++ {
		if i, ok := close32(v[r*dim:(r+1)*dim], v[:dim], 1e-5); !ok {
			t.Errorf("batch row %d differs from row 0 at %d", r, i)
		}
	}
}

func TestCutRunsInONNXRuntime(t *testing.T) {
	needORT(t)
	d := VGGOptions{}.Dims()
	for _, n := range namings {
		t.Run(n.String(), func(t *testing.T) {
			src := gen(t, VGGOptions{Naming: n, Seed: 3})
			m := parse(t, src)
			fc7, l, err := m.Cut("fc7")
			if err != nil {
				t.Fatal(err)
			}
			pool5, pl, err := m.Cut("pool5")
			if err != nil {
				t.Fatal(err)
			}
			in := inputName[n]
			x1 := naturalImage(224, 1)
			var rows1 []float32
			for _, batch := range []int{1, 3} {
				v, shape := runModel(t, fc7, in, naturalImage(224, batch), []int64{int64(batch), 3, 224, 224}, l.Tensor)
				checkFeatures(t, v, shape, batch, d.FC[1])
				if batch == 1 {
					rows1 = v
				} else if i, ok := close32(v[:d.FC[1]], rows1, 1e-5); !ok {
					t.Errorf("batch 3 row 0 differs from batch 1 at %d", i)
				}
			}
			// fc7 from the cut equals fc7 computed from the cut pool5.
			p5, shape := runModel(t, pool5, in, x1, []int64{1, 3, 224, 224}, pl.Tensor)
			if shape[1] != int64(d.Conv[4]*49) {
				t.Fatalf("pool5 shape %v", shape)
			}
			w6, b6 := fcWeights(n, 0)
			w7, b7 := fcWeights(n, 1)
			h := dense(p5, floats(t, m, w6), floats(t, m, b6), true)
			h = dense(h, floats(t, m, w7), floats(t, m, b7), true)
			if i, ok := close32(rows1, h, 1e-4); !ok {
				t.Errorf("fc7 from cut differs from fc7 computed from pool5 at %d: %v vs %v", i, rows1[i], h[i])
			}
			// The uncut model's output equals fc8 computed from the cut fc7.
			outName := m.Graph.Outputs[0].Name
			logits, _ := runModel(t, src, in, x1, []int64{1, 3, 224, 224}, outName)
			w8, b8 := fcWeights(n, 2)
			want := dense(rows1, floats(t, m, w8), floats(t, m, b8), false)
			if n == Caffe2 {
				softmax(want)
			}
			if i, ok := close32(logits, want, 1e-4); !ok {
				t.Errorf("uncut output differs from fc8(cut fc7) at %d: %v vs %v", i, logits[i], want[i])
			}
		})
	}
}

func softmax(v []float32) {
	mx := v[0]
	for _, x := range v {
		mx = max(mx, x)
	}
	var s float64
	for i, x := range v {
		e := math.Exp(float64(x - mx))
		v[i] = float32(e)
		s += e
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / s)
	}
}

func TestCommittedModelsMatchGenerator(t *testing.T) {
	want := map[string]func(w, data io.Writer) error{
		"embed-tiny.onnx": func(w, _ io.Writer) error { return Embedding(w, Pooled, 1) },
		"vit-tiny.onnx":   func(w, _ io.Writer) error { return Embedding(w, Tokens, 1) },
		"external/vgg19-tiny.onnx": func(w, data io.Writer) error {
			return VGG19External(w, data, "vgg19-tiny.onnx.data", VGGOptions{Naming: Torchvision, Seed: 1})
		},
	}
	for _, name := range []string{"clip", "convnext", "deit", "dinov2", "siglip", "vit"} {
		want["hf/"+name+"/model.onnx"] = want["embed-tiny.onnx"]
	}
	for file, n := range map[string]Naming{"vgg19-tiny.onnx": Torchvision, "vgg19-zoo-tiny.onnx": ModelZoo, "vgg19-caffe2-tiny.onnx": Caffe2} {
		want[file] = func(w, _ io.Writer) error { return VGG19(w, VGGOptions{Naming: n, Seed: 1}) }
	}
	for file, gen := range want {
		var model, data bytes.Buffer
		if err := gen(&model, &data); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{file: model.Bytes()}
		if data.Len() > 0 {
			files[file+".data"] = data.Bytes()
		}
		for f, w := range files {
			got, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", f))
			if err != nil {
				t.Fatalf("%v (run go run ./testdata/models/gen.go)", err)
			}
			if !bytes.Equal(got, w) {
				t.Errorf("testdata/models/%s differs from its generator; run go run ./testdata/models/gen.go", f)
			}
		}
	}
}
