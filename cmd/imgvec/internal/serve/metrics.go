package serve

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// serveMetrics are the Prometheus series of `imgvec serve` (README,
// "Metrics"). Every series is labelled by job.
type serveMetrics struct {
	reg *prometheus.Registry

	items       *prometheus.CounterVec   // job, outcome
	failures    *prometheus.CounterVec   // job, class
	stage       *prometheus.HistogramVec // job, stage
	batchItems  *prometheus.HistogramVec // job, stage (infer, write)
	batches     *prometheus.CounterVec   // job, reason (size, linger, end)
	runs        *prometheus.CounterVec   // job, trigger, outcome
	runSeconds  *prometheus.HistogramVec // job, outcome
	lastSuccess *prometheus.GaugeVec     // job
	running     *prometheus.GaugeVec     // job
	skipped     *prometheus.CounterVec   // job, reason
	panics      *prometheus.CounterVec   // job
	leaseHeld   *prometheus.GaugeVec     // job
	leaseEvents *prometheus.CounterVec   // job, event
}

// Item outcomes, from a run's counters.
const (
	outcomeExtracted = "extracted" // ran through the model
	outcomeReused    = "reused"    // vector copied from a stored row with the same sha256
	outcomeMetadata  = "metadata"  // same bytes, fingerprint updated
	outcomeUnchanged = "unchanged" // skipped without reading
	outcomeFailed    = "failed"    // in the failure ledger
	outcomeSkipped   = "skipped"   // policy skips (opted_out): in the ledger, not failures
	outcomeDeleted   = "deleted"   // vanished from the source
)

// Reasons a run did not start.
const (
	skipOverlap   = "overlap"    // the job was still running
	skipLeaseHeld = "lease_held" // another runner holds the job's lease
)

func newServeMetrics() *serveMetrics {
	m := &serveMetrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	// Stage latencies span 0.1 ms (a small read) to minutes (a batch of a
	// big model on a slow CPU).
	latency := prometheus.ExponentialBuckets(0.0001, 4, 12)
	m.items = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_items_total",
		Help: "Items handled by runs, by outcome (extracted, reused, metadata, unchanged, failed, skipped, deleted)."}, []string{"job", "outcome"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_item_failures_total",
		Help: "Failure-ledger entries written, by failure class."}, []string{"job", "class"})
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imgvec_stage_duration_seconds",
		Help: "Latency of one unit of a pipeline stage: read and decode per item, infer per model batch, write per commit.", Buckets: latency}, []string{"job", "stage"})
	m.batchItems = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imgvec_batch_items",
		Help: "Items per model batch (stage=infer) and per commit (stage=write).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}, []string{"job", "stage"})
	m.batches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_batches_total",
		Help: "Batches handed to the model, by why they closed: size (full), linger (waited out), end (end of input or stop)."}, []string{"job", "reason"})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_runs_total",
		Help: "Finished runs, by trigger (schedule, manual, start) and outcome (ok, partial, failed, cancelled)."}, []string{"job", "trigger", "outcome"})
	m.runSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imgvec_run_duration_seconds",
		Help: "Duration of finished runs.", Buckets: prometheus.ExponentialBuckets(0.1, 3, 12)}, []string{"job", "outcome"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imgvec_last_success_timestamp_seconds",
		Help: "Unix time the job's last run with outcome ok or partial ended (0: none since start)."}, []string{"job"})
	m.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imgvec_job_running",
		Help: "1 while a run of the job is in progress in this process."}, []string{"job"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_runs_skipped_total",
		Help: "Ticks and triggers that started no run: overlap (still running here) or lease_held (running elsewhere)."}, []string{"job", "reason"})
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_job_panics_total",
		Help: "Runs that panicked (recovered; the scheduler keeps going)."}, []string{"job"})
	m.leaseHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imgvec_lease_held",
		Help: "1 while this process holds the job's lease."}, []string{"job"})
	m.leaseEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imgvec_lease_events_total",
		Help: "Lease events: acquired, busy (held elsewhere), lost (expired or taken over while running)."}, []string{"job", "event"})
	for _, c := range []prometheus.Collector{m.items, m.failures, m.stage, m.batchItems, m.batches, m.runs, m.runSeconds,
		m.lastSuccess, m.running, m.skipped, m.panics, m.leaseHeld, m.leaseEvents} {
		f(c)
	}
	return m
}

// addJob creates the job's series with zero values, so dashboards and
// alerts see them before the first run.
func (m *serveMetrics) addJob(job string) {
	for _, o := range []string{outcomeExtracted, outcomeReused, outcomeMetadata, outcomeUnchanged, outcomeFailed, outcomeSkipped, outcomeDeleted} {
		m.items.WithLabelValues(job, o)
	}
	for _, r := range []string{skipOverlap, skipLeaseHeld} {
		m.skipped.WithLabelValues(job, r)
	}
	m.lastSuccess.WithLabelValues(job)
	m.running.WithLabelValues(job)
	m.panics.WithLabelValues(job)
	m.leaseHeld.WithLabelValues(job)
}

// observer returns the connector.Observer feeding job's series (a
// connector.BatchObserver: batches are counted by why they closed).
func (m *serveMetrics) observer(job string) connector.Observer { return jobObserver{m, job} }

var _ connector.BatchObserver = jobObserver{}

type jobObserver struct {
	m   *serveMetrics
	job string
}

func (o jobObserver) StageDone(s connector.Stage, n int, d time.Duration) {
	o.m.stage.WithLabelValues(o.job, string(s)).Observe(d.Seconds())
	if s == connector.StageInfer {
		o.m.batchItems.WithLabelValues(o.job, string(s)).Observe(float64(n))
	}
}

func (o jobObserver) BatchClosed(reason connector.BatchReason, _ int) {
	o.m.batches.WithLabelValues(o.job, string(reason)).Inc()
}

func (o jobObserver) Committed(n int, failures []schema.FailureClass) {
	o.m.batchItems.WithLabelValues(o.job, string(connector.StageWrite)).Observe(float64(n))
	for _, c := range failures {
		o.m.failures.WithLabelValues(o.job, string(c)).Inc()
	}
}

// runDone records a finished run.
func (m *serveMetrics) runDone(job, trigger string, run schema.Run) {
	outcome := string(run.Outcome)
	m.runs.WithLabelValues(job, trigger, outcome).Inc()
	if !run.EndedAt.IsZero() && !run.StartedAt.IsZero() {
		m.runSeconds.WithLabelValues(job, outcome).Observe(run.EndedAt.Sub(run.StartedAt).Seconds())
	}
	add := func(o string, n int64) {
		if n > 0 {
			m.items.WithLabelValues(job, o).Add(float64(n))
		}
	}
	add(outcomeExtracted, run.Extracted)
	add(outcomeReused, run.Reused)
	add(outcomeMetadata, run.Written-run.Extracted-run.Reused)
	add(outcomeUnchanged, run.Unchanged)
	add(outcomeFailed, run.Failed)
	add(outcomeSkipped, run.Skipped)
	add(outcomeDeleted, run.Deleted)
	if run.Outcome == schema.RunOK || run.Outcome == schema.RunPartial {
		m.lastSuccess.WithLabelValues(job).Set(float64(run.EndedAt.Unix()))
	}
}

// promHandler serves the registry in the Prometheus text format.
func promHandler(m *serveMetrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil})
}
