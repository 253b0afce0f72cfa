package connector

import (
	"context"
	"testing"
)

// A receiver that gives both buffers back between two of the sender's
// adds (it takes small chunks fast) keeps both: the sender never makes a
// third, which the receiver's chunk shows by its backing array.
func TestChunkerKeepsBothBuffers(t *testing.T) {
	c := newChunker[int](context.Background())
	arrays := map[*int]bool{}
	take := func() []int {
		chunk, ok, err := c.next()
		if !ok || err != nil {
			t.Fatalf("next: %v, %v", ok, err)
		}
		arrays[&chunk[:1][0]] = true
		return chunk
	}
	for i := range 100 {
		if err := c.add(i); err != nil {
			t.Fatal(err)
		}
		first := take()
		if err := c.add(i); err != nil { // fills the other buffer while the receiver holds first
			t.Fatal(err)
		}
		c.recycle(first)
		c.recycle(take())
	}
	if len(arrays) > 2 {
		t.Errorf("the sender made %d buffers, want 2", len(arrays))
	}
}
