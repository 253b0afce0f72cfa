package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// faultBatch is n rows of model m with distinct 4096-d-style vectors.
func faultBatch(m schema.ModelIdentity, n int) connector.Batch {
	var b connector.Batch
	for i := range n {
		v := make([]float32, m.Dim)
		for j := range v {
			v[j] = float32((i*31+j)%97) / 97
		}
		v[i%m.Dim] += 1
		key := fmt.Sprintf("img/%04d.jpg", i)
		b.Upserts = append(b.Upserts, schema.Record{
			ID: schema.ItemID("fault", key), Source: "fault", Key: key,
			Fingerprint: schema.Fingerprint{Size: int64(i + 1), MTime: time.Unix(1700000000, int64(i)).UTC(), SHA256: fmt.Sprintf("%064x", i)},
			ModelID:     m.ID(), Layer: m.Layer, Dim: m.Dim, Vector: v, ExtractedAt: time.Unix(1700000000, 0).UTC(),
		})
	}
	b.Run = &schema.Run{ID: "fault-run", Kind: "sync", Source: "fault", ModelID: m.ID(), StartedAt: time.Now().UTC(),
		Outcome: schema.RunRunning, Listed: int64(n), Written: int64(n)}
	return b
}

// terminateAt makes the COPY of the next write terminate its own backend
// (pg_terminate_backend from another connection) when it reaches row at.
// It returns how many backends were terminated.
func terminateAt(t *testing.T, dsn, app string, at int) *atomic.Int32 {
	t.Helper()
	var fired atomic.Int32
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testHookCopyRow = nil
		admin.Close(context.Background())
	})
	testHookCopyRow = func(i int) {
		if i != at || fired.Load() > 0 {
			return
		}
		var n int32
		err := admin.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
			FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() AND state <> 'idle'`, app).Scan(&n)
		if err != nil {
			t.Errorf("terminate: %v", err)
		}
		fired.Store(n)
	}
	return &fired
}

func checkConverged(t *testing.T, s *Sink, b connector.Batch) {
	t.Helper()
	ctx := context.Background()
	var rows, ids int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM `+s.names.Qualified("")).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != len(b.Upserts) || ids != rows {
		t.Fatalf("%d rows, %d distinct ids; want %d", rows, ids, len(b.Upserts))
	}
	for _, i := range []int{0, len(b.Upserts) / 2, len(b.Upserts) - 1} {
		want := b.Upserts[i]
		got, ok, err := s.Get(ctx, want.ID)
		if err != nil || !ok || !got.MTime.Equal(want.MTime) || len(got.Vector) != len(want.Vector) || got.Vector[i%len(want.Vector)] != want.Vector[i%len(want.Vector)] {
			t.Fatalf("Get %s: ok=%v err=%v", want.Key, ok, err)
		}
	}
	st, err := s.Status(ctx)
	if err != nil || len(st.Runs) != 1 {
		t.Fatalf("status: %+v, %v", st.Runs, err)
	}
}

