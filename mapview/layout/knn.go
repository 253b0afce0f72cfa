package layout

import (
	"context"
	"fmt"
	"math"
	"sort"

	"golang.org/x/sync/errgroup"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// knnBlock is how many query rows one matrix product serves: the product
// is knnBlock × (base rows) floats (10 MB for 10,000 base rows).
const knnBlock = 256

// neighbours is a k-nearest-neighbour table: row i's neighbours are
// idx[i*k:(i+1)*k], nearest first, with their Euclidean distances.
type neighbours struct {
	k    int
	idx  []int32
	dist []float32
}

func (nb neighbours) row(i int) ([]int32, []float32) {
	return nb.idx[i*nb.k : (i+1)*nb.k], nb.dist[i*nb.k : (i+1)*nb.k]
}

// knn finds, for each row of queries (n × dim, row-major), the k nearest
// rows of base by Euclidean distance, ties broken by the lower index. With
// self, queries is base and a row is not its own neighbour. Exact and
// brute force: squared distances come from one matrix product per block of
// queries (|q|² + |b|² − 2q·b).
func knn(ctx context.Context, base, queries []float32, dim, k int, self bool, workers int) (neighbours, error) {
	nb, nq := len(base)/dim, len(queries)/dim
	avail := nb
	if self {
		avail--
	}
	if k > avail {
		return neighbours{}, fmt.Errorf("knn: %d neighbours asked of %d points", k, avail)
	}
	baseNorm := rowNorms(base, dim)
	queryNorm := baseNorm
	if !self {
		queryNorm = rowNorms(queries, dim)
	}
	out := neighbours{k: k, idx: make([]int32, nq*k), dist: make([]float32, nq*k)}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	bufs := make(chan []float32, workers)
	for range workers {
		bufs <- make([]float32, knnBlock*nb)
	}
	for lo := 0; lo < nq; lo += knnBlock {
		hi := min(lo+knnBlock, nq)
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("knn: %w", err)
			}
			prod := <-bufs
			defer func() { bufs <- prod }()
			rows := hi - lo
			blas32.Gemm(blas.NoTrans, blas.Trans, 1,
				blas32.General{Rows: rows, Cols: dim, Stride: dim, Data: queries[lo*dim : hi*dim]},
				blas32.General{Rows: nb, Cols: dim, Stride: dim, Data: base},
				0, blas32.General{Rows: rows, Cols: nb, Stride: nb, Data: prod[:rows*nb]})
			for r := range rows {
				q := lo + r
				skip := -1
				if self {
					skip = q
				}
				selectNearest(prod[r*nb:(r+1)*nb], queryNorm[q], baseNorm, skip, out.idx[q*k:(q+1)*k], out.dist[q*k:(q+1)*k])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return neighbours{}, err
	}
	return out, nil
}

// selectNearest fills idx and dist (length k) with the k smallest
// distances given the dot products of one query with every base row,
// nearest first; skip is a base row to leave out (or −1).
func selectNearest(dots []float32, qn float32, baseNorm []float32, skip int, idx []int32, dist []float32) {
	k := len(idx)
	// A max-heap on (distance, index) of the best k so far: its root is
	// the one to beat.
	n := 0
	worse := func(a, b int) bool { return dist[a] > dist[b] || dist[a] == dist[b] && idx[a] > idx[b] }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= n {
				return
			}
			if r := l + 1; r < n && worse(r, l) {
				l = r
			}
			if !worse(l, i) {
				return
			}
			idx[i], idx[l], dist[i], dist[l] = idx[l], idx[i], dist[l], dist[i]
			i = l
		}
	}
	for j, dot := range dots {
		if j == skip {
			continue
		}
		d := max(qn+baseNorm[j]-2*dot, 0)
		if n < k {
			idx[n], dist[n] = int32(j), d
			n++
			for i := n - 1; i > 0; {
				p := (i - 1) / 2
				if !worse(i, p) {
					break
				}
				idx[i], idx[p], dist[i], dist[p] = idx[p], idx[i], dist[p], dist[i]
				i = p
			}
			continue
		}
		if d < dist[0] { // equal distances keep the lower index, seen first
			idx[0], dist[0] = int32(j), d
			down(0)
		}
	}
	sort.Sort(byDistance{idx, dist})
	for i := range dist {
		dist[i] = float32(math.Sqrt(float64(dist[i])))
	}
}

type byDistance struct {
	idx  []int32
	dist []float32
}

func (b byDistance) Len() int { return len(b.idx) }
func (b byDistance) Less(i, j int) bool {
	return b.dist[i] < b.dist[j] || b.dist[i] == b.dist[j] && b.idx[i] < b.idx[j]
}
func (b byDistance) Swap(i, j int) {
	b.idx[i], b.idx[j] = b.idx[j], b.idx[i]
	b.dist[i], b.dist[j] = b.dist[j], b.dist[i]
}

// rowNorms returns the squared length of each row.
func rowNorms(x []float32, dim int) []float32 {
	out := make([]float32, len(x)/dim)
	for i := range out {
		var s float32
		for _, v := range x[i*dim : (i+1)*dim] {
			s += v * v
		}
		out[i] = s
	}
	return out
}
