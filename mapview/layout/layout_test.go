package layout

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"
)

// clusters makes c well-separated clusters of per points each in dim
// dimensions: random centres (nearly orthogonal at this dimension) plus
// noise a third of their spread. labels[i] is row i's cluster.
func clusters(c, per, dim int, seed uint64) (vecs [][]float32, labels []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float32, c)
	for i := range centres {
		centres[i] = make([]float32, dim)
		for j := range centres[i] {
			centres[i][j] = float32(rng.NormFloat64())
		}
	}
	for i := range c * per {
		l := i % c // interleaved, so that order carries no label
		v := make([]float32, dim)
		for j := range v {
			v[j] = centres[l][j] + float32(rng.NormFloat64()/3)
		}
		vecs, labels = append(vecs, v), append(labels, l)
	}
	return vecs, labels
}

// nearest2D returns the k nearest of pts to pts[i] (itself excluded).
func nearest2D(pts []Point, q Point, k, self int) []int {
	idx := make([]int, 0, len(pts))
	for j := range pts {
		if j != self {
			idx = append(idx, j)
		}
	}
	d := func(j int) float32 { dx, dy := pts[j].X-q.X, pts[j].Y-q.Y; return dx*dx + dy*dy }
	sort.SliceStable(idx, func(a, b int) bool { return d(idx[a]) < d(idx[b]) })
	return idx[:k]
}

// labelKeep is the share of the k nearest 2-D neighbours of each point
// that have its label.
func labelKeep(pts []Point, labels []int, k int) float64 {
	same := 0
	for i := range pts {
		for _, j := range nearest2D(pts, pts[i], k, i) {
			if labels[j] == labels[i] {
				same++
			}
		}
	}
	return float64(same) / float64(len(pts)*k)
}

