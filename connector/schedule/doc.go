// Package schedule runs named jobs on cron schedules for `imgvec serve`:
// one run per job at a time, panics recovered and reported, manual
// triggers, and a stop that cancels running jobs and waits for them.
//
// # Using it
//
//	s := schedule.New(schedule.Options{Logger: log, Hooks: hooks, RunOnStart: true})
//	err := s.Add(schedule.Job{Name: "photos", Spec: "*/15 * * * *", Location: ny, Run: sync})
//	s.Start(ctx)            // non-blocking; ctx is the parent of every run's context
//	err = s.Trigger("photos") // POST /v1/jobs/photos/run
//	err = s.Stop(graceCtx)  // SIGTERM: no new runs, cancel running ones, wait
//
// Jobs are added before Start. A Scheduler is started once and stopped
// once; Stop may be called again (for example with a longer deadline) and
// waits again for the runs still going. Trigger returns ErrNotStarted
// before Start and ErrStopped after Stop.
//
// # Contract
//
//   - One run per job at a time. A tick (TriggerSchedule) or a manual
//     trigger (TriggerManual) that arrives while the job is running is
//     dropped, never queued: Hooks.Skipped is called and a warning logged.
//     Trigger then returns ErrRunning.
//   - Each run gets its own context, derived from Start's ctx. Stop
//     cancels it; that is the job's signal to stop gracefully, and the job
//     decides how long to drain (imgvec's sync commits its in-flight batch
//     within its own grace period). Once Start's ctx is done, no new runs
//     start and Trigger returns ErrStopped, as after Stop.
//   - A panic in Run is recovered: it is logged with its stack and
//     reported to Hooks.Finished as a *PanicError. The scheduler keeps
//     running and the job's next tick runs it again.
//   - Stop (idempotent) stops the timer, refuses new runs, cancels the
//     running ones and waits for them (and their Finished hooks) until its
//     ctx is done; then it returns an error naming the jobs still running
//     that wraps ctx.Err(). Their goroutines end when their Run returns.
//   - With Options.RunOnStart every job runs once at Start (TriggerStart),
//     in addition to its schedule.
//   - Hooks are optional and called synchronously: Started and Finished
//     from the run's goroutine, Skipped from the goroutine that delivered
//     the dropped trigger (the timer's, or Trigger's caller). They must not
//     block long or panic. Finished is called before the job counts as
//     finished for Stop, but after Running reports false, so a Trigger
//     from inside Finished may already start the next run.
//
// # Schedules
//
// ParseSpec accepts the standard five fields (minute hour day-of-month
// month day-of-week), an optional leading seconds field (six fields), and
// the descriptors @yearly (@annually), @monthly, @weekly, @daily
// (@midnight), @hourly and @every DURATION (a whole number of seconds, at
// least 1s; the first tick comes about DURATION after Start, and ticks keep
// their pace whatever a run's length — a tick during a run is skipped). Day-of-week is 0–6 with 0 = Sunday, or SUN–SAT. A "TZ=" or
// "CRON_TZ=" prefix is refused: the time zone is the job's Location (UTC
// when nil). A spec that matches no time in the next five years (a day its
// month does not have, such as "0 0 30 2 *") is refused too, with an error
// wrapping ErrNeverFires: robfig/cron gives up after five years, so the job
// would never run. Parsing and timing are robfig/cron/v3's.
//
// # Daylight saving time
//
// Times are wall-clock times in the job's Location, computed by
// robfig/cron's Schedule.Next; the tests pin this behaviour for
// America/New_York (2026: spring forward 8 March 02:00 → 03:00, fall back
// 1 November 02:00 → 01:00):
//
//   - A time that does not exist on the spring-forward day is skipped for
//     that day, not moved: a daily 02:30 job runs 7 March 02:30 EST, then
//     9 March 02:30 EDT — no run on 8 March.
//   - On the fall-back day a time after the repeated hour runs once: a
//     daily 02:30 job runs 1 November 02:30 EST.
//   - A time inside the repeated hour runs twice: a daily 01:30 job runs 1
//     November at 01:30 EDT and again an hour later at 01:30 EST (an
//     hourly job likewise runs at 01:00 EDT and 01:00 EST).
//
// Jobs whose runs must neither be skipped nor doubled should avoid
// 01:00–03:00 local time in zones with daylight saving, or use UTC.
package schedule
