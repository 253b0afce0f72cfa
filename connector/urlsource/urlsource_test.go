package urlsource

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/connector/sourcetest"
	"github.com/imgvec/imgvec/schema"
)

// fastRetry keeps failing tests quick.
var fastRetry = retry.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

// pngBytes is the start of a PNG: it sniffs as an image.
var pngBytes = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1, 2, 3}, 50)...)

// writeManifest writes JSON Lines rows to dir/name.
func writeManifest(t *testing.T, dir, name string, rows ...map[string]any) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSource(t *testing.T, manifest string, opts Options) *Source {
	t.Helper()
	if opts.Retry.Attempts == 0 {
		opts.Retry = fastRetry
	}
	s, err := New(manifest, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// loopback opens the test servers on 127.0.0.1.
var loopback = Guard{AllowPrivate: true}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: func(t *testing.T, items []sourcetest.Item) sourcetest.Fixture {
		data := map[string][]byte{}
		for _, it := range items {
			data["/items/"+it.Key] = it.Data
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, ok := data[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		}))
		t.Cleanup(srv.Close)
		dir := t.TempDir()
		var rows []map[string]any
		for _, it := range items {
			rows = append(rows, map[string]any{"id": it.Key, "url": srv.URL + "/items/" + it.Key})
		}
		p := writeManifest(t, dir, "list.jsonl", rows...)
		return sourcetest.Fixture{
			Source: newSource(t, p, Options{Guard: loopback}),
			Reopen: func(t *testing.T) connector.Source { return newSource(t, p, Options{Guard: loopback}) },
			Break: func(t *testing.T) {
				// The first line is no longer JSON: that item cannot be listed.
				b, _ := os.ReadFile(p)
				b[0] = '!'
				os.WriteFile(p, b, 0o644)
			},
		}
	}})
}

func TestGuard(t *testing.T) {
	refused := []string{"127.0.0.1", "127.5.5.5", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fd12::1", "fe80::1", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:8.8.8.8", "64:ff9b::a00:1", "2002:a00:1::1"}
	for _, a := range refused {
		if err := (Guard{}).Check(netip.MustParseAddr(a)); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("Check(%s) = %v, want refused", a, err)
		}
		if err := (Guard{AllowPrivate: true}).Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("with AllowPrivate, Check(%s) = %v", a, err)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"} {
		if err := (Guard{}).Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", a, err)
		}
	}
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if g.Check(netip.MustParseAddr("10.2.3.4")) != nil || g.Check(netip.MustParseAddr("192.168.0.1")) == nil {
		t.Error("an allowed CIDR opens exactly its addresses")
	}
}

