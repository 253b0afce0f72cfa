package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/imgvec/imgvec/connector/s3source/s3test"
	"github.com/imgvec/imgvec/mapview/chromiumtest"
)

// mapHostileKey is a file name (under a folder "<") that would run script
// if the page put keys into HTML.
const mapHostileKey = `</script><img src=x onerror=alert(1)>.jpg`

// syncedImages copies the test images into dir/src, adds one under the
// hostile key, and syncs them into sinkURI: the number of rows stored.
func syncedImages(t *testing.T, dir, sinkURI string) int {
	t.Helper()
	src := filepath.Join(dir, "src")
	copyTree(t, e2eImages, src)
	hostile := filepath.Join(src, filepath.FromSlash(mapHostileKey))
	if err := os.MkdirAll(filepath.Dir(hostile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostile, readImage(t, "small.jpg"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := imgvec(t, dir, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
	if r.code != exitOK && r.code != exitItemFailures { // testdata/images/bad holds broken files
		t.Fatalf("sync: %s", r)
	}
	l := parseRunLine(t, r)
	return int(l.Written)
}

var mapPointsRE = regexp.MustCompile(`map: (\d+) points of model \S+ \((\d+) laid out, (\d+) placed`)

// mapPoints runs `imgvec map` and returns the points, laid out and placed
// it reports.
func mapPoints(t *testing.T, dir string, env []string, args ...string) (points, laidOut, placed int) {
	t.Helper()
	r := mustCodeEnv(t, exitOK, dir, env, append([]string{"map", "-q"}, args...)...)
	m := mapPointsRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no map summary on stderr\n%s", r)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	return n(1), n(2), n(3)
}

// checkMapPage opens page in headless Chromium (no network): every point
// drawn, thumbs of them with a thumbnail, a hover shows one, no request
// leaves the page, no key became markup, and a screenshot is not blank.
func checkMapPage(t *testing.T, page string, points, thumbs int) {
	t.Helper()
	st, _ := chromiumtest.RunSelfTest(t, page)
	if st.Stats.Points != points || st.Stats.Drawn != points || st.Stats.Thumbs != thumbs {
		t.Errorf("the page drew %d of %d points with %d thumbnails, want %d and %d", st.Stats.Drawn, st.Stats.Points, st.Stats.Thumbs, points, thumbs)
	}
	if !st.Hover.Visible || st.Hover.Thumb != "image" {
		t.Errorf("hover: %+v, want a visible thumbnail", st.Hover)
	}
	if len(st.Requests) != 0 || st.Elements.Img != 0 || st.Elements.Script != 2 {
		t.Errorf("requests %v, %d img and %d script elements: want none, 0 and 2", st.Requests, st.Elements.Img, st.Elements.Script)
	}
	if c := chromiumtest.Colours(chromiumtest.Screenshot(t, page, "#selftest", 640, 480), 50); c < 20 {
		t.Errorf("screenshot has %d colours: blank?", c)
	}
}

// TestE2EMapSQLite maps a SQLite sink: the page (in Chromium), the PNG,
// the same file for the same data, --limit and --sample, and thumbnails
// that cannot be read becoming grey tiles rather than a failed map.
func TestE2EMapSQLite(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	sinkURI := "sqlite://" + filepath.Join(dir, "v.db")
	rows := syncedImages(t, dir, sinkURI)
	// A stored image that is gone from the folder: its thumbnail fails.
	if err := os.Remove(filepath.Join(dir, "src", "small_portrait.png")); err != nil {
		t.Fatal(err)
	}
	page, pic := filepath.Join(dir, "map.html"), filepath.Join(dir, "map.png")
	points, laidOut, placed := mapPoints(t, dir, nil, "--sink", sinkURI, "--out", page, "--png", pic, "--size", "320x200", "--color-by", "format")
	if points != rows || laidOut != rows || placed != 0 {
		t.Fatalf("map: %d points (%d laid out, %d placed), want all %d laid out", points, laidOut, placed, rows)
	}
	checkMapPage(t, page, rows, rows-1) // small_portrait.png: a grey tile
	b, err := os.ReadFile(pic)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("--png: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 320 || s.Y != 200 {
		t.Errorf("--png is %v, want 320×200", s)
	}

	// The same data and seed: the same file, byte for byte.
	first, _ := os.ReadFile(page)
	again := filepath.Join(dir, "again.html")
	mapPoints(t, dir, nil, "--sink", sinkURI, "--out", again, "--color-by", "format")
	if second, _ := os.ReadFile(again); !bytes.Equal(first, second) {
		t.Error("two maps of the same data differ")
	}

	// A sample laid out, the rest placed; and a limit.
	if points, laidOut, placed := mapPoints(t, dir, nil, "--sink", sinkURI, "--out", again, "--sample", "8"); points != rows || laidOut != 8 || placed != rows-8 {
		t.Errorf("--sample 8: %d points (%d laid out, %d placed), want %d (8, %d)", points, laidOut, placed, rows, rows-8)
	}
	if points, _, _ := mapPoints(t, dir, nil, "--sink", sinkURI, "--png", pic, "--limit", "5"); points != 5 {
		t.Errorf("--limit 5: %d points", points)
	}

	for _, bad := range [][]string{
		{"--sink", sinkURI}, // no output
		{"--sink", sinkURI, "--png", pic, "--size", "x"}, // bad size
		{"--sink", sinkURI, "--png", pic, "--color-by", "colour"},
		{"--sink", sinkURI, "--png", pic, "--sample", "1"},
	} {
		mustCode(t, exitUsage, dir, append([]string{"map"}, bad...)...)
	}
	r := mustCode(t, exitFatal, dir, "map", "--sink", sinkURI, "--png", pic, "--model", "fc7-0000000000000000")
	if !bytes.Contains([]byte(r.stderr), []byte("fc7-0000000000000000")) {
		t.Errorf("an unknown model id: %s", r)
	}
}

// TestE2EMapS3 maps rows synced from a bucket: the thumbnails are read
// from S3, and points are coloured by a metadata field.
func TestE2EMapS3(t *testing.T) {
	needBinary(t)
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "s3.db")
	for i, name := range s3Images {
		srv.Put(t, bucket, "photos/"+name, readImage(t, name), map[string]string{"album": strconv.Itoa(i % 2)})
	}
	mustCodeEnv(t, exitOK, dir, srv.Env(), "sync", "-q", "--source", srv.Ref(bucket, "photos"), "--sink", db,
		"--model", e2eModel, "--s3-metadata")
	page := filepath.Join(dir, "map.html")
	if points, _, _ := mapPoints(t, dir, srv.Env(), "--sink", db, "--out", page, "--color-by", "meta:album",
		"--source", srv.Ref(bucket, "photos")); points != len(s3Images) {
		t.Fatalf("map: %d points, want %d", points, len(s3Images))
	}
	st, _ := chromiumtest.RunSelfTest(t, page)
	if st.Stats.Thumbs != len(s3Images) || st.Hover.Thumb != "image" {
		t.Errorf("self-test %+v: want %d thumbnails read from the bucket", st, len(s3Images))
	}
	html, _ := os.ReadFile(page)
	if !bytes.Contains(html, []byte(`"name":"0"`)) || !bytes.Contains(html, []byte(`"name":"1"`)) {
		t.Error("the page has no groups of the album metadata field")
	}
}

// TestE2EMapPostgres and TestE2EMapMilvus map the other sinks.
func TestE2EMapPostgres(t *testing.T) {
	needBinary(t)
	testE2EMapSink(t, pgSink(t))
}

func TestE2EMapMilvus(t *testing.T) {
	needBinary(t)
	eachMilvus(t, testE2EMapSink)
}

func testE2EMapSink(t *testing.T, sinkURI string) {
	dir := t.TempDir()
	rows := syncedImages(t, dir, sinkURI)
	page := filepath.Join(dir, "map.html")
	if points, _, _ := mapPoints(t, dir, nil, "--sink", sinkURI, "--out", page, "--sample", "10"); points != rows {
		t.Fatalf("map: %d points, want %d", points, rows)
	}
	checkMapPage(t, page, rows, rows)
}
