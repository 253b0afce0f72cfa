package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/imgvec/imgvec/schema"
)

// FuzzDecodePreprocess: Decode + Preprocess never panic, fail only with a
// classified *schema.ItemError, and stay within a small pixel budget.
//
//	go test ./extract/imaging -run '^$' -fuzz FuzzDecodePreprocess -fuzztime 60s -fuzzminimizetime 10s
func FuzzDecodePreprocess(f *testing.F) {
	for _, dir := range []string{imagesDir, filepath.Join(imagesDir, "bad")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || filepath.Ext(e.Name()) == ".py" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			if len(b) > 64<<10 { // big seeds make minimisation crawl
				continue
			}
			f.Add(b)
		}
	}
	for _, b := range tinySeeds(f) {
		f.Add(b)
	}
	const maxPixels = 1 << 20
	opts := DecodeOptions{MaxPixels: maxPixels, MaxBytes: 8 << 20}
	classes := map[schema.FailureClass]bool{
		schema.FailEmpty: true, schema.FailTruncated: true, schema.FailDecode: true,
		schema.FailUnsupportedFormat: true, schema.FailTooLarge: true,
	}
	dst := make([]float32, 3*224*224)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := Decode("fuzz.bin", data, opts)
		if err != nil {
			var ie *schema.ItemError
			if !errors.As(err, &ie) || !classes[ie.Class] || ie.Stage != "decode" || ie.Item != "fuzz.bin" {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		if img.Width <= 0 || img.Height <= 0 || int64(img.Width)*int64(img.Height) > maxPixels {
			t.Fatalf("decoded %dx%d outside the budget", img.Width, img.Height)
		}
		if len(img.Pix) != 3*img.Width*img.Height {
			t.Fatalf("pix len %d for %dx%d", len(img.Pix), img.Width, img.Height)
		}
		if err := Preprocess(img, ImageNet, dst); err != nil {
			t.Fatalf("preprocess %dx%d: %v", img.Width, img.Height, err)
		}
		for _, v := range dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatal("non-finite output")
			}
		}
		img.Release()
	})
}

// tinySeeds encodes a small image in every format Go can write, so that
// formats whose committed samples are large still get seeds.
func tinySeeds(tb testing.TB) [][]byte {
	m := image.NewNRGBA(image.Rect(0, 0, 16, 12))
	for i := range m.Pix {
		m.Pix[i] = byte(i * 7)
	}
	g16 := image.NewGray16(image.Rect(0, 0, 9, 7))
	for i := range g16.Pix {
		g16.Pix[i] = byte(i * 13)
	}
	var out [][]byte
	for _, enc := range []func(io.Writer) error{
		func(w io.Writer) error { return gif.Encode(w, m, nil) },
		func(w io.Writer) error { return bmp.Encode(w, m) },
		func(w io.Writer) error { return tiff.Encode(w, m, &tiff.Options{Compression: tiff.Deflate}) },
		func(w io.Writer) error { return tiff.Encode(w, m, nil) },
		func(w io.Writer) error { return png.Encode(w, g16) },
		func(w io.Writer) error { return png.Encode(w, m) },
		func(w io.Writer) error { return jpeg.Encode(w, m, nil) },
	} {
		var buf bytes.Buffer
		if err := enc(&buf); err != nil {
			tb.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}
