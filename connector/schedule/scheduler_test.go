package schedule

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// never is a spec that does not fire during a test, for jobs that only run
// by trigger or at start.
const never = "0 0 1 1 *"

// event is one hook call.
type event struct {
	job string
	t   Trigger
	err error
}

// recorder collects hook calls on channels that are big enough never to
// block the scheduler in these tests.
type recorder struct {
	started, finished, skipped chan event
}

func newRecorder() *recorder {
	return &recorder{
		started:  make(chan event, 100),
		finished: make(chan event, 100),
		skipped:  make(chan event, 100),
	}
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Started:  func(job string, t Trigger) { r.started <- event{job: job, t: t} },
		Finished: func(job string, t Trigger, _ time.Duration, err error) { r.finished <- event{job, t, err} },
		Skipped:  func(job string, t Trigger) { r.skipped <- event{job: job, t: t} },
	}
}

// next waits for the next event on ch.
func next(t *testing.T, ch <-chan event, what string) event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return event{}
	}
}

// syncBuffer is a log sink safe for the scheduler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start returns a started scheduler with jobs, stopped at the end of the
// test.
func start(t *testing.T, opts Options, jobs ...Job) *Scheduler {
	t.Helper()
	s := New(opts)
	for _, j := range jobs {
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(t.Context())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s
}

// The timed tests run in synctest bubbles. robfig/cron works there: its
// runner goroutine, started in the bubble, reads time.Now and waits on
// time.NewTimer, both the bubble's fake clock, so "@every 1s" ticks take no
// real time.
func TestOverlappingTicksAreSkipped(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testOverlappingTicksAreSkipped)
}

func testOverlappingTicksAreSkipped(t *testing.T) {
	rec := newRecorder()
	release := make(chan struct{})
	var runs atomic.Int32
	s := start(t, Options{Hooks: rec.hooks()}, Job{Name: "slow", Spec: "@every 1s",
		Run: func(ctx context.Context, _ Trigger) error {
			runs.Add(1)
			<-release
			return nil
		}})

	if e := next(t, rec.started, "first tick"); e != (event{job: "slow", t: TriggerSchedule}) {
		t.Fatalf("started %+v, want slow/schedule", e)
	}
	if e := next(t, rec.skipped, "an overlapping tick"); e != (event{job: "slow", t: TriggerSchedule}) {
		t.Fatalf("skipped %+v, want slow/schedule", e)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs during the first run, want 1 (ticks must not queue or overlap)", n)
	}
	if !s.Running("slow") {
		t.Error("Running(slow) = false during its run")
	}
	close(release)
	if e := next(t, rec.finished, "the run's end"); e.err != nil {
		t.Fatalf("finished with %v", e.err)
	}
	// The skipped tick was dropped, not queued: the next run comes from a
	// later tick (every run ends at once now that release is closed).
	if e := next(t, rec.started, "the next tick"); e.t != TriggerSchedule {
		t.Fatalf("next run started by %q, want schedule", e.t)
	}
}

func TestPanicIsRecoveredAndReported(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testPanicIsRecoveredAndReported)
}

