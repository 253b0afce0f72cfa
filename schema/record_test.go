package schema

import (
	"errors"
	"math"
	"testing"
)

func TestCheckVector(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v         []float32
		notFinite bool
	}{
		{"NaN", []float32{0, float32(math.NaN())}, true},
		{"+Inf", []float32{float32(math.Inf(1)), 0}, true},
		{"-Inf", []float32{0, float32(math.Inf(-1))}, true},
		{"short", []float32{1}, false},
		{"long NaN", []float32{1, 2, float32(math.NaN())}, false},
	} {
		err := CheckVector(tc.v, 2)
		if err == nil || errors.Is(err, ErrNotFinite) != tc.notFinite {
			t.Errorf("%s: CheckVector = %v; want an error, wrapping ErrNotFinite: %v", tc.name, err, tc.notFinite)
		}
	}
	if err := CheckVector([]float32{0, -1}, 2); err != nil {
		t.Errorf("finite vector refused: %v", err)
	}
}
