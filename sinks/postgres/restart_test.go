package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/migrations"
)

// The server is stopped in the middle of a sequence of batch writes and
// restarted: writes during the outage fail cleanly or succeed on retry, a
// rerun of the sequence converges, and no row is stored twice.
func TestServerRestartDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a private PostgreSQL server; skipped with -short")
	}
	testDSN(t) // the shared server's script installed the binaries
	p := startPrivateServer(t, "fsync=off", "synchronous_commit=off")
	ctx := context.Background()
	s, err := New(withParams(t, p.dsn, "schema", "imgvec"), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithRetry(retry.Policy{Attempts: 3, Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(256)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	all := faultBatch(m, 600)
	const per = 60
	batches := func() []connector.Batch {
		var bs []connector.Batch
		for i := 0; i < len(all.Upserts); i += per {
			run := *all.Run
			run.Written = int64(i + per)
			bs = append(bs, connector.Batch{Upserts: all.Upserts[i : i+per], Run: &run})
		}
		return bs
	}()
	var failed int
	stopped := make(chan struct{})
	for i, b := range batches {
		if i == 4 {
			// Stop while this batch is being written.
			go func() {
				defer close(stopped)
				time.Sleep(5 * time.Millisecond)
				if err := p.stop(); err != nil {
					t.Error(err)
				}
			}()
		}
		if i == 5 {
			<-stopped
		}
		if i == 7 {
			p.start()
		}
		if err := s.Write(ctx, b); err != nil {
			failed++
			if i < 4 {
				t.Fatalf("batch %d before the outage: %v", i, err)
			}
			t.Logf("batch %d: %v", i, err)
		}
	}
	if failed == 0 {
		t.Fatal("no write failed while the server was down")
	}
	// The rerun (what the next sync does) converges.
	for i, b := range batches {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("rerun batch %d: %v", i, err)
		}
	}
	var rows, ids int
	c, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM imgvec.images`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != len(all.Upserts) || ids != rows {
		t.Fatalf("%d rows, %d distinct ids; want %d", rows, ids, len(all.Upserts))
	}
	var runs int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM imgvec.images_runs`).Scan(&runs); err != nil || runs != 1 {
		t.Fatalf("%d run rows, %v", runs, err)
	}
}
