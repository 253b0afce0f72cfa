package layout

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// pca is a fitted projection: x ↦ (x/|x| − mean)·comp.
type pca struct {
	dim  int        // input dimension
	mean []float64  // of the normalised fitted vectors
	comp *mat.Dense // dim × k principal directions, by decreasing variance
}

// powerIterations and oversample are Halko, Martinsson and Tropp's
// defaults for a randomized range finder: two passes of X·Xᵀ sharpen the
// spectrum enough that the leading components come out as an exact SVD's
// would (to visual precision) on image embeddings, whose spectrum decays
// slowly.
const (
	powerIterations = 2
	oversample      = 10
)

// fitPCA finds the k leading principal directions of the normalised rows
// of x (k is lowered to what the data can give).
func fitPCA(x [][]float32, k int, seed uint64) (*pca, error) {
	n, d := len(x), len(x[0])
	X := normalisedRows(x, d)
	mean := make([]float64, d)
	for i := range n {
		for j, v := range X.RawRowView(i) {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := range n {
		row := X.RawRowView(i)
		for j := range row {
			row[j] -= mean[j]
		}
	}
	k = min(k, d, n)
	l := min(k+oversample, d, n)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	omega := mat.NewDense(l, d, nil) // the random test matrix, as rows
	for i := range l {
		row := omega.RawRowView(i)
		for j := range row {
			row[j] = rng.NormFloat64()
		}
	}
	// Rows of yt span the range of X (as rows of length n); rows of zt
	// that of Xᵀ. Orthonormalising between products keeps the power
	// iteration from collapsing onto the first component.
	yt := mat.NewDense(l, n, nil)
	zt := mat.NewDense(l, d, nil)
	yt.Mul(omega, X.T())
	orthonormaliseRows(yt)
	for range powerIterations {
		zt.Mul(yt, X)
		orthonormaliseRows(zt)
		yt.Mul(zt, X.T())
		orthonormaliseRows(yt)
	}
	zt.Mul(yt, X) // B = Qᵀ·X, l × d: X's action on its own range
	var svd mat.SVD
	if !svd.Factorize(zt, mat.SVDThin) {
		return nil, fmt.Errorf("pca: the SVD of the %d×%d sketch did not converge", l, d)
	}
	var v mat.Dense
	svd.VTo(&v) // d × l, columns by decreasing singular value
	comp := mat.NewDense(d, k, nil)
	comp.Copy(v.Slice(0, d, 0, k))
	return &pca{dim: d, mean: mean, comp: comp}, nil
}

// project returns the rows of x in PCA space, n × k row-major float32.
func (p *pca) project(x [][]float32) ([]float32, error) {
	for i, v := range x {
		if len(v) != p.dim {
			return nil, fmt.Errorf("vector %d has %d dimensions, the fitted ones %d", i, len(v), p.dim)
		}
	}
	X := normalisedRows(x, p.dim)
	for i := range len(x) {
		row := X.RawRowView(i)
		for j := range row {
			row[j] -= p.mean[j]
		}
	}
	_, k := p.comp.Dims()
	var y mat.Dense
	y.Mul(X, p.comp)
	out := make([]float32, len(x)*k)
	for i := range len(x) {
		for j, v := range y.RawRowView(i) {
			out[i*k+j] = float32(v)
		}
	}
	return out, nil
}

// normalisedRows copies x into a float64 matrix with each row scaled to
// unit length (a zero row stays zero).
func normalisedRows(x [][]float32, d int) *mat.Dense {
	X := mat.NewDense(len(x), d, nil)
	for i, v := range x {
		row := X.RawRowView(i)
		var ss float64
		for j, f := range v {
			row[j] = float64(f)
			ss += row[j] * row[j]
		}
		if ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for j := range row {
				row[j] *= inv
			}
		}
	}
	return X
}

// orthonormaliseRows makes a's rows orthonormal by Gram–Schmidt, run
// twice ("twice is enough": one pass loses orthogonality in floating
// point). A row that vanishes (rank deficiency) is left zero.
func orthonormaliseRows(a *mat.Dense) {
	r, _ := a.Dims()
	for range 2 {
		for i := range r {
			ri := a.RawRowView(i)
			for j := range i {
				rj := a.RawRowView(j)
				var dot float64
				for c := range ri {
					dot += ri[c] * rj[c]
				}
				for c := range ri {
					ri[c] -= dot * rj[c]
				}
			}
			var ss float64
			for _, v := range ri {
				ss += v * v
			}
			if ss < 1e-24 {
				clear(ri)
				continue
			}
			inv := 1 / math.Sqrt(ss)
			for c := range ri {
				ri[c] *= inv
			}
		}
	}
}
