package imaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// libjpegTool finds one of libjpeg-turbo's command-line tools (Debian
// package libjpeg-turbo-progs, installed by .ci/lib/install-apt.sh).
func libjpegTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: .ci/lib/install-apt.sh installs libjpeg-turbo-progs", name)
		}
		t.Skipf("%s not found: run .ci/lib/install-apt.sh (Debian package libjpeg-turbo-progs)", name)
	}
	return p
}

// cjpeg encodes a w×h photo-like image (gray or RGB) with libjpeg's cjpeg
// and the given arguments (sampling, -progressive, ...).
func cjpeg(t *testing.T, w, h int, gray bool, args ...string) []byte {
	t.Helper()
	tool := libjpegTool(t, "cjpeg")
	src := synthPixels(w, h)
	var ppm bytes.Buffer
	if gray {
		fmt.Fprintf(&ppm, "P5\n%d %d\n255\n", w, h)
		for i := 0; i < len(src); i += 3 {
			ppm.WriteByte(byte((int(src[i]) + int(src[i+1]) + int(src[i+2])) / 3))
		}
	} else {
		fmt.Fprintf(&ppm, "P6\n%d %d\n255\n", w, h)
		ppm.Write(src)
	}
	cmd := exec.Command(tool, append([]string{"-quality", "90"}, args...)...)
	cmd.Stdin = &ppm
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cjpeg %v: %v: %s", args, err, stderr.String())
	}
	return out.Bytes()
}

// synthPixels is packed RGB with gradients, texture and noise (a photo's
// entropy, so that every scan carries data).
func synthPixels(w, h int) []byte {
	px := make([]byte, 3*w*h)
	seed := uint32(12345)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			seed = seed*1664525 + 1013904223
			n := int(seed>>28) - 8
			o := 3 * (y*w + x)
			t := (x*7 + y*3) % 61
			px[o] = byte(clampInt(40+200*x/w+t+n, 0, 255))
			px[o+1] = byte(clampInt(30+180*y/h-t/2+n, 0, 255))
			px[o+2] = byte(clampInt(220-150*(x+y)/(w+h)+n, 0, 255))
		}
	}
	return px
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// jpegtranProgressive losslessly rewrites a JPEG as progressive (the same
// coefficients in jpegtran's default multi-scan script).
func jpegtranProgressive(t testing.TB, data []byte) []byte {
	t.Helper()
	tool := libjpegTool(t, "jpegtran")
	cmd := exec.Command(tool, "-progressive", "-copy", "all")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("jpegtran: %v: %s", err, stderr.String())
	}
	return out.Bytes()
}

