package onnxgraph

import (
	"math"
	"testing"
)

// TestBiasShift: each output channel's shift is the sum of its weights'
// rounding errors times the mean of the input channel each reads (a
// transposed Gemm weight [N, K]: input channel = axis 1); a grouped Conv
// or means of the wrong length get none.
func TestBiasShift(t *testing.T) {
	gemm := &Node{OpType: "Gemm", Attrs: []*Attr{intA("transB", 1)}}
	w := []float32{1, 0.004, 0.5, -0.25}
	dims := []int64{2, 2}
	q, scales := quantizeWeights(w, dims, 0, 127)
	means := []float32{3, 2}
	got := biasShift(gemm, w, q, scales, dims, 0, means)
	for o := range 2 {
		var want float64
		for c := range 2 {
			want += (float64(int8(q[o*2+c]))*float64(scales[o]) - float64(w[o*2+c])) * float64(means[c])
		}
		if math.Abs(got[o]-want) > 1e-12 {
			t.Errorf("channel %d: shift %g, want %g", o, got[o], want)
		}
	}
	// 0.004 rounds to 1/127: the second input channel (mean 2) shifts
	// channel 0 by 2 × (1/127 - 0.004).
	if want := 2 * (1.0/127 - 0.004); math.Abs(got[0]-want) > 1e-6 {
		t.Errorf("channel 0: shift %g, want %g", got[0], want)
	}
	if s := biasShift(gemm, w, q, scales, dims, 0, []float32{1}); s != nil {
		t.Errorf("means of the wrong length: shift %v", s)
	}
	grouped := &Node{OpType: "Conv", Attrs: []*Attr{intA("group", 2)}}
	if s := biasShift(grouped, w, q, scales, []int64{2, 2, 1, 1}, 0, means); s != nil {
		t.Errorf("grouped Conv: shift %v", s)
	}
}
