package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/jobrun"
	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/connector/schedule"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks"
)

// Server is one `imgvec serve` process.
type Server struct {
	cfg     *config.File
	log     *slog.Logger
	metrics *serveMetrics
	sched   *schedule.Scheduler
	jobs    []*servedJob // in config order
	token   string       // bearer token of the POST endpoints ("" = none)
	// holder is this process's identity in the job leases: serve.replica_id,
	// or derived from the listen address when Run starts listening.
	holder string

	ready    atomic.Bool // every model is loaded
	stopping atomic.Bool
	// hardCtx is the runs' context: only a second signal cancels it (the
	// first one stops the scheduler, whose job contexts are the soft stop).
	hardCtx    context.Context
	hardCancel context.CancelFunc
}

// servedJob is one job of the config and its state in this process.
type servedJob struct {
	cfg   config.Job
	shard connector.Shard    // cfg.Shard: its lease is the shard's (Shard.LeaseName)
	x     *extract.Extractor // loaded at start

	mu      sync.Mutex
	last    *schema.Run // the last finished run
	lastErr string
	probe   probeResult

	// The job's lease, kept between runs: the replica holding it runs
	// every tick, the others skip theirs until it is released (shutdown)
	// or expires (the holder died or hangs). home and unleased are set
	// once, under homeMu (the job's run and the trigger endpoint open
	// it); held and watch are used by the job's run only, and by
	// shutdown after the scheduler stopped.
	homeMu   sync.Mutex
	home     *wiring.LeaseHome
	unleased bool // the sink keeps no leases and no lock_dsn is set
	held     *lease.Held
	watch    chan struct{} // closed to end held's watcher
}

type probeResult struct {
	at  time.Time
	err error
}

// New validates the served jobs of f (only those named in only, when it
// is not empty) without I/O; Run serves them.
func New(f *config.File, only []string, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: f, log: log, metrics: newServeMetrics()}
	for _, j := range f.Jobs {
		if len(only) > 0 && !slices.Contains(only, j.Name) {
			continue
		}
		if j.Schedule == "" {
			return nil, wiring.Usagef("%s: job %s has no schedule: serve runs scheduled jobs (run it once with `imgvec sync --config %s --job %s`)",
				f.Path, j.Name, f.Path, j.Name)
		}
		// The config validated the job's keys; the sink URI is checked by
		// the sink itself.
		if _, err := wiring.NewSink(j.Sink, true, j.Index); err != nil {
			return nil, fmt.Errorf("%s: job %s: %w", f.Path, j.Name, err)
		}
		shard, err := connector.ParseShard(j.Shard)
		if err != nil {
			return nil, wiring.Usagef("%s: job %s: %v", f.Path, j.Name, err)
		}
		s.jobs = append(s.jobs, &servedJob{cfg: j, shard: shard})
		s.metrics.addJob(j.Name)
	}
	for _, name := range only {
		if _, err := f.Job(name); err != nil {
			return nil, wiring.Usage(err)
		}
	}
	if len(s.jobs) == 0 {
		return nil, wiring.Usagef("%s: no jobs to serve", f.Path)
	}
	s.token = os.Getenv(f.Serve.TokenEnv)
	if s.token == "" && !loopback(f.Serve.Listen) {
		return nil, wiring.Usagef("serve: listening on %s, beyond loopback, needs a bearer token for POST /v1/jobs/{name}/run: set $%s",
			f.Serve.Listen, f.Serve.TokenEnv)
	}
	s.sched = schedule.New(schedule.Options{
		Logger:     log,
		RunOnStart: f.Serve.RunOnStart,
		Hooks: schedule.Hooks{
			Started: func(job string, _ schedule.Trigger) { s.metrics.running.WithLabelValues(job).Set(1) },
			Finished: func(job string, _ schedule.Trigger, _ time.Duration, err error) {
				s.metrics.running.WithLabelValues(job).Set(0)
				var pe *schedule.PanicError
				if errors.As(err, &pe) {
					s.metrics.panics.WithLabelValues(job).Inc()
				}
			},
			Skipped: func(job string, _ schedule.Trigger) { s.metrics.skipped.WithLabelValues(job, skipOverlap).Inc() },
		},
	})
	for _, sj := range s.jobs {
		loc, err := time.LoadLocation(sj.cfg.TimeZone)
		if err != nil {
			return nil, wiring.Usagef("%s: job %s: time_zone %q: %v", f.Path, sj.cfg.Name, sj.cfg.TimeZone, err)
		}
		if err := s.sched.Add(schedule.Job{Name: sj.cfg.Name, Spec: sj.cfg.Schedule, Location: loc,
			Run: func(ctx context.Context, t schedule.Trigger) error { return s.runJob(ctx, sj, t) }}); err != nil {
			return nil, wiring.Usagef("%s: %v", f.Path, err)
		}
	}
	return s, nil
}

