package imaging

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestDraftScale(t *testing.T) {
	exact := Spec{ResizeHeight: 224, ResizeWidth: 448, Mean: ImageNet.Mean, Std: ImageNet.Std, FastJPEG: true}
	fast := ImageNet
	fast.FastJPEG = true
	for _, c := range []struct {
		spec        Spec
		w, h, orien int
		ignore      bool
		want        int
	}{
		{fast, 640, 480, 1, false, 1},   // target 341x256: no room
		{fast, 1600, 1200, 1, false, 4}, // 1600//341 = 4, 1200//256 = 4
		{fast, 4000, 3000, 1, false, 8}, // 11
		{fast, 1400, 1200, 1, false, 4}, // target 298x256: min(4, 4)
		{fast, 1023, 3000, 1, false, 2}, // target 256x750: min(3, 4) -> 2
		{fast, 200, 150, 1, false, 1},   // upscaling
		{exact, 1800, 900, 1, false, 4}, // target 448x224: min(4, 4)
		{exact, 900, 1800, 6, false, 4}, // stored transposed: target 224x448 in stored orientation
		{exact, 900, 1800, 6, true, 2},  // orientation ignored: target 448x224, min(2, 8)
		{exact, 900, 1800, 1, false, 2}, // same without orientation
	} {
		opts := DecodeOptions{Spec: c.spec, IgnoreOrientation: c.ignore}
		d := decoder{opts: opts, info: Info{Orientation: c.orien}}
		if got := d.draftScale(c.w, c.h); got != c.want {
			t.Errorf("%s %dx%d orientation %d ignore %t: scale %d, want %d", c.spec.Version(), c.w, c.h, c.orien, c.ignore, got, c.want)
		}
	}
	for _, o := range []DecodeOptions{{}, {Spec: ImageNet}} {
		if got := (&decoder{opts: o}).draftScale(4000, 3000); got != 1 {
			t.Errorf("without FastJPEG: scale %d, want 1", got)
		}
	}
}

func TestFastJPEGVersion(t *testing.T) {
	const exact = "tv-resize256-crop224-pilbilinear-mean0.485,0.456,0.406-std0.229,0.224,0.225-v1"
	if v := ImageNet.Version(); v != exact {
		t.Fatalf("exact version changed: %s", v)
	}
	fast := ImageNet
	fast.FastJPEG = true
	if v := fast.Version(); v != exact+"-jpegdraft" {
		t.Fatalf("fast version %s", v)
	}
}

// fastJPEGMaxDelta bounds how far a fast (draft) decode's tensor may be
// from the exact one, in normalised units (one grey level is 1/255/std,
// 0.0175 for std 0.224). Measured on testdata/images and synthetic photos
// (TestFastJPEGBounds's log): max 0.261 (large.jpg, 15 grey levels at an
// edge), mean 0.0102.
const (
	fastJPEGMaxDelta  = 0.35
	fastJPEGMeanDelta = 0.02
)

// TestFastJPEGBounds decodes every JPEG with and without a draft and
// reports the preprocessed tensor's max and mean |Δ|. Images with no room
// to scale stay bit-exact.
func TestFastJPEGBounds(t *testing.T) {
	inputs := map[string][]byte{"synth-4000x3000.jpg": synthJPEG(t, 4000, 3000), "synth-1200x1600.jpg": synthJPEG(t, 1200, 1600)}
	files, err := filepath.Glob(filepath.Join(imagesDir, "*.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = b
	}
	fast := ImageNet
	fast.FastJPEG = true
	exactT, fastT := make([]float32, 3*224*224), make([]float32, 3*224*224)
	for name, data := range inputs {
		exactImg, info, err := Decode(name, data, DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fastImg, _, err := Decode(name, data, DecodeOptions{Spec: fast})
		if err != nil {
			t.Fatal(err)
		}
		d := decoder{opts: DecodeOptions{Spec: fast}, info: info}
		s := d.draftScale(info.Width, info.Height)
		if ew, eh := (exactImg.Width+s-1)/s, (exactImg.Height+s-1)/s; fastImg.Width != ew || fastImg.Height != eh {
			t.Errorf("%s: draft decode is %dx%d, want %dx%d (scale 1/%d)", name, fastImg.Width, fastImg.Height, ew, eh, s)
		}
		if err := Preprocess(exactImg, ImageNet, exactT); err != nil {
			t.Fatal(err)
		}
		if err := Preprocess(fastImg, fast, fastT); err != nil {
			t.Fatal(err)
		}
		var maxD, sum float64
		for i := range exactT {
			dv := math.Abs(float64(exactT[i] - fastT[i]))
			maxD = max(maxD, dv)
			sum += dv
		}
		t.Logf("%-22s %5dx%-5d scale 1/%d: tensor max|Δ| %.4f, mean|Δ| %.5f", name, info.Width, info.Height, s, maxD, sum/float64(len(exactT)))
		if s == 1 && maxD != 0 {
			t.Errorf("%s: not scaled, yet the tensor differs (max |Δ| %g)", name, maxD)
		}
		if mean := sum / float64(len(exactT)); maxD > fastJPEGMaxDelta || mean > fastJPEGMeanDelta {
			t.Errorf("%s: tensor max|Δ| %.4f, mean|Δ| %.5f over the bounds %g, %g", name, maxD, mean, fastJPEGMaxDelta, fastJPEGMeanDelta)
		}
	}
}
