package retry

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

var errTemporary = errors.New("temporary")

func isTemporary(err error) bool { return errors.Is(err, errTemporary) }

func TestDoStopsAtSuccessPermanentErrorAndAttempts(t *testing.T) {
	permanent := errors.New("permanent")
	cases := []struct {
		name      string
		fails     []error // what tries 1, 2, … return; nil after the list
		attempts  int
		wantTries int
		wantErr   error
	}{
		{"first try succeeds", nil, 4, 1, nil},
		{"succeeds after two temporary errors", []error{errTemporary, errTemporary}, 4, 3, nil},
		{"permanent error is not retried", []error{permanent}, 4, 1, permanent},
		{"attempts bound the tries", []error{errTemporary, errTemporary, errTemporary, errTemporary, errTemporary}, 3, 3, errTemporary},
		{"one attempt turns retries off", []error{errTemporary}, 1, 1, errTemporary},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tries := 0
				err := Do(t.Context(), Policy{Attempts: c.attempts}, isTemporary, func(context.Context) error {
					tries++
					if tries <= len(c.fails) {
						return c.fails[tries-1]
					}
					return nil
				})
				if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
					t.Errorf("err = %v, want %v", err, c.wantErr)
				}
				if tries != c.wantTries {
					t.Errorf("%d tries, want %d", tries, c.wantTries)
				}
			})
		})
	}
}

func TestDoWaitsWithJitteredDoublingCappedBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Attempts: 6, Base: 100 * time.Millisecond, Max: 400 * time.Millisecond}
		var at []time.Duration
		start := time.Now()
		_ = Do(t.Context(), p, isTemporary, func(context.Context) error {
			at = append(at, time.Since(start))
			return errTemporary
		})
		// Waits: [50,100] [100,200] [200,400] [200,400] [200,400] ms.
		lo := []time.Duration{50, 100, 200, 200, 200}
		hi := []time.Duration{100, 200, 400, 400, 400}
		if len(at) != 6 {
			t.Fatalf("%d tries, want 6", len(at))
		}
		for i := 1; i < len(at); i++ {
			w := at[i] - at[i-1]
			if w < lo[i-1]*time.Millisecond || w > hi[i-1]*time.Millisecond {
				t.Errorf("wait %d = %v, want within [%v, %v] ms", i, w, lo[i-1], hi[i-1])
			}
		}
	})
}

func TestDoNeverRetriesAfterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		tries := 0
		done := make(chan error)
		go func() {
			done <- Do(ctx, Policy{Attempts: 10, Base: time.Hour, Max: time.Hour}, isTemporary, func(context.Context) error {
				tries++
				return errTemporary
			})
		}()
		synctest.Wait() // the first try failed; Do waits an hour
		cancel()
		if err := <-done; !errors.Is(err, errTemporary) {
			t.Errorf("err = %v, want the last try's error", err)
		}
		if tries != 1 {
			t.Errorf("%d tries after cancel, want 1", tries)
		}
	})
}

func TestDoBoundsEachTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tries := 0
		err := Do(t.Context(), Policy{Attempts: 2, PerTry: time.Second}, func(err error) bool {
			return errors.Is(err, context.DeadlineExceeded)
		}, func(ctx context.Context) error {
			tries++
			<-ctx.Done()
			return ctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) || tries != 2 {
			t.Errorf("err = %v after %d tries; want a deadline after 2", err, tries)
		}
	})
}

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "slow down" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

func TestDoHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, c := range []struct{ ask, want time.Duration }{
			{3 * time.Second, 3 * time.Second},
			{time.Hour, MaxRetryAfter},
		} {
			start := time.Now()
			tries := 0
			err := Do(t.Context(), Policy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond},
				func(error) bool { return true }, func(context.Context) error {
					tries++
					if tries == 1 {
						return retryAfterErr{c.ask}
					}
					return nil
				})
			if waited := time.Since(start); err != nil || waited != c.want {
				t.Errorf("Retry-After %s: waited %s, %v; want %s", c.ask, waited, err, c.want)
			}
		}
	})
}
