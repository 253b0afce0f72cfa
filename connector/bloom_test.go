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

// A batch's values are in the filter once flushed, whether the batch was
// full or not, and not before.
func TestBloomBatch(t *testing.T) {
	const n = 3*bloomBatchSize + 5 // full batches, then a partial one
	b := newBloom(1<<16, shaFilterProbes)
	a := bloomBatch{b: b}
	for i := range n {
		a.addString(fmt.Sprint("in ", i))
		a.addInt(int64(i))
	}
	if last := n - 1; b.hasString(fmt.Sprint("in ", last)) && b.hasInt(int64(last)) {
		t.Error("the partial batch was in the filter before flush")
	}
	a.flush()
	for i := range n {
		if !b.hasString(fmt.Sprint("in ", i)) || !b.hasInt(int64(i)) {
			t.Fatalf("value %d added in a batch but not found", i)
		}
	}
}

// The batch is for the sha256 filter's size, where an add misses the cache.
func BenchmarkBloomAdd(b *testing.B) {
	values := make([]string, 1<<20)
	for i := range values {
		values[i] = fmt.Sprintf("%064x", i)
	}
	b.Run("one", func(b *testing.B) {
		f := newBloom(shaFilterBytes, shaFilterProbes)
		for i := range b.N {
			f.addString(values[i%len(values)])
		}
	})
	b.Run("batch", func(b *testing.B) {
		f := newBloom(shaFilterBytes, shaFilterProbes)
		a := bloomBatch{b: f}
		for i := range b.N {
			a.addString(values[i%len(values)])
		}
		a.flush()
	})
}
