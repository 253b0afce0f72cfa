package lease_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/imgvec/imgvec/connector/lease"
)

func TestFileStoreExcludes(t *testing.T) {
	ctx := context.Background()
	prefix := filepath.Join(t.TempDir(), "imgvec.db")
	a, b := lease.NewFileStore(prefix), lease.NewFileStore(prefix)
	la, err := a.Acquire(ctx, "photos", "holder-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(ctx, "photos", "holder-b", time.Second)
	var held *lease.HeldError
	if !errors.As(err, &held) || !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second acquire: got %v, want a HeldError", err)
	}
	if want := "holder-a"; !strings.Contains(held.Holder, want) {
		t.Errorf("held by %q, want it to name %q", held.Holder, want)
	}
	// Another job is independent.
	if _, err := b.Acquire(ctx, "other", "holder-b", time.Second); err != nil {
		t.Fatalf("another job: %v", err)
	}
	if err := a.Check(ctx, la); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := a.Release(ctx, la); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx, la); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("check after release: %v", err)
	}
	if _, err := b.Acquire(ctx, "photos", "holder-b", time.Second); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

// Current names the holder of a lock file — this store's, another
// store's or nobody's — without taking the lock from anyone.
func TestFileStoreCurrent(t *testing.T) {
	ctx := context.Background()
	prefix := filepath.Join(t.TempDir(), "imgvec.db")
	a, b := lease.NewFileStore(prefix), lease.NewFileStore(prefix)
	if l, err := b.Current(ctx, "photos"); err != nil || l.Holder != "" {
		t.Fatalf("never locked: %+v, %v", l, err)
	}
	la, err := a.Acquire(ctx, "photos", "holder-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := a.Current(ctx, "photos"); err != nil || l.Holder != "holder-a" || !l.Expires.IsZero() {
		t.Fatalf("own lock: %+v, %v", l, err)
	}
	l, err := b.Current(ctx, "photos")
	if err != nil || !strings.Contains(l.Holder, "holder-a") || !l.Expires.IsZero() {
		t.Fatalf("another store's lock: %+v, %v", l, err)
	}
	if err := a.Check(ctx, la); err != nil {
		t.Fatalf("the probe took the lock: %v", err)
	}
	if err := a.Release(ctx, la); err != nil {
		t.Fatal(err)
	}
	if l, err := b.Current(ctx, "photos"); err != nil || l.Holder != "" {
		t.Fatalf("released: %+v, %v", l, err)
	}
	if _, err := b.Acquire(ctx, "photos", "holder-b", time.Second); err != nil {
		t.Fatalf("acquire after the probes: %v", err)
	}
}

// A lock held by a process that is killed is free again: the kernel drops
// it with the process.
func TestFileStoreFreedWhenHolderDies(t *testing.T) {
	if os.Getenv("IMGVEC_LEASE_HELPER") != "" {
		s := lease.NewFileStore(os.Getenv("IMGVEC_LEASE_HELPER"))
		if _, err := s.Acquire(context.Background(), "photos", "child", time.Second); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	prefix := filepath.Join(t.TempDir(), "imgvec.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreFreedWhenHolderDies$")
	cmd.Env = append(os.Environ(), "IMGVEC_LEASE_HELPER="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child did not lock: %q %v", buf, err)
	}
	s := lease.NewFileStore(prefix)
	if _, err := s.Acquire(context.Background(), "photos", "parent", time.Second); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("while the child holds it: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := s.Acquire(context.Background(), "photos", "parent", time.Second); err != nil {
		t.Fatalf("after the child died: %v", err)
	}
}

// memStore is a Store whose renewals can be made to fail.
type memStore struct {
	mu       sync.Mutex
	renewErr error
	renewals int
	released bool
}

func (m *memStore) Acquire(_ context.Context, job, holder string, ttl time.Duration) (lease.Lease, error) {
	return lease.Lease{Job: job, Holder: holder, Epoch: 1, Expires: time.Now().Add(ttl)}, nil
}

func (m *memStore) Renew(_ context.Context, l lease.Lease, ttl time.Duration) (lease.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewals++
	if m.renewErr != nil {
		return l, m.renewErr
	}
	l.Expires = time.Now().Add(ttl)
	return l, nil
}

func (m *memStore) Check(context.Context, lease.Lease) error { return nil }

func (m *memStore) Current(context.Context, string) (lease.Lease, error) { return lease.Lease{}, nil }

func (m *memStore) Release(context.Context, lease.Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.released = true
	return nil
}

func (m *memStore) set(err error) {
	m.mu.Lock()
	m.renewErr = err
	m.mu.Unlock()
}

// The Hold tests run in synctest bubbles: the renewal timeline is exact
// (every ttl/3) and takes no real time.
func TestHoldRenewsAndReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memStore{}
		h, err := lease.Hold(context.Background(), m, "photos", "me", 150*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(425 * time.Millisecond) // renewals at 50, 100, … 400ms
		select {
		case <-h.Lost():
			t.Fatalf("lost: %v", h.Err())
		default:
		}
		if got, want := h.Lease().Expires, start.Add(550*time.Millisecond); !got.Equal(want) {
			t.Errorf("lease expires at +%v, want +550ms (renewed at 400ms)", got.Sub(start))
		}
		if err := h.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.renewals != 8 || !m.released {
			t.Fatalf("renewals %d released %v, want 8 and released", m.renewals, m.released)
		}
	})
}

func TestHoldLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		lostAt time.Duration
	}{
		{"taken over", lease.ErrLost, 50 * time.Millisecond},                                // the first renewal
		{"renewals keep failing", errors.New("connection refused"), 150 * time.Millisecond}, // retried until the expiry
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &memStore{}
				start := time.Now()
				h, err := lease.Hold(context.Background(), m, "photos", "me", 150*time.Millisecond, nil)
				if err != nil {
					t.Fatal(err)
				}
				m.set(tc.err)
				select {
				case <-h.Lost():
				case <-time.After(time.Hour):
					t.Fatal("lease not reported lost")
				}
				if d := time.Since(start); d != tc.lostAt {
					t.Errorf("lost after %v, want %v", d, tc.lostAt)
				}
				if !errors.Is(h.Err(), lease.ErrLost) {
					t.Fatalf("Err = %v", h.Err())
				}
				if err := h.Release(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
