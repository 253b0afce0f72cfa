package connector

import (
	"hash/maphash"
	"sync/atomic"
)

// bloom is a fixed-size Bloom filter, safe for concurrent use (bits are
// set with atomic ORs). It replaces sets whose size grew with the
// collection: its memory is fixed, and its only error is a false
// positive (has reports a value never added), at a rate that grows with
// what was added — for the 16 MiB sha256 filter under 1% at 10 million
// rows, most values at 100 million. It is blocked: a value's probes all
// fall in one 64-byte block (one cache miss per add, not one per probe). The callers' answers stay exact: a false
// positive costs one VectorsBySHA256 query that finds nothing, or one
// reuse candidate too many in a dry run's estimate.
type bloom struct {
	words  []atomic.Uint64
	blocks uint64
	probes int
	seed   maphash.Seed
	// complete is set once everything stored has been added; until then
	// mayHave answers true (a value not added yet may still come).
	complete atomic.Bool
}

// blockWords is the size of a block (a cache line).
const blockWords = 8

func newBloom(bytes, probes int) *bloom {
	return &bloom{words: make([]atomic.Uint64, bytes/8), blocks: uint64(bytes / 8 / blockWords), probes: probes, seed: maphash.MakeSeed()}
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

// block returns h's block.
func (b *bloom) block(h uint64) []atomic.Uint64 {
	return b.words[(h%b.blocks)*blockWords:][:blockWords]
}

// probe calls f with the word and bit of each probe of h: the block from
// h, the bits within it from 9-bit slices of a remix of h.
func (b *bloom) probe(h uint64, f func(w *atomic.Uint64, bit uint64) bool) bool {
	block := b.block(h)
	bits := h * 0x9E3779B97F4A7C15
	for range b.probes {
		in := bits & (blockWords*64 - 1)
		if !f(&block[in/64], 1<<(in%64)) {
			return false
		}
		bits >>= 9
	}
	return true
}

func (b *bloom) add(h uint64) {
	b.probe(h, func(w *atomic.Uint64, bit uint64) bool { w.Or(bit); return true })
}

// bloomBatch adds values to a bloom a batch at a time, for one goroutine
// that adds many (the stored stream): an add is a cache miss, and an
// atomic OR waits for its own miss before the next one starts, so that
// one add at a time costs a full memory latency each. A batch first loads
// a word of every value's block — independent loads, whose misses
// overlap — and then ORs the bits in, into blocks now cached. Values are
// in the filter once flush returned.
type bloomBatch struct {
	b      *bloom
	hashes [bloomBatchSize]uint64
	n      int
}

// bloomBatchSize is the number of misses a batch overlaps: more than a
// core can have in flight, and small enough that the batch's blocks stay
// in the L1 cache until they are ORed.
const bloomBatchSize = 64

func (a *bloomBatch) addString(s string) { a.addHash(maphash.String(a.b.seed, s)) }
func (a *bloomBatch) addInt(v int64)     { a.addHash(maphash.Comparable(a.b.seed, v)) }

func (a *bloomBatch) addHash(h uint64) {
	a.hashes[a.n] = h
	a.n++
	if a.n == len(a.hashes) {
		a.flush()
	}
}

// flush adds the values queued.
func (a *bloomBatch) flush() {
	hashes := a.hashes[:a.n]
	for _, h := range hashes {
		a.b.block(h)[0].Load() // the compiler keeps an atomic load whose value is unused
	}
	for _, h := range hashes {
		a.b.add(h)
	}
	a.n = 0
}

func (b *bloom) has(h uint64) bool {
	return b.probe(h, func(w *atomic.Uint64, bit uint64) bool { return w.Load()&bit != 0 })
}
