package s3source_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/connector/s3source"
	"github.com/imgvec/imgvec/connector/s3source/s3test"
)

// TestMeasureSources is `make bench-sources` (S3 part): with
// IMGVEC_BENCH_S3_OBJECTS=N it fills a bucket with N tiny objects and
// compares, in one run, the source's listing with a bare ListObjectsV2
// loop over the same client (objects/s; target ≥ 0.9×), and a
// no-op sync of the N unchanged objects with the bare listing (time;
// target ≤ 1.5×). Medians of 3.
func TestMeasureSources(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_S3_OBJECTS"))
	if n <= 0 {
		t.Skip("measurement: set IMGVEC_BENCH_S3_OBJECTS (make bench-sources)")
	}
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	fill(t, srv, bucket, n)
	ref := srv.Ref(bucket, "")
	src, err := s3source.New(t.Context(), ref, s3source.Options{Credentials: srv.Credentials(), Extensions: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	client := s3source.Client(src) // the same client as the source's
	bare := median(3, func() time.Duration {
		start := time.Now()
		var token *string
		count := 0
		for {
			out, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), ContinuationToken: token})
			if err != nil {
				t.Fatal(err)
			}
			count += len(out.Contents)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			token = out.NextContinuationToken
		}
		if count != n {
			t.Fatalf("bare listing: %d objects, want %d", count, n)
		}
		return time.Since(start)
	})
	listing := median(3, func() time.Duration {
		start := time.Now()
		count := 0
		if err := src.List(t.Context(), func(connector.Entry) error { count++; return nil }); err != nil || count != n {
			t.Fatalf("List: %d, %v", count, err)
		}
		return time.Since(start)
	})

	sink := connectortest.NewSink()
	emb := connectortest.NewEmbedder(connectortest.Model("bench", 8), 32)
	if err := sink.Open(t.Context(), emb.Identity()); err != nil {
		t.Fatal(err)
	}
	run := func() connector.Options {
		return connector.Options{Source: src, Sink: sink, Embedder: emb, Kind: connector.KindSync, Linger: time.Millisecond}
	}
	syncOnce := func() time.Duration {
		s, err := connector.NewSyncer(run())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.Listed != int64(n) {
			t.Fatalf("sync listed %d, want %d", r.Listed, n)
		}
		return time.Since(start)
	}
	fillTime := syncOnce()
	noop := median(3, syncOnce)

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	t.Logf("\n| %d objects | time | objects/s | ratio |\n|---|---|---|---|\n"+
		"| bare ListObjectsV2 loop | %s | %.0f | 1 |\n| source List | %s | %.0f | %.2f× (target ≥ 0.9×) |\n"+
		"| no-op sync | %s | %.0f | %.2f× the bare listing's time (target ≤ 1.5×) |\n| first sync (fake model) | %s | %.0f | |",
		n, bare.Round(time.Millisecond), rate(bare), listing.Round(time.Millisecond), rate(listing), rate(listing)/rate(bare),
		noop.Round(time.Millisecond), rate(noop), noop.Seconds()/bare.Seconds(), fillTime.Round(time.Millisecond), rate(fillTime))
}

func median(k int, f func() time.Duration) time.Duration {
	ds := make([]time.Duration, k)
	for i := range ds {
		ds[i] = f()
	}
	slices.Sort(ds)
	return ds[k/2]
}

// fill puts n tiny objects with 32 writers.
func fill(t *testing.T, srv s3test.Server, bucket string, n int) {
	start := time.Now()
	var wg sync.WaitGroup
	keys := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range keys {
				srv.Put(t, bucket, fmt.Sprintf("d%03d/%07d.jpg", i%1000, i), []byte(strconv.Itoa(i)), nil)
			}
		})
	}
	for i := range n {
		keys <- i
	}
	close(keys)
	wg.Wait()
	t.Logf("filled %d objects in %s", n, time.Since(start).Round(time.Millisecond))
}
