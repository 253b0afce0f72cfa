package imaging

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"
)

// cropTo returns the part w of img as a windowed RGB.
func cropTo(img RGB, w image.Rectangle) RGB {
	out := RGB{Width: img.Width, Height: img.Height, Window: w, Pix: make([]byte, 3*w.Dx()*w.Dy())}
	for y := w.Min.Y; y < w.Max.Y; y++ {
		copy(out.Pix[3*w.Dx()*(y-w.Min.Y):], img.Pix[3*(y*img.Width+w.Min.X):3*(y*img.Width+w.Max.X)])
	}
	return out
}

// TestWindowedResizeCrop: ResizeCrop of only the window sourceWindow names
// gives the same bytes as of the whole image, for every recipe and filter
// and many sizes; a window that lacks a needed pixel is refused.
func TestWindowedResizeCrop(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var specs []Spec
	for _, name := range []string{"imagenet", "clip", "vit", "dinov2", "efficientnet-b0"} {
		s, err := Recipe(name)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	for f := Bilinear; f <= Hamming; f++ {
		s := ImageNet
		s.Filter = f
		specs = append(specs, s)
	}
	for i := 0; i < 60; i++ {
		W, H := 100+rng.IntN(900), 100+rng.IntN(900)
		if i == 0 {
			W, H = 256, 256 // no resize pass: a plain crop
		}
		img := RGB{Width: W, Height: H, Pix: make([]byte, 3*W*H)}
		for j := range img.Pix {
			img.Pix[j] = byte(rng.IntN(256))
		}
		for _, s := range specs {
			full, err := ResizeCrop(img, s)
			if err != nil {
				t.Fatal(err)
			}
			w := s.sourceWindow(W, H)
			part, err := ResizeCrop(cropTo(img, w), s)
			if err != nil {
				t.Fatalf("%dx%d %s window %v: %v", W, H, s.Version(), w, err)
			}
			if !bytes.Equal(full.Pix, part.Pix) {
				t.Fatalf("%dx%d %s window %v: bytes differ", W, H, s.Version(), w)
			}
			if w.Dx() > 1 && w != image.Rect(0, 0, W, H) {
				if _, err := ResizeCrop(cropTo(img, w.Inset(1)), s); err == nil {
					t.Errorf("%dx%d %s: a window smaller than %v was accepted", W, H, s.Version(), w)
				}
			}
		}
	}
}

// TestJPEGWindowDecode: a JPEG decoded for a spec (only the window its
// resize and crop read) has exactly the full decode's pixels in that
// window, for many sizes and every recipe; the tensors are equal.
func TestJPEGWindowDecode(t *testing.T) {
	if !TurboJPEG {
		t.Skip("window decoding needs libjpeg-turbo (cgo build)")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var specs []Spec
	for _, name := range []string{"imagenet", "clip", "dinov2", "efficientnet-b0"} {
		s, err := Recipe(name)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	windows := 0
	for i := 0; i < 12; i++ {
		W, H := 300+rng.IntN(1400), 300+rng.IntN(1400)
		data := synthJPEG(t, W, H)
		full, _, err := Decode("x.jpg", data, DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			part, _, err := Decode("x.jpg", data, DecodeOptions{Spec: s})
			if err != nil {
				t.Fatal(err)
			}
			w := part.window()
			if !part.Window.Empty() {
				windows++
			}
			for y := w.Min.Y; y < w.Max.Y; y++ {
				got := part.Pix[3*w.Dx()*(y-w.Min.Y) : 3*w.Dx()*(y-w.Min.Y+1)]
				if want := full.Pix[3*(y*W+w.Min.X) : 3*(y*W+w.Max.X)]; !bytes.Equal(got, want) {
					t.Fatalf("%dx%d %s window %v: row %d differs from the full decode", W, H, s.Version(), w, y)
				}
			}
			ho, wo := s.OutputSize()
			a, b := make([]float32, 3*ho*wo), make([]float32, 3*ho*wo)
			if err := Preprocess(full, s, a); err != nil {
				t.Fatal(err)
			}
			if err := Preprocess(part, s, b); err != nil {
				t.Fatal(err)
			}
			if tensorSHA(a) != tensorSHA(b) {
				t.Fatalf("%dx%d %s: tensors differ", W, H, s.Version())
			}
		}
	}
	if windows == 0 {
		t.Fatal("no decode used a window")
	}
}
