// Package serve is `imgvec serve`: it runs the jobs of a config file on
// their cron schedules (connector/schedule), each run through
// connector/jobrun with the parts internal/wiring builds, and answers HTTP:
// /healthz, /readyz, /metrics (Prometheus) and GET /v1/jobs,
// POST /v1/jobs/{name}/run.
//
// # Contract
//
//   - New validates without I/O; Run blocks until its ctx ends (the first
//     SIGINT/SIGTERM) and the running jobs have committed their in-flight
//     batches within their grace; a second signal abandons them. Run
//     closes everything it opened (models, sinks, lease homes, the HTTP
//     listener) before it returns.
//   - One run per job at a time: a tick or trigger that arrives while the
//     job runs is skipped and counted. One runner per job across replicas:
//     a replica that takes a job's lease keeps it between runs, renews it,
//     and releases it on shutdown; the others skip their ticks, and their
//     trigger answers 409 with the holder and the lease's expiry.
//   - Jobs with the same model settings share one extractor, whose Infer
//     is safe for concurrent use (extract).
//   - Goroutines: the scheduler's (one per running job), the HTTP server's,
//     one lease watcher per held lease and the signal watcher of the stop.
//     They end before Run returns, except those of a job still draining
//     past its grace (its lease then expires rather than being released).
package serve