func TestManifestFormats(t *testing.T) {
	dir := t.TempDir()
	csvText := "url,id,album,sha256\nhttps://EXAMPLE.com:443/a.jpg#x,,trip,\nhttp://h/b.png,b,\"x, y\"," + strings.Repeat("ab", 32) + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.ReplaceAll(csvText, ",", "\t")))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "l.csv"), []byte(csvText), 0o644)
	os.WriteFile(filepath.Join(dir, "l.tsv.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "l.jsonl"), []byte(`{"url":"https://example.com/a.jpg","album":"trip","n":3}`+"\n\n"+`{"url":"http://h/b.png","id":"b"}`+"\n"), 0o644)
	for _, name := range []string{"l.csv", "l.tsv.gz", "l.jsonl"} {
		s := newSource(t, filepath.Join(dir, name), Options{})
		var keys []string
		if err := s.List(t.Context(), func(e connector.Entry) error {
			if !e.Revalidate {
				t.Errorf("%s: %s not listed for revalidation", name, e.Key)
			}
			keys = append(keys, e.Key)
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Join(keys, " ") != "https://example.com/a.jpg b" {
			t.Errorf("%s: keys %q", name, keys)
		}
		if m := s.rows["https://example.com/a.jpg"].meta; m["album"] != "trip" {
			t.Errorf("%s: metadata %v, want album=trip", name, m)
		}
	}
	if !strings.HasPrefix(newSource(t, filepath.Join(dir, "l.csv"), Options{}).Name(), "manifest+file:///") {
		t.Error("a local manifest's name is not manifest+file:///…")
	}
	for _, bad := range []string{"list.txt", "s3://b/list.jsonl", "ftp://h/l.csv"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func TestManifestBadLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l.jsonl")
	os.WriteFile(p, []byte(`{"url":"http://h/a.jpg"}`+"\n"+`{"url": oops}`+"\n"+`{"id":"x"}`+"\n"+`{"url":"http://h/a.jpg"}`+"\n"+`{"url":"http://h/c.jpg"}`+"\n"), 0o644)
	s := newSource(t, p, Options{})
	var n int
	err := s.List(t.Context(), func(connector.Entry) error { n++; return nil })
	if err == nil || n != 2 {
		t.Fatalf("List = %d entries, %v; want 2 and an error", n, err)
	}
	for _, want := range []string{"line 2: not a JSON object", `line 3: no "url"`, "line 4: key \"http://h/a.jpg\" already used on line 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// fixture is a manifest of one URL per handler path on a test server.
type fixture struct {
	t   *testing.T
	srv *httptest.Server
	dir string
}

func newFixture(t *testing.T, h http.Handler) *fixture {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, dir: t.TempDir()}
}

// source lists paths (with optional extra columns) and returns the source.
func (f *fixture) source(opts Options, paths ...string) *Source {
	var rows []map[string]any
	for _, p := range paths {
		rows = append(rows, map[string]any{"url": f.srv.URL + p, "id": p})
	}
	s := newSource(f.t, writeManifest(f.t, f.dir, "l.jsonl", rows...), opts)
	if err := s.List(f.t.Context(), func(connector.Entry) error { return nil }); err != nil {
		f.t.Fatal(err)
	}
	return s
}

func classOf(err error) schema.FailureClass { return schema.ClassOf(err) }

func TestConditionalGet(t *testing.T) {
	var gets, conditional atomic.Int32
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Tue, 15 Nov 1994 12:45:26 GMT")
		w.Write(pngBytes)
	}))
	s := f.source(Options{Guard: loopback}, "/a.png")
	c, err := s.ReadItem(t.Context(), connector.Entry{Key: "/a.png"}, nil)
	if err != nil || c.NotModified || c.Entry.ETag != `"v1"` || c.Entry.MTime.Year() != 1994 || !bytes.Equal(c.Data, pngBytes) {
		t.Fatalf("first GET: %+v, %v; want the bytes with ETag and Last-Modified", c.Entry, err)
	}
	fp := schema.Fingerprint{Size: c.Entry.Size, ETag: c.Entry.ETag, MTime: c.Entry.MTime}
	c, err = s.ReadItem(t.Context(), connector.Entry{Key: "/a.png"}, &fp)
	if err != nil || !c.NotModified || c.Data != nil {
		t.Errorf("revalidation: %+v, %v; want NotModified", c, err)
	}
	if gets.Load() != 2 || conditional.Load() != 1 {
		t.Errorf("%d GETs, %d conditional; want 2, 1", gets.Load(), conditional.Load())
	}
}

func TestFailureClasses(t *testing.T) {
	var flaky, limited atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.png", func(w http.ResponseWriter, r *http.Request) { w.Write(pngBytes) })
	mux.HandleFunc("/404.png", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/410.png", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("/403.png", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	mux.HandleFunc("/500.png", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/503-then-ok.png", func(w http.ResponseWriter, r *http.Request) {
		if flaky.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(pngBytes)
	})
	mux.HandleFunc("/429.png", func(w http.ResponseWriter, r *http.Request) {
		if limited.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write(pngBytes)
	})
	mux.HandleFunc("/slow.png", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big.png", func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat(pngBytes, 10)) })
	mux.HandleFunc("/big-chunked.png", func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			w.Write(pngBytes)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/truncated.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "500")
		w.Write(pngBytes)
	})
	mux.HandleFunc("/page.jpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!DOCTYPE html><html><body>not found</body></html>"))
	})
	mux.HandleFunc("/noai.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Robots-Tag", "noindex, noai")
		w.Write(pngBytes)
	})
	mux.HandleFunc("/scoped.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Robots-Tag", "imgvec: noimageai")
		w.Write(pngBytes)
	})
	mux.HandleFunc("/otherbot.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Robots-Tag", "otherbot: noai")
		w.Write(pngBytes)
	})
	mux.HandleFunc("/tdm.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("tdm-reservation", "1")
		w.Write(pngBytes)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	f := newFixture(t, mux)
	paths := []string{"/ok.png", "/404.png", "/410.png", "/403.png", "/500.png", "/503-then-ok.png", "/429.png", "/slow.png",
		"/big.png", "/big-chunked.png", "/truncated.png", "/page.jpg", "/noai.png", "/scoped.png", "/otherbot.png", "/tdm.png", "/loop", "/to-file"}
	s := f.source(Options{Guard: loopback, Timeout: 300 * time.Millisecond, MaxBytes: int64(len(pngBytes) * 5)}, paths...)
	want := map[string]schema.FailureClass{
		"/ok.png": "", "/404.png": schema.FailGone, "/410.png": schema.FailGone, "/403.png": FailHTTP4xx, "/500.png": FailHTTP5xx,
		"/503-then-ok.png": "", "/429.png": "", "/slow.png": FailTimeout, "/big.png": schema.FailTooLarge,
		"/big-chunked.png": schema.FailTooLarge, "/truncated.png": schema.FailTruncated, "/page.jpg": FailNotAnImage,
		"/noai.png": FailOptedOut, "/scoped.png": FailOptedOut, "/otherbot.png": "", "/tdm.png": FailOptedOut,
		"/loop": FailTooManyRedirects, "/to-file": FailBadURL,
	}
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Go(func() {
			start := time.Now()
			c, err := s.ReadItem(t.Context(), connector.Entry{Key: p}, nil)
			if got := classOf(err); got != want[p] || (err != nil) != (want[p] != "") {
				t.Errorf("%s: class %q (%v), want %q", p, got, err, want[p])
			}
			if err == nil && !bytes.Equal(c.Data, pngBytes) {
				t.Errorf("%s: %d bytes, want the image", p, len(c.Data))
			}
			if (want[p] == schema.FailGone) != errors.Is(err, connector.ErrGone) {
				t.Errorf("%s: %v: wraps ErrGone %v", p, err, errors.Is(err, connector.ErrGone))
			}
			if p == "/429.png" && time.Since(start) < time.Second {
				t.Errorf("429 with Retry-After: 1 retried after %s", time.Since(start))
			}
		})
	}
	wg.Wait()
	if n := flaky.Load(); n != 2 {
		t.Errorf("503 then success: %d requests, want 2", n)
	}
}

