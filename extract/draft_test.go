package extract

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/schema"
)

// fastDecodeMinCosine bounds the cosine between the tiny model's fc7
// vectors from a fast (draft) decode and from the exact decode; measured
// 0.99864 on large.jpg (1600×1200, decoded at 1/4); 0.995 is the
// target issue 13 sets for VGG19 fc7.
const fastDecodeMinCosine = 0.995

// TestFastDecode: --decode fast has its own model id (the exact one is
// unchanged), reports the image's full size, and its vectors stay close to
// the exact ones.
func TestFastDecode(t *testing.T) {
	requireRuntime(t)
	ctx := context.Background()
	open := func(fast bool) *Extractor {
		m, err := LoadModel(ctx, tinyModel, "fc7", LoadOptions{FastDecode: fast})
		if err != nil {
			t.Fatal(err)
		}
		x, err := New(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	}
	exact, fast := open(false), open(true)
	eid, fid := exact.Identity(), fast.Identity()
	if strings.Contains(eid.Preprocess, "draft") || fid.Preprocess != eid.Preprocess+"-jpegdraft" || eid.ID() == fid.ID() {
		t.Fatalf("identities: exact %+v (%s), fast %+v (%s)", eid, eid.ID(), fid, fid.ID())
	}
	for _, name := range []string{"large.jpg", "landscape.jpg", "exif6.jpg"} {
		data, err := os.ReadFile(filepath.Join(imagesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var vecs [2][]float32
		var size [2][2]int
		for i, x := range []*Extractor{exact, fast} {
			p, err := x.Prepare(name, data)
			if err != nil {
				t.Fatal(err)
			}
			size[i] = [2]int{p.Width, p.Height}
			res, err := x.Infer(ctx, []*schema.Prepared{p})
			if err != nil || res[0].Err != nil {
				t.Fatal(err, res[0].Err)
			}
			vecs[i] = res[0].Vector
			x.Release(p)
		}
		if size[0] != size[1] {
			t.Errorf("%s: fast decode reports the size %v, exact %v", name, size[1], size[0])
		}
		var dot float64
		for i := range vecs[0] {
			dot += float64(vecs[0][i]) * float64(vecs[1][i])
		}
		t.Logf("%s: cosine fast to exact %.6f", name, dot)
		if dot < fastDecodeMinCosine || math.IsNaN(dot) {
			t.Errorf("%s: cosine %.6f below %g", name, dot, fastDecodeMinCosine)
		}
	}
}
