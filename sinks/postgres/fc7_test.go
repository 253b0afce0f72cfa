package postgres

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// fc7Gen generates fc7-like vectors deterministically: each row belongs to
// one of the clusters; its pre-activation is the cluster's centre plus
// Gaussian noise, then ReLU (about 75% zeros: centres ~ N(-0.75, 1),
// noise sd 0.5), then L2 normalisation. Row i is the same on every call.
type fc7Gen struct {
	dim     int
	seed    uint64
	noise   float64 // sd of the noise around a centre; 0.5 unless set
	centres [][]float32
}

func newFC7Gen(dim, clusters int, seed uint64) *fc7Gen {
	g := &fc7Gen{dim: dim, seed: seed, noise: 0.5}
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	for range clusters {
		c := make([]float32, dim)
		for j := range c {
			c[j] = float32(r.NormFloat64() - 0.75)
		}
		g.centres = append(g.centres, c)
	}
	return g
}

// vector returns row i's vector.
func (g *fc7Gen) vector(i int) []float32 {
	r := rand.New(rand.NewPCG(g.seed, uint64(i)+1))
	c := g.centres[r.IntN(len(g.centres))]
	v := make([]float32, g.dim)
	var norm float64
	for j := range v {
		z := float64(c[j]) + g.noise*r.NormFloat64()
		if z > 0 {
			v[j] = float32(z)
			norm += z * z
		}
	}
	if norm == 0 {
		v[r.IntN(g.dim)] = 1
		return v
	}
	inv := 1 / math.Sqrt(norm)
	for j := range v {
		v[j] = float32(float64(v[j]) * inv)
	}
	return v
}

// record is row i as a record of model m.
func (g *fc7Gen) record(m schema.ModelIdentity, source string, i int) schema.Record {
	key := fmt.Sprintf("img/%07d.jpg", i)
	return schema.Record{ID: schema.ItemID(source, key), Source: source, Key: key,
		Fingerprint: schema.Fingerprint{Size: int64(i + 1), MTime: time.Unix(1700000000, int64(i)).UTC(), SHA256: fmt.Sprintf("%064x", i)},
		ModelID:     m.ID(), Layer: m.Layer, Dim: m.Dim, Vector: g.vector(i), ExtractedAt: time.Unix(1700000000, 0).UTC(),
		Metadata: map[string]string{"album": []string{"holidays", "family", "work"}[i%3]}}
}

// dot of two L2-normalised vectors is 1 - their cosine distance.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// recallAt is |got ∩ want| / |want|.
func recallAt(got, want []string) float64 {
	in := map[string]bool{}
	for _, w := range want {
		in[w] = true
	}
	n := 0
	for _, g := range got {
		if in[g] {
			n++
		}
	}
	return float64(n) / float64(len(want))
}
