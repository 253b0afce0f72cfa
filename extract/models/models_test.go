package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgvec/imgvec/extract/onnxgraph"
)

func zooTiny(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := onnxgraph.VGG19(&buf, onnxgraph.VGGOptions{Naming: onnxgraph.ModelZoo, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(h[:])
}

type server struct {
	*httptest.Server
	hits atomic.Int64
}

func serve(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func serveBytes(t *testing.T, b []byte) *server {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/vgg19-7.onnx" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "vgg19-7.onnx", time.Time{}, bytes.NewReader(b))
	})
}

// noPartials fails if the cache holds temporary files.
func noPartials(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".partial") {
			t.Errorf("left a partial file: %s", e.Name())
		}
	}
}

func TestFetchAndCacheReuse(t *testing.T) {
	model, sum := zooTiny(t)
	srv := serveBytes(t, model)
	dir := t.TempDir()
	ctx := context.Background()

	path, err := Fetch(ctx, srv.URL+"/vgg19-7.onnx", sum, dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir {
		t.Errorf("cut model %s not in cache %s", path, dir)
	}
	cut, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnxgraph.Parse(cut)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Inspect()
	if len(r.Outputs) != 1 || r.Outputs[0].String() != "vgg0_dense1_relu_fwd float [N,64]" {
		t.Errorf("cut outputs %v", r.Outputs)
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("%d requests", srv.hits.Load())
	}

	res, err := FetchWith(ctx, srv.URL+"/vgg19-7.onnx", Options{SHA256: strings.ToUpper(sum), CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != path || res.Downloaded || res.Layer.Dim != 64 || res.Layer.Name != "fc7" {
		t.Errorf("second fetch = %+v", res)
	}
	if srv.hits.Load() != 1 {
		t.Errorf("cache reuse made %d requests, want 1 in all", srv.hits.Load())
	}
	// Another layer of the same download: a new cut, still no request.
	res, err = FetchWith(ctx, srv.URL+"/vgg19-7.onnx", Options{SHA256: sum, CacheDir: dir, Layer: "fc6"})
	if err != nil || res.Path == path || res.Layer.Name != "fc6" || srv.hits.Load() != 1 {
		t.Errorf("fc6 fetch = %+v, %v, %d requests", res, err, srv.hits.Load())
	}
	noPartials(t, dir)
}

func TestFetchHashMismatch(t *testing.T) {
	model, sum := zooTiny(t)
	srv := serveBytes(t, model)
	dir := t.TempDir()
	wrong := strings.Repeat("ab", 32)
	_, err := Fetch(context.Background(), srv.URL+"/vgg19-7.onnx", wrong, dir)
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), sum) || !strings.Contains(err.Error(), wrong) {
		t.Fatalf("err = %v, want a mismatch naming both hashes", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cache holds %d files after a mismatch", len(ents))
	}
}

func TestFetch404(t *testing.T) {
	srv := serveBytes(t, nil)
	_, err := Fetch(context.Background(), srv.URL+"/missing.onnx", strings.Repeat("0", 64), t.TempDir())
	if !errors.Is(err, ErrHTTPStatus) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
}

func TestFetchCancel(t *testing.T) {
	model, sum := zooTiny(t)
	sent := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000000")
		w.Write(model[:1000])
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done() // stall until the client goes away
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sent
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := Fetch(ctx, srv.URL+"/vgg19-7.onnx", sum, dir)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch did not return after cancel")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cache holds %d files after cancel", len(ents))
	}
}

func TestFetchNeedsChecksum(t *testing.T) {
	model, _ := zooTiny(t)
	srv := serveBytes(t, model)
	dir := t.TempDir()
	u := srv.URL + "/vgg19-7.onnx"
	if _, err := Fetch(context.Background(), u, "", dir); !errors.Is(err, ErrNoChecksum) || !strings.Contains(err.Error(), "--insecure-skip-verify") {
		t.Fatalf("err = %v, want ErrNoChecksum", err)
	}
	if srv.hits.Load() != 0 {
		t.Error("refused fetch made a request")
	}
	// The vgg19 presets carry no hash either.
	if _, err := Fetch(context.Background(), "vgg19-fc7", "", dir); !errors.Is(err, ErrNoChecksum) {
		t.Fatalf("preset err = %v, want ErrNoChecksum", err)
	}
	res, err := FetchWith(context.Background(), u, Options{CacheDir: dir, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(filepath.Base(res.Source), "unverified") || res.Layer.Name != "fc7" {
		t.Errorf("result %+v", res)
	}
}

func TestFetchRejects(t *testing.T) {
	model, _ := zooTiny(t)
	dir := t.TempDir()
	ctx := context.Background()
	srv := serveBytes(t, model)
	if _, err := FetchWith(ctx, srv.URL+"/vgg19-7.onnx", Options{CacheDir: dir, InsecureSkipVerify: true, MaxBytes: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
	lfs := []byte("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
	srv2 := serveBytes(t, lfs)
	if _, err := FetchWith(ctx, srv2.URL+"/vgg19-7.onnx", Options{CacheDir: dir, InsecureSkipVerify: true}); !errors.Is(err, onnxgraph.ErrNotONNX) || !strings.Contains(err.Error(), "LFS") {
		t.Errorf("LFS pointer: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*unverified*")); len(m) != 0 {
		t.Errorf("kept a download that is not a model: %v", m)
	}
	if _, err := Fetch(ctx, "vgg99", "", dir); err == nil || !strings.Contains(err.Error(), "vgg19-fc7") {
		t.Errorf("unknown preset: %v", err)
	}
	if _, err := Fetch(ctx, srv.URL+"/vgg19-7.onnx", "xyz", dir); err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Errorf("bad hash: %v", err)
	}
	if _, err := FetchWith(ctx, srv.URL+"/vgg19-7.onnx", Options{CacheDir: dir, InsecureSkipVerify: true, Layer: "fc9"}); !errors.Is(err, onnxgraph.ErrNoSuchLayer) {
		t.Errorf("bad layer: %v", err)
	}
	noPartials(t, dir)
}

func TestPresets(t *testing.T) {
	if _, ok := Lookup(Default); !ok {
		t.Fatal("default preset missing")
	}
	for _, p := range Presets() {
		if p.URL == "" || p.Layer == "" || p.Dim <= 0 || p.InputSize != 224 || p.Std[0] == 0 {
			t.Errorf("incomplete preset %+v", p)
		}
		if p.SHA256 != "" && !hexRE.MatchString(p.SHA256) {
			t.Errorf("%s: bad sha256 %q", p.Name, p.SHA256)
		}
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("IMGVEC_CACHE_DIR", "/some/where")
	if d, err := DefaultCacheDir(); err != nil || d != "/some/where" {
		t.Errorf("%q %v", d, err)
	}
	t.Setenv("IMGVEC_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := DefaultCacheDir(); err != nil || d != "/xdg/imgvec/models" {
		t.Errorf("%q %v", d, err)
	}
}
