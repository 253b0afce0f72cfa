package onnxgraph

import (
	"testing"
)

// build encodes and re-parses a hand-built graph.
func build(t *testing.T, g *Graph, ir, opset int64) (*Model, []byte) {
	t.Helper()
	b, err := newModel(ir, opset, "test", g).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, b), b
}

func TestResNetStyleAvgpool(t *testing.T) {
	g := &Graph{Name: "resnetish"}
	b := &builder{g: g, seed: 5}
	g.Inputs = []*ValueInfo{floatInput("input", 1, 3, 32, 32)}
	conv := func(in, w, out string, cin, cout int64) {
		b.weight(w, []int64{cout, cin, 3, 3}, heBound(cin*9))
		b.node("Conv", out, []string{in, w}, out, ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1))
	}
	conv("input", "c1.w", "c1", 3, 8)
	b.node("Relu", "r1", []string{"c1"}, "r1")
	conv("r1", "c2.w", "c2", 8, 8)
	b.node("Add", "add", []string{"c2", "r1"}, "sum")
	b.node("Relu", "r2", []string{"sum"}, "r2")
	b.node("GlobalAveragePool", "gap", []string{"r2"}, "gap")
	b.node("Flatten", "flat", []string{"gap"}, "flat", intA("axis", 1))
	b.weight("fc.w", []int64{10, 8}, heBound(8))
	b.weight("fc.b", []int64{10}, 0.1)
	b.node("Gemm", "fc", []string{"flat", "fc.w", "fc.b"}, "logits", intA("transB", 1))
	g.Outputs = []*ValueInfo{floatInput("logits", 1, 10)}
	m, _ := build(t, g, 7, 13)

	r := m.Inspect()
	l, ok := r.Layer("avgpool")
	if !ok || l.Tensor != "flat" || l.Dim != 8 || l.Op != "GlobalAveragePool" {
		t.Fatalf("avgpool = %+v, layers %v", l, r.LayerNames())
	}
	if fc, ok := r.Layer("fc6"); !ok || fc.Tensor != "logits" || fc.Dim != 10 {
		t.Errorf("fc6 = %+v", fc)
	}
	out, cl, err := m.Cut("avgpool")
	if err != nil {
		t.Fatal(err)
	}
	needORT(t)
	x := naturalImage(32, 2)
	v, shape := runModel(t, out, "input", x, []int64{2, 3, 32, 32}, cl.Tensor)
	checkFeatures(t, v, shape, 2, 8)
}

func TestMatMulAddLayers(t *testing.T) {
	g := &Graph{Name: "mlp"}
	b := &builder{g: g, seed: 9}
	g.Inputs = []*ValueInfo{floatInput("feat", 1, 2, 4, 4)}
	b.node("Flatten", "flat", []string{"feat"}, "flat")
	b.weight("w1", []int64{32, 24}, heBound(32))
	b.weight("b1", []int64{24}, 0.1)
	b.node("MatMul", "mm1", []string{"flat", "w1"}, "mm1")
	b.node("Add", "add1", []string{"mm1", "b1"}, "h1")
	b.node("Identity", "id1", []string{"h1"}, "h1id")
	b.node("Relu", "relu1", []string{"h1id"}, "a1")
	b.weight("w2", []int64{24, 5}, heBound(24))
	b.node("MatMul", "mm2", []string{"a1", "w2"}, "out")
	g.Outputs = []*ValueInfo{floatInput("out", 1, 5)}
	m, _ := build(t, g, 8, 17)
	r := m.Inspect()
	fc6, _ := r.Layer("fc6")
	fc7, _ := r.Layer("fc7")
	if fc6.Tensor != "a1" || fc6.Dim != 24 || fc6.Op != "MatMul" || fc7.Tensor != "out" || fc7.Dim != 5 {
		t.Fatalf("layers %+v", r.Layers)
	}
	out, cl, err := m.Cut("fc6")
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, out)
	if c.Initializer("w2") != nil {
		t.Error("w2 kept")
	}
	needORT(t)
	v, shape := runModel(t, out, "feat", naturalImage(4, 3)[:3*32], []int64{3, 2, 4, 4}, cl.Tensor)
	if len(shape) != 2 || shape[0] != 3 || shape[1] != 24 {
		t.Fatalf("shape %v", shape)
	}
	for _, x := range v {
		if x < 0 {
			t.Fatalf("negative relu output %v", x)
		}
	}
}
