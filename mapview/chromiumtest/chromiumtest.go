// Package chromiumtest opens a map page in a real headless Chromium
// (Debian's package chromium) for the tests of mapview and `imgvec map`.
// The browser runs with networking blocked (every host name fails to
// resolve, every proxied request goes to a closed port) and a throwaway
// profile; each call starts one browser process and waits for it (at most
// a minute). Without chromium the test skips locally and fails with
// CI=true (testenv.Skip).
package chromiumtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/imgvec/imgvec/schema/testenv"
)

// SelfTest is what the page's #selftest run reports (see mapview).
type SelfTest struct {
	Stats struct {
		Points       int `json:"points"`
		Drawn        int `json:"drawn"`
		Sheets       int `json:"sheets"`
		SheetsLoaded int `json:"sheetsLoaded"`
		Thumbs       int `json:"thumbs"`
	} `json:"stats"`
	Hover struct {
		Visible bool   `json:"visible"`
		Thumb   string `json:"thumb"` // "image" or "grey"
		Key     string `json:"key"`
	} `json:"hover"`
	Boxed      int      `json:"boxed"`
	GridThumbs int      `json:"gridThumbs"`
	Requests   []string `json:"requests"` // resources fetched other than data: URIs
	Elements   struct {
		Img    int `json:"img"`
		Script int `json:"script"`
	} `json:"elements"` // in the document at the end
	Title string `json:"title"` // the document's
}

func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Skip(t, "chromium not installed (apt-get install chromium; .ci/lib/install-apt.sh installs it)")
	return ""
}

// run runs headless chromium on page (a file path) with extra flags and
// returns its standard output.
func run(t *testing.T, page, fragment string, flags ...string) []byte {
	t.Helper()
	bin := browser(t)
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--disable-sync", "--no-default-browser-check", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
		"--virtual-time-budget=15000"}, flags...)
	args = append(args, "file://"+filepath.ToSlash(abs)+fragment)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", page, err, stderr.String())
	}
	return stdout.Bytes()
}

var selftestAttr = regexp.MustCompile(`data-selftest="([^"]*)"`)

// RunSelfTest opens page#selftest and returns what the page reported and
// the DOM it ended with.
func RunSelfTest(t *testing.T, page string) (SelfTest, string) {
	t.Helper()
	dom := run(t, page, "#selftest", "--window-size=1000,700", "--dump-dom")
	m := selftestAttr.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the page did not report its self-test (a script error?); DOM starts:\n%.2000s", dom)
	}
	var st SelfTest
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &st); err != nil {
		t.Fatalf("self-test report %q: %v", m[1], err)
	}
	return st, string(dom)
}

// Screenshot opens page (with fragment, e.g. "#selftest" to show a hover)
// in a width×height window and returns the screenshot.
func Screenshot(t *testing.T, page, fragment string, width, height int) image.Image {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shot.png")
	run(t, page, fragment, fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return img
}

// Colours counts the distinct colours of img (up to limit): a blank page
// has one or two.
func Colours(img image.Image, limit int) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if len(seen) >= limit {
				return limit
			}
		}
	}
	return len(seen)
}
