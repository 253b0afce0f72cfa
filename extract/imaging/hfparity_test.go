package imaging

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imgvec/imgvec/schema/testenv"
)

const hfDir = "../../testdata/models/hf"

// parityImages are few on purpose (the Python side runs per case): a
// downscale of each orientation, an upscale, gray and alpha sources.
var parityImages = []string{"landscape.jpg", "portrait.jpg", "small.jpg", "gray.jpg", "rgba.png", "yuv420_odd.jpg"}

type refCase struct {
	Image  string `json:"image"`
	Filter string `json:"filter,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Config string `json:"config,omitempty"`
}

// runReference runs testdata/reference/processors_ref.py on cases.
func runReference(t *testing.T, cases []refCase) []byte {
	t.Helper()
	py := testenv.Python(t, "transformers")
	req, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "../../testdata/reference/processors_ref.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference: %v\n%s", err, stderr.String())
	}
	return out
}

func decodeTest(t *testing.T, name string) RGB {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(imagesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := Decode(name, data, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// filterTolerance: Hamming's window calls sin and cos, where Go's math and
// glibc's libm may differ in the last bit of a double; that can move one
// 22-bit fixed-point weight (measured: one channel off by 1 in 324k).
// Lanczos calls sin too but measured exact. Every other filter is exact.
var filterTolerance = map[Filter]int{Hamming: 1}

// TestFilterParityWithPillow compares every filter's resize with Pillow's,
// down and up, on whole images (no crop).
func TestFilterParityWithPillow(t *testing.T) {
	sizes := [][2]int{{224, 168}, {97, 301}, {700, 500}}
	var cases []refCase
	filters := []Filter{Nearest, Bilinear, Bicubic, Lanczos, Box, Hamming}
	for _, f := range filters {
		for _, im := range parityImages {
			for _, sz := range sizes {
				cases = append(cases, refCase{Image: filepath.Join(imagesDir, im), Filter: f.String(), Width: sz[0], Height: sz[1]})
			}
		}
	}
	out := runReference(t, cases)
	worst := map[Filter]int{}
	off := 0
	for _, c := range cases {
		f, _ := ParseFilter(c.Filter)
		img := decodeTest(t, filepath.Base(c.Image))
		got, err := ResizeCrop(img, Spec{ResizeHeight: c.Height, ResizeWidth: c.Width, Filter: f, Std: [3]float32{1, 1, 1}, Rescale: 1})
		if err != nil {
			t.Fatal(err)
		}
		n := 3 * c.Width * c.Height
		if off+n > len(out) {
			t.Fatalf("the reference has %d values, the cases need more", len(out))
		}
		md, diff, err := diffStats(got.Pix, out[off:off+n])
		if err != nil {
			t.Fatalf("%s %s %dx%d: %v", c.Filter, filepath.Base(c.Image), c.Width, c.Height, err)
		}
		off += n
		worst[f] = max(worst[f], md)
		if md > filterTolerance[f] {
			t.Errorf("%s %s %dx%d: max |Δ| %d, %d channels differ", c.Filter, filepath.Base(c.Image), c.Width, c.Height, md, diff)
		}
	}
	if off != len(out) {
		t.Errorf("the reference has %d values, the cases used %d", len(out), off)
	}
	for _, f := range filters {
		t.Logf("filter %-8s max |Δ| %d over %d images × %d sizes", f, worst[f], len(parityImages), len(sizes))
	}
}

// TestProcessorParityWithTransformers runs each committed
// preprocessor_config.json, and each with every common filter, through
// transformers and through SpecFromHFConfig + Preprocess.
func TestProcessorParityWithTransformers(t *testing.T) {
	dirs, err := os.ReadDir(hfDir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	type variant struct {
		name, config string
		spec         Spec
	}
	var vs []variant
	for _, d := range dirs {
		path := filepath.Join(hfDir, d.Name(), "preprocessor_config.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, resample := range []int{-1, 0, 1, 2, 3} { // -1: as shipped
			cfg := map[string]any{}
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			name := d.Name()
			if resample >= 0 {
				cfg["resample"] = resample
				f, _ := PILFilter(resample)
				name += "/" + f.String()
			} else {
				f, _ := PILFilter(int(cfg["resample"].(float64)))
				name += "/" + f.String() + " (shipped)"
			}
			b, _ := json.Marshal(cfg)
			p := filepath.Join(tmp, d.Name()+"-"+filepath.Base(name)+".json")
			if resample < 0 {
				p = path
			} else if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := SpecFromHFConfig(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			abs, _ := filepath.Abs(p)
			vs = append(vs, variant{name, abs, s})
		}
	}
	var cases []refCase
	for _, v := range vs {
		for _, im := range parityImages {
			abs, _ := filepath.Abs(filepath.Join(imagesDir, im))
			cases = append(cases, refCase{Image: abs, Config: v.config})
		}
	}
	out := runReference(t, cases)
	off := 0
	for _, v := range vs {
		h, w := v.spec.OutputSize()
		worst := 0.0
		for _, im := range parityImages {
			n := 3 * h * w
			want := make([]float32, n)
			if err := binary.Read(bytes.NewReader(out[off:off+4*n]), binary.LittleEndian, want); err != nil {
				t.Fatal(err)
			}
			off += 4 * n
			got := make([]float32, n)
			if err := Preprocess(decodeTest(t, im), v.spec, got); err != nil {
				t.Fatalf("%s %s: %v", v.name, im, err)
			}
			md := 0.0
			for i := range got {
				md = max(md, math.Abs(float64(got[i]-want[i])))
			}
			worst = max(worst, md)
			if md > 0 {
				t.Errorf("%s %s: max |Δ| %g", v.name, im, md)
			}
		}
		t.Logf("%-28s %dx%d max |Δ| %g over %d images (spec %s)", v.name, w, h, worst, len(parityImages), v.spec.Version())
	}
}
