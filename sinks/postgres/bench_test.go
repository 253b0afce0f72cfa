package postgres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// benchRows is the number of 4096-d rows each benchmark iteration loads
// ($IMGVEC_BENCH_PG_ROWS, default 20000), in batches of benchBatch.
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("IMGVEC_BENCH_PG_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

const benchBatch = 256

func benchRecords(m schema.ModelIdentity, n int) []schema.Record {
	recs := make([]schema.Record, n)
	for i := range recs {
		v := make([]float32, m.Dim)
		for j := range v {
			v[j] = float32((i*7919+j*104729)%1000) / 1000
		}
		key := fmt.Sprintf("img/%07d.jpg", i)
		recs[i] = schema.Record{ID: schema.ItemID("bench", key), Source: "bench", Key: key,
			Fingerprint: schema.Fingerprint{Size: int64(i), MTime: time.Unix(1700000000, 0), SHA256: fmt.Sprintf("%064x", i)},
			ModelID:     m.ID(), Layer: m.Layer, Dim: m.Dim, Vector: v, ExtractedAt: time.Now()}
	}
	return recs
}

// BenchmarkLoad4096 compares, in one run, the sink's batched upsert (COPY
// into a temp table + INSERT ... ON CONFLICT, one transaction per batch)
// with a raw binary COPY into the same table and with row-by-row INSERTs.
// Each iteration loads benchRows() rows into an empty table; the metric is
// rows/s.
func BenchmarkLoad4096(b *testing.B) {
	dsn, sch := testSchema(b)
	ctx := context.Background()
	s, err := New(withParams(b, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := testModel(4096)
	if err := s.Open(ctx, m); err != nil {
		b.Fatal(err)
	}
	n := benchRows()
	recs := benchRecords(m, n)
	items := s.names.Qualified("")
	reset := func() {
		if _, err := s.pool.Exec(ctx, `TRUNCATE `+items); err != nil {
			b.Fatal(err)
		}
	}
	p, err := prepare(connector.Batch{Upserts: recs}, m, StorageVector, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, load func() error) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				reset()
				b.StartTimer()
				if err := load(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
	run("upsert", func() error {
		for i := 0; i < n; i += benchBatch {
			if err := s.Write(ctx, connector.Batch{Upserts: recs[i:min(i+benchBatch, n)]}); err != nil {
				return err
			}
		}
		return nil
	})
	run("raw-copy", func() error {
		for i := 0; i < n; i += benchBatch {
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{sch, s.names.Table}, itemColumns, pgx.CopyFromRows(p.upserts[i:min(i+benchBatch, n)]))
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	run("row-by-row", func() error {
		for i := 0; i < n; i += benchBatch {
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				for _, r := range recs[i:min(i+benchBatch, n)] {
					if _, err := tx.Exec(ctx, `INSERT INTO `+items+` (id, source, key, size, model_id, layer, dim, extracted_at, embedding)
						VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
						r.ID, r.Source, r.Key, r.Size, r.ModelID, r.Layer, r.Dim, r.ExtractedAt, pgvector.NewVector(r.Vector)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
