package connector

import (
	"testing"
	"time"
)

// The batch policy is driven with explicit times: no timers, no sleeps.
func TestBatchPolicy(t *testing.T) {
	const linger = 200 * time.Millisecond
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	extract := func() *item { return &item{kind: kindExtract} }
	meta := func() *item { return &item{kind: kindMeta} }
	add := func(p *batchPolicy, n int, mk func() *item, now time.Time) {
		for range n {
			p.Add(mk(), now)
		}
	}
	flush := func(t *testing.T, p *batchPolicy, now time.Time, infer, pass int, want BatchReason) {
		t.Helper()
		if !p.Ready(now) {
			t.Fatalf("not ready at +%v", now.Sub(t0))
		}
		b, why := p.Flush(now)
		if len(b.infer) != infer || len(b.pass) != pass || why != want {
			t.Fatalf("flushed %d+%d items (%s), want %d+%d (%s)", len(b.infer), len(b.pass), why, infer, pass, want)
		}
		if p.Pending().len() != 0 || p.UntilNext(now) != -1 || p.Ready(now) {
			t.Fatalf("after Flush: %d pending, UntilNext %v", p.Pending().len(), p.UntilNext(now))
		}
	}

	t.Run("empty", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		if p.Ready(at(time.Hour)) || p.UntilNext(t0) != -1 || p.Full() || p.Done() {
			t.Fatal("an empty batch is ready, waits for a time, is full or done")
		}
		p.End()
		if !p.Done() || p.Ready(t0) {
			t.Fatal("ended and empty: want done, not ready")
		}
	})
	t.Run("linger counts from the first item", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 1, extract, t0)
		add(p, 2, meta, at(150*time.Millisecond)) // later items do not move it
		for _, c := range []struct {
			now  time.Duration
			wait time.Duration
		}{{0, linger}, {150 * time.Millisecond, 50 * time.Millisecond}, {linger - 1, 1}, {linger, 0}, {time.Hour, 0}} {
			if got := p.UntilNext(at(c.now)); got != c.wait {
				t.Errorf("UntilNext(+%v) = %v, want %v", c.now, got, c.wait)
			}
			if ready := p.Ready(at(c.now)); ready != (c.wait == 0) {
				t.Errorf("Ready(+%v) = %v", c.now, ready)
			}
		}
		flush(t, p, at(linger), 1, 2, BatchLinger)
		// The next batch's linger starts with its own first item.
		add(p, 1, extract, at(time.Second))
		if got := p.UntilNext(at(time.Second)); got != linger {
			t.Errorf("next batch: UntilNext = %v, want %v", got, linger)
		}
	})
	t.Run("full of model items", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 3, extract, t0)
		add(p, 10, meta, t0) // items that need no inference ride along
		if p.Full() || p.Ready(t0) {
			t.Fatal("3 of 4 model items: full or ready")
		}
		add(p, 1, extract, t0)
		if !p.Full() || p.UntilNext(t0) != 0 {
			t.Fatal("4 of 4 model items: not full")
		}
		flush(t, p, t0, 4, 10, BatchFull)
	})
	t.Run("full of items that need no inference", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 255, meta, t0) // maxPass(4) is 256
		if p.Full() {
			t.Fatal("255 of 256: full")
		}
		add(p, 1, meta, t0)
		flush(t, p, t0, 0, 256, BatchFull)
	})
	t.Run("a ready batch grows until full", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 1, extract, t0)
		if !p.Ready(at(linger)) {
			t.Fatal("not ready after the linger")
		}
		add(p, 3, extract, at(linger+time.Millisecond)) // the model was busy
		flush(t, p, at(linger+time.Millisecond), 4, 0, BatchFull)
	})
	t.Run("end of input", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 2, extract, t0)
		p.End()
		if !p.Ended() || p.Done() || p.UntilNext(at(time.Millisecond)) != 0 {
			t.Fatal("ended with items: want ready at once, not done")
		}
		flush(t, p, at(time.Millisecond), 2, 0, BatchEnd)
		if !p.Done() {
			t.Fatal("ended and flushed: not done")
		}
	})
	t.Run("lingered before the end", func(t *testing.T) {
		p := newBatchPolicy(4, linger)
		add(p, 1, meta, t0)
		p.End()
		flush(t, p, at(linger), 0, 1, BatchLinger)
	})
}
