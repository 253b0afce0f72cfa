// Package layout places stored image vectors on a plane for `imgvec map`:
// randomized PCA to a few dozen dimensions, an exact k-nearest-neighbour
// graph in that space, then a UMAP-style layout of the graph (fuzzy
// neighbour weights, stochastic gradient descent with negative sampling,
// initialised from the first two principal components).
//
// Geometry: vectors are compared by cosine, as every sink searches: Fit
// and Place L2-normalise a copy of each vector before anything else (the
// caller's slices are never written). Neighbours are then Euclidean in the
// PCA space.
//
// Scale: Fit lays out every vector it is given (the caller samples: Fit's
// cost grows with the square of the count, about 1 s per 1,000² on one
// core for the neighbour graph; README.md has measured times). Place puts
// further vectors at the weighted mean of their nearest fitted ones
// without moving those, so a large collection is laid out as a sample
// plus projections.
//
// Determinism: the same vectors in the same order with the same Options
// (Seed included) give bit-identical results on the same platform, with
// any Workers: the neighbour search splits its rows among goroutines in
// fixed blocks that each write their own rows, and the descent runs on one
// goroutine with its own seeded generator.
//
// Concurrency and cancellation: Fit and Place use up to Options.Workers
// goroutines (default GOMAXPROCS) plus gonum's matrix products, which
// use up to GOMAXPROCS; all have returned when the call returns. Both
// check ctx between blocks and epochs and return an error wrapping
// ctx.Err(). A *Map is read-only after Fit: Place and Points may run
// concurrently.
package layout