// trustworthiness is Venna and Kaski's T(k): 1 when every 2-D
// neighbourhood holds only points that are among the k nearest in the
// original (cosine) space too, lowered by how far down the original
// ranking each intruder is.
func trustworthiness(vecs [][]float32, pts []Point, k int) float64 {
	n := len(vecs)
	cos := func(a, b []float32) float64 {
		var ab, aa, bb float64
		for i := range a {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		return 1 - ab/math.Sqrt(aa*bb)
	}
	var penalty float64
	rank := make([]int, n)
	order := make([]int, n)
	for i := range n {
		dist := make([]float64, n)
		for j := range n {
			order[j] = j
			dist[j] = cos(vecs[i], vecs[j])
		}
		dist[i] = -1
		sort.SliceStable(order, func(a, b int) bool { return dist[order[a]] < dist[order[b]] })
		for r, j := range order {
			rank[j] = r // 0 is i itself
		}
		for _, j := range nearest2D(pts, pts[i], k, i) {
			if rank[j] > k {
				penalty += float64(rank[j] - k)
			}
		}
	}
	return 1 - 2/float64(n*k*(2*n-3*k-1))*penalty
}

func TestFitKeepsClusters(t *testing.T) {
	vecs, labels := clusters(8, 75, 96, 7)
	m, err := Fit(context.Background(), vecs, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pts := m.Points()
	keep := labelKeep(pts, labels, 10)
	trust := trustworthiness(vecs, pts, 10)
	t.Logf("%d points: 10-NN label keep %.3f, trustworthiness T(10) %.3f", len(pts), keep, trust)
	if keep < 0.9 {
		t.Errorf("10-NN label keep %.3f, want ≥ 0.9", keep)
	}
	if trust < 0.9 {
		t.Errorf("trustworthiness %.3f, want ≥ 0.9", trust)
	}
	// The neighbour lists are the PCA space's: in these clusters, the
	// nearest is always of the same cluster.
	for i := range pts {
		for _, j := range m.Neighbours(i)[:5] {
			if labels[j] != labels[i] {
				t.Fatalf("point %d (cluster %d): neighbour %d is of cluster %d", i, labels[i], j, labels[j])
			}
		}
	}
}

func TestFitIsDeterministic(t *testing.T) {
	vecs, _ := clusters(4, 50, 40, 3)
	fit := func(seed uint64, workers int) []Point {
		m, err := Fit(context.Background(), vecs, Options{Seed: seed, Workers: workers, Epochs: 100})
		if err != nil {
			t.Fatal(err)
		}
		return m.Points()
	}
	a, b := fit(5, 1), fit(5, 3)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different maps (1 vs 3 workers)")
	}
	if slices.Equal(a, fit(6, 1)) {
		t.Fatal("another seed gave the same map")
	}
	for _, p := range a {
		if math.IsNaN(float64(p.X)) || math.IsNaN(float64(p.Y)) {
			t.Fatalf("point %v", p)
		}
	}
}

func TestPlaceProjectsIntoClusters(t *testing.T) {
	vecs, labels := clusters(6, 80, 64, 11)
	fitted, placed := vecs[:240], vecs[240:]
	m, err := Fit(context.Background(), fitted, Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	pts, near, err := m.Place(context.Background(), placed)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i, p := range pts {
		for _, j := range nearest2D(m.Points(), p, 10, -1) {
			if labels[j] == labels[240+i] {
				same++
			}
		}
		if labels[near[i][0]] != labels[240+i] {
			t.Errorf("placed %d: nearest fitted vector %d is of another cluster", i, near[i][0])
		}
	}
	if keep := float64(same) / float64(len(pts)*10); keep < 0.9 {
		t.Errorf("placed points: 10-NN label keep %.3f, want ≥ 0.9", keep)
	}
	again, _, err := m.Place(context.Background(), placed)
	if err != nil || !slices.Equal(pts, again) {
		t.Fatalf("Place is not deterministic (err %v)", err)
	}
}

func TestFitSmallAndBadInputs(t *testing.T) {
	ctx := context.Background()
	if _, err := Fit(ctx, nil, Options{}); err == nil {
		t.Error("no vectors: no error")
	}
	if _, err := Fit(ctx, [][]float32{{1, 2}, {1, 2, 3}}, Options{}); err == nil {
		t.Error("mixed dimensions: no error")
	}
	for n := 1; n <= 4; n++ {
		vecs := make([][]float32, n)
		for i := range vecs {
			vecs[i] = []float32{float32(i), 1, float32(i * i)}
		}
		m, err := Fit(ctx, vecs, Options{})
		if err != nil {
			t.Fatalf("%d vectors: %v", n, err)
		}
		if len(m.Points()) != n || len(m.Neighbours(0)) != n-1 {
			t.Fatalf("%d vectors: %d points, %d neighbours", n, len(m.Points()), len(m.Neighbours(0)))
		}
		if _, _, err := m.Place(ctx, [][]float32{{1, 1}}); err == nil {
			t.Fatalf("%d vectors: placing a vector of another dimension: no error", n)
		}
		pts, _, err := m.Place(ctx, [][]float32{{0, 1, 0}})
		if err != nil || len(pts) != 1 {
			t.Fatalf("%d vectors: place: %v", n, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	vecs, _ := clusters(2, 20, 8, 1)
	if _, err := Fit(cancelled, vecs, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

func TestKNNIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, dim, k = 700, 7, 6 // more rows than one block
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.IntN(4)) // many ties
	}
	nb, err := knn(context.Background(), x, x, dim, k, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		type cand struct {
			j int32
			d float32
		}
		var all []cand
		for j := range n {
			if j == i {
				continue
			}
			var s float32
			for c := range dim {
				d := x[i*dim+c] - x[j*dim+c]
				s += d * d
			}
			all = append(all, cand{int32(j), s})
		}
		sort.SliceStable(all, func(a, b int) bool { return all[a].d < all[b].d })
		idx, dist := nb.row(i)
		for c := range k {
			if idx[c] != all[c].j || math.Abs(float64(dist[c]*dist[c]-all[c].d)) > 1e-3 {
				t.Fatalf("row %d: neighbours %v %v, want %v", i, idx, dist, all[:k])
			}
		}
	}
}

func TestPCAFindsTheSpreadDirections(t *testing.T) {
	// Points spread along two axes of 30 dimensions (10× and 3×), with a
	// little noise: the first components are those axes.
	rng := rand.New(rand.NewPCG(4, 4))
	var vecs [][]float32
	for range 300 {
		v := make([]float32, 30)
		for j := range v {
			v[j] = float32(rng.NormFloat64() * 0.01)
		}
		v[0] = 10 // keeps every vector's norm about the same, so normalising keeps the shape
		v[3] += float32(rng.NormFloat64())
		v[7] += float32(rng.NormFloat64() * 0.3)
		vecs = append(vecs, v)
	}
	p, err := fitPCA(vecs, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := math.Abs(p.comp.At(3, 0)); c < 0.99 {
		t.Errorf("first component's weight on axis 3: %.3f, want ≈ 1", c)
	}
	if c := math.Abs(p.comp.At(7, 1)); c < 0.99 {
		t.Errorf("second component's weight on axis 7: %.3f, want ≈ 1", c)
	}
}

// TestMeasureLayout prints the layout time of the README (IMGVEC_BENCH_LAYOUT=N
// points of 4096 dimensions, in clusters; above 10,000 a 10,000-point
// sample is fitted and the rest placed).
func TestMeasureLayout(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_LAYOUT"))
	if n <= 0 {
		t.Skip("measurement: set IMGVEC_BENCH_LAYOUT=10000 (or 100000)")
	}
	vecs, labels := clusters(50, n/50, 4096, 9)
	start := time.Now()
	sample := min(n, 10000)
	m, err := Fit(context.Background(), vecs[:sample], Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	fitted := time.Since(start)
	pts := m.Points()
	for lo := sample; lo < n; lo += 4096 {
		placed, _, err := m.Place(context.Background(), vecs[lo:min(lo+4096, n)])
		if err != nil {
			t.Fatal(err)
		}
		pts = append(pts, placed...)
	}
	total := time.Since(start)
	k := min(2000, n)
	t.Logf("%d points × 4096: fit %d in %s, total %s; 10-NN label keep (first %d) %.3f",
		n, sample, fitted.Round(time.Millisecond), total.Round(time.Millisecond), k, labelKeep(pts[:k], labels[:k], 10))
}

func TestPowMatchesMath(t *testing.T) {
	for _, y := range []float32{curveB, curveB - 1, 0.5, 2} {
		for x := float32(1e-20); x < 1e6; x *= 1.37 {
			want := math.Pow(float64(x), float64(y))
			if want < 1e-30 || want > 1e30 {
				continue // beyond float32's normal range
			}
			if got := float64(pow(x, y)); math.Abs(got-want) > 2e-5*want {
				t.Fatalf("pow(%g, %g) = %g, want %g", x, y, got, want)
			}
		}
	}
}
