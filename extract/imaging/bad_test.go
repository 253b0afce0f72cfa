package imaging

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/schema"
)

func TestBadInputs(t *testing.T) {
	cases := []struct {
		file  string
		class schema.FailureClass
	}{
		{"empty.jpg", schema.FailEmpty},
		{"truncated.jpg", schema.FailTruncated},
		{"truncated.png", schema.FailTruncated},
		{"random.jpg", schema.FailUnsupportedFormat},
		{"text.png", schema.FailUnsupportedFormat},
		{"image.svg", schema.FailUnsupportedFormat},
		{"fake.heic", schema.FailUnsupportedFormat},
		{"bomb.png", schema.FailTooLarge},
		{"lying.png", schema.FailDecode},
		{"lying.gif", schema.FailDecode},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.file] = true
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(imagesDir, "bad", c.file))
			if err != nil {
				t.Fatal(err)
			}
			name := "bad/" + c.file
			img, _, err := Decode(name, data, DecodeOptions{})
			if err == nil {
				t.Fatalf("decoded %dx%d, want error of class %s", img.Width, img.Height, c.class)
			}
			var ie *schema.ItemError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *schema.ItemError", err, err)
			}
			if ie.Class != c.class || ie.Stage != "decode" || ie.Item != name {
				t.Errorf("got class %q stage %q item %q, want %q decode %q (%v)", ie.Class, ie.Stage, ie.Item, c.class, name, err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the file", err)
			}
			t.Logf("%v", err)
			// Decoding only the window a spec reads fails alike.
			if _, _, werr := Decode(name, data, DecodeOptions{Spec: ImageNet}); schema.ClassOf(werr) != c.class {
				t.Errorf("decoded for a spec: %v, want class %s", werr, c.class)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(imagesDir, "bad"))
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("bad/%s has no expected class in this table", e.Name())
		}
	}
}

func TestBudgets(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(imagesDir, "landscape.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"landscape.jpg", "anim.gif", "lossy.webp", "image.tiff", "image.bmp", "rgba.png"} {
		b, err := os.ReadFile(filepath.Join(imagesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Decode(f, b, DecodeOptions{MaxPixels: 1000})
		if schema.ClassOf(err) != schema.FailTooLarge {
			t.Errorf("%s with MaxPixels 1000: %v, want too_large", f, err)
		}
	}
	if _, _, err := Decode("x.jpg", data, DecodeOptions{MaxBytes: 100}); schema.ClassOf(err) != schema.FailTooLarge {
		t.Errorf("MaxBytes 100: %v, want too_large", err)
	}
	if _, _, err := Decode("x.jpg", data, DecodeOptions{MaxPixels: -1, MaxBytes: -1}); err != nil {
		t.Errorf("no limits: %v", err)
	}
}

func TestOrientationAll(t *testing.T) {
	// 3x2 image with distinct pixels; check each orientation against the
	// PIL transpose it stands for.
	src := RGB{Width: 3, Height: 2, Pix: make([]byte, 18)}
	for i := range src.Pix {
		src.Pix[i] = byte(i)
	}
	at := func(m RGB, x, y int) byte { return m.Pix[3*(y*m.Width+x)] }
	want := map[int][]byte{ // first channel, row-major, of the oriented image
		1: {0, 3, 6, 9, 12, 15},
		2: {6, 3, 0, 15, 12, 9},
		3: {15, 12, 9, 6, 3, 0},
		4: {9, 12, 15, 0, 3, 6},
		5: {0, 9, 3, 12, 6, 15},
		6: {9, 0, 12, 3, 15, 6},
		7: {15, 6, 12, 3, 9, 0},
		8: {6, 15, 3, 12, 0, 9},
	}
	for o := 1; o <= 8; o++ {
		in := RGB{Width: 3, Height: 2, Pix: append([]byte(nil), src.Pix...)}
		m := orient(in, o)
		var got []byte
		for y := 0; y < m.Height; y++ {
			for x := 0; x < m.Width; x++ {
				got = append(got, at(m, x, y))
			}
		}
		if string(got) != string(want[o]) {
			t.Errorf("orientation %d: got %v want %v", o, got, want[o])
		}
	}
}

func TestTiffOrientationMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("II*\x00"), []byte("II*\x00\xff\xff\xff\xff"), []byte("MM\x00*\x00\x00\x00\x08\xff\xff")} {
		if o := tiffOrientation(b); o != 1 {
			t.Errorf("%q: %d", b, o)
		}
	}
	le := []byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00")
	if o := tiffOrientation(le); o != 6 {
		t.Errorf("valid LE orientation 6: %d", o)
	}
}
