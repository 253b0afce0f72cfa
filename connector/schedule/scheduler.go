package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Func is a job's body. ctx is cancelled by Stop (or when Start's ctx is
// done); the job should then finish what must not be lost and return.
type Func func(ctx context.Context, t Trigger) error

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // a tick of the job's schedule
	TriggerManual   Trigger = "manual"   // Scheduler.Trigger
	TriggerStart    Trigger = "start"    // Options.RunOnStart
)

// Job is one named, scheduled unit of work.
type Job struct {
	Name     string
	Spec     string         // see ParseSpec
	Location *time.Location // the zone Spec's times are in; nil = UTC
	Run      Func
}

// Hooks observe runs, for metrics. Every field is optional; see the package
// doc for the goroutines they are called from.
type Hooks struct {
	Started func(job string, t Trigger)
	// Finished receives Run's error, or a *PanicError if Run panicked.
	Finished func(job string, t Trigger, d time.Duration, err error)
	// Skipped is called when a tick or trigger arrives while the job is
	// still running; the trigger is dropped.
	Skipped func(job string, t Trigger)
}

// Options configure a Scheduler.
type Options struct {
	Logger     *slog.Logger // nil: no logs
	Hooks      Hooks
	RunOnStart bool // run every job once at Start (TriggerStart)
}

var (
	ErrUnknownJob = errors.New("unknown job")
	ErrRunning    = errors.New("job is already running")
	ErrStopped    = errors.New("scheduler is stopped")
	ErrNotStarted = errors.New("scheduler is not started")
)

// PanicError is the error a run that panicked finishes with.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Scheduler runs jobs; see the package doc for its contract.
type Scheduler struct {
	opts Options
	log  *slog.Logger
	cron *cron.Cron

	mu      sync.Mutex
	jobs    map[string]*entry
	order   []*entry // in Add order, so RunOnStart is deterministic
	ctx     context.Context
	started bool
	stopped bool
	// runs holds every run whose goroutine has not finished, including
	// its Finished hook; Stop waits for them.
	runs map[*run]struct{}
}

type entry struct {
	job   Job
	sched cron.Schedule
	id    cron.EntryID
	// cur is the job's run in progress (nil when idle): the overlap guard.
	cur *run
}

type run struct {
	job    string
	cancel context.CancelFunc
	done   chan struct{} // closed when the run's goroutine ends
}

// New returns a Scheduler with no jobs.
func New(opts Options) *Scheduler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		opts: opts,
		log:  log,
		// Each schedule carries its job's zone (ParseSpec), so the runner's
		// own zone does not matter. Its logger is discarded because this
		// package logs every run, skip and panic itself.
		cron: cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cron.DiscardLogger)),
		jobs: make(map[string]*entry),
		runs: make(map[*run]struct{}),
	}
}

// Add registers a job. It must be called before Start; an empty or
// duplicate name, a bad spec or a nil Run is refused.
func (s *Scheduler) Add(j Job) error {
	if j.Name == "" {
		return errors.New("add job: empty name")
	}
	if j.Run == nil {
		return fmt.Errorf("add job %q: no Run func", j.Name)
	}
	if j.Location == nil {
		j.Location = time.UTC
	}
	sched, err := ParseSpec(j.Spec, j.Location)
	if err != nil {
		return fmt.Errorf("add job %q: %w", j.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return fmt.Errorf("add job %q: the scheduler was already started", j.Name)
	}
	if _, ok := s.jobs[j.Name]; ok {
		return fmt.Errorf("add job %q: a job with this name already exists", j.Name)
	}
	e := &entry{job: j, sched: sched}
	e.id = s.cron.Schedule(sched, cron.FuncJob(func() {
		// Refusals are already reported by launch (Skipped hook, log);
		// a tick has no caller to return them to.
		_ = s.launch(e, TriggerSchedule)
	}))
	s.jobs[j.Name] = e
	s.order = append(s.order, e)
	return nil
}

// Start starts the timer and returns. ctx is the parent of every run's
// context. With Options.RunOnStart every job starts a run now. Calls after
// the first, or after Stop, do nothing.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.ctx = ctx
	// Under the lock, so that a concurrent Stop either comes first (and
	// this returns above) or stops a timer that has started.
	s.cron.Start()
	s.mu.Unlock()

	s.log.Info("scheduler started", "jobs", len(s.order))
	if s.opts.RunOnStart {
		for _, e := range s.order {
			// Nothing runs yet, so the only refusal is a Stop or a done
			// ctx racing this loop, which launch has logged.
			_ = s.launch(e, TriggerStart)
		}
	}
}

// Trigger starts a run of the job now (TriggerManual). It returns
// ErrUnknownJob, ErrNotStarted, ErrStopped, or ErrRunning if the job is
// running (Hooks.Skipped is called then), wrapped with the job's name.
func (s *Scheduler) Trigger(name string) error {
	s.mu.Lock()
	e, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("trigger job %q: %w", name, ErrUnknownJob)
	}
	if err := s.launch(e, TriggerManual); err != nil {
		return fmt.Errorf("trigger job %q: %w", name, err)
	}
	return nil
}