// loopback reports whether addr (host:port) only accepts local clients.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// run serves until ctx is done (the first SIGINT/SIGTERM), then shuts down:
// no new runs; running ones commit their in-flight batches within their
// grace; a second signal cancels them at once.
// Run serves until ctx ends (the first SIGINT/SIGTERM): it loads the
// models, schedules the jobs and answers HTTP; then it stops the
// scheduler, lets running jobs commit within their grace (a second signal
// abandons their in-flight batches), releases the leases and returns.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Serve.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", s.cfg.Serve.Listen, err)
	}
	s.holder = s.cfg.Serve.ReplicaID
	if s.holder == "" {
		s.holder = defaultReplicaID(s.cfg.Serve.Listen, ln.Addr())
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer s.hardCancel()
	httpSrv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(ln) }()
	s.log.Info("serving", "listen", ln.Addr().String(), "jobs", len(s.jobs), "config", s.cfg.Path, "replica", s.holder)

	defer s.closeModels()
	if err := s.loadModels(ctx); err != nil {
		_ = httpSrv.Close()
		return err
	}
	s.ready.Store(true)
	s.sched.Start(s.hardCtx)
	for _, sj := range s.jobs {
		next, _ := s.sched.Next(sj.cfg.Name)
		s.log.Info("job scheduled", "job", sj.cfg.Name, "schedule", sj.cfg.Schedule, "time_zone", sj.cfg.TimeZone, "next", next)
	}

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		s.stopping.Store(true)
		_ = s.sched.Stop(context.Background())
		return fmt.Errorf("serve: http: %w", err)
	}
	s.stopping.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			s.log.Warn("aborting running jobs: in-flight batches abandoned, nothing half-written", "signal", sig.String())
			s.hardCancel()
		case <-s.hardCtx.Done():
		}
	}()
	s.log.Info("stopping: no new runs; running jobs commit their in-flight batches (signal again to abort)")
	// Each run drains within its job's grace, then cancels itself; wait a
	// little longer than the longest grace for that to be recorded.
	wait := time.Duration(0)
	for _, sj := range s.jobs {
		wait = max(wait, sj.cfg.Grace)
	}
	stopCtx, cancel := context.WithTimeout(s.hardCtx, wait+15*time.Second)
	stopErr := s.sched.Stop(stopCtx)
	cancel()
	// Hand the leases over now rather than at their expiry, so another
	// replica takes over at its next tick (a rolling deploy).
	relCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, sj := range s.jobs {
		if s.sched.Running(sj.cfg.Name) {
			continue // still draining past the wait: its lease expires
		}
		s.dropLease(relCtx, sj)
		sj.homeMu.Lock()
		sj.home.Close()
		sj.homeMu.Unlock()
	}
	cancel()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = httpSrv.Shutdown(shutCtx)
	cancel()
	if stopErr != nil {
		return fmt.Errorf("serve: stop: %w", stopErr)
	}
	s.log.Info("stopped")
	return nil
}