// TestFastJPEGRegionDecode: with Spec.FastJPEG a JPEG decoded through
// jpegRegion (a window at the draft scale; at 1/8 a progressive file
// without the scans that scale does not read) has exactly the pixels of
// TurboJPEG's whole decode at the same scale, for baseline and progressive
// files of every sampling libjpeg's 1/8-scale rule treats differently.
func TestFastJPEGRegionDecode(t *testing.T) {
	if !TurboJPEG {
		t.Skip("needs libjpeg-turbo (cgo build)")
	}
	fast := ImageNet
	fast.FastJPEG = true
	type input struct {
		name string
		data []byte
		dc   bool // decoded from progressiveDCStream's scans
	}
	var inputs []input
	add := func(name string, data []byte, dc bool) { inputs = append(inputs, input{name, data, dc}) }
	big := synthJPEG(t, 2400, 2100) // 1/8: 300x263
	add("baseline 2400x2100 4:2:0 (image/jpeg)", big, false)
	add("progressive 2400x2100 4:2:0 (jpegtran)", jpegtranProgressive(t, big), true)
	add("baseline 1200x1600 (1/4)", synthJPEG(t, 1200, 1600), false)
	add("progressive 1200x1600 (1/4)", jpegtranProgressive(t, synthJPEG(t, 1200, 1600)), false)
	add("baseline 700x600 (1/2)", synthJPEG(t, 700, 600), false)
	for _, c := range []struct {
		name   string
		gray   bool
		sample string
	}{
		{"4:4:4", false, "1x1"},
		{"4:2:2", false, "2x1"},
		{"4:4:0", false, "1x2"},
		{"4:2:0", false, "2x2"},
		{"4:1:1", false, "4x1"},
		{"luma 2x2, chroma 2x1", false, "2x2,2x1,2x1"},
		{"gray", true, "1x1"},
	} {
		args := []string{"-sample", c.sample}
		if c.gray {
			args = append(args, "-grayscale")
		}
		add("progressive 2100x2150 "+c.name+" (cjpeg)", cjpeg(t, 2100, 2150, c.gray, append(args, "-progressive")...), true)
		add("baseline 2100x2150 "+c.name+" (cjpeg, restart markers)", cjpeg(t, 2100, 2150, c.gray, append(args, "-restart", "3")...), false)
	}
	a, b := make([]float32, 3*224*224), make([]float32, 3*224*224)
	for _, in := range inputs {
		got, info, err := Decode(in.name, in.data, DecodeOptions{Spec: fast})
		if err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
		d := decoder{name: in.name, data: in.data, maxPixels: DefaultMaxPixels, opts: DecodeOptions{Spec: fast}, info: info}
		s := d.draftScale(info.Width, info.Height)
		W, H := (info.Width+s-1)/s, (info.Height+s-1)/s
		want, err, _ := d.jpegWhole(W, H, false)
		if err != nil {
			t.Fatalf("%s: whole decode: %v", in.name, err)
		}
		if got.Width != W || got.Height != H {
			t.Fatalf("%s: decoded %dx%d, want %dx%d (1/%d)", in.name, got.Width, got.Height, W, H, s)
		}
		if _, ok := progressiveDCStream(in.data); (ok && s == 8) != in.dc {
			t.Errorf("%s: scans filtered at 1/%d: %v, want %v", in.name, s, ok && s == 8, in.dc)
		}
		w := got.window()
		for y := w.Min.Y; y < w.Max.Y; y++ {
			row := got.Pix[3*w.Dx()*(y-w.Min.Y) : 3*w.Dx()*(y-w.Min.Y+1)]
			if !bytes.Equal(row, want.Pix[3*(y*W+w.Min.X):3*(y*W+w.Max.X)]) {
				t.Fatalf("%s (1/%d, window %v): row %d differs from TurboJPEG's whole decode", in.name, s, w, y)
			}
		}
		if err := Preprocess(got, fast, a); err != nil {
			t.Fatal(err)
		}
		if err := Preprocess(want, fast, b); err != nil {
			t.Fatal(err)
		}
		if tensorSHA(a) != tensorSHA(b) {
			t.Fatalf("%s: tensors differ", in.name)
		}
		t.Logf("%-52s 1/%d window %v: identical", in.name, s, w)
	}
}

// withOrientation inserts an EXIF APP1 segment with orientation o right
// after SOI (little-endian TIFF, one IFD0 entry).
func withOrientation(data []byte, o uint16) []byte {
	exif := []byte("Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00")
	exif = append(exif, byte(o), byte(o>>8), 0, 0, 0, 0, 0, 0)
	seg := append([]byte{0xFF, 0xE1, byte((len(exif) + 2) >> 8), byte(len(exif) + 2)}, exif...)
	return append(append(append([]byte{}, data[:2]...), seg...), data[2:]...)
}

