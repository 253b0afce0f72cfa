package imaging

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const (
	imagesDir = "../../testdata/images"
	goldenDir = "../../testdata/reference/golden"
)

type goldenEntry struct {
	Name           string `json:"name"`
	Format         string `json:"format"`
	Mode           string `json:"mode"`
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	OrientedWidth  int    `json:"oriented_width"`
	OrientedHeight int    `json:"oriented_height"`
	TensorSHA256   string `json:"tensor_sha256"`
	Notes          string `json:"notes"`
}

func loadManifest(t testing.TB) []goldenEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Images []goldenEntry `json:"images"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Images) == 0 {
		t.Fatal("empty golden manifest")
	}
	return m.Images
}

func loadGolden(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Bounds()
	out := make([]byte, 0, 3*r.Dx()*r.Dy())
	switch s := m.(type) {
	case *image.RGBA:
		for i := 0; i < len(s.Pix); i += 4 {
			out = append(out, s.Pix[i], s.Pix[i+1], s.Pix[i+2])
		}
	case *image.NRGBA:
		for i := 0; i < len(s.Pix); i += 4 {
			out = append(out, s.Pix[i], s.Pix[i+1], s.Pix[i+2])
		}
	default:
		t.Fatalf("golden %s: unexpected %T", name, m)
	}
	return out
}

// tolerance is the largest per-channel difference from Pillow accepted for a
// golden image's 224×224 crop; 0 means bit-exact (and then the float32
// tensor must match the reference sha256 too).
func tolerance(e goldenEntry) int {
	switch {
	case e.Name == "lossy.webp" && !LibWebP:
		return lossyWebPTolerance
	case e.Format == "jpeg" && !TurboJPEG:
		return goJPEGTolerance
	}
	return 0
}

// diffStats compares got with the reference want: the largest absolute
// difference and how many channels differ. Lengths that differ are an
// error: comparing a prefix would pass a truncated or padded image.
func diffStats(got, want []byte) (maxDiff, n int, err error) {
	if len(got) != len(want) {
		return 0, 0, fmt.Errorf("%d channels, the reference has %d", len(got), len(want))
	}
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			n++
		}
		maxDiff = max(maxDiff, d)
	}
	return maxDiff, n, nil
}

func TestDiffStatsChecksLengths(t *testing.T) {
	for _, c := range []struct{ got, want []byte }{
		{[]byte{1, 2}, []byte{1, 2, 99}}, // a prefix of the reference
		{[]byte{1, 2, 99}, []byte{1, 2}},
		{nil, []byte{1}},
	} {
		if md, n, err := diffStats(c.got, c.want); err == nil {
			t.Errorf("diffStats(%v, %v) = %d, %d, nil; want a length error", c.got, c.want, md, n)
		}
	}
	if md, n, err := diffStats([]byte{1, 5, 9}, []byte{3, 5, 8}); err != nil || md != 2 || n != 2 {
		t.Errorf("diffStats = %d, %d, %v; want 2, 2, nil", md, n, err)
	}
}

func tensorSHA(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestParityWithPillow(t *testing.T) {
	for _, e := range loadManifest(t) {
		t.Run(e.Name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(imagesDir, e.Name))
			if err != nil {
				t.Fatal(err)
			}
			img, info, err := Decode(e.Name, data, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != e.Format || info.Width != e.Width || info.Height != e.Height {
				t.Errorf("info = %+v, want %s %dx%d", info, e.Format, e.Width, e.Height)
			}
			if img.Width != e.OrientedWidth || img.Height != e.OrientedHeight {
				t.Errorf("oriented size %dx%d, want %dx%d", img.Width, img.Height, e.OrientedWidth, e.OrientedHeight)
			}
			got, err := ResizeCrop(img, ImageNet)
			if err != nil {
				t.Fatal(err)
			}
			want := loadGolden(t, e.Name)
			md, n, err := diffStats(got.Pix, want)
			if err != nil {
				t.Fatal(err)
			}
			tol := tolerance(e)
			t.Logf("%-20s %-5s %-5s max abs diff %d, %d/%d channels differ (tolerance %d)", e.Name, e.Format, e.Mode, md, n, len(want), tol)
			if md > tol {
				t.Errorf("max abs diff %d > tolerance %d (%d channels differ)", md, tol, n)
			}
			tensor := make([]float32, 3*224*224)
			if err := Preprocess(img, ImageNet, tensor); err != nil {
				t.Fatal(err)
			}
			if tol == 0 {
				if s := tensorSHA(tensor); s != e.TensorSHA256 {
					t.Errorf("tensor sha256 %s, want %s", s, e.TensorSHA256)
				}
			}
			// Decoded for the spec, a JPEG may decode only the window the
			// resize and crop read: the tensor must not change.
			wimg, _, err := Decode(e.Name, data, DecodeOptions{Spec: ImageNet})
			if err != nil {
				t.Fatal(err)
			}
			windowed := make([]float32, 3*224*224)
			if err := Preprocess(wimg, ImageNet, windowed); err != nil {
				t.Fatal(err)
			}
			if s, w := tensorSHA(windowed), tensorSHA(tensor); s != w {
				t.Errorf("decoded for the spec (window %v): tensor sha256 %s, want %s", wimg.Window, s, w)
			}
			if !wimg.Window.Empty() {
				t.Logf("decoded window %v of %dx%d", wimg.Window, wimg.Width, wimg.Height)
			}
		})
	}
}
