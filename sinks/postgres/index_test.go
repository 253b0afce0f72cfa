package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// indexFixture is a migrated schema with n clustered rows of model m.
type indexFixture struct {
	dsn, sch string
	s        *Sink
	m        schema.ModelIdentity
	gen      *fc7Gen
	recs     []schema.Record
	storage  Storage
}

// query is the i-th query vector; as the table stores it (rounded to half
// precision for halfvec), so that exact answers computed here are exact.
func (f *indexFixture) query(i int) []float32 {
	v := f.gen.vector(i)
	if f.storage == StorageHalfvec {
		for j := range v {
			v[j] = halfRound(v[j])
		}
	}
	return v
}

func newIndexFixture(t *testing.T, n, dim int, opts ...Option) *indexFixture {
	t.Helper()
	dsn, sch := testSchema(t)
	s, err := New(withParams(t, dsn, "schema", sch), append([]Option{WithAutoMigrate(migrations.AutoMigrateFresh)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f := &indexFixture{dsn: dsn, sch: sch, s: s, m: testModel(dim), gen: newFC7Gen(dim, 20, 7)}
	if err := s.Open(context.Background(), f.m); err != nil {
		t.Fatal(err)
	}
	f.storage = s.Storage()
	for i := range n {
		r := f.gen.record(f.m, "idx", i)
		r.Vector = f.query(i)
		f.recs = append(f.recs, r)
	}
	return f
}

func (f *indexFixture) load(t *testing.T, recs []schema.Record) {
	t.Helper()
	for i := 0; i < len(recs); i += 500 {
		if err := f.s.Write(context.Background(), connector.Batch{Upserts: recs[i:min(i+500, len(recs))]}); err != nil {
			t.Fatal(err)
		}
	}
}

// exact is the k nearest stored ids to q, computed here.
func (f *indexFixture) exact(q []float32, k int, skip string) []string {
	type hit struct {
		id string
		d  float64
	}
	var hs []hit
	for _, r := range f.recs {
		if r.ID != skip {
			hs = append(hs, hit{r.ID, 1 - dot(r.Vector, q)})
		}
	}
	// Partial selection sort: k is small.
	var out []string
	for range min(k, len(hs)) {
		b := 0
		for i := range hs {
			if hs[i].d < hs[b].d || hs[i].d == hs[b].d && hs[i].id < hs[b].id {
				b = i
			}
		}
		out = append(out, hs[b].id)
		hs[b] = hs[len(hs)-1]
		hs = hs[:len(hs)-1]
	}
	return out
}

func searchIDs(t *testing.T, s *Sink, model string, q []float32, k int) []string {
	t.Helper()
	hits, err := s.Search(context.Background(), model, q, k)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.ID)
	}
	return ids
}

// explainSearch returns the plan of the indexed search query.
func explainSearch(t *testing.T, f *indexFixture, q []float32, k int) string {
	t.Helper()
	ctx := context.Background()
	var plan []string
	err := pgx.BeginFunc(ctx, f.s.pool, func(tx pgx.Tx) error {
		sql, settings := indexedSearchSQL(f.s.names.Qualified(""), f.m.Dim, k*f.s.candidates)
		if _, err := tx.Exec(ctx, settings); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sql, pgvector.NewVector(q), f.m.ID(), k*f.s.candidates, k)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

func TestIndexCreateSearchDrop(t *testing.T) {
	for _, st := range []Storage{StorageVector, StorageHalfvec} {
		t.Run(string(st), func(t *testing.T) { testIndexCreateSearchDrop(t, st) })
	}
}

func testIndexCreateSearchDrop(t *testing.T, storage Storage) {
	ctx := context.Background()
	f := newIndexFixture(t, 2000, 512, WithStorage(storage))
	if f.storage != storage {
		t.Fatalf("Storage() = %q, want %q", f.storage, storage)
	}
	f.load(t, f.recs)
	s := f.s
	if ix, err := s.IndexStatus(ctx); err != nil || len(ix) != 0 {
		t.Fatalf("status before create: %+v, %v", ix, err)
	}
	// Exact search first (no index): it is exact.
	q := f.query(100000)
	if got, want := searchIDs(t, s, f.m.ID(), q, 10), f.exact(q, 10, ""); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("exact search:\n got %v\nwant %v", got, want)
	}

	info, err := s.CreateIndex(ctx, connector.IndexBinary, f.m.ID(), 0, connector.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Valid || info.Dim != 512 || info.ModelID != f.m.ID() || info.SizeBytes <= 0 || info.Strategy != connector.IndexBinary ||
		!strings.Contains(info.Definition, "bit_hamming_ops") || !strings.Contains(info.Definition, "bit(512)") {
		t.Fatalf("CreateIndex: %+v", info)
	}
	t.Logf("index: %+v", info)
	// Idempotent.
	if again, err := s.CreateIndex(ctx, connector.IndexBinary, f.m.ID(), 0, connector.IndexOptions{}); err != nil || again.Name != info.Name {
		t.Fatalf("second CreateIndex: %+v, %v", again, err)
	}
	if plan := explainSearch(t, f, q, 10); !strings.Contains(plan, info.Name) {
		t.Errorf("the indexed search does not use %s:\n%s", info.Name, plan)
	}
	var sum float64
	const queries = 20
	for i := range queries {
		q := f.query(100000 + i)
		sum += recallAt(searchIDs(t, s, f.m.ID(), q, 10), f.exact(q, 10, ""))
	}
	if r := sum / queries; r < 0.9 {
		t.Errorf("recall@10 of the indexed search: %.3f", r)
	} else {
		t.Logf("recall@10 of the indexed search on %d rows: %.3f", len(f.recs), r)
	}
	// Another model's rows are not in the index and never in the results.
	st, err := s.IndexStatus(ctx)
	if err != nil || len(st) != 1 || st[0].Name != info.Name || !st[0].Valid {
		t.Fatalf("IndexStatus: %+v, %v", st, err)
	}

	dropped, err := s.DropIndex(ctx, f.m.ID())
	if err != nil || len(dropped) != 1 {
		t.Fatalf("DropIndex: %+v, %v", dropped, err)
	}
	if st, err := s.IndexStatus(ctx); err != nil || len(st) != 0 {
		t.Fatalf("IndexStatus after drop: %+v, %v", st, err)
	}
	if got, want := searchIDs(t, s, f.m.ID(), q, 10), f.exact(q, 10, ""); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("exact search after drop:\n got %v\nwant %v", got, want)
	}
	// exact = no index.
	if _, err := s.CreateIndex(ctx, connector.IndexBinary, f.m.ID(), 0, connector.IndexOptions{Concurrently: true, M: 8, EfConstruction: 32}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateIndex(ctx, connector.IndexExact, f.m.ID(), 0, connector.IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.IndexStatus(ctx); len(st) != 0 {
		t.Fatalf("strategy exact left %+v", st)
	}
	if _, err := s.CreateIndex(ctx, connector.IndexBinary, "no-such-model", 0, connector.IndexOptions{}); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("CreateIndex of a model without rows: %v", err)
	}
}

// WithIndexStrategy(binary): a load into an empty table runs without the
// index, BuildDeferredIndex builds it after; the next Open finds it and
// keeps it live.
func TestDeferredIndex(t *testing.T) {
	ctx := context.Background()
	f := newIndexFixture(t, 1500, 256, WithIndexStrategy(connector.IndexBinary), WithCandidates(20))
	s := f.s
	if !s.IndexDeferred() {
		t.Fatal("empty table: the index is not deferred")
	}
	f.load(t, f.recs[:1000])
	if st, _ := s.IndexStatus(ctx); len(st) != 0 {
		t.Fatalf("index built during the load: %+v", st)
	}
	info, built, err := s.BuildDeferredIndex(ctx, connector.IndexOptions{})
	if err != nil || !built || !info.Valid || info.Dim != 256 {
		t.Fatalf("BuildDeferredIndex: %+v, %v, %v", info, built, err)
	}
	if _, built, err := s.BuildDeferredIndex(ctx, connector.IndexOptions{}); built || err != nil {
		t.Fatalf("second BuildDeferredIndex: %v, %v", built, err)
	}
	_ = s.Close()
	if err := s.Open(ctx, f.m); err != nil {
		t.Fatal(err)
	}
	if s.IndexDeferred() {
		t.Fatal("the index exists, yet Open deferred it")
	}
	// Live: the rest goes in through the index.
	f.load(t, f.recs[1000:])
	var sum float64
	for i := range 10 {
		r := f.recs[1000+i*50]
		got := searchIDs(t, s, f.m.ID(), r.Vector, 10)
		if len(got) == 0 || got[0] != r.ID {
			t.Errorf("a row written with the index live is not its own nearest: %v", got)
		}
		sum += recallAt(got, f.exact(r.Vector, 10, ""))
	}
	if sum/10 < 0.9 {
		t.Errorf("recall@10 after the live load: %.3f", sum/10)
	}
	// A model without rows: nothing to build.
	_ = s.Close()
	other := testModel(64)
	if err := s.Open(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, built, err := s.BuildDeferredIndex(ctx, connector.IndexOptions{}); built || err != nil {
		t.Fatalf("BuildDeferredIndex without rows: %v, %v", built, err)
	}
}

// The SQL functions of migration 0002 give the exact answer without the
// index and use the index when it exists.
func TestSQLFunctions(t *testing.T) {
	ctx := context.Background()
	f := newIndexFixture(t, 1200, 256)
	f.load(t, f.recs)
	conn, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET search_path TO `+pgx.Identifier{f.sch}.Sanitize()+`, public`); err != nil {
		t.Fatal(err)
	}
	col := func(sql string, args ...any) []string {
		t.Helper()
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var id, key string
			var d float64
			err := r.Scan(&id, &key, &d)
			return id, err
		})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return ids
	}
	vecText := func(v []float32) string { return pgvector.NewVector(v).String() }
	self := f.recs[42]
	q := f.gen.vector(100000)
	join := func(s []string) string { return strings.Join(s, ",") }

	// Without the index: exact.
	if got, want := col(`SELECT * FROM imgvec_similar($1, 10)`, self.ID), f.exact(self.Vector, 10, self.ID); join(got) != join(want) {
		t.Errorf("imgvec_similar without index:\n got %v\nwant %v", got, want)
	}
	if got, want := col(`SELECT * FROM imgvec_search($1::vector, $2, 10)`, vecText(q), f.m.ID()), f.exact(q, 10, ""); join(got) != join(want) {
		t.Errorf("imgvec_search without index:\n got %v\nwant %v", got, want)
	}
	if got := col(`SELECT * FROM imgvec_search($1::vector, 'no-such-model', 10)`, vecText(q)); len(got) != 0 {
		t.Errorf("unknown model: %v", got)
	}
	if _, err := conn.Exec(ctx, `SELECT * FROM imgvec_search('[1,2,3]'::vector, $1, 10)`, f.m.ID()); err == nil || !strings.Contains(err.Error(), "dimensions") {
		t.Errorf("a query of the wrong dimension: %v", err)
	}

	info, err := f.s.CreateIndex(ctx, connector.IndexBinary, f.m.ID(), 0, connector.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scans := func() int64 {
		t.Helper()
		var n int64
		if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT coalesce(idx_scan, 0) FROM pg_stat_user_indexes WHERE schemaname = $1 AND indexrelname = $2`,
			f.sch, info.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := scans()
	var sum float64
	for i := range 10 {
		r := f.recs[i*100]
		sum += recallAt(col(`SELECT * FROM imgvec_similar($1, 10)`, r.ID), f.exact(r.Vector, 10, r.ID))
		q := f.gen.vector(100000 + i)
		sum += recallAt(col(`SELECT * FROM imgvec_search($1::vector, $2, 10, 20)`, vecText(q), f.m.ID()), f.exact(q, 10, ""))
	}
	if after := scans(); after < before+20 {
		t.Errorf("the functions did not use %s: idx_scan %d -> %d", info.Name, before, after)
	}
	if sum/20 < 0.9 {
		t.Errorf("recall@10 of the functions with the index: %.3f", sum/20)
	}
	// ef_search is restored after the call.
	var ef string
	if err := conn.QueryRow(ctx, `SELECT current_setting('hnsw.ef_search')`).Scan(&ef); err != nil || ef != "40" {
		t.Errorf("hnsw.ef_search after the calls: %q, %v", ef, err)
	}
	if got := col(`SELECT * FROM imgvec_similar('no-such-id', 10)`); len(got) != 0 {
		t.Errorf("unknown id: %v", got)
	}
}

// The functions are shared by the item tables of a schema: rolling back one
// table's migration 0002 keeps them while another table has it applied.
func TestSQLFunctionsSharedBySchema(t *testing.T) {
	dsn, sch := testSchema(t)
	ctx := context.Background()
	exists := func() bool {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = $1 AND p.proname IN ('imgvec_search', 'imgvec_similar')`, sch).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 2
	}
	var sinks []*Sink
	for _, table := range []string{"a", "b"} {
		s, err := New(withParams(t, dsn, "schema", sch, "table", table))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
	}
	if !exists() {
		t.Fatal("functions missing after migrate up")
	}
	for i, s := range sinks {
		m, err := s.OpenMigrator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Down(ctx, migrations.Options{TargetVersion: 1}); err != nil {
			t.Fatal(err)
		}
		if want := i == 0; exists() != want {
			t.Fatalf("after rolling back table %d of 2: functions exist = %v", i+1, !want)
		}
	}
}
