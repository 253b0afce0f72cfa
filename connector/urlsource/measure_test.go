package urlsource

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
)

// TestMeasureRevalidate is `make bench-sources` (URL part): with
// IMGVEC_BENCH_URLS=N it syncs a manifest of N URLs on a local server
// once, then measures, in one run, a no-op re-sync (every URL answering
// 304) against a plain concurrent HEAD loop over the same URLs with the
// same concurrency: requests/s and the time ratio. Medians of 3.
func TestMeasureRevalidate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_URLS"))
	if n <= 0 {
		t.Skip("measurement: set IMGVEC_BENCH_URLS (make bench-sources)")
	}
	const conc = 32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(pngBytes)))
		if r.Method == http.MethodGet {
			w.Write(pngBytes)
		}
	}))
	defer srv.Close()
	var m bytes.Buffer
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/img/%07d.png", srv.URL, i)
		fmt.Fprintf(&m, "{\"url\":%q}\n", urls[i])
	}
	p := t.TempDir() + "/urls.jsonl"
	if err := os.WriteFile(p, m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := New(p, Options{Guard: loopback, Concurrency: conc, PerHost: conc})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sink := connectortest.NewSink()
	emb := connectortest.NewEmbedder(connectortest.Model("bench", 8), 32)
	if err := sink.Open(t.Context(), emb.Identity()); err != nil {
		t.Fatal(err)
	}
	syncOnce := func() time.Duration {
		s, err := connector.NewSyncer(connector.Options{Source: src, Sink: sink, Embedder: emb, Kind: connector.KindSync, Linger: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r, err := s.Run(context.Background())
		if err != nil || r.Listed != int64(n) {
			t.Fatalf("sync: %+v, %v", r, err)
		}
		return time.Since(start)
	}
	first := syncOnce()
	noop := median(3, syncOnce)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true}}
	defer client.CloseIdleConnections()
	head := median(3, func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan string)
		for range conc {
			wg.Go(func() {
				for u := range next {
					resp, err := client.Head(u)
					if err != nil {
						t.Error(err)
						continue
					}
					resp.Body.Close()
				}
			})
		}
		for _, u := range urls {
			next <- u
		}
		close(next)
		wg.Wait()
		return time.Since(start)
	})
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	t.Logf("\n| %d URLs, %d in flight | time | requests/s | ratio |\n|---|---|---|---|\n"+
		"| plain concurrent HEAD loop | %s | %.0f | 1 |\n| no-op re-sync (all 304) | %s | %.0f | %.2f× the HEAD loop's time |\n"+
		"| first sync (200s, fake model) | %s | %.0f | |",
		n, conc, head.Round(time.Millisecond), rate(head), noop.Round(time.Millisecond), rate(noop), noop.Seconds()/head.Seconds(),
		first.Round(time.Millisecond), rate(first))
}

func median(k int, f func() time.Duration) time.Duration {
	ds := make([]time.Duration, k)
	for i := range ds {
		ds[i] = f()
	}
	slices.Sort(ds)
	return ds[k/2]
}
