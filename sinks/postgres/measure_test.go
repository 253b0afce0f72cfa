package postgres

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgvector/pgvector-go"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// TestMeasure is the measurement of the numbers, run on demand:
//
//	IMGVEC_BENCH_PG_ROWS=100000 go test -run TestMeasure -v -timeout 60m ./sinks/postgres/
//
// On fc7-like vectors (fc7Gen: 4096-d, ReLU-sparse, 1,000 clusters,
// L2-normalised) it measures, in one run on one server:
//
//   - loading N rows: the sink's batched upsert (Write, batches of 256) vs
//     raw binary COPY (same batches, one transaction each) vs row-by-row
//     INSERT (on fewer rows, scaled: the rate is per row); and the staged
//     upsert of rows that exist (ON CONFLICT DO UPDATE path) on N/5 rows;
//   - building the binary index after the load vs loading with the index
//     live (on N/5 rows, both ways, so the comparison is like for like);
//   - recall@10 of the binary two-stage search against the exact answer
//     (computed here, in Go, over all N rows) and the latency (median,
//     p95) of Search, indexed for several candidate multipliers N, and
//     exact.
//
// It prints markdown tables. IMGVEC_BENCH_PG_QUERIES sets the number of
// queries (default 100).
func TestMeasure(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_PG_ROWS"))
	if n <= 0 {
		t.Skip("set IMGVEC_BENCH_PG_ROWS (e.g. 100000) to run the PostgreSQL measurements")
	}
	nq := 100
	if v, err := strconv.Atoi(os.Getenv("IMGVEC_BENCH_PG_QUERIES")); err == nil && v > 0 {
		nq = v
	}
	const dim, k, batch = 4096, 10, 256
	ctx := context.Background()
	dsn, sch := testSchema(t)
	s, err := New(withParams(t, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(dim)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	items := s.names.Qualified("")
	exec := func(sql string) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var out strings.Builder
	say := func(format string, args ...any) {
		fmt.Fprintf(&out, format+"\n", args...)
		t.Logf(format, args...)
	}

	// The data, generated before any timing.
	t0 := time.Now()
	gen := newFC7Gen(dim, 1000, 1)
	recs := make([]schema.Record, n)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				recs[i] = gen.record(m, "bench", i)
			}
		})
	}
	wg.Wait()
	var zeros int
	for _, x := range recs[0].Vector {
		if x == 0 {
			zeros++
		}
	}
	queries := make([][]float32, nq)
	for i := range queries {
		queries[i] = gen.vector(10_000_000 + i)
	}
	say("data: %d rows, %d-d, 1000 clusters, %.0f%% zeros (row 0), generated in %s", n, dim, 100*float64(zeros)/dim, time.Since(t0).Round(time.Millisecond))

	// Ground truth: the exact top k of every query, in Go.
	groundTruth := func(recs []schema.Record, queries [][]float32) [][]string {
		t0 := time.Now()
		truth := make([][]string, len(queries))
		nq := len(queries)
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				type hit struct {
					d  float32
					id string
				}
				for qi := w; qi < nq; qi += 2 {
					q := queries[qi]
					top := make([]hit, 0, k+1)
					for _, r := range recs {
						var s0, s1, s2, s3 float32
						v := r.Vector
						for j := 0; j < dim; j += 4 {
							s0 += v[j] * q[j]
							s1 += v[j+1] * q[j+1]
							s2 += v[j+2] * q[j+2]
							s3 += v[j+3] * q[j+3]
						}
						d := 1 - (s0 + s1 + s2 + s3)
						if len(top) == k && d >= top[k-1].d {
							continue
						}
						i := sort.Search(len(top), func(i int) bool { return top[i].d > d })
						top = slices.Insert(top, i, hit{d, r.ID})
						if len(top) > k {
							top = top[:k]
						}
					}
					for _, h := range top {
						truth[qi] = append(truth[qi], h.id)
					}
				}
			})
		}
		wg.Wait()
		say("ground truth for %d queries in %s", nq, time.Since(t0).Round(time.Millisecond))
		return truth
	}
	truth := groundTruth(recs, queries)

	writeAll := func(rs []schema.Record) time.Duration {
		t.Helper()
		t0 := time.Now()
		for i := 0; i < len(rs); i += batch {
			if err := s.Write(ctx, connector.Batch{Upserts: rs[i:min(i+batch, len(rs))]}); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	rate := func(rows int, d time.Duration) float64 { return float64(rows) / d.Seconds() }

	// 1. Loads. Upsert and raw COPY alternate over two rounds (checkpoints
	// and autovacuum make single runs noisy); each reports its faster round.
	small := max(n/5, 1)
	rbr := min(n, 5000)
	p, err := prepare(connector.Batch{Upserts: recs}, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rawCopy := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < n; i += batch {
			if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{s.names.Schema, s.names.Table}, itemColumns, pgx.CopyFromRows(p.upserts[i:min(i+batch, n)]))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	var dUpsert, dCopy, dStaged time.Duration
	var tableBytes int64
	for round := range 2 {
		exec(`TRUNCATE ` + items)
		d := writeAll(recs)
		if round == 0 || d < dUpsert {
			dUpsert = d
		}
		if round == 0 {
			if err := s.pool.QueryRow(ctx, `SELECT pg_total_relation_size(to_regclass($1))`, items).Scan(&tableBytes); err != nil {
				t.Fatal(err)
			}
			dStaged = writeAll(recs[:small]) // the same ids again: COPY into the stage table + ON CONFLICT DO UPDATE
		}
		exec(`TRUNCATE ` + items)
		d = rawCopy()
		if round == 0 || d < dCopy {
			dCopy = d
		}
		say("load round %d: upsert %s, raw COPY %s", round, dUpsert.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	insertRow := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, r schema.Record) error {
		_, err := q.Exec(ctx, `INSERT INTO `+items+` (id, source, key, size, mtime_ns, etag, sha256, model_id, layer, dim, extracted_at, metadata, embedding)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.ID, r.Source, r.Key, r.Size, r.MTime.UnixNano(), r.ETag, r.SHA256, r.ModelID, r.Layer, r.Dim, r.ExtractedAt,
			r.Metadata, pgvector.NewVector(r.Vector))
		return err
	}
	exec(`TRUNCATE ` + items)
	t0 = time.Now()
	for i := 0; i < rbr; i += batch {
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			for _, r := range recs[i:min(i+batch, rbr)] {
				if err := insertRow(tx, r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	dRow := time.Since(t0)
	exec(`TRUNCATE ` + items)
	t0 = time.Now()
	for _, r := range recs[:rbr] {
		if err := insertRow(s.pool, r); err != nil {
			t.Fatal(err)
		}
	}
	dAuto := time.Since(t0)
	var settings string
	if err := s.pool.QueryRow(ctx, `SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'max_wal_size', 'shared_buffers', 'max_parallel_maintenance_workers')`).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	say("")
	say("### Loading %d rows of 4096-d vectors (batches of %d, one transaction each; table %.2f GB)", n, batch, float64(tableBytes)/1e9)
	say("")
	say("server: %s", settings)
	say("")
	say("| method | rows timed | time | rows/s | vs raw COPY | vs row-by-row (tx of %d) |", batch)
	say("|---|---:|---:|---:|---:|---:|")
	rc, rr := rate(n, dCopy), rate(rbr, dRow)
	line := func(name string, rows int, d time.Duration) {
		r := rate(rows, d)
		say("| %s | %d | %s | %.0f | %.2f× | %.1f× |", name, rows, d.Round(time.Millisecond), r, r/rc, r/rr)
	}
	line("imgvec upsert (Write; new ids: COPY straight into the table; best of 2)", n, dUpsert)
	line("imgvec upsert (Write; existing ids: COPY to temp + ON CONFLICT DO UPDATE)", small, dStaged)
	line("raw binary COPY (best of 2)", n, dCopy)
	line(fmt.Sprintf("row-by-row INSERT, one transaction per %d rows (first %d rows; rate)", batch, rbr), rbr, dRow)
	line(fmt.Sprintf("row-by-row INSERT, autocommit (first %d rows; rate)", rbr), rbr, dAuto)

	// 2. Index after the load vs live, like for like on `small` rows,
	// then the full table's build.
	exec(`TRUNCATE ` + items)
	dSmallLoad := writeAll(recs[:small])
	t0 = time.Now()
	if _, err := s.CreateIndex(ctx, IndexBinary, m.ID(), dim, IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	dSmallBuild := time.Since(t0)
	exec(`TRUNCATE ` + items) // keeps the (now empty) index: the next load is live
	dLive := writeAll(recs[:small])
	exec(`TRUNCATE ` + items)
	if _, err := s.DropIndex(ctx, m.ID()); err != nil {
		t.Fatal(err)
	}
	dFullLoad := writeAll(recs)
	t0 = time.Now()
	info, err := s.CreateIndex(ctx, IndexBinary, m.ID(), dim, IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dFullBuild := time.Since(t0)
	say("")
	say("### Backfill with the binary index: built after the load vs live during the load")
	say("")
	say("| rows | load, then build the index | (load + build) | load with the index live | live / deferred |")
	say("|---:|---:|---:|---:|---:|")
	say("| %d | %s + %s | %s | %s | %.1f× |", small, dSmallLoad.Round(time.Millisecond), dSmallBuild.Round(time.Millisecond),
		(dSmallLoad + dSmallBuild).Round(time.Millisecond), dLive.Round(time.Millisecond), dLive.Seconds()/(dSmallLoad+dSmallBuild).Seconds())
	scaled := time.Duration(float64(dLive) * float64(n) / float64(small))
	say("| %d | %s + %s | %s | ≈ %s (the %d-row live rate, scaled linearly: a lower bound, HNSW inserts slow down as the graph grows) | ≥ %.1f× |",
		n, dFullLoad.Round(time.Millisecond), dFullBuild.Round(time.Millisecond), (dFullLoad + dFullBuild).Round(time.Millisecond),
		scaled.Round(time.Second), small, scaled.Seconds()/(dFullLoad+dFullBuild).Seconds())
	say("")
	say("index %s: %.1f MB (table %.2f GB)", info.Name, float64(info.SizeBytes)/1e6, float64(tableBytes)/1e9)

	// 3. Recall and latency.
	pct := func(ds []time.Duration, p float64) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	measure := func(nqs int, search func(q []float32) []string) (float64, []time.Duration) {
		var sum float64
		var lat []time.Duration
		for qi := range nqs {
			t0 := time.Now()
			got := search(queries[qi])
			lat = append(lat, time.Since(t0))
			sum += recallAt(got, truth[qi])
		}
		return sum / float64(nqs), lat
	}
	viaSearch := func(q []float32) []string {
		hits, err := s.Search(ctx, m.ID(), q, k)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hits {
			ids = append(ids, h.ID)
		}
		return ids
	}
	say("")
	say("### Search at %d rows: recall@10 against the exact answer, latency of Search (%d queries, held out, same distribution)", n, nq)
	say("")
	say("| path | N (candidates = 10×N) | hnsw.ef_search | recall@10 | median | p95 |")
	say("|---|---:|---:|---:|---:|---:|")
	measure(min(nq, 10), viaSearch) // warm up
	for _, c := range []int{5, 10, 20, 40, 80, 100} {
		s.candidates = c
		r, lat := measure(nq, viaSearch)
		say("| binary index + exact re-rank | %d | %d | %.3f | %s | %s |", c, min(max(k*c, 40), maxEfSearch), r,
			pct(lat, 0.5).Round(10*time.Microsecond), pct(lat, 0.95).Round(10*time.Microsecond))
	}
	s.candidates = DefaultCandidates
	r, lat := measure(nq, func(q []float32) []string {
		rows, err := s.pool.Query(ctx, `SELECT id FROM `+pgx.Identifier{s.names.Schema, "imgvec_search"}.Sanitize()+`($1, $2, $3, $4, $5)`, pgvector.NewVector(q), m.ID(), k, DefaultCandidates, items)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	})
	say("| SQL imgvec_search (index) | %d | %d | %.3f | %s | %s |", DefaultCandidates, k*DefaultCandidates, r,
		pct(lat, 0.5).Round(10*time.Microsecond), pct(lat, 0.95).Round(10*time.Microsecond))
	if _, err := s.DropIndex(ctx, m.ID()); err != nil {
		t.Fatal(err)
	}
	ne := min(nq, 10)
	r, lat = measure(ne, viaSearch)
	say("| exact (no index; %d queries) | – | – | %.3f | %s | %s |", ne, r, pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.95).Round(time.Millisecond))

	// 4. A harder set: the same centres, twice the noise (sd 1.0: the
	// clusters overlap), for the recall/latency trade-off only.
	gen.noise = 1.0
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				recs[i] = gen.record(m, "bench", i)
			}
		})
	}
	wg.Wait()
	for i := range queries {
		queries[i] = gen.vector(10_000_000 + i)
	}
	truth = groundTruth(recs, queries)
	exec(`TRUNCATE ` + items)
	writeAll(recs)
	if _, err := s.CreateIndex(ctx, IndexBinary, m.ID(), dim, IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	say("")
	say("### Search at %d rows, harder set (noise sd 1.0 instead of 0.5: clusters overlap)", n)
	say("")
	say("| path | N (candidates = 10×N) | hnsw.ef_search | recall@10 | median | p95 |")
	say("|---|---:|---:|---:|---:|---:|")
	measure(min(nq, 10), viaSearch)
	for _, c := range []int{10, 20, 40, 80, 100, 200} {
		s.candidates = c
		r, lat := measure(nq, viaSearch)
		say("| binary index + exact re-rank | %d | %d | %.3f | %s | %s |", c, min(max(k*c, 40), maxEfSearch), r,
			pct(lat, 0.5).Round(10*time.Microsecond), pct(lat, 0.95).Round(10*time.Microsecond))
	}
	s.candidates = DefaultCandidates
	if path := os.Getenv("IMGVEC_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	fmt.Print(out.String())
}
