package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// The benchmarks below are the measurement behind the package's choice of
// an exact scan with vec_distance_cosine over a vec0 virtual table. They
// run with `go test -run '^$' -bench . ./sinks/sqlite` (IMGVEC_BENCH_ROWS
// overrides the 20,000 rows); building the vec0 table alone takes ~20 s.

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("IMGVEC_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

const benchDim = 4096

func randVec(r *rand.Rand) []float32 {
	v := make([]float32, benchDim)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

// benchSink opens a sink holding n random 4096-d rows; also returns how
// long the writes took.
func benchSink(b *testing.B, n int) (*Sink, schema.ModelIdentity, time.Duration) {
	b.Helper()
	ctx := context.Background()
	s, err := New(Scheme+filepath.Join(b.TempDir(), "bench.db"), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		b.Fatal(err)
	}
	m := testModel(benchDim)
	if err := s.Open(ctx, m); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for done := 0; done < n; {
		var batch connector.Batch
		for ; done < n && len(batch.Upserts) < 256; done++ {
			key := fmt.Sprintf("%06d.jpg", done)
			batch.Upserts = append(batch.Upserts, schema.Record{ID: schema.ItemID("bench", key), Source: "bench", Key: key,
				ModelID: m.ID(), Vector: randVec(r), ExtractedAt: time.Now(), Fingerprint: schema.Fingerprint{SHA256: key}})
		}
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	return s, m, time.Since(start)
}

func BenchmarkSearchScan(b *testing.B) {
	n := benchRows()
	s, m, took := benchSink(b, n)
	defer s.Close()
	b.Logf("scan: wrote %d x %d-d rows in %v", n, benchDim, took)
	q := randVec(rand.New(rand.NewPCG(3, 4)))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if hits, err := s.Search(ctx, m.ID(), q, 10); err != nil || len(hits) != 10 {
			b.Fatal(len(hits), err)
		}
	}
}

func BenchmarkSearchVec0(b *testing.B) {
	n := benchRows()
	s, m, _ := benchSink(b, 0)
	defer s.Close()
	ctx := context.Background()
	w := s.writer
	if _, err := w.ExecContext(ctx, `CREATE VIRTUAL TABLE vec_bench USING vec0(
		model_id text partition key, embedding float[4096] distance_metric=cosine)`); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for done := 0; done < n; {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for end := min(done+256, n); done < end; done++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO vec_bench (rowid, model_id, embedding) VALUES (?, ?, ?)`,
				done+1, m.ID(), encodeVector(randVec(r))); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("vec0: wrote %d x %d-d rows in %v", n, benchDim, time.Since(start))
	q := encodeVector(randVec(rand.New(rand.NewPCG(3, 4))))
	b.ResetTimer()
	for b.Loop() {
		rows, err := s.reader.QueryContext(ctx, `SELECT rowid, distance FROM vec_bench
			WHERE embedding MATCH ? AND k = 10 AND model_id = ?`, q, m.ID())
		if err != nil {
			b.Fatal(err)
		}
		k := 0
		for rows.Next() {
			k++
		}
		rows.Close()
		if k != 10 {
			b.Fatal(k)
		}
	}
}
