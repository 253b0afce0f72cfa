package layout

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// The low-dimensional similarity is 1 / (1 + a·d^(2b)); these a and b are
// what UMAP fits for min_dist 0.1, spread 1 (its defaults).
const (
	curveA = 1.576943460405378
	curveB = 0.8950608781227859
	// negativeRate is how many random points repel an edge's ends per
	// attraction along it.
	negativeRate = 5
	// gradClip bounds one coordinate's step, as UMAP does.
	gradClip = 4
)

// memberships writes into w the fuzzy weights of one point's neighbours
// at distances dist (nearest first): exp(−(d − ρ)/σ), with ρ the nearest
// distance and σ found by bisection so that the weights add up to
// log2(k) — UMAP's smooth_knn_dist, which makes every point's
// neighbourhood count the same whatever the local density.
func memberships(dist, w []float32) {
	k := len(dist)
	if k == 0 {
		return
	}
	rho := float64(dist[0])
	target := math.Log2(float64(k))
	var mean float64
	for _, d := range dist {
		mean += float64(d)
	}
	mean /= float64(k)
	sum := func(sigma float64) float64 {
		var s float64
		for _, d := range dist {
			s += math.Exp(-max(float64(d)-rho, 0) / sigma)
		}
		return s
	}
	lo, hi, sigma := 0.0, math.Inf(1), 1.0
	for range 64 {
		s := sum(sigma)
		if math.Abs(s-target) < 1e-5 {
			break
		}
		if s > target {
			hi = sigma
			sigma = (lo + hi) / 2
		} else {
			lo = sigma
			if math.IsInf(hi, 1) {
				sigma *= 2
			} else {
				sigma = (lo + hi) / 2
			}
		}
	}
	// A floor on σ (UMAP's MIN_K_DIST_SCALE) keeps a point among exact
	// duplicates from giving its other neighbours no weight at all.
	sigma = max(sigma, 1e-3*mean, 1e-12)
	for i, d := range dist {
		w[i] = float32(math.Exp(-max(float64(d)-rho, 0) / sigma))
	}
}

// graph is the symmetric fuzzy neighbour graph: one entry per unordered
// pair, with weight w_ij + w_ji − w_ij·w_ji (the fuzzy union).
type graph struct {
	head, tail []int32
	weight     []float32
}

func fuzzyGraph(nb neighbours, n int) graph {
	k := nb.k
	w := make([]float32, n*k)
	for i := range n {
		_, d := nb.row(i)
		memberships(d, w[i*k:(i+1)*k])
	}
	directed := make(map[uint64]float32, n*k)
	key := func(i, j int32) uint64 { return uint64(i)<<32 | uint64(uint32(j)) }
	for i := range n {
		idx, _ := nb.row(i)
		for c, j := range idx {
			directed[key(int32(i), j)] = w[i*k+c]
		}
	}
	var g graph
	for i := range n {
		idx, _ := nb.row(i)
		for c, j := range idx {
			wij := w[i*k+c]
			wji, back := directed[key(j, int32(i))]
			if back && j < int32(i) {
				continue // the pair was emitted from j's row
			}
			g.head = append(g.head, int32(i))
			g.tail = append(g.tail, j)
			g.weight = append(g.weight, wij+wji-wij*wji)
		}
	}
	return g
}

// descend runs UMAP's stochastic gradient descent on pos (n × 2) for
// epochs: each edge is sampled in proportion to its weight (the heaviest
// every epoch), pulls its ends together and pushes each from
// negativeRate random points; the step shrinks linearly to zero.
func descend(ctx context.Context, pos []float32, g graph, epochs int, rng *rand.Rand) error {
	n := len(pos) / 2
	var maxW float32
	for _, w := range g.weight {
		maxW = max(maxW, w)
	}
	type edgeClock struct {
		head, tail                   int32
		every, next, everyNeg, nextN float32
	}
	var edges []edgeClock
	for e, w := range g.weight {
		if w < maxW/float32(epochs) {
			continue // would not be sampled once: UMAP drops it
		}
		every := maxW / w
		edges = append(edges, edgeClock{head: g.head[e], tail: g.tail[e], every: every, next: every,
			everyNeg: every / negativeRate, nextN: every / negativeRate})
	}
	repel := func(p int32, alpha float32) {
		px, py := pos[2*p], pos[2*p+1]
		q := int32(rng.IntN(n))
		if q == p {
			return
		}
		dx, dy := px-pos[2*q], py-pos[2*q+1]
		d2 := dx*dx + dy*dy
		var gx, gy float32 = gradClip, gradClip
		if d2 > 0 {
			c := 2 * curveB / ((0.001 + d2) * (curveA*pow(d2, curveB) + 1))
			gx, gy = clip(c*dx), clip(c*dy)
		}
		pos[2*p] += gx * alpha
		pos[2*p+1] += gy * alpha
	}
	for epoch := 1; epoch <= epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		alpha := 1 - float32(epoch-1)/float32(epochs)
		ef := float32(epoch)
		for i := range edges {
			e := &edges[i]
			if e.next > ef {
				continue
			}
			h, t := e.head, e.tail
			dx, dy := pos[2*h]-pos[2*t], pos[2*h+1]-pos[2*t+1]
			if d2 := dx*dx + dy*dy; d2 > 0 {
				c := -2 * curveA * curveB * pow(d2, curveB-1) / (curveA*pow(d2, curveB) + 1)
				gx, gy := clip(c*dx)*alpha, clip(c*dy)*alpha
				pos[2*h] += gx
				pos[2*h+1] += gy
				pos[2*t] -= gx
				pos[2*t+1] -= gy
			}
			e.next += e.every
			negs := int((ef - e.nextN) / e.everyNeg)
			for range negs {
				repel(h, alpha)
				repel(t, alpha)
			}
			e.nextN += float32(negs) * e.everyNeg
		}
	}
	return nil
}

// pow is x^y for x > 0 to about 1e-5 relative error: 2^(y·log2 x) with
// short series in place of math.Pow, which took two thirds of the
// descent's time. Plain float32 arithmetic, so just as deterministic.
func pow(x, y float32) float32 { return exp2(y * log2(x)) }

// log2 of x > 0 (a normal float32): the exponent bits plus ln(m)/ln 2 of
// the mantissa m in [1, 2) by the atanh series 2(s + s³/3 + …), s =
// (m−1)/(m+1) < 1/3.
func log2(x float32) float32 {
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23&0xff) - 127)
	m := math.Float32frombits(bits&0x007fffff | 0x3f800000)
	s := (m - 1) / (m + 1)
	s2 := s * s
	return e + 2/math.Ln2*s*(1+s2*(1.0/3+s2*(1.0/5+s2*(1.0/7+s2/9))))
}

// exp2 of y: 2^floor(y) by the exponent bits times 2^f, f in [0, 1), by
// its Taylor series to the 7th power. Below 2^-126 it is 0.
func exp2(y float32) float32 {
	if y < -126 {
		return 0
	}
	y = min(y, 127)
	i := int32(y) // towards zero: one less for negative fractions
	if float32(i) > y {
		i--
	}
	f := (y - float32(i)) * math.Ln2
	p := 1 + f*(1+f*(1.0/2+f*(1.0/6+f*(1.0/24+f*(1.0/120+f*(1.0/720+f/5040))))))
	return p * math.Float32frombits(uint32(i+127)<<23)
}

func clip(v float32) float32 { return max(-gradClip, min(gradClip, v)) }
