package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
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

// benchServerSettings are the measurement server's settings on top of
// PostgreSQL's defaults, which are durable (fsync, synchronous_commit and
// full_page_writes on): what a production server has, with the usual
// memory and WAL sizing for bulk loads.
var benchServerSettings = []string{"shared_buffers=1GB", "max_wal_size=4GB"}

// TestMeasure is the measurement of the numbers, run on demand
// (`make bench-postgres`):
//
//	IMGVEC_BENCH_PG_ROWS=100000 go test -run TestMeasure -v -timeout 90m ./sinks/postgres/
//
// It starts its own server (the shared test server's binaries, a fresh data
// folder, another port) with durable settings (benchServerSettings): the
// test server runs with fsync and synchronous_commit off, which makes
// per-row commits unrealistically cheap. On fc7-like vectors (fc7Gen:
// 4096-d, ReLU-sparse, 1,000 clusters, L2-normalised) it measures, in one
// run on that server:
//
//   - loading N rows: the sink's batched upsert (Write, batches of 256) vs
//     raw binary COPY (same batches, one transaction each) vs row-by-row
//     INSERT (on fewer rows; the rate is per row), in transactions of 256
//     rows and in autocommit, taking turns, median of 3 rounds; the staged
//     upsert of rows that exist (ON CONFLICT DO UPDATE path) on N/5 rows;
//     and the upsert into a halfvec table;
//   - the binary index over all N rows: built after the load, with the
//     build settings tried (parallel maintenance workers, HNSW m and
//     ef_construction; recall@10 of each), vs loading the N rows with the
//     index live;
//   - recall@10 of the binary two-stage search against the exact answer
//     (computed here, in Go, over all N rows) and the latency (median, p95)
//     of Search, indexed for several candidate multipliers, and exact; the
//     same for halfvec storage;
//   - the reduced companion candidate: a fixed-seed sparse random
//     projection to reducedDim dimensions, HNSW (cosine) on it, exact
//     re-rank, against the binary index at the same candidate counts;
//   - a harder set (clusters that overlap) for both candidate generators.
//
// It prints markdown tables. IMGVEC_BENCH_PG_QUERIES sets the number of
// queries (default 100); IMGVEC_BENCH_OUT, a file to write them to too.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("measurements; skipped with -short")
	}
	n, _ := strconv.Atoi(os.Getenv("IMGVEC_BENCH_PG_ROWS"))
	if n <= 0 {
		t.Skip("set IMGVEC_BENCH_PG_ROWS (e.g. 100000) to run the PostgreSQL measurements")
	}
	nq := 100
	if v, err := strconv.Atoi(os.Getenv("IMGVEC_BENCH_PG_QUERIES")); err == nil && v > 0 {
		nq = v
	}
	testDSN(t) // the shared server's script installed the binaries
	srv := startPrivateServer(t, benchServerSettings...)
	mb := &measureBench{t: t, ctx: context.Background(), n: n, nq: nq, dsn: srv.dsn}
	mb.run()
	if path := os.Getenv("IMGVEC_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(mb.out.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	fmt.Print(mb.out.String())
}

const (
	benchDim   = 4096
	benchK     = 10
	reducedDim = 1024
)

// measureBench holds one TestMeasure run's data and output.
type measureBench struct {
	t       *testing.T
	ctx     context.Context
	n, nq   int
	dsn     string
	out     strings.Builder
	s       *Sink // vector storage
	m       schema.ModelIdentity
	gen     *fc7Gen
	recs    []schema.Record
	queries [][]float32
	truth   [][]string
}

func (mb *measureBench) say(format string, args ...any) {
	fmt.Fprintf(&mb.out, format+"\n", args...)
	mb.t.Logf(format, args...)
}

func (mb *measureBench) exec(sql string, args ...any) {
	mb.t.Helper()
	if _, err := mb.s.pool.Exec(mb.ctx, sql, args...); err != nil {
		mb.t.Fatalf("%s: %v", sql, err)
	}
}

