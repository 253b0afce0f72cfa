package connector

import (
	"fmt"
	"testing"
)

// No false negatives, and false positives near the rate the sizes were
// chosen for (a small filter, loaded as the sha256 filter is at 10 million
// rows: 13.4 bits per value).
func TestBloom(t *testing.T) {
	const n = 10_000
	b := newBloom(2*n*134/80, shaFilterProbes) // 2n values
	for i := range n {
		b.addString(fmt.Sprint("in ", i))
		b.addInt(int64(i))
	}
	for i := range n {
		if !b.hasString(fmt.Sprint("in ", i)) || !b.hasInt(int64(i)) {
			t.Fatalf("value %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if b.hasString(fmt.Sprint("out ", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.01 {
		t.Errorf("false positive rate %.3f, want under 0.01", rate)
	}
	if b.mayHaveString("out") != true {
		t.Error("an incomplete filter must answer maybe")
	}
	b.complete.Store(true)
	if b.mayHaveString(fmt.Sprint("in ", 1)) != true {
		t.Error("a complete filter lost a value")
	}
}