// TestFastJPEGProgressiveOriented: a progressive file with an EXIF
// rotation, decoded from its DC scans at 1/8 (in full: the window is in
// stored coordinates), gives the pixels of its baseline twin (the same
// coefficients; TurboJPEG's whole decode), both rotated.
func TestFastJPEGProgressiveOriented(t *testing.T) {
	if !TurboJPEG {
		t.Skip("needs libjpeg-turbo (cgo build)")
	}
	fast := ImageNet
	fast.FastJPEG = true
	base := withOrientation(synthJPEG(t, 2400, 2100), 6)
	prog := jpegtranProgressive(t, base)
	if _, ok := progressiveDCStream(prog); !ok {
		t.Fatal("not filtered")
	}
	a, infoA, err := Decode("base.jpg", base, DecodeOptions{Spec: fast})
	if err != nil {
		t.Fatal(err)
	}
	b, infoB, err := Decode("prog.jpg", prog, DecodeOptions{Spec: fast})
	if err != nil {
		t.Fatal(err)
	}
	if infoA.Orientation != 6 || infoB.Orientation != 6 || a.Width != 263 || a.Height != 300 {
		t.Fatalf("orientation %d/%d, decoded %dx%d (want 263x300, rotated)", infoA.Orientation, infoB.Orientation, a.Width, a.Height)
	}
	if a.Width != b.Width || a.Height != b.Height || !a.Window.Empty() || !b.Window.Empty() || !bytes.Equal(a.Pix, b.Pix) {
		t.Fatalf("baseline %dx%d %v and progressive %dx%d %v differ", a.Width, a.Height, a.Window, b.Width, b.Height, b.Window)
	}
}

// TestProgressiveDCStream: the filtered stream keeps every segment and DC
// scan, drops the AC scans of components decoded at 1×1, and refuses what
// it cannot filter safely.
func TestProgressiveDCStream(t *testing.T) {
	base := synthJPEG(t, 800, 600)
	prog := jpegtranProgressive(t, base)
	out, ok := progressiveDCStream(prog)
	if !ok {
		t.Fatal("a 4:2:0 progressive file was not filtered")
	}
	scans := func(b []byte) (dc, ac int) {
		for i := 2; i+5 < len(b); i++ {
			if b[i] == 0xFF && b[i+1] == markerSOS {
				ns := int(b[i+4])
				if b[i+5+2*ns] == 0 {
					dc++
				} else {
					ac++
				}
			}
		}
		return
	}
	dc0, ac0 := scans(prog)
	dc1, ac1 := scans(out)
	if dc1 != dc0 || ac1 >= ac0 || ac1 == 0 {
		t.Errorf("scans: DC %d -> %d, AC %d -> %d (want all DC kept, the chroma AC scans only)", dc0, dc1, ac0, ac1)
	}
	t.Logf("%d -> %d bytes; DC scans %d -> %d, AC scans %d -> %d", len(prog), len(out), dc0, dc1, ac0, ac1)
	for name, data := range map[string][]byte{
		"baseline":                    base,
		"truncated":                   prog[:len(prog)/2],
		"not a jpeg":                  []byte("GIF89a"),
		"segment length past the end": append(append([]byte{}, prog[:20]...), 0xFF, 0xC4, 0xFF, 0xFF),
		"empty":                       nil,
	} {
		if _, ok := progressiveDCStream(data); ok {
			t.Errorf("%s: filtered", name)
		}
	}
	// The pure filter runs on any bytes without panicking.
	for i := range 64 {
		cut := prog[:len(prog)*i/64]
		progressiveDCStream(cut)
		flipped := bytes.Clone(prog)
		flipped[(len(prog)*i/64+7)%len(prog)] ^= 0x5A
		progressiveDCStream(flipped)
	}
}

// FuzzProgressiveDCStream: the scan filter never panics on any bytes, and
// what it returns is a marker stream no longer than its input plus EOI.
//
//	go test ./extract/imaging -run '^$' -fuzz FuzzProgressiveDCStream -fuzztime 30s
func FuzzProgressiveDCStream(f *testing.F) {
	b, err := os.ReadFile(imagesDir + "/progressive.jpg")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/3])
	f.Fuzz(func(t *testing.T, data []byte) {
		out, ok := progressiveDCStream(data)
		if !ok {
			return
		}
		if len(out) > len(data)+2 || !bytes.HasPrefix(out, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(out, []byte{0xFF, markerEOI}) {
			t.Fatalf("filtered %d bytes into %d: % x ... % x", len(data), len(out), out[:min(4, len(out))], out[max(0, len(out)-2):])
		}
	})
}