func TestHashMismatchAndMetadata(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(pngBytes) }))
	sum := sha256.Sum256(pngBytes)
	good, bad := hex.EncodeToString(sum[:]), strings.Repeat("0", 64)
	p := writeManifest(t, f.dir, "l.jsonl",
		map[string]any{"url": f.srv.URL + "/a.png", "id": "good", "sha256": good, "album": "trip"},
		map[string]any{"url": f.srv.URL + "/a.png", "id": "bad", "sha256": bad})
	s := newSource(t, p, Options{Guard: loopback})
	c, err := s.ReadItem(t.Context(), connector.Entry{Key: "good"}, nil)
	if err != nil || c.Metadata["album"] != "trip" {
		t.Errorf("good: %v, %v; want the metadata", c.Metadata, err)
	}
	if _, err := s.ReadItem(t.Context(), connector.Entry{Key: "bad"}, nil); classOf(err) != FailHashMismatch {
		t.Errorf("bad sha256: %v, want hash_mismatch", err)
	}
}

// listen127 starts a server on another loopback address, 127.0.0.2.
func listen127(t *testing.T, h http.Handler) *httptest.Server {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestSSRFGuard(t *testing.T) {
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(pngBytes) }))
	defer inner.Close()
	// The public-facing server: on 127.0.0.2, opened by the allow-list;
	// 127.0.0.1 and 169.254.169.254 stay refused.
	outer := listen127(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-loopback":
			http.Redirect(w, r, inner.URL+"/x.png", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		default:
			w.Write(pngBytes)
		}
	}))
	_, port, _ := net.SplitHostPort(inner.Listener.Addr().String())
	dir := t.TempDir()
	p := writeManifest(t, dir, "l.jsonl",
		map[string]any{"url": outer.URL + "/x.png", "id": "allowed"},
		map[string]any{"url": outer.URL + "/to-loopback", "id": "to-loopback"},
		map[string]any{"url": outer.URL + "/to-metadata", "id": "to-metadata"},
		map[string]any{"url": "http://localhost:" + port + "/x.png", "id": "dns-private"},
		map[string]any{"url": inner.URL + "/x.png", "id": "loopback"},
		map[string]any{"url": "ftp://example.com/x.png", "id": "ftp"})
	allow127002 := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	want := map[string]schema.FailureClass{"allowed": "", "to-loopback": FailBlockedAddress, "to-metadata": FailBlockedAddress,
		"dns-private": FailBlockedAddress, "loopback": FailBlockedAddress, "ftp": FailBadURL}
	s := newSource(t, p, Options{Guard: allow127002})
	for key, class := range want {
		_, err := s.ReadItem(t.Context(), connector.Entry{Key: key}, nil)
		if got := classOf(err); got != class {
			t.Errorf("%s: class %q (%v), want %q", key, got, err, class)
		}
	}
	// --allow-private-networks opens loopback (not other schemes).
	open := newSource(t, p, Options{Guard: Guard{AllowPrivate: true}})
	for key, class := range map[string]schema.FailureClass{"to-loopback": "", "dns-private": "", "loopback": "", "ftp": FailBadURL} {
		if _, err := open.ReadItem(t.Context(), connector.Entry{Key: key}, nil); classOf(err) != class {
			t.Errorf("with AllowPrivate, %s: %v, want class %q", key, err, class)
		}
	}
}