// openSink opens a sink of the given storage on a schema of its own.
func (mb *measureBench) openSink(schemaName string, st Storage) *Sink {
	mb.t.Helper()
	s, err := New(withParams(mb.t, mb.dsn, "schema", schemaName, "storage", string(st)), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		mb.t.Fatal(err)
	}
	mb.t.Cleanup(func() { _ = s.Close() })
	if err := s.Open(mb.ctx, mb.m); err != nil {
		mb.t.Fatal(err)
	}
	return s
}

// generate fills recs and queries from gen (in parallel) and computes the
// exact top k of every query, in Go.
func (mb *measureBench) generate() {
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < mb.n; i += 2 {
				mb.recs[i] = mb.gen.record(mb.m, "bench", i)
			}
		})
	}
	wg.Wait()
	for i := range mb.queries {
		mb.queries[i] = mb.gen.vector(10_000_000 + i)
	}
	var zeros int
	for _, x := range mb.recs[0].Vector {
		if x == 0 {
			zeros++
		}
	}
	mb.say("data: %d rows, %d-d, 1000 clusters, noise sd %.1f, %.0f%% zeros (row 0), generated in %s",
		mb.n, benchDim, mb.gen.noise, 100*float64(zeros)/benchDim, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	mb.truth = make([][]string, len(mb.queries))
	for w := range 2 {
		wg.Go(func() {
			type hit struct {
				d  float32
				id string
			}
			for qi := w; qi < len(mb.queries); qi += 2 {
				q := mb.queries[qi]
				top := make([]hit, 0, benchK+1)
				for _, r := range mb.recs {
					var s0, s1, s2, s3 float32
					v := r.Vector
					for j := 0; j < benchDim; j += 4 {
						s0 += v[j] * q[j]
						s1 += v[j+1] * q[j+1]
						s2 += v[j+2] * q[j+2]
						s3 += v[j+3] * q[j+3]
					}
					d := 1 - (s0 + s1 + s2 + s3)
					if len(top) == benchK && d >= top[benchK-1].d {
						continue
					}
					i := sort.Search(len(top), func(i int) bool { return top[i].d > d })
					top = slices.Insert(top, i, hit{d, r.ID})
					if len(top) > benchK {
						top = top[:benchK]
					}
				}
				for _, h := range top {
					mb.truth[qi] = append(mb.truth[qi], h.id)
				}
			}
		})
	}
	wg.Wait()
	mb.say("ground truth for %d queries in %s", len(mb.queries), time.Since(t0).Round(time.Millisecond))
}

// writeAll loads rs through s.Write in batches of 256.
func (mb *measureBench) writeAll(s *Sink, rs []schema.Record) time.Duration {
	mb.t.Helper()
	t0 := time.Now()
	for i := 0; i < len(rs); i += 256 {
		if err := s.Write(mb.ctx, connector.Batch{Upserts: rs[i:min(i+256, len(rs))]}); err != nil {
			mb.t.Fatal(err)
		}
	}
	return time.Since(t0)
}

func pct(ds []time.Duration, p float64) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

// measure runs search over the first nqs queries: mean recall@10 against
// the truth, and the latencies.
func (mb *measureBench) measure(nqs int, search func(q []float32) []string) (float64, []time.Duration) {
	var sum float64
	var lat []time.Duration
	for qi := range nqs {
		t0 := time.Now()
		got := search(mb.queries[qi])
		lat = append(lat, time.Since(t0))
		sum += recallAt(got, mb.truth[qi])
	}
	return sum / float64(nqs), lat
}

// viaSearch is Search of s as a search function.
func (mb *measureBench) viaSearch(s *Sink) func(q []float32) []string {
	return func(q []float32) []string {
		hits, err := s.Search(mb.ctx, mb.m.ID(), q, benchK)
		if err != nil {
			mb.t.Fatal(err)
		}
		var ids []string
		for _, h := range hits {
			ids = append(ids, h.ID)
		}
		return ids
	}
}