func testPanicIsRecoveredAndReported(t *testing.T) {
	rec := newRecorder()
	var logs syncBuffer
	var calls atomic.Int32
	s := start(t, Options{Hooks: rec.hooks(), Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Job{Name: "flaky", Spec: "* * * * * *", Run: func(context.Context, Trigger) error {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return nil
		}})

	e := next(t, rec.finished, "the panicking run")
	var pe *PanicError
	if !errors.As(e.err, &pe) {
		t.Fatalf("Finished err = %v (%T), want *PanicError", e.err, e.err)
	}
	if pe.Value != "boom" || !strings.Contains(string(pe.Stack), "testPanicIsRecoveredAndReported") {
		t.Errorf("PanicError value %v, stack:\n%s\nwant boom and this test's function", pe.Value, pe.Stack)
	}
	if s.Running("flaky") {
		t.Error("Running(flaky) = true after the panic")
	}
	// The scheduler survived: the next tick runs the job again.
	if e := next(t, rec.finished, "the run after the panic"); e.err != nil {
		t.Fatalf("second run finished with %v", e.err)
	}
	if l := logs.String(); !strings.Contains(l, "job panicked") || !strings.Contains(l, "stack=") ||
		!strings.Contains(l, "panic=boom") {
		t.Errorf("log lacks the panic and its stack:\n%s", l)
	}
}

func TestPanicErrorUnwrap(t *testing.T) {
	sentinel := errors.New("sentinel")
	tests := []struct {
		value any
		is    bool
	}{{sentinel, true}, {"text", false}, {42, false}}
	for _, tt := range tests {
		err := call(context.Background(), func(context.Context, Trigger) error { panic(tt.value) }, TriggerManual)
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Value != tt.value {
			t.Errorf("panic(%v): got %v, want a *PanicError holding it", tt.value, err)
		}
		if got := errors.Is(err, sentinel); got != tt.is {
			t.Errorf("panic(%v): errors.Is(err, sentinel) = %v, want %v", tt.value, got, tt.is)
		}
	}
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	release := make(chan struct{}, 1)
	s := New(Options{Hooks: rec.hooks()})
	if err := s.Add(Job{Name: "photos", Spec: never, Run: func(ctx context.Context, _ Trigger) error {
		<-release
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Trigger("photos"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Trigger before Start = %v, want ErrNotStarted", err)
	}
	s.Start(t.Context())

	if err := s.Trigger("nope"); !errors.Is(err, ErrUnknownJob) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Trigger(nope) = %v, want ErrUnknownJob naming it", err)
	}
	for round := 1; round <= 2; round++ { // the second round proves the job is idle again
		if err := s.Trigger("photos"); err != nil {
			t.Fatalf("round %d: Trigger = %v", round, err)
		}
		if e := next(t, rec.started, "the manual run"); e != (event{job: "photos", t: TriggerManual}) {
			t.Fatalf("started %+v, want photos/manual", e)
		}
		if !s.Running("photos") {
			t.Fatal("Running = false during the manual run")
		}
		if err := s.Trigger("photos"); !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), `"photos"`) {
			t.Fatalf("Trigger while running = %v, want ErrRunning naming the job", err)
		}
		if e := next(t, rec.skipped, "the refused trigger"); e != (event{job: "photos", t: TriggerManual}) {
			t.Fatalf("skipped %+v, want photos/manual", e)
		}
		release <- struct{}{}
		next(t, rec.finished, "the manual run's end")
		if s.Running("photos") {
			t.Fatal("Running = true after Finished")
		}
	}

	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Trigger("photos"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Trigger after Stop = %v, want ErrStopped", err)
	}
}

func TestStopCancelsAndWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testStopCancelsAndWaits)
}

func testStopCancelsAndWaits(t *testing.T) {
	rec := newRecorder()
	var drained atomic.Bool
	s := New(Options{Hooks: rec.hooks()})
	if err := s.Add(Job{Name: "sync", Spec: never, Run: func(ctx context.Context, _ Trigger) error {
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // commit the in-flight batch
		drained.Store(true)
		return ctx.Err()
	}}); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	if err := s.Trigger("sync"); err != nil {
		t.Fatal(err)
	}
	next(t, rec.started, "the run")

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if !drained.Load() {
		t.Fatal("Stop returned before the job finished draining")
	}
	select {
	case e := <-rec.finished:
		if !errors.Is(e.err, context.Canceled) {
			t.Errorf("Finished err = %v, want context.Canceled", e.err)
		}
	default:
		t.Fatal("Stop returned before the Finished hook ran")
	}
	if s.Running("sync") {
		t.Error("Running = true after Stop")
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if next, ok := s.Next("sync"); ok {
		t.Errorf("Next after Stop = %v, true; want false", next)
	}
}

func TestStopDeadlineNamesStuckJobs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testStopDeadlineNamesStuckJobs)
}

func testStopDeadlineNamesStuckJobs(t *testing.T) {
	rec := newRecorder()
	release := make(chan struct{})
	s := New(Options{Hooks: rec.hooks(), RunOnStart: true})
	for _, j := range []Job{
		{Name: "stuck", Spec: never, Run: func(context.Context, Trigger) error {
			<-release // ignores its context
			return nil
		}},
		{Name: "polite", Spec: never, Run: func(ctx context.Context, _ Trigger) error {
			<-ctx.Done()
			return ctx.Err()
		}},
	} {
		if err := s.Add(j); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(t.Context())
	next(t, rec.started, "a run")
	next(t, rec.started, "a run")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := s.Stop(ctx)
	if took := time.Since(begin); took != 50*time.Millisecond {
		t.Errorf("Stop took %v with a 50ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"stuck"`) ||
		strings.Contains(err.Error(), "polite") {
		t.Fatalf("Stop = %v, want DeadlineExceeded naming only the stuck job", err)
	}
	if !s.Running("stuck") || s.Running("polite") {
		t.Errorf("Running: stuck %v polite %v, want true false", s.Running("stuck"), s.Running("polite"))
	}

	close(release)
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop after the job ended = %v", err)
	}
}

func TestRunOnStart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testRunOnStart)
}

