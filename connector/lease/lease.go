package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// ErrHeld is wrapped by Acquire's error when another holder has the lease.
var ErrHeld = errors.New("lease held by another runner")

// ErrLost is wrapped by errors from Renew, Check and fenced commits when
// the lease expired or was taken over.
var ErrLost = errors.New("job lease lost")

// Lease is one holder's claim on one job.
type Lease struct {
	Job     string
	Holder  string
	Epoch   int64
	Expires time.Time // as judged by the store's clock
}

// HeldError is Acquire's error when another holder has the job's lease.
type HeldError struct {
	Job     string
	Holder  string
	Expires time.Time // zero when unknown
}

func (e *HeldError) Error() string {
	msg := fmt.Sprintf("job %s is running elsewhere: its lease is held by %s", e.Job, e.Holder)
	if !e.Expires.IsZero() {
		msg += fmt.Sprintf(" until %s unless renewed", e.Expires.UTC().Format(time.RFC3339))
	}
	return msg
}

func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Store keeps job leases. Methods are safe for concurrent use and honour
// ctx. See the package documentation for each method's contract.
type Store interface {
	Acquire(ctx context.Context, job, holder string, ttl time.Duration) (Lease, error)
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	Check(ctx context.Context, l Lease) error
	Release(ctx context.Context, l Lease) error
	Current(ctx context.Context, job string) (Lease, error)
}

// Fenceable is implemented by sinks that check a lease inside each
// commit's transaction (Write and Delete fail with an error wrapping
// ErrLost once it is gone). SetFence applies to the commits that start
// after it; the zero Lease removes the fence.
type Fenceable interface {
	SetFence(l Lease)
}

// NewHolderID names this process for lease rows and logs:
// host:pid:random, unique across restarts. A process that must recognise
// its previous incarnation's lease (a restarted `imgvec serve` replica)
// uses a stable replica identity instead (see Acquire).
func NewHolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Held is a lease kept renewed by Hold.
type Held struct {
	store Store
	ttl   time.Duration
	log   *slog.Logger

	mu    sync.Mutex
	lease Lease

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error
	ctx      context.Context // cancelled by Release: stops the renewals
	stop     context.CancelFunc
	done     chan struct{}
	released bool
}

// Hold acquires job's lease for holder and keeps renewing it every ttl/3
// until Release. The renewal goroutine is owned by the Held: Release stops
// it (ctx only bounds the acquisition).
func Hold(ctx context.Context, store Store, job, holder string, ttl time.Duration, log *slog.Logger) (*Held, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease of job %s: ttl %v must be positive", job, ttl)
	}
	l, err := store.Acquire(ctx, job, holder, ttl)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Held{store: store, ttl: ttl, log: log, lease: l, lost: make(chan struct{}), done: make(chan struct{})}
	h.ctx, h.stop = context.WithCancel(context.Background())
	go h.renewLoop()
	return h, nil
}

// Lease returns the lease as last renewed.
func (h *Held) Lease() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

// Lost is closed when the lease is gone; Err then says why.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is nil until Lost is closed, then an error wrapping ErrLost.
func (h *Held) Err() error {
	select {
	case <-h.lost:
		return h.lostErr
	default:
		return nil
	}
}

func (h *Held) markLost(err error) {
	h.lostOnce.Do(func() {
		if !errors.Is(err, ErrLost) {
			err = fmt.Errorf("%w: %w", ErrLost, err)
		}
		h.lostErr = err
		close(h.lost)
	})
}

func (h *Held) renewLoop() {
	defer close(h.done)
	every := h.ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		cur := h.Lease()
		// A renewal may take at most until the lease would expire.
		ctx, cancel := context.WithTimeout(h.ctx, max(time.Until(cur.Expires), every))
		l, err := h.store.Renew(ctx, cur, h.ttl)
		cancel()
		switch {
		case err == nil:
			h.mu.Lock()
			h.lease = l
			h.mu.Unlock()
			t.Reset(every)
		case errors.Is(err, ErrLost):
			h.log.Error("job lease lost", "job", cur.Job, "epoch", cur.Epoch, "err", err)
			h.markLost(err)
			return
		case h.ctx.Err() != nil:
			return
		default:
			if !time.Now().Before(cur.Expires) {
				h.log.Error("job lease expired: renewals failed", "job", cur.Job, "epoch", cur.Epoch, "err", err)
				h.markLost(fmt.Errorf("job %s: renewals failed until the lease expired: %w", cur.Job, err))
				return
			}
			h.log.Warn("job lease renewal failed; retrying", "job", cur.Job, "err", err)
			t.Reset(min(every, time.Second))
		}
	}
}

// Check returns nil while the lease is held (asking the store).
func (h *Held) Check(ctx context.Context) error {
	if err := h.Err(); err != nil {
		return err
	}
	return h.store.Check(ctx, h.Lease())
}

// Release stops renewing and ends the lease. It is safe to call more than
// once; only the first call releases.
func (h *Held) Release(ctx context.Context) error {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return nil
	}
	h.released = true
	h.mu.Unlock()
	h.stop()
	<-h.done
	if h.Err() != nil {
		return nil // gone already
	}
	l := h.Lease()
	if err := h.store.Release(ctx, l); err != nil {
		return fmt.Errorf("release lease of job %s: %w", l.Job, err)
	}
	return nil
}

// Guard wraps a sink that cannot fence its commits: Write and Delete first
// check the lease with the store. A paused process can still commit in the
// moment between the check and its commit; Fenceable sinks close that gap.
func Guard(s connector.Sink, h *Held) connector.Sink { return &guarded{Sink: s, h: h} }

type guarded struct {
	connector.Sink
	h *Held
}

func (g *guarded) Write(ctx context.Context, b connector.Batch) error {
	if err := g.h.Check(ctx); err != nil {
		return err
	}
	return g.Sink.Write(ctx, b)
}

// LatestRuns forwards connector.LatestRunReader (a read: unguarded); a
// sink without it has no run history (no runs).
func (g *guarded) LatestRuns(ctx context.Context, job, source string) ([]schema.Run, error) {
	if lr, ok := g.Sink.(connector.LatestRunReader); ok {
		return lr.LatestRuns(ctx, job, source)
	}
	return nil, nil
}

func (g *guarded) Delete(ctx context.Context, source string, ids []string) error {
	if err := g.h.Check(ctx); err != nil {
		return err
	}
	return g.Sink.Delete(ctx, source, ids)
}
