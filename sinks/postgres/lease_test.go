package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/migrations"
)

// TestLeaseTakeoverAndFence: a second holder waits for the first lease to
// expire, takes it over with a higher epoch, and the first holder — a
// paused process that wakes up — can neither renew nor commit.
func TestLeaseTakeoverAndFence(t *testing.T) {
	ctx := context.Background()
	s := openSinks(t, 2)
	a, b := s[0], s[1]
	const ttl = 700 * time.Millisecond

	la, err := a.Leases().Acquire(ctx, "photos", "holder-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if la.Epoch != 1 {
		t.Errorf("first epoch %d", la.Epoch)
	}
	_, err = b.Leases().Acquire(ctx, "photos", "holder-b", ttl)
	var held *lease.HeldError
	if !errors.As(err, &held) || held.Holder != "holder-a" || held.Expires.IsZero() {
		t.Fatalf("acquire while held: %v", err)
	}
	if la, err = a.Leases().Renew(ctx, la, ttl); err != nil {
		t.Fatalf("renew: %v", err)
	}
	a.SetFence(la)
	if err := a.Write(ctx, faultBatch(testModel(8), 2)); err != nil {
		t.Fatalf("fenced write while valid: %v", err)
	}

	// a stops renewing (it is paused); b takes over once the lease expires.
	time.Sleep(ttl + 200*time.Millisecond)
	lb, err := b.Leases().Acquire(ctx, "photos", "holder-b", ttl)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if lb.Epoch != 2 {
		t.Errorf("takeover epoch %d, want 2", lb.Epoch)
	}
	if _, err := a.Leases().Renew(ctx, la, ttl); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew after takeover: %v", err)
	}
	late := faultBatch(testModel(8), 5)
	if err := a.Write(ctx, late); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("fenced write after takeover: %v", err)
	}
	if err := a.Delete(ctx, late.Upserts[0].Source, []string{late.Upserts[0].ID}); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("fenced delete after takeover: %v", err)
	}
	var n int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM `+a.names.Qualified("")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows stored, want the 2 written while the lease was valid", n)
	}
	if err := a.Leases().Check(ctx, la); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("check of the old lease: %v", err)
	}
	if err := b.Leases().Check(ctx, lb); err != nil {
		t.Fatalf("check of the new lease: %v", err)
	}
	// Releasing ends it at once; the same holder may take it again.
	if err := b.Leases().Release(ctx, lb); err != nil {
		t.Fatal(err)
	}
	if lc, err := a.Leases().Acquire(ctx, "photos", "holder-a", ttl); err != nil || lc.Epoch != 3 {
		t.Fatalf("acquire after release: %+v %v", lc, err)
	}
}

// TestLeaseCurrentAndRestartedHolder: Current names the holder and expiry
// of a valid lease (and nobody once it is released); a restarted process
// with the same holder identity takes its previous incarnation's valid
// lease at once, with a new epoch that fences the old one out.
func TestLeaseCurrentAndRestartedHolder(t *testing.T) {
	ctx := context.Background()
	s := openSinks(t, 3)
	old, other, restarted := s[0], s[1], s[2] // restarted: a new process of old's replica
	if l, err := other.Leases().Current(ctx, "photos"); err != nil || l.Holder != "" {
		t.Fatalf("Current of a job never leased: %+v, %v", l, err)
	}
	const ttl = time.Hour // never waited out here
	l1, err := old.Leases().Acquire(ctx, "photos", "replica-1", ttl)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := other.Leases().Current(ctx, "photos")
	if err != nil || cur.Holder != "replica-1" || cur.Epoch != l1.Epoch || !cur.Expires.Equal(l1.Expires) {
		t.Fatalf("Current = %+v, %v; want %+v", cur, err, l1)
	}
	if _, err := other.Leases().Acquire(ctx, "photos", "replica-2", ttl); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("another holder: %v", err)
	}
	old.SetFence(l1)

	// "replica-1" restarts: a new process, same identity.
	l2, err := restarted.Leases().Acquire(ctx, "photos", "replica-1", ttl)
	if err != nil {
		t.Fatalf("restarted holder: %v", err)
	}
	if l2.Epoch != l1.Epoch+1 {
		t.Errorf("restarted holder's epoch %d, want %d", l2.Epoch, l1.Epoch+1)
	}
	if err := old.Write(ctx, faultBatch(testModel(8), 1)); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the old incarnation's fenced write: %v", err)
	}
	if _, err := old.Leases().Renew(ctx, l1, ttl); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the old incarnation's renewal: %v", err)
	}
	if err := restarted.Leases().Release(ctx, l2); err != nil {
		t.Fatal(err)
	}
	if l, err := other.Leases().Current(ctx, "photos"); err != nil || l.Holder != "" {
		t.Fatalf("Current after release: %+v, %v", l, err)
	}
}

// openSinks opens n sinks on one new schema: n processes sharing a
// database and its leases.
func openSinks(t *testing.T, n int) []*Sink {
	t.Helper()
	dsn, sch := testSchema(t)
	out := make([]*Sink, n)
	for i := range out {
		s, err := New(withParams(t, dsn, "schema", sch), WithAutoMigrate(migrations.AutoMigrateFresh))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(context.Background(), testModel(8)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}
