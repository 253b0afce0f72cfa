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
	syncShard := func(shard connector.Shard) time.Duration {
		s, err := connector.NewSyncer(connector.Options{Source: src, Sink: sink, Embedder: emb, Kind: connector.KindSync,
			Linger: time.Millisecond, Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(n); shard.N == 0 && r.Listed != want || shard.N > 0 && (r.Listed < want/int64(shard.N)*8/10 || r.Listed > want/int64(shard.N)*12/10) {
			t.Fatalf("sync of shard %q listed %d of %d", shard, r.Listed, n)
		}
		return time.Since(start)
	}
	syncOnce := func() time.Duration { return syncShard(connector.Shard{}) }
	fillTime := syncOnce()
	noop := median(3, syncOnce)
	// Shards: each lists all n objects and diffs its quarter.
	noopShard := median(3, func() time.Duration { return syncShard(connector.Shard{I: 0, N: 4}) })

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	t.Logf("\n| %d objects | time | objects/s | ratio |\n|---|---|---|---|\n"+
		"| bare ListObjectsV2 loop | %s | %.0f | 1 |\n| source List | %s | %.0f | %.2f× (target ≥ 0.9×) |\n"+
		"| no-op sync | %s | %.0f | %.2f× the bare listing's time (target ≤ 1.5×) |\n| first sync (fake model) | %s | %.0f | |",
		n, bare.Round(time.Millisecond), rate(bare), listing.Round(time.Millisecond), rate(listing), rate(listing)/rate(bare),
		noop.Round(time.Millisecond), rate(noop), noop.Seconds()/bare.Seconds(), fillTime.Round(time.Millisecond), rate(fillTime))
	const big = 10_000_000
	perShard := time.Duration(float64(noopShard) * big / float64(n))
	t.Logf("\n| shards (%d objects) | time | ratio |\n|---|---|---|\n"+
		"| no-op sync, unsharded | %s | 1 |\n| no-op sync of shard 0/4 (lists all, diffs ¼) | %s | %.2f× |\n"+
		"| 4 shards together: listing work | %s | %.2f× |\n"+
		"| extrapolated to %d objects (linear): bare listing | %s per shard | |\n"+
		"| extrapolated: no-op sync of one of 4 shards | %s | |",
		n, noop.Round(time.Millisecond), noopShard.Round(time.Millisecond), noopShard.Seconds()/noop.Seconds(),
		(4 * noopShard).Round(time.Millisecond), 4*noopShard.Seconds()/noop.Seconds(),
		big, time.Duration(float64(bare)*big/float64(n)).Round(time.Second), perShard.Round(time.Second))
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
