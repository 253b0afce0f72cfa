package connector

import (
	"hash/maphash"
	"sync/atomic"
)

// bloom is a fixed-size Bloom filter, safe for concurrent use (bits are
// set with atomic ORs). It replaces sets whose size grew with the
// collection: its memory is fixed, and its only error is a false
// positive (has reports a value never added), at a rate that grows with
// what was added — for the 16 MiB sha256 filter about 0.3% at 10 million
// rows, 90% at 100 million. The callers' answers stay exact: a false
// positive costs one VectorsBySHA256 query that finds nothing, or one
// reuse candidate too many in a dry run's estimate.
type bloom struct {
	words  []atomic.Uint64
	mask   uint64 // bits - 1 (bits is a power of two)
	probes int
	seed   maphash.Seed
	// complete is set once everything stored has been added; until then
	// mayHave answers true (a value not added yet may still come).
	complete atomic.Bool
}

func newBloom(bytes, probes int) *bloom {
	return &bloom{words: make([]atomic.Uint64, bytes/8), mask: uint64(bytes)*8 - 1, probes: probes, seed: maphash.MakeSeed()}
}

// Filter sizes: memory is fixed whatever the collection size (see bloom).
const (
	shaFilterBytes  = 16 << 20
	shaFilterProbes = 5
	// sizeFilterBytes: Plan only (ReuseCandidates).
	sizeFilterBytes  = 8 << 20
	sizeFilterProbes = 4
)

func (b *bloom) addString(s string) { b.add(maphash.String(b.seed, s)) }
func (b *bloom) addInt(v int64)     { b.add(maphash.Comparable(b.seed, v)) }

func (b *bloom) hasString(s string) bool { return b.has(maphash.String(b.seed, s)) }
func (b *bloom) hasInt(v int64) bool     { return b.has(maphash.Comparable(b.seed, v)) }

// mayHaveString is hasString once the filter is complete, and true before.
func (b *bloom) mayHaveString(s string) bool { return !b.complete.Load() || b.hasString(s) }

// Probes by double hashing: h1 + i*h2, h2 odd so that the probes differ.
func (b *bloom) add(h uint64) {
	h1, h2 := h, h>>32|1
	for i := range uint64(b.probes) {
		bit := (h1 + i*h2) & b.mask
		b.words[bit/64].Or(1 << (bit % 64))
	}
}

func (b *bloom) has(h uint64) bool {
	h1, h2 := h, h>>32|1
	for i := range uint64(b.probes) {
		bit := (h1 + i*h2) & b.mask
		if b.words[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
