package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/migrations"
)

// syncBuffer is a log destination safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// locker is another session holding a lock, named for the messages.
func locker(t *testing.T, dsn, app, lockSQL string) (release func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, lockSQL); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			_ = c.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// TestWriteWaitsForLockedTable: a write meeting a table another session
// locked logs that session (pid, application_name, state, query start) at
// every lock_timeout, goes on once the lock is released, and fails with an
// error naming the blocker when the lock is held past the limit.
func TestWriteWaitsForLockedTable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out held table locks; skipped with -short")
	}
	ctx := context.Background()
	dsn, sch := testSchema(t)
	model := testModel(8)
	var logs syncBuffer
	open := func(limit time.Duration) *Sink {
		s, err := New(withParams(t, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh),
			WithLockWait(LockWait{Step: 200 * time.Millisecond, Limit: limit}),
			WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(ctx, model); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open(time.Minute)
	lockSQL := `LOCK TABLE ` + s.names.Qualified("") + ` IN ACCESS EXCLUSIVE MODE`

	release := locker(t, dsn, "imgvec-test-locker", lockSQL)
	const held = time.Second
	start := time.Now()
	time.AfterFunc(held, release)
	if err := s.Write(ctx, faultBatch(model, 3)); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
	if took := time.Since(start); took < held {
		t.Fatalf("write took %s, less than the %s the table was locked", took, held)
	}
	out := logs.String()
	for _, want := range []string{"waiting for a lock held by another session", `application_name \"imgvec-test-locker\"`,
		"AccessExclusiveLock", "query started", "pid "} {
		if !strings.Contains(out, want) {
			t.Fatalf("log does not say %q:\n%s", want, out)
		}
	}
	checkConverged(t, s, faultBatch(model, 3))

	short := open(700 * time.Millisecond)
	locker(t, dsn, "imgvec-test-locker-2", lockSQL)
	err := short.Write(ctx, faultBatch(model, 4))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "imgvec-test-locker-2") {
		t.Fatalf("write while the table stays locked: %v; want ErrLocked naming the blocker", err)
	}
}

// TestMigrationWaitsForLock: a migration meeting another migrator's lock
// logs it and goes on once it is released.
func TestMigrationWaitsForLock(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a held migration lock; skipped with -short")
	}
	ctx := context.Background()
	dsn, sch := testSchema(t)
	var logs syncBuffer
	s, err := New(withParams(t, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithLockWait(LockWait{Step: 200 * time.Millisecond, Limit: time.Minute}),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	release := locker(t, dsn, "imgvec-test-migrator", `SELECT pg_advisory_xact_lock(`+
		strconv.FormatInt(migrations.PGLockKey, 10)+`)`)
	time.AfterFunc(time.Second, release)
	if err := s.Open(ctx, testModel(8)); err != nil {
		t.Fatalf("open after the migration lock was released: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, `imgvec-test-migrator`) || !strings.Contains(out, "the imgvec migration lock") {
		t.Fatalf("log does not name the other migrator:\n%s", out)
	}
}