func TestHTTPManifest(t *testing.T) {
	var manifest []byte
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/list.csv" {
			w.Write(manifest)
			return
		}
		w.Write(pngBytes)
	}))
	manifest = fmt.Appendf(nil, "url,caption\n%s/a.png,a cat\n", f.srv.URL)
	s := newSource(t, f.srv.URL+"/list.csv?token=abc", Options{Guard: loopback})
	if s.Name() != "manifest+"+f.srv.URL+"/list.csv" {
		t.Errorf("Name = %q", s.Name())
	}
	var keys []string
	if err := s.List(t.Context(), func(e connector.Entry) error { keys = append(keys, e.Key); return nil }); err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v", keys, err)
	}
	if c, err := s.ReadItem(t.Context(), connector.Entry{Key: keys[0]}, nil); err != nil || c.Metadata["caption"] != "a cat" {
		t.Errorf("ReadItem = %v, %v", c.Metadata, err)
	}
	// The manifest server itself is behind the guard.
	if err := newSource(t, f.srv.URL+"/list.csv", Options{}).List(t.Context(), func(connector.Entry) error { return nil }); !errors.Is(err, ErrBlockedAddress) {
		t.Errorf("a manifest on loopback without AllowPrivate: %v, want blocked", err)
	}
}

func TestDetectsContextErrors(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	s := f.source(Options{Guard: loopback}, "/hang.png")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.ReadItem(ctx, connector.Entry{Key: "/hang.png"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReadItem past the caller's deadline: %v, want context.DeadlineExceeded", err)
	}
}
