package imaging

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/draw"
)

// synthJPEG makes a deterministic photo-like w×h JPEG (gradients, texture,
// noise), written to a temp dir and read back.
func synthJPEG(tb testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			t := 18 * math.Sin(40*fx+3*math.Cos(30*fy))
			n := rng.NormFloat64() * 4
			c := func(v float64) uint8 { return uint8(max(0, min(255, v+t+n))) }
			img.SetRGBA(x, y, color.RGBA{c(120 + 100*fx - 40*fy), c(60 + 80*fy + 30*math.Sin(6*fx)), c(200 - 120*fx*fy), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "imgvec-bench")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "synth.jpg")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var (
	bigOnce     sync.Once
	bigJPEG     []byte
	bigProgJPEG []byte // the same coefficients, progressive (jpegtran)
)

func benchInputs(b *testing.B) map[string][]byte {
	bigOnce.Do(func() {
		bigJPEG = synthJPEG(b, 4000, 3000)
		bigProgJPEG = jpegtranProgressive(b, bigJPEG)
	})
	small, err := os.ReadFile(filepath.Join(imagesDir, "landscape.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]byte{"640x480": small, "4000x3000": bigJPEG, "4000x3000-progressive": bigProgJPEG}
}

func oursDecodePreprocess(data []byte, dst []float32) error {
	img, _, err := Decode("bench.jpg", data, DecodeOptions{})
	if err != nil {
		return err
	}
	err = Preprocess(img, ImageNet, dst)
	img.Release()
	return err
}

// oursWindow decodes for the spec, as the Extractor does: a baseline JPEG
// only where the resize and crop read it (bit-identical).
func oursWindow(data []byte, dst []float32) error {
	img, _, err := Decode("bench.jpg", data, DecodeOptions{Spec: ImageNet})
	if err != nil {
		return err
	}
	err = Preprocess(img, ImageNet, dst)
	img.Release()
	return err
}

func oursFast(data []byte, dst []float32) error {
	fast := ImageNet
	fast.FastJPEG = true
	img, _, err := Decode("bench.jpg", data, DecodeOptions{Spec: fast})
	if err != nil {
		return err
	}
	err = Preprocess(img, fast, dst)
	img.Release()
	return err
}

func oursPureGo(data []byte, dst []float32) error {
	d := decoder{name: "bench.jpg", data: data, maxPixels: DefaultMaxPixels, info: Info{Format: "jpeg"}}
	img, err := d.jpegGo()
	if err != nil {
		return err
	}
	err = Preprocess(img, ImageNet, dst)
	img.Release()
	return err
}

// baseline: image/jpeg + x/image/draw BiLinear to the resized size, crop,
// normalise — what a straightforward Go implementation would do.
func baseline(data []byte, dst []float32) error {
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	s := ImageNet
	nw, nh := s.ResizedSize(m.Bounds().Dx(), m.Bounds().Dy())
	r := image.NewRGBA(image.Rect(0, 0, nw, nh))
	draw.BiLinear.Scale(r, r.Bounds(), m, m.Bounds(), draw.Src, nil)
	left, top := cropOffset(nw, s.Crop), cropOffset(nh, s.Crop)
	n := s.Crop * s.Crop
	for y := 0; y < s.Crop; y++ {
		for x := 0; x < s.Crop; x++ {
			o := r.PixOffset(left+x, top+y)
			for c := 0; c < 3; c++ {
				v := float32(r.Pix[o+c]) / 255
				dst[c*n+y*s.Crop+x] = (v - s.Mean[c]) / s.Std[c]
			}
		}
	}
	return nil
}

// BenchmarkDecodePreprocess: JPEG bytes -> normalised 3x224x224 tensor.
// "speedup" reports baseline ns/op divided by ours, measured in the same run.
func BenchmarkDecodePreprocess(b *testing.B) {
	inputs := benchInputs(b)
	impls := []struct {
		name string
		fn   func([]byte, []float32) error
	}{
		{"ours", oursDecodePreprocess},
		{"ours-window", oursWindow},
		{"ours-fast", oursFast},
		{"ours-purego", oursPureGo},
		{"baseline-xdraw", baseline},
	}
	for _, size := range []string{"640x480", "4000x3000", "4000x3000-progressive"} {
		data := inputs[size]
		for _, im := range impls {
			b.Run(size+"/"+im.name, func(b *testing.B) {
				dst := make([]float32, 3*224*224)
				b.ReportAllocs()
				for b.Loop() {
					if err := im.fn(data, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(size+"/speedup", func(b *testing.B) {
			// Both run in every iteration, so the ratio is from one run on
			// one machine state.
			dst := make([]float32, 3*224*224)
			var ours, base time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := oursDecodePreprocess(data, dst); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := baseline(data, dst); err != nil {
					b.Fatal(err)
				}
				ours += t1.Sub(t0)
				base += time.Since(t1)
			}
			b.ReportMetric(float64(base)/float64(ours), "x-vs-baseline")
			b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "ms-ours/op")
			b.ReportMetric(float64(base.Milliseconds())/float64(b.N), "ms-baseline/op")
		})
	}
}

// BenchmarkPreprocess: resample + crop + normalise of an already decoded image.
func BenchmarkPreprocess(b *testing.B) {
	inputs := benchInputs(b)
	for _, size := range []string{"640x480", "4000x3000"} {
		img, _, err := Decode("bench.jpg", inputs[size], DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(size, func(b *testing.B) {
			dst := make([]float32, 3*224*224)
			b.ReportAllocs()
			for b.Loop() {
				if err := Preprocess(img, ImageNet, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
