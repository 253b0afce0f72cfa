package onnxgraph

import (
	"math"
	"testing"
)

func TestFloat32ToHalf(t *testing.T) {
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800},
		{65504, 0x7bff}, {65520, 0x7c00}, {1e6, 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{6.103515625e-05, 0x0400},  // smallest normal
		{5.960464477539063e-08, 1}, // smallest subnormal
		{2.98e-08, 0},              // below half of it: 0
		{1.0009765625, 0x3c01},     // 1 + 2^-10
		{1.00048828125, 0x3c00},    // 1 + 2^-11: tie, to even
		{1.00146484375, 0x3c02},    // 1 + 3·2^-11: tie, to even (up)
		{0.333333333, 0x3555},
	} {
		if got := float32ToHalf(c.f); got != c.want {
			t.Errorf("float32ToHalf(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	if got := float32ToHalf(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("NaN -> %#04x", got)
	}
}