// The backend serving a batch is terminated mid-COPY: with retries the
// write succeeds on its next try; the state is the batch exactly once.
func TestTerminatedMidCopyRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (terminates or races server sessions); skipped with -short")
	}
	dsn, sch := testSchema(t)
	ctx := context.Background()
	app := "imgvec_fault_" + sch
	s, err := New(withParams(t, dsn, "schema", sch, "application_name", app), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithRetry(retry.Policy{Attempts: 4, Base: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(512)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := faultBatch(m, 400)
	fired := terminateAt(t, dsn, app, 300)
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write with a backend terminated mid-COPY and retries on: %v", err)
	}
	if fired.Load() == 0 {
		t.Fatal("no backend was terminated: the fault was not injected")
	}
	checkConverged(t, s, b)
}

// Without retries the write fails cleanly (nothing of the batch is
// stored) and a rerun converges.
func TestTerminatedMidCopyRerunConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (terminates or races server sessions); skipped with -short")
	}
	dsn, sch := testSchema(t)
	ctx := context.Background()
	app := "imgvec_fault_" + sch
	s, err := New(withParams(t, dsn, "schema", sch, "application_name", app), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithRetry(retry.Policy{Attempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(512)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := faultBatch(m, 400)
	// A first half commits; the full batch then dies mid-COPY.
	half := connector.Batch{Upserts: b.Upserts[:200]}
	if err := s.Write(ctx, half); err != nil {
		t.Fatal(err)
	}
	fired := terminateAt(t, dsn, app, 300)
	err = s.Write(ctx, b)
	if err == nil || fired.Load() == 0 {
		t.Fatalf("Write with the backend terminated mid-COPY, no retries: err=%v, terminated=%d", err, fired.Load())
	}
	t.Logf("error of the terminated write: %v", err)
	if !Retryable(err) {
		t.Errorf("the error of a terminated backend is not Retryable: %v", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.names.Qualified("")).Scan(&n); err != nil || n != 200 {
		t.Fatalf("after the failed batch: %d rows (%v), want the 200 committed before", n, err)
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	checkConverged(t, s, b)
}

// Every pooled connection is terminated between calls (a server restart or
// a pooler recycling backends looks like this): reads and writes go on,
// retried on a fresh connection.
func TestTerminatedIdleConnectionsRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (terminates or races server sessions); skipped with -short")
	}
	dsn, sch := testSchema(t)
	ctx := context.Background()
	app := "imgvec_fault_" + sch
	s, err := New(withParams(t, dsn, "schema", sch, "application_name", app), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithRetry(retry.Policy{Attempts: 4, Base: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(16)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := faultBatch(m, 20)
	if err := s.Write(ctx, connector.Batch{Upserts: b.Upserts[:10]}); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	kill := func() {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
			FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil || n == 0 {
			t.Fatalf("terminated %d backends: %v", n, err)
		}
	}
	kill()
	if hits, err := s.Search(ctx, m.ID(), b.Upserts[0].Vector, 3); err != nil || len(hits) != 3 || hits[0].ID != b.Upserts[0].ID {
		t.Fatalf("Search after the backends died: %d hits, %v", len(hits), err)
	}
	kill()
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write after the backends died: %v", err)
	}
	kill()
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after the backends died: %v", err)
	}
	checkConverged(t, s, b)
}

// Another writer stores one of a fresh batch's ids while the batch is
// being COPYed straight into the table (the fast path for new ids): the
// batch falls back to the staged upsert and wins, with no duplicate.
func TestConcurrentInsertFallsBackToStagedUpsert(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (terminates or races server sessions); skipped with -short")
	}
	dsn, sch := testSchema(t)
	ctx := context.Background()
	s, err := New(withParams(t, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(16)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := faultBatch(m, 20)
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var fired atomic.Bool
	testHookCopyRow = func(i int) {
		if i != 0 || fired.Swap(true) {
			return
		}
		if _, err := other.Exec(ctx, `INSERT INTO `+s.names.Qualified("")+` (id, source, key, size, model_id, dim, extracted_at, embedding)
			VALUES ($1, 'fault', 'intruder', 1, $2, 16, now(), array_fill(1, ARRAY[16])::real[]::vector)`, b.Upserts[5].ID, m.ID()); err != nil {
			t.Errorf("concurrent insert: %v", err)
		}
	}
	defer func() { testHookCopyRow = nil }()
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write racing a concurrent insert: %v", err)
	}
	if !fired.Load() {
		t.Fatal("the concurrent insert did not happen")
	}
	checkConverged(t, s, b)
	if r, _, _ := s.Get(ctx, b.Upserts[5].ID); r.Key != b.Upserts[5].Key {
		t.Errorf("the batch's row lost to the concurrent one: key %q", r.Key)
	}
}