// defaultReplicaID is the lease holder identity of a replica started
// without --replica-id: the host name and the bound listen address. It is
// stable across restarts, so a restarted replica takes its previous
// incarnation's leases at once, and no two live processes share it: a
// second process on the host cannot bind the same address while the first
// one lives. A listen port of 0 (a new port at each start) is not stable:
// such a replica gets a new identity per process (and waits out its
// predecessor's leases).
func defaultReplicaID(listen string, bound net.Addr) string {
	if _, port, err := net.SplitHostPort(listen); err != nil || port == "0" {
		return lease.NewHolderID()
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return lease.NewHolderID()
	}
	return host + "/" + bound.String()
}

// loadModels starts one extractor per distinct model setting.
func (s *Server) loadModels(ctx context.Context) error {
	byKey := map[string]*extract.Extractor{}
	for _, sj := range s.jobs {
		key := fmt.Sprintf("%+v", wiring.ExtractorSettings(sj.cfg))
		if x, ok := byKey[key]; ok {
			sj.x = x
			continue
		}
		start := time.Now()
		x, err := wiring.OpenExtractor(ctx, sj.cfg)
		if err != nil {
			return fmt.Errorf("serve: job %s: load model %s: %w", sj.cfg.Name, sj.cfg.Model, err)
		}
		byKey[key], sj.x = x, x
		s.log.Info("model loaded", "job", sj.cfg.Name, "model", sj.cfg.Model, "id", x.Identity().ID(), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (s *Server) closeModels() {
	closed := map[*extract.Extractor]bool{}
	for _, sj := range s.jobs {
		if sj.x != nil && !closed[sj.x] {
			closed[sj.x] = true
			sj.x.Close()
		}
	}
}

// runJob is one scheduled, manual or start-up run of a job: every source
// of the job, in order, under the job's lease. ctx is the scheduler's: its
// cancellation (SIGTERM) is the soft stop.
func (s *Server) runJob(ctx context.Context, sj *servedJob, trig schedule.Trigger) error {
	name, st := sj.cfg.Name, sj.cfg
	log := s.log.With("job", name, "trigger", string(trig))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	hard := s.hardCtx
	began := time.Now() // the first run's duration counts the sink's waits at Open
	sk, err := wiring.NewSink(st.Sink, true, st.Index)
	if err != nil {
		return s.jobFailed(sj, trig, log, err)
	}
	if err := sk.Open(hard, sj.x.Identity()); err != nil {
		return s.jobFailed(sj, trig, log, err)
	}
	defer sk.Close()
	held, err := s.leadership(hard, sj, log)
	if errors.Is(err, lease.ErrHeld) {
		s.metrics.skipped.WithLabelValues(name, skipLeaseHeld).Inc()
		s.metrics.leaseEvents.WithLabelValues(name, "busy").Inc()
		log.Info("run skipped: the job runs elsewhere", "reason", err.Error())
		return nil
	}
	if err != nil {
		return s.jobFailed(sj, trig, log, err)
	}
	md, err := connector.ParseMaxDelete(st.MaxDelete)
	if err != nil {
		return s.jobFailed(sj, trig, log, err)
	}
	var l jobrun.Lease
	if held != nil {
		l = jobrun.Lease{Held: held, Fenced: sj.home.Fenced}
	}
	return jobrun.Run(ctx, hard, jobrun.Job{
		Sources: st.Sources, Open: wiring.SourceOpener(st),
		Template: connector.Options{
			Sink: sk, Embedder: sj.x, Kind: connector.KindSync, Job: name, Shard: sj.shard,
			RetryFailed: st.RetryFailed, MaxDelete: md, Grace: st.Grace, PrepareWorkers: st.Workers,
			Observer: s.metrics.observer(name), Logger: log, StartedAt: began,
		},
		Finished: func(run schema.Run, err error) {
			if run.ID == "" {
				s.jobFailed(sj, trig, log, err)
				return
			}
			s.metrics.runDone(name, string(trig), run)
			sj.finished(run, err)
			log.Info("run finished", "source", schema.Printable(run.Source), "outcome", run.Outcome, "listed", run.Listed, "written", run.Written,
				"extracted", run.Extracted, "reused", run.Reused, "unchanged", run.Unchanged, "failed", run.Failed,
				"skipped", run.Skipped, "shard", run.Shard, "deleted", run.Deleted, "took", run.EndedAt.Sub(run.StartedAt).Round(time.Millisecond), "err", err)
		},
	}, l)
}

// leadership returns the job's lease, taking it when this process does not
// hold it (first run, or it was lost); nil when the job runs unleased. An
// error wrapping lease.ErrHeld means another replica holds it.
func (s *Server) leadership(ctx context.Context, sj *servedJob, log *slog.Logger) (*lease.Held, error) {
	name := sj.cfg.Name
	home, err := s.leaseHome(ctx, sj, log)
	if err != nil || home == nil {
		return nil, err
	}
	if sj.held != nil && sj.held.Err() == nil {
		return sj.held, nil
	}
	s.dropLease(ctx, sj)
	held, err := home.Hold(ctx, sj.shard.LeaseName(name), s.holder, s.cfg.Serve.LeaseTTL, log)
	if err != nil {
		return nil, err
	}
	l := held.Lease()
	log.Info("job lease acquired", "holder", l.Holder, "epoch", l.Epoch)
	s.metrics.leaseEvents.WithLabelValues(name, "acquired").Inc()
	s.metrics.leaseHeld.WithLabelValues(name).Set(1)
	sj.held, sj.watch = held, make(chan struct{})
	go func(watch chan struct{}) {
		select {
		case <-held.Lost():
			log.Error("job lease lost", "err", held.Err())
			s.metrics.leaseEvents.WithLabelValues(name, "lost").Inc()
			s.metrics.leaseHeld.WithLabelValues(name).Set(0)
		case <-watch:
		}
	}(sj.watch)
	return held, nil
}

// leaseHome returns the job's lease home, opened at first use; nil when
// the job runs unleased.
func (s *Server) leaseHome(ctx context.Context, sj *servedJob, log *slog.Logger) (*wiring.LeaseHome, error) {
	sj.homeMu.Lock()
	defer sj.homeMu.Unlock()
	if sj.home == nil && !sj.unleased {
		h, err := wiring.OpenLeaseHome(ctx, sj.cfg.Sink, sj.cfg.LockDSN)
		if err != nil {
			return nil, err
		}
		if h == nil {
			sj.unleased = true
			wiring.WarnUnleased(log, sj.cfg.Name, sj.cfg.Sink)
		}
		sj.home = h
	}
	return sj.home, nil
}

// heldElsewhere returns the job's lease when another runner holds it (the
// zero Lease when this replica holds it, will take it, or the job runs
// unleased). The answer is a snapshot: another replica may still take a
// free lease before this one's run does.
func (s *Server) heldElsewhere(ctx context.Context, sj *servedJob) (lease.Lease, error) {
	home, err := s.leaseHome(ctx, sj, s.log.With("job", sj.cfg.Name))
	if err != nil || home == nil {
		return lease.Lease{}, err
	}
	l, err := home.Store.Current(ctx, sj.shard.LeaseName(sj.cfg.Name))
	if err != nil || l.Holder == s.holder {
		return lease.Lease{}, err
	}
	return l, nil
}

// dropLease releases the job's lease if this process has one.
func (s *Server) dropLease(ctx context.Context, sj *servedJob) {
	if sj.held == nil {
		return
	}
	close(sj.watch)
	if err := sj.held.Release(ctx); err != nil {
		s.log.Warn("release job lease", "job", sj.cfg.Name, "err", err)
	}
	s.metrics.leaseHeld.WithLabelValues(sj.cfg.Name).Set(0)
	sj.held, sj.watch = nil, nil
}

// jobFailed records a run that failed before it started (sink, lease).
func (s *Server) jobFailed(sj *servedJob, trig schedule.Trigger, log *slog.Logger, err error) error {
	log.Error("run failed", "err", err)
	sj.mu.Lock()
	sj.lastErr = err.Error()
	sj.mu.Unlock()
	s.metrics.runs.WithLabelValues(sj.cfg.Name, string(trig), string(schema.RunFailed)).Inc()
	return err
}

func (sj *servedJob) finished(run schema.Run, err error) {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	sj.last = &run
	sj.lastErr = ""
	if err != nil {
		sj.lastErr = err.Error()
	}
}

// probeTTL is how long a sink reachability check is reused by /readyz.
const probeTTL = 5 * time.Second

// reachable checks that the job's sink answers: a read-only open (a
// database that exists but is not migrated yet counts: the first run
// migrates it).
func (sj *servedJob) reachable(ctx context.Context) error {
	sj.mu.Lock()
	if time.Since(sj.probe.at) < probeTTL {
		err := sj.probe.err
		sj.mu.Unlock()
		return err
	}
	sj.mu.Unlock()
	err := probeSink(ctx, sj.cfg.Sink)
	sj.mu.Lock()
	sj.probe = probeResult{at: time.Now(), err: err}
	sj.mu.Unlock()
	return err
}

func probeSink(ctx context.Context, uri string) error {
	sk, err := wiring.NewSink(uri, false, "")
	if err != nil {
		return err
	}
	return sinks.Probe(ctx, sk)
}

// routes is the HTTP API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promHandler(s.metrics))
	mux.HandleFunc("GET /v1/jobs", s.listJobs)
	mux.HandleFunc("POST /v1/jobs/{name}/run", s.triggerJob)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	problems := map[string]string{}
	switch {
	case s.stopping.Load():
		problems["serve"] = "stopping"
	case !s.ready.Load():
		problems["models"] = "loading"
	}
	for _, sj := range s.jobs {
		if err := sj.reachable(r.Context()); err != nil {
			problems["job "+sj.cfg.Name] = "sink unreachable: " + err.Error()
		}
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

// jobView is GET /v1/jobs's view of a job.
type jobView struct {
	Name      string      `json:"name"`
	Schedule  string      `json:"schedule"`
	TimeZone  string      `json:"time_zone"`
	Next      *time.Time  `json:"next,omitempty"`
	Running   bool        `json:"running"`
	LastRun   *schema.Run `json:"last_run,omitempty"`
	LastError string      `json:"last_error,omitempty"`
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	views := make([]jobView, 0, len(s.jobs))
	for _, sj := range s.jobs {
		v := jobView{Name: sj.cfg.Name, Schedule: sj.cfg.Schedule, TimeZone: sj.cfg.TimeZone, Running: s.sched.Running(sj.cfg.Name)}
		if next, ok := s.sched.Next(sj.cfg.Name); ok {
			v.Next = &next
		}
		sj.mu.Lock()
		v.LastRun, v.LastError = sj.last, sj.lastErr
		sj.mu.Unlock()
		views = append(views, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": views})
}

func (s *Server) triggerJob(w http.ResponseWriter, r *http.Request) {
	if s.token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="imgvec"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "missing or wrong bearer token"})
		return
	}
	name := r.PathValue("name")
	// Answer what will happen: a run that would only find the lease held
	// elsewhere and skip is refused here with the holder and expiry.
	if i := slices.IndexFunc(s.jobs, func(sj *servedJob) bool { return sj.cfg.Name == name }); i >= 0 &&
		s.ready.Load() && !s.stopping.Load() && !s.sched.Running(name) {
		l, err := s.heldElsewhere(r.Context(), s.jobs[i])
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": fmt.Sprintf("job %s: read its lease: %v", name, err)})
			return
		}
		if l.Holder != "" {
			held := &lease.HeldError{Job: name, Holder: l.Holder, Expires: l.Expires}
			body := map[string]any{"error": held.Error(), "job": name, "holder": l.Holder}
			if !l.Expires.IsZero() {
				body["expires"] = l.Expires.UTC()
			}
			writeJSON(w, http.StatusConflict, body)
			return
		}
	}
	err := s.sched.Trigger(name)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, map[string]any{"status": "started", "job": name})
	case errors.Is(err, schedule.ErrUnknownJob):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": err.Error()})
	case errors.Is(err, schedule.ErrRunning):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error()})
	default: // stopping, or not started yet (models loading)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
	}
}