func testRunOnStart(t *testing.T) {
	for _, on := range []bool{true, false} {
		rec := newRecorder()
		noop := func(context.Context, Trigger) error { return nil }
		start(t, Options{Hooks: rec.hooks(), RunOnStart: on},
			Job{Name: "a", Spec: never, Run: noop}, Job{Name: "b", Spec: never, Run: noop})
		if !on {
			select {
			case e := <-rec.started:
				t.Fatalf("RunOnStart=false started %+v", e)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		got := map[event]bool{}
		for range 2 {
			got[next(t, rec.started, "a start run")] = true
		}
		for _, name := range []string{"a", "b"} {
			if !got[event{job: name, t: TriggerStart}] {
				t.Errorf("no start run of %s: %v", name, got)
			}
		}
	}
}

func TestStartContextDone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := New(Options{Hooks: rec.hooks(), RunOnStart: true})
	if err := s.Add(Job{Name: "sync", Spec: never, Run: func(ctx context.Context, _ Trigger) error {
		<-ctx.Done()
		return ctx.Err()
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	s.Start(ctx)
	next(t, rec.started, "the start run")
	cancel()
	if e := next(t, rec.finished, "the cancelled run"); !errors.Is(e.err, context.Canceled) {
		t.Fatalf("Finished err = %v, want context.Canceled", e.err)
	}
	if err := s.Trigger("sync"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Trigger after Start's ctx is done = %v, want ErrStopped", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestAddErrors(t *testing.T) {
	noop := func(context.Context, Trigger) error { return nil }
	s := New(Options{})
	if err := s.Add(Job{Name: "photos", Spec: "@hourly", Run: noop}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		job  Job
		want []string
	}{
		{"empty name", Job{Spec: "@hourly", Run: noop}, []string{"empty name"}},
		{"no run", Job{Name: "x", Spec: "@hourly"}, []string{`"x"`, "no Run"}},
		{"bad spec", Job{Name: "x", Spec: "* * *", Run: noop}, []string{`job "x"`, `"* * *"`, "expected 5 fields"}},
		{"duplicate", Job{Name: "photos", Spec: "@daily", Run: noop}, []string{`"photos"`, "already exists"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Add(tt.job)
			if err == nil {
				t.Fatal("Add succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	s.Start(t.Context())
	defer func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if err := s.Add(Job{Name: "late", Spec: "@hourly", Run: noop}); err == nil || !strings.Contains(err.Error(), "started") {
		t.Errorf("Add after Start = %v, want an error saying it was started", err)
	}
}

func TestNext(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	noop := func(context.Context, Trigger) error { return nil }
	s := New(Options{})
	if err := s.Add(Job{Name: "nightly", Spec: "30 4 * * *", Location: ny, Run: noop}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) time.Time {
		t.Helper()
		got, ok := s.Next("nightly")
		if !ok || got.Location() != ny || got.Hour() != 4 || got.Minute() != 30 || !got.After(time.Now()) ||
			got.Sub(time.Now()) > 25*time.Hour {
			t.Fatalf("%s: Next = %v, %v; want the coming 04:30 in New York", when, got, ok)
		}
		return got
	}
	before := check("before Start")
	s.Start(t.Context())
	if after := check("after Start"); !after.Equal(before) {
		t.Errorf("Next moved from %v to %v at Start", before, after)
	}
	if _, ok := s.Next("nope"); ok {
		t.Error("Next(unknown) ok")
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Next("nightly"); ok {
		t.Error("Next after Stop ok")
	}
}

func TestConcurrentTriggersRunOnce(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	release := make(chan struct{})
	s := start(t, Options{Hooks: rec.hooks()}, Job{Name: "photos", Spec: never,
		Run: func(context.Context, Trigger) error {
			<-release
			return nil
		}})
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- s.Trigger("photos") })
	}
	wg.Wait()
	close(errs)
	ok, running := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrRunning):
			running++
		default:
			t.Errorf("Trigger = %v", err)
		}
	}
	if ok != 1 || running != n-1 || len(rec.skipped) != n-1 {
		t.Errorf("%d runs, %d ErrRunning, %d skips; want 1, %d, %d", ok, running, len(rec.skipped), n-1, n-1)
	}
	close(release)
}

func TestStopBeforeStart(t *testing.T) {
	rec := newRecorder()
	s := New(Options{Hooks: rec.hooks(), RunOnStart: true})
	if err := s.Add(Job{Name: "photos", Spec: "* * * * * *", Run: func(context.Context, Trigger) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context()) // does nothing after Stop
	if err := s.Trigger("photos"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Trigger = %v, want ErrStopped", err)
	}
	if len(rec.started) != 0 {
		t.Fatal("a run started after Stop")
	}
}