func (mb *measureBench) searchRow(path string, c int, recall float64, lat []time.Duration) {
	mb.say("| %s | %d | %d | %.3f | %s | %s |", path, c, min(max(benchK*c, 40), maxEfSearch), recall,
		pct(lat, 0.5).Round(10*time.Microsecond), pct(lat, 0.95).Round(10*time.Microsecond))
}

func (mb *measureBench) run() {
	t, ctx := mb.t, mb.ctx
	mb.m = testModel(benchDim)
	mb.s = mb.openSink("bench", StorageVector)
	s := mb.s
	var settings string
	if err := s.pool.QueryRow(ctx, `SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'max_wal_size', 'shared_buffers',
			'max_parallel_maintenance_workers', 'max_worker_processes', 'server_version')`).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	mb.say("server (private, started by the test): %s", settings)
	mb.gen = newFC7Gen(benchDim, 1000, 1)
	mb.recs = make([]schema.Record, mb.n)
	mb.queries = make([][]float32, mb.nq)
	mb.generate()
	mb.loads()
	mb.index()
	mb.search()
	mb.halfvec()
	mb.reduced("fc7-like set")

	// A harder set: the same centres, twice the noise (sd 1.0: the
	// clusters overlap), for the recall/latency trade-off only.
	mb.gen.noise = 1.0
	mb.generate()
	mb.exec(`TRUNCATE ` + s.names.Qualified(""))
	mb.writeAll(s, mb.recs)
	if _, err := s.CreateIndex(ctx, connector.IndexBinary, mb.m.ID(), benchDim, connector.IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	mb.say("")
	mb.say("### Search at %d rows, harder set (noise sd 1.0 instead of 0.5: clusters overlap)", mb.n)
	mb.say("")
	mb.say("| path | N (candidates = 10×N) | hnsw.ef_search | recall@10 | median | p95 |")
	mb.say("|---|---:|---:|---:|---:|---:|")
	mb.measure(min(mb.nq, 10), mb.viaSearch(s))
	for _, c := range []int{10, 20, 40, 80, 100, 200} {
		s.candidates = c
		r, lat := mb.measure(mb.nq, mb.viaSearch(s))
		mb.searchRow("binary index + exact re-rank", c, r, lat)
	}
	s.candidates = DefaultCandidates
	mb.reduced("harder set")
}

// loads measures section 1.
func (mb *measureBench) loads() {
	t, ctx, s, n := mb.t, mb.ctx, mb.s, mb.n
	const batch = 256
	items := s.names.Qualified("")
	rate := func(rows int, d time.Duration) float64 { return float64(rows) / d.Seconds() }
	small := max(n/5, 1)
	rbr := min(n, 5000)
	p, err := prepare(connector.Batch{Upserts: mb.recs}, mb.m, StorageVector, time.Now())
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
	insertRow := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, r schema.Record) error {
		_, err := q.Exec(ctx, `INSERT INTO `+items+` (id, source, key, size, mtime_ns, etag, sha256, model_id, layer, dim, extracted_at, metadata, embedding)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.ID, r.Source, r.Key, r.Size, r.MTime.UnixNano(), r.ETag, r.SHA256, r.ModelID, r.Layer, r.Dim, r.ExtractedAt,
			r.Metadata, pgvector.NewVector(r.Vector))
		return err
	}
	rowByRow := func() time.Duration {
		t0 := time.Now()
		for i := 0; i < rbr; i += batch {
			if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				for _, r := range mb.recs[i:min(i+batch, rbr)] {
					if err := insertRow(tx, r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	autocommit := func() time.Duration {
		t0 := time.Now()
		for _, r := range mb.recs[:rbr] {
			if err := insertRow(s.pool, r); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	// The methods take turns over three rounds, in another order each
	// round, each from an empty table and a fresh checkpoint (a checkpoint
	// that falls inside one load slows it); each reports its median.
	var upserts, copies, rows, autos []time.Duration
	var dStaged time.Duration
	var tableBytes int64
	fresh := func() {
		mb.exec(`TRUNCATE ` + items)
		mb.exec(`CHECKPOINT`)
	}
	for round := range 3 {
		var d, dc time.Duration
		upsert := func() {
			fresh()
			d = mb.writeAll(s, mb.recs)
			if round == 0 {
				if err := s.pool.QueryRow(ctx, `SELECT pg_total_relation_size(to_regclass($1))`, items).Scan(&tableBytes); err != nil {
					t.Fatal(err)
				}
				dStaged = mb.writeAll(s, mb.recs[:small]) // the same ids again: COPY into the stage table + ON CONFLICT DO UPDATE
			}
		}
		raw := func() {
			fresh()
			dc = rawCopy()
		}
		if round%2 == 0 {
			upsert()
			raw()
		} else {
			raw()
			upsert()
		}
		fresh()
		dr := rowByRow()
		fresh()
		da := autocommit()
		upserts, copies, rows, autos = append(upserts, d), append(copies, dc), append(rows, dr), append(autos, da)
		mb.say("load round %d: upsert %s, raw COPY %s (%d rows); row-by-row %s, autocommit %s (%d rows)", round,
			d.Round(time.Millisecond), dc.Round(time.Millisecond), n, dr.Round(time.Millisecond), da.Round(time.Millisecond), rbr)
	}
	mb.exec(`TRUNCATE ` + items)
	dUpsert, dCopy, dRow, dAuto := pct(upserts, 0.5), pct(copies, 0.5), pct(rows, 0.5), pct(autos, 0.5)

	// The same load into a halfvec table (one round), for its rate and size.
	hs := mb.openSink("bench_half", StorageHalfvec)
	dHalf := mb.writeAll(hs, mb.recs)
	var halfBytes int64
	if err := hs.pool.QueryRow(ctx, `SELECT pg_total_relation_size(to_regclass($1))`, hs.names.Qualified("")).Scan(&halfBytes); err != nil {
		t.Fatal(err)
	}

	mb.say("")
	mb.say("### Loading %d rows of 4096-d vectors (batches of %d, one transaction each; durable server)", n, batch)
	mb.say("")
	mb.say("| method | rows timed | time | rows/s | vs raw COPY | vs row-by-row, tx of %d | vs row-by-row, autocommit |", batch)
	mb.say("|---|---:|---:|---:|---:|---:|---:|")
	rc, rr, ra := rate(n, dCopy), rate(rbr, dRow), rate(rbr, dAuto)
	line := func(name string, rows int, d time.Duration) {
		r := rate(rows, d)
		mb.say("| %s | %d | %s | %.0f | %.2f× | %.1f× | %.1f× |", name, rows, d.Round(time.Millisecond), r, r/rc, r/rr, r/ra)
	}
	line("imgvec upsert (Write; new ids: COPY straight into the table; median of 3)", n, dUpsert)
	line("imgvec upsert (Write; existing ids: COPY to temp + ON CONFLICT DO UPDATE)", small, dStaged)
	line("raw binary COPY (median of 3)", n, dCopy)
	line(fmt.Sprintf("row-by-row INSERT, one transaction per %d rows (first %d rows; rate; median of 3)", batch, rbr), rbr, dRow)
	line(fmt.Sprintf("row-by-row INSERT, autocommit: one durable commit per row (first %d rows; rate; median of 3)", rbr), rbr, dAuto)
	line("imgvec upsert into a halfvec table (one round)", n, dHalf)
	mb.say("")
	mb.say("table size: vector %.2f GB, halfvec %.2f GB", float64(tableBytes)/1e9, float64(halfBytes)/1e9)
	mb.exec(`DROP SCHEMA bench_half CASCADE`)
	_ = hs.Close()
}

// index measures section 2: the binary index built after the load (with
// the build settings tried) vs live during the load, all N rows.
func (mb *measureBench) index() {
	t, ctx, s, n := mb.t, mb.ctx, mb.s, mb.n
	items := s.names.Qualified("")
	mb.exec(`TRUNCATE ` + items)
	if _, err := s.DropIndex(ctx, mb.m.ID()); err != nil {
		t.Fatal(err)
	}
	mb.exec(`CHECKPOINT`)
	dLoad := mb.writeAll(s, mb.recs)
	build := func(o connector.IndexOptions, workers int) (time.Duration, connector.IndexInfo) {
		t.Helper()
		if _, err := s.DropIndex(ctx, mb.m.ID()); err != nil {
			t.Fatal(err)
		}
		// The server is this test's own: its setting may change.
		mb.exec(fmt.Sprintf(`ALTER SYSTEM SET max_parallel_maintenance_workers = %d`, workers))
		mb.exec(`SELECT pg_reload_conf()`)
		t0 := time.Now()
		info, err := s.CreateIndex(ctx, connector.IndexBinary, mb.m.ID(), benchDim, o)
		if err != nil {
			t.Fatal(err)
		}
		return time.Since(t0), info
	}
	recallWith := func(c int) float64 {
		s.candidates = c
		defer func() { s.candidates = DefaultCandidates }()
		r, _ := mb.measure(mb.nq, mb.viaSearch(s))
		return r
	}
	mb.say("")
	mb.say("### Building the binary index over %d rows after the load (load: %s)", n, dLoad.Round(time.Millisecond))
	mb.say("")
	mb.say("| m | ef_construction | parallel maintenance workers | build | index size | recall@10, N=10 | recall@10, N=40 |")
	mb.say("|---:|---:|---:|---:|---:|---:|---:|")
	type variant struct {
		o       connector.IndexOptions
		workers int
	}
	// The last is what CreateIndex does on a server with default settings
	// (two parallel maintenance workers): its index stays.
	variants := []variant{
		{connector.IndexOptions{M: 8, EfConstruction: 32}, 2},
		{connector.IndexOptions{EfConstruction: 32}, 2},
		{connector.IndexOptions{}, 0},
		{connector.IndexOptions{}, 2},
	}
	var dBuild time.Duration
	for _, v := range variants {
		d, info := build(v.o, v.workers)
		dBuild = d
		m, ef := v.o.M, v.o.EfConstruction
		if m == 0 {
			m = 16
		}
		if ef == 0 {
			ef = 64
		}
		mb.say("| %d | %d | %d | %s | %.1f MB | %.3f | %.3f |", m, ef, v.workers, d.Round(time.Millisecond),
			float64(info.SizeBytes)/1e6, recallWith(10), recallWith(40))
	}
	mb.exec(`TRUNCATE ` + items) // keeps the (now empty) index: the next load is live
	mb.exec(`CHECKPOINT`)
	dLive := mb.writeAll(s, mb.recs)
	mb.say("")
	mb.say("### Backfill of %d rows with the binary index (m 16, ef_construction 64): built after the load vs live during the load", n)
	mb.say("")
	mb.say("| load, then build the index | (load + build) | load with the index live | live / deferred |")
	mb.say("|---:|---:|---:|---:|")
	mb.say("| %s + %s | %s | %s | %.1f× |", dLoad.Round(time.Millisecond), dBuild.Round(time.Millisecond),
		(dLoad + dBuild).Round(time.Millisecond), dLive.Round(time.Millisecond), dLive.Seconds()/(dLoad+dBuild).Seconds())
}

// search measures section 3 on the loaded, indexed table.
func (mb *measureBench) search() {
	t, ctx, s := mb.t, mb.ctx, mb.s
	mb.say("")
	mb.say("### Search at %d rows: recall@10 against the exact answer, latency of Search (%d queries, held out, same distribution)", mb.n, mb.nq)
	mb.say("")
	mb.say("| path | N (candidates = 10×N) | hnsw.ef_search | recall@10 | median | p95 |")
	mb.say("|---|---:|---:|---:|---:|---:|")
	mb.measure(min(mb.nq, 10), mb.viaSearch(s)) // warm up
	for _, c := range []int{5, 10, 20, 40, 80, 100} {
		s.candidates = c
		r, lat := mb.measure(mb.nq, mb.viaSearch(s))
		mb.searchRow("binary index + exact re-rank", c, r, lat)
	}
	s.candidates = DefaultCandidates
	r, lat := mb.measure(mb.nq, func(q []float32) []string {
		rows, err := s.pool.Query(ctx, `SELECT id FROM `+pgx.Identifier{s.names.Schema, "imgvec_search"}.Sanitize()+`($1, $2, $3, $4, $5)`,
			pgvector.NewVector(q), mb.m.ID(), benchK, DefaultCandidates, s.names.Qualified(""))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	})
	mb.searchRow("SQL imgvec_search (index)", DefaultCandidates, r, lat)
	if _, err := s.DropIndex(ctx, mb.m.ID()); err != nil {
		t.Fatal(err)
	}
	ne := min(mb.nq, 10)
	r, lat = mb.measure(ne, mb.viaSearch(s))
	mb.say("| exact (no index; %d queries) | – | – | %.3f | %s | %s |", ne, r, pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.95).Round(time.Millisecond))
}

// halfvec measures the binary index and exact search on a halfvec table.
func (mb *measureBench) halfvec() {
	t, ctx := mb.t, mb.ctx
	hs := mb.openSink("bench_half", StorageHalfvec)
	mb.writeAll(hs, mb.recs)
	t0 := time.Now()
	info, err := hs.CreateIndex(ctx, connector.IndexBinary, mb.m.ID(), benchDim, connector.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dBuild := time.Since(t0)
	mb.say("")
	mb.say("### Search at %d rows, halfvec storage (index built in %s, %.1f MB)", mb.n, dBuild.Round(time.Millisecond), float64(info.SizeBytes)/1e6)
	mb.say("")
	mb.say("| path | N (candidates = 10×N) | hnsw.ef_search | recall@10 | median | p95 |")
	mb.say("|---|---:|---:|---:|---:|---:|")
	mb.measure(min(mb.nq, 10), mb.viaSearch(hs))
	for _, c := range []int{10, 40} {
		hs.candidates = c
		r, lat := mb.measure(mb.nq, mb.viaSearch(hs))
		mb.searchRow("halfvec: binary index + exact re-rank", c, r, lat)
	}
	if _, err := hs.DropIndex(ctx, mb.m.ID()); err != nil {
		t.Fatal(err)
	}
	ne := min(mb.nq, 10)
	r, lat := mb.measure(ne, mb.viaSearch(hs))
	mb.say("| halfvec: exact (no index; %d queries) | – | – | %.3f | %s | %s |", ne, r, pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.95).Round(time.Millisecond))
	mb.exec(`DROP SCHEMA bench_half CASCADE`)
	_ = hs.Close()
}

// sparseProjection is a very sparse random projection (Li, Hastie and
// Church 2006) from dim to out dimensions: each input coordinate adds its
// value, with a random sign, to about out/sqrt(dim) outputs. It preserves
// inner products in expectation; fixed seed, so it is the same on every
// run (a shipped one would be stored with the model id).
type sparseProjection struct {
	out   int
	to    [][]int32 // per input coordinate: the outputs it adds to
	signs [][]float32
}

func newSparseProjection(dim, out int, seed uint64) *sparseProjection {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := &sparseProjection{out: out, to: make([][]int32, dim), signs: make([][]float32, dim)}
	s := 64.0 // sqrt(4096)
	for j := range dim {
		for o := range out {
			if u := r.Float64(); u < 1/(2*s) {
				p.to[j], p.signs[j] = append(p.to[j], int32(o)), append(p.signs[j], 1)
			} else if u < 1/s {
				p.to[j], p.signs[j] = append(p.to[j], int32(o)), append(p.signs[j], -1)
			}
		}
	}
	return p
}

func (p *sparseProjection) apply(v []float32) []float32 {
	y := make([]float32, p.out)
	for j, x := range v {
		if x == 0 {
			continue
		}
		for i, o := range p.to[j] {
			y[o] += p.signs[j][i] * x
		}
	}
	return y
}

// reduced evaluates the reduced companion candidate on the loaded set:
// the projections of all N rows in a companion table (id, reduced
// vector(reducedDim)) with an HNSW cosine index, searched for k×N
// candidates that are re-ranked by exact cosine distance on the items
// table, against the binary index at the same candidate counts.
func (mb *measureBench) reduced(set string) {
	t, ctx, s := mb.t, mb.ctx, mb.s
	proj := newSparseProjection(benchDim, reducedDim, 42)
	red := pgx.Identifier{s.names.Schema, "bench_reduced"}.Sanitize()
	mb.exec(`DROP TABLE IF EXISTS ` + red)
	mb.exec(fmt.Sprintf(`CREATE TABLE %s (id text PRIMARY KEY, reduced vector(%d) NOT NULL)`, red, reducedDim))
	t0 := time.Now()
	rows := make([][]any, len(mb.recs))
	for i, r := range mb.recs {
		rows[i] = []any{r.ID, pgvector.NewVector(proj.apply(r.Vector))}
	}
	dProject := time.Since(t0)
	t0 = time.Now()
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{s.names.Schema, "bench_reduced"}, []string{"id", "reduced"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	dCopy := time.Since(t0)
	mb.exec(`ALTER SYSTEM SET max_parallel_maintenance_workers = 2`)
	mb.exec(`SELECT pg_reload_conf()`)
	t0 = time.Now()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '1GB'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE INDEX bench_reduced_hnsw ON `+red+` USING hnsw (reduced vector_cosine_ops)`); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Exec(ctx, `RESET maintenance_work_mem`)
	conn.Release()
	dBuild := time.Since(t0)
	var idxBytes, colBytes int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_relation_size(to_regclass($1)), pg_total_relation_size(to_regclass($2)) - pg_indexes_size(to_regclass($2))`,
		s.names.Schema+".bench_reduced_hnsw", s.names.Schema+".bench_reduced").Scan(&idxBytes, &colBytes); err != nil {
		t.Fatal(err)
	}
	mb.exec(`ANALYZE ` + red)
	items := s.names.Qualified("")
	viaReduced := func(c int) func(q []float32) []string {
		return func(q []float32) []string {
			var ids []string
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL hnsw.ef_search = %d; SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off`,
					min(max(benchK*c, 40), maxEfSearch))); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, `SELECT i.id FROM (SELECT id FROM `+red+` ORDER BY reduced <=> $1 LIMIT $2) c
					JOIN `+items+` i USING (id) ORDER BY i.embedding <=> $3::vector, i.id LIMIT $4`,
					pgvector.NewVector(proj.apply(q)), benchK*c, pgvector.NewVector(q), benchK)
				if err != nil {
					return err
				}
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
	}
	if _, err := s.CreateIndex(ctx, connector.IndexBinary, mb.m.ID(), benchDim, connector.IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	mb.say("")
	mb.say("### Reduced companion candidate, %s, %d rows: sparse random projection to %d-d, HNSW cosine (m 16, ef_construction 64), exact re-rank", set, mb.n, reducedDim)
	mb.say("")
	mb.say("projection %s (Go), COPY %s, HNSW build %s; index %.1f MB, companion data %.1f MB",
		dProject.Round(time.Millisecond), dCopy.Round(time.Millisecond), dBuild.Round(time.Millisecond), float64(idxBytes)/1e6, float64(colBytes)/1e6)
	mb.say("")
	mb.say("| N (candidates = 10×N) | reduced: recall@10 | median | p95 | binary: recall@10 | median | p95 |")
	mb.say("|---:|---:|---:|---:|---:|---:|---:|")
	mb.measure(min(mb.nq, 10), viaReduced(10))
	for _, c := range []int{2, 5, 10, 40} {
		rr, rl := mb.measure(mb.nq, viaReduced(c))
		s.candidates = c
		br, bl := mb.measure(mb.nq, mb.viaSearch(s))
		mb.say("| %d | %.3f | %s | %s | %.3f | %s | %s |", c, rr, pct(rl, 0.5).Round(10*time.Microsecond), pct(rl, 0.95).Round(10*time.Microsecond),
			br, pct(bl, 0.5).Round(10*time.Microsecond), pct(bl, 0.95).Round(10*time.Microsecond))
	}
	s.candidates = DefaultCandidates
	mb.exec(`DROP TABLE ` + red)
}
