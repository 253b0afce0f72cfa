package imaging

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSpec(t *testing.T) {
	if v := ImageNet.Version(); v != "tv-resize256-crop224-pilbilinear-mean0.485,0.456,0.406-std0.229,0.224,0.225-v1" {
		t.Errorf("ImageNet.Version() = %q (changing it invalidates every stored vector)", v)
	}
	for _, c := range []struct{ w, h, nw, nh int }{
		{640, 480, 341, 256}, {480, 640, 256, 341}, {256, 256, 256, 256}, {200, 150, 341, 256},
		{4000, 3000, 341, 256}, {1000, 333, 768, 256}, {1, 10000, 256, 2560000},
	} {
		if nw, nh := ImageNet.ResizedSize(c.w, c.h); nw != c.nw || nh != c.nh {
			t.Errorf("ResizedSize(%d,%d) = %d,%d want %d,%d", c.w, c.h, nw, nh, c.nw, c.nh)
		}
	}
	// Python's round() rounds half to even.
	for _, c := range []struct{ n, want int }{{257, 16}, {259, 18}, {341, 58}, {256, 16}, {224, 0}} {
		if got := cropOffset(c.n, 224); got != c.want {
			t.Errorf("cropOffset(%d) = %d want %d", c.n, got, c.want)
		}
	}
	bad := []Spec{{}, {Resize: 224, Crop: 256, Std: [3]float32{1, 1, 1}}, {Resize: 256, Crop: 224}}
	for _, s := range bad {
		if _, err := ResizeCrop(RGB{Width: 1, Height: 1, Pix: []byte{1, 2, 3}}, s); err == nil {
			t.Errorf("spec %+v accepted", s)
		}
	}
	if err := Preprocess(RGB{Width: 2, Height: 2, Pix: []byte{1}}, ImageNet, make([]float32, 3*224*224)); err == nil {
		t.Error("short Pix accepted")
	}
	if err := Preprocess(RGB{Width: 2, Height: 2, Pix: make([]byte, 12)}, ImageNet, make([]float32, 10)); err == nil {
		t.Error("short dst accepted")
	}
}

// TestExtremeAspect: a 1×N or N×1 image still resizes (upscaling one side,
// downscaling the other) without error.
func TestExtremeAspect(t *testing.T) {
	for _, sz := range [][2]int{{1, 300}, {300, 1}, {3, 3}, {256, 224}} {
		img := RGB{Width: sz[0], Height: sz[1], Pix: make([]byte, 3*sz[0]*sz[1])}
		for i := range img.Pix {
			img.Pix[i] = byte(i)
		}
		if _, err := ResizeCrop(img, ImageNet); err != nil {
			t.Errorf("%v: %v", sz, err)
		}
	}
}

// TestPureGoJPEG runs the image/jpeg fallback on every golden JPEG, whatever
// the build tags, and checks it against the tolerance documented in doc.go.
func TestPureGoJPEG(t *testing.T) {
	for _, e := range loadManifest(t) {
		if e.Format != "jpeg" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(imagesDir, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		d := decoder{name: e.Name, data: data, maxPixels: DefaultMaxPixels, info: Info{Format: "jpeg"}}
		img, err := d.jpegGo()
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		img = orient(img, jpegOrientation(data))
		got, err := ResizeCrop(img, ImageNet)
		if err != nil {
			t.Fatal(err)
		}
		md, n, err := diffStats(got.Pix, loadGolden(t, e.Name))
		if err != nil {
			t.Fatalf("pure-Go %s: %v", e.Name, err)
		}
		t.Logf("pure-Go %-16s max abs diff %d, %d channels differ", e.Name, md, n)
		if md > goJPEGTolerance {
			t.Errorf("%s: pure-Go max abs diff %d > %d", e.Name, md, goJPEGTolerance)
		}
	}
}

// TestConcurrent: Decode and Preprocess from several goroutines give the
// same tensors as serial calls (run with -race).
func TestConcurrent(t *testing.T) {
	names := []string{"landscape.jpg", "rgba.png", "anim.gif", "lossy.webp", "exif6.jpg", "cmyk.jpg"}
	want := map[string]string{}
	dst := make([]float32, 3*224*224)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(imagesDir, n))
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := Decode(n, data, DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Preprocess(img, ImageNet, dst); err != nil {
			t.Fatal(err)
		}
		want[n] = tensorSHA(dst)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, 3*224*224)
			for i := 0; i < 3; i++ {
				for _, n := range names {
					data, err := os.ReadFile(filepath.Join(imagesDir, n))
					if err != nil {
						errs <- err.Error()
						return
					}
					img, _, err := Decode(n, data, DecodeOptions{})
					if err != nil {
						errs <- err.Error()
						return
					}
					if err := Preprocess(img, ImageNet, dst); err != nil {
						errs <- err.Error()
						return
					}
					img.Release()
					if s := tensorSHA(dst); s != want[n] {
						errs <- n + ": tensor differs under concurrency"
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var msgs []string
	for e := range errs {
		msgs = append(msgs, e)
	}
	if len(msgs) > 0 {
		t.Fatal(strings.Join(msgs, "\n"))
	}
}
