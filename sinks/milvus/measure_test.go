package milvus

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

// TestMeasureUpsert is the write-path measurement (`make bench-milvus`):
//
//	IMGVEC_BENCH_MILVUS_ROWS=4000 go test -run TestMeasureUpsert -v -timeout 30m ./sinks/milvus/
//
// It writes N rows of 4096-d vectors (one Write call, as a backfill's
// large batch would, split by the sink into chunks) for each chunk size
// and number of concurrent writers, taking turns, three rounds, each
// measurement into a fresh collection, against the test server; it prints rows/s and MB/s
// (median of the rounds) and the best setting. The defaults
// (DefaultChunkBytes, DefaultWriters) come from its output.
func TestMeasureUpsert(t *testing.T) {
	if testing.Short() {
		t.Skip("measurements; skipped with -short")
	}
	rows, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_MILVUS_ROWS"))
	if rows <= 0 {
		t.Skip("set IMGVEC_BENCH_MILVUS_ROWS (make bench-milvus)")
	}
	addr := milvustest.Standalone.Addr(t)
	m := model(4096)
	recs := make([]schema.Record, rows)
	for i := range recs {
		recs[i] = record(m, "", "", i)
	}
	mb := float64(rows*rowBytes(recs[0])) / (1 << 20)
	type setting struct{ chunkMB, writers int }
	var settings []setting
	for _, c := range []int{4, 16, 32, 48} {
		for _, w := range []int{1, 2, 4} {
			settings = append(settings, setting{c, w})
		}
	}
	rates := map[setting][]float64{}
	ctx := context.Background()
	for round := range 3 {
		for _, st := range settings {
			// A fresh collection each time, dropped after: the server's memory
			// holds only one measurement's rows.
			base := fmt.Sprintf("bench_%d_%d_%d", round, st.chunkMB, st.writers)
			dropAll(t, addr, base)
			s := newTestSink(t, addr, base, WithChunk(st.chunkMB<<20, st.writers))
			open(t, s, m)
			src := fmt.Sprintf("file:///bench/%d-%d-%d", round, st.chunkMB, st.writers)
			b := connector.Batch{Upserts: make([]schema.Record, rows)}
			for i, r := range recs {
				r.Source, r.Key = src, strconv.Itoa(i)
				r.ID = schema.ItemID(src, r.Key)
				b.Upserts[i] = r
			}
			t0 := time.Now()
			if err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
			rates[st] = append(rates[st], float64(rows)/time.Since(t0).Seconds())
			s.Close()
			dropAll(t, addr, base)
		}
	}
	t.Logf("upsert of %d rows of 4096-d vectors (%.0f MB) in one Write, median of 3 rounds:", rows, mb)
	t.Logf("%9s %8s %10s %8s", "chunk MB", "writers", "rows/s", "MB/s")
	var best setting
	bestRate := 0.0
	for _, st := range settings {
		r := slices.Clone(rates[st])
		slices.Sort(r)
		med := r[len(r)/2]
		t.Logf("%9d %8d %10.0f %8.1f", st.chunkMB, st.writers, med, med*mb/float64(rows))
		if med > bestRate {
			best, bestRate = st, med
		}
	}
	t.Logf("best: chunk_mb=%d writers=%d (%.0f rows/s); defaults: chunk_mb=%d writers=%d",
		best.chunkMB, best.writers, bestRate, DefaultChunkBytes>>20, DefaultWriters)
}