// Next returns the time of the job's next scheduled run, in its Location;
// false if the job is unknown, the scheduler is stopped, or the schedule
// has no further time.
func (s *Scheduler) Next(name string) (time.Time, bool) {
	s.mu.Lock()
	e, ok := s.jobs[name]
	started, stopped := s.started, s.stopped
	s.mu.Unlock()
	if !ok || stopped {
		return time.Time{}, false
	}
	var next time.Time
	if started {
		next = s.cron.Entry(e.id).Next
	} else {
		next = e.sched.Next(time.Now())
	}
	if next.IsZero() {
		return time.Time{}, false
	}
	return next.In(e.job.Location), true
}

// Running reports whether the job has a run in progress.
func (s *Scheduler) Running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.jobs[name]
	return ok && e.cur != nil
}

// Stop stops the timer, refuses new runs, cancels the running ones and
// waits for them until ctx is done; then it returns an error that names
// the jobs still running and wraps ctx.Err(). It may be called again.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	first := !s.stopped
	s.stopped = true
	waits := make([]*run, 0, len(s.runs))
	for r := range s.runs {
		r.cancel()
		waits = append(waits, r)
	}
	s.mu.Unlock()

	if first {
		s.log.Info("scheduler stopping", "running", len(waits))
		// The timer's tick goroutines only call launch, which now refuses,
		// so this wait is short.
		select {
		case <-s.cron.Stop().Done():
		case <-ctx.Done():
		}
	}
	for _, r := range waits {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	var stuck []string
	for _, r := range waits {
		select {
		case <-r.done:
		default:
			stuck = append(stuck, r.job)
		}
	}
	if len(stuck) > 0 {
		slices.Sort(stuck)
		return fmt.Errorf("stop scheduler: jobs still running: %q: %w", stuck, ctx.Err())
	}
	return nil
}

// launch starts a run of e in a new goroutine, unless the scheduler is not
// running or e is already running. It reports a refusal here (log, and
// Hooks.Skipped for an overlap) so that every caller reports it the same.
func (s *Scheduler) launch(e *entry, t Trigger) error {
	name := e.job.Name
	s.mu.Lock()
	var refused error
	switch {
	case s.stopped:
		refused = ErrStopped
	case !s.started:
		refused = ErrNotStarted
	case s.ctx.Err() != nil:
		refused = fmt.Errorf("%w: its context is done: %w", ErrStopped, context.Cause(s.ctx))
	case e.cur != nil:
		refused = ErrRunning
	}
	if refused != nil {
		s.mu.Unlock()
		if errors.Is(refused, ErrRunning) {
			s.log.Warn("job run skipped: still running", "job", name, "trigger", t)
			if s.opts.Hooks.Skipped != nil {
				s.opts.Hooks.Skipped(name, t)
			}
		} else {
			s.log.Debug("job run refused", "job", name, "trigger", t, "err", refused)
		}
		return refused
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &run{job: name, cancel: cancel, done: make(chan struct{})}
	e.cur = r
	s.runs[r] = struct{}{}
	s.mu.Unlock()

	// Owned by the Scheduler: tracked in s.runs, cancelled by Stop, and
	// it ends when Run returns.
	go s.execute(ctx, e, r, t)
	return nil
}

// execute runs one run of e and reports it.
func (s *Scheduler) execute(ctx context.Context, e *entry, r *run, t Trigger) {
	name := e.job.Name
	defer func() {
		r.cancel()
		s.mu.Lock()
		delete(s.runs, r)
		s.mu.Unlock()
		close(r.done)
	}()

	s.log.Info("job started", "job", name, "trigger", t)
	if s.opts.Hooks.Started != nil {
		s.opts.Hooks.Started(name, t)
	}
	begin := time.Now()
	err := call(ctx, e.job.Run, t)
	d := time.Since(begin)

	// Idle before Finished, so that a trigger the hook's observer sends
	// after seeing the run end is not refused as an overlap.
	s.mu.Lock()
	e.cur = nil
	s.mu.Unlock()

	var pe *PanicError
	switch {
	case errors.As(err, &pe):
		s.log.Error("job panicked", "job", name, "trigger", t, "duration", d,
			"panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	case err != nil && ctx.Err() != nil:
		s.log.Warn("job stopped", "job", name, "trigger", t, "duration", d, "err", err)
	case err != nil:
		s.log.Error("job failed", "job", name, "trigger", t, "duration", d, "err", err)
	default:
		s.log.Info("job finished", "job", name, "trigger", t, "duration", d)
	}
	if s.opts.Hooks.Finished != nil {
		s.opts.Hooks.Finished(name, t, d, err)
	}
}

// call runs f, turning a panic into a *PanicError.
func call(ctx context.Context, f Func, t Trigger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return f(ctx, t)
}
