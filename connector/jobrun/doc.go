// Package jobrun runs one job: its sources in order, each an incremental
// sync (or backfill) through connector.Syncer, under the job's lease, with
// the two-phase stop. `imgvec sync|backfill` and `imgvec serve` both run
// jobs through it; the command line only builds the pieces (sink, sources,
// embedder, lease) and reports.
//
// # Contract
//
//   - Plan is the dry run: each source's connector.Plan, nothing written.
//   - Run blocks until the job's runs ended. It runs in the calling
//     goroutine and starts one watcher goroutine per source run, which
//     exits before that run's Finished hook is called.
//   - Two contexts stop a job. When soft ends (the first SIGINT/SIGTERM,
//     or a scheduler stopping), the current run stops listing and reading,
//     drains and commits its in-flight batches within Grace, and no later
//     source starts. When hard ends (a second signal), the in-flight batch
//     is abandoned whole at once. hard should outlive soft: a soft stop
//     does not cancel hard.
//   - The lease: with Lease.Held set, the job runs only while it is held.
//     Writes go through the sink fenced by it (Lease.Fenced: the sink
//     checks the lease inside each commit, lease.Fenceable) or guarded by
//     it (lease.Guard: checked just before each commit); losing it stops
//     the run (its commits are refused); and before the first source, the
//     runs of the job that a dead runner left "running" are closed as
//     abandoned (connector.RunAbandoner): none of the job's runs can be in
//     progress elsewhere while the lease is held. Run neither takes nor
//     releases the lease: its holder does (serve keeps it between runs).
//   - The caller opens Job.Sink (with Job.Template's model) and closes it
//     after Run; Run opens and closes each source through Job.Open.
//   - After the sources, a vector index the sink deferred during the load
//     (connector.IndexManager) is built, unless the job was stopped (a
//     log line then says how to build it).
//   - Errors: Run returns the runs' errors joined, in source order. An
//     incomplete listing or a refused deletion ends only its source's run
//     (the next source runs); any other error ends the job. Per-item
//     failures are not errors: they are counted in each schema.Run.
package jobrun
