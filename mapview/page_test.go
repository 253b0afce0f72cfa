package mapview

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgvec/imgvec/mapview/chromiumtest"
)

// hostileKey would run script if the page put keys into HTML.
const hostileKey = `</script><img src=x onerror="document.title='pwned'">&<!--`

// testPage is n points on a spiral in three groups, each with a solid
// thumbnail of its group's colour but the last (no thumbnail: a grey
// tile), the first with the hostile key.
func testPage(t *testing.T, n int) Page {
	t.Helper()
	sp := NewSprites(16)
	p := Page{Title: "test map", ModelID: "fc7-test", ColorBy: "source", Thumbs: sp,
		LinkBase: map[string]string{"file:///data/a": "file:///data/a/"}}
	srcs := []string{"file:///data/a", "s3://bucket/b", "manifest+https://example.com/m.jsonl"}
	tile := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range n {
		a := float64(i) * 0.3
		it := Item{Source: srcs[i%3], Key: fmt.Sprintf("img/%04d.jpg", i), X: float32(a * math.Cos(a)), Y: float32(a * math.Sin(a)),
			Group: srcs[i%3], Thumb: -1}
		if i == 0 {
			it.Key = hostileKey
		}
		if i < n-1 {
			for p := range tile.Pix {
				tile.Pix[p] = uint8(60 + 80*(i%3) + p%3*40)
			}
			var err error
			if it.Thumb, err = sp.Add(tile); err != nil {
				t.Fatal(err)
			}
		}
		for c := 1; c <= 5; c++ {
			it.Neighbours = append(it.Neighbours, Neighbour{Index: (i + c) % n, Distance: float32(c) / 10})
		}
		p.Items = append(p.Items, it)
	}
	return p
}

func writePage(t *testing.T, p Page) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "map.html")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}

func TestPageEscapesKeys(t *testing.T) {
	_, page := writePage(t, testPage(t, 10))
	if n := bytes.Count(page, []byte("</script>")); n != 2 {
		t.Errorf("the page has %d </script>, want 2 (a key closed a script element)", n)
	}
	for _, bad := range []string{"<img", "<!--", "onerror=\""} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("the page contains %q from a key", bad)
		}
	}
}

func TestPageInChromium(t *testing.T) {
	// More than one sprite sheet of 1,024 tiles.
	const n = 1500
	path, _ := writePage(t, testPage(t, n))
	st, _ := chromiumtest.RunSelfTest(t, path)
	t.Logf("self-test: %+v", st)
	if st.Stats.Points != n || st.Stats.Drawn != n {
		t.Errorf("drew %d of %d points, want %d", st.Stats.Drawn, st.Stats.Points, n)
	}
	if st.Stats.Sheets != 2 || st.Stats.SheetsLoaded != 2 || st.Stats.Thumbs != n-1 {
		t.Errorf("sheets %d, loaded %d, thumbnails %d; want 2, 2, %d", st.Stats.Sheets, st.Stats.SheetsLoaded, st.Stats.Thumbs, n-1)
	}
	if !st.Hover.Visible || st.Hover.Thumb != "image" || st.Hover.Key != hostileKey {
		t.Errorf("hover: %+v, want a visible thumbnail image of %q", st.Hover, hostileKey)
	}
	if st.Boxed != n || st.GridThumbs != 400 {
		t.Errorf("box selection: %d selected, %d thumbnails shown; want %d, 400", st.Boxed, st.GridThumbs, n)
	}
	if len(st.Requests) != 0 {
		t.Errorf("the page fetched %v (it must work offline)", st.Requests)
	}
	if st.Elements.Img != 0 || st.Elements.Script != 2 || st.Title != "test map" {
		t.Errorf("a key became markup: %d img and %d script elements, title %q", st.Elements.Img, st.Elements.Script, st.Title)
	}
	shot := chromiumtest.Screenshot(t, path, "#selftest", 800, 600)
	if b := shot.Bounds(); b.Dx() != 800 || b.Dy() != 600 {
		t.Errorf("screenshot %v, want 800×600", b)
	}
	if c := chromiumtest.Colours(shot, 50); c < 20 {
		t.Errorf("screenshot has %d colours: blank?", c)
	}
}

func TestPageWithoutThumbnails(t *testing.T) {
	p := testPage(t, 5)
	p.Thumbs = nil
	path, _ := writePage(t, p)
	st, _ := chromiumtest.RunSelfTest(t, path)
	if st.Stats.Drawn != 5 || !st.Hover.Visible || st.Hover.Thumb != "grey" {
		t.Errorf("self-test %+v: want 5 points and a grey tile on hover", st)
	}
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	if err := WritePNG(&b, testPage(t, 300), 640, 480); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds(); got.Dx() != 640 || got.Dy() != 480 {
		t.Fatalf("size %v, want 640×480", got)
	}
	// The three groups' colours are there.
	want := map[color.RGBA]bool{hexColor(palette[0]): false, hexColor(palette[1]): false, hexColor(palette[2]): false}
	for y := range 480 {
		for x := range 640 {
			r, g, bl, _ := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
			if _, ok := want[c]; ok {
				want[c] = true
			}
		}
	}
	for c, seen := range want {
		if !seen {
			t.Errorf("colour %v not drawn", c)
		}
	}
	if err := WritePNG(&b, testPage(t, 3), 4, 4); err == nil {
		t.Error("a 4×4 picture: no error")
	}
}

func TestGroupsShareTheLastColour(t *testing.T) {
	var items []Item
	for i := range 30 {
		for range 30 - i { // group g0 largest
			items = append(items, Item{Group: fmt.Sprintf("g%d", i)})
		}
	}
	gs, of := groups(items)
	if len(gs) != len(palette) || gs[0].Name != "g0" || gs[len(gs)-1].Name != otherGroup {
		t.Fatalf("groups %+v", gs)
	}
	total := 0
	for _, g := range gs {
		total += g.Count
	}
	if total != len(items) || of[len(of)-1] != len(gs)-1 {
		t.Fatalf("counts add up to %d of %d; last item in group %d", total, len(items), of[len(of)-1])
	}
}
