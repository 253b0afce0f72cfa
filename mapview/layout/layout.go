package layout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
)

// Options tune a layout; the zero value gives the defaults.
type Options struct {
	Dims      int    // PCA dimensions the neighbours are found in (default 50)
	Neighbors int    // k of the neighbour graph (default 15)
	Epochs    int    // descent epochs (default 500 up to 10,000 points, else 200)
	Seed      uint64 // the same seed and input give the same map
	Workers   int    // goroutines of the neighbour search (default GOMAXPROCS)
}

func (o Options) withDefaults(n int) Options {
	if o.Dims <= 0 {
		o.Dims = 50
	}
	if o.Neighbors <= 0 {
		o.Neighbors = 15
	}
	if o.Epochs <= 0 {
		o.Epochs = 500
		if n > 10000 {
			o.Epochs = 200
		}
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Point is a position on the map. Its scale means nothing: callers fit
// the points' bounding box to their canvas.
type Point struct{ X, Y float32 }

// Map is a fitted layout: the positions of the vectors given to Fit, their
// neighbours, and what Place needs to add more.
type Map struct {
	o       Options
	pca     *pca
	dims    int       // PCA dimensions actually used
	reduced []float32 // fitted vectors in PCA space, n × dims
	points  []Point
	nb      neighbours
}

// Fit lays out vectors (all of one dimension, at least one). The caller
// keeps ownership of vectors; Fit does not retain them.
func Fit(ctx context.Context, vectors [][]float32, o Options) (*Map, error) {
	n := len(vectors)
	if n == 0 {
		return nil, errors.New("layout: no vectors")
	}
	for i, v := range vectors {
		if len(v) != len(vectors[0]) || len(v) == 0 {
			return nil, fmt.Errorf("layout: vector %d has %d dimensions, vector 0 %d", i, len(v), len(vectors[0]))
		}
	}
	o = o.withDefaults(n)
	p, err := fitPCA(vectors, o.Dims, o.Seed)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	reduced, err := p.project(vectors)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	_, dims := p.comp.Dims()
	m := &Map{o: o, pca: p, dims: dims, reduced: reduced, points: make([]Point, n)}
	if n == 1 {
		m.nb = neighbours{k: 0}
		return m, nil
	}
	if m.nb, err = knn(ctx, reduced, reduced, dims, min(o.Neighbors, n-1), true, o.Workers); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	pos := initialPositions(reduced, n, dims)
	rng := rand.New(rand.NewPCG(o.Seed, 0x5851f42d4c957f2d))
	if err := descend(ctx, pos, fuzzyGraph(m.nb, n), o.Epochs, rng); err != nil {
		return nil, err
	}
	for i := range m.points {
		m.points[i] = Point{pos[2*i], pos[2*i+1]}
	}
	return m, nil
}

// initialPositions are the first two principal coordinates, each scaled
// to [0, 10] as UMAP scales its initialisation: the descent's step sizes
// assume that extent.
func initialPositions(reduced []float32, n, dims int) []float32 {
	pos := make([]float32, 2*n)
	for c := range min(2, dims) {
		lo, hi := reduced[c], reduced[c]
		for i := range n {
			lo, hi = min(lo, reduced[i*dims+c]), max(hi, reduced[i*dims+c])
		}
		scale := float32(0)
		if hi > lo {
			scale = 10 / (hi - lo)
		}
		for i := range n {
			pos[2*i+c] = (reduced[i*dims+c] - lo) * scale
		}
	}
	return pos
}

// Points are the positions of the fitted vectors, in Fit's order. The
// slice is the Map's: read it, do not write it.
func (m *Map) Points() []Point { return m.points }

// Neighbours are the fitted vectors nearest fitted vector i (itself not
// included), nearest first, by distance in the PCA space: up to
// Options.Neighbors indices into Fit's vectors. The slice is the Map's.
func (m *Map) Neighbours(i int) []int32 {
	if m.nb.k == 0 {
		return nil
	}
	idx, _ := m.nb.row(i)
	return idx
}

// Place positions further vectors on the fitted map without moving it:
// each at the mean of its Options.Neighbors nearest fitted vectors'
// points, weighted by UMAP's fuzzy membership. It returns the points and,
// for each, those neighbours (indices into Fit's vectors, nearest first).
func (m *Map) Place(ctx context.Context, vectors [][]float32) ([]Point, [][]int32, error) {
	if len(vectors) == 0 {
		return nil, nil, nil
	}
	reduced, err := m.pca.project(vectors)
	if err != nil {
		return nil, nil, fmt.Errorf("layout: place: %w", err)
	}
	k := min(m.o.Neighbors, len(m.points))
	nb, err := knn(ctx, m.reduced, reduced, m.dims, k, false, m.o.Workers)
	if err != nil {
		return nil, nil, fmt.Errorf("layout: place: %w", err)
	}
	points := make([]Point, len(vectors))
	near := make([][]int32, len(vectors))
	w := make([]float32, k)
	for i := range vectors {
		idx, dist := nb.row(i)
		memberships(dist, w)
		var sx, sy, sw float32
		for c, j := range idx {
			sx += w[c] * m.points[j].X
			sy += w[c] * m.points[j].Y
			sw += w[c]
		}
		points[i] = Point{sx / sw, sy / sw}
		near[i] = idx
	}
	return points, near, nil
}
