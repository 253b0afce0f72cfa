// Package config reads imgvec.yaml: the jobs `imgvec serve` schedules and
// the one-shot commands run with --config FILE --job NAME.
//
// # Contract
//
//   - Load(path) reads and parses a file; Parse(name, data) parses bytes
//     (name is used in messages only). Both expand ${VAR} and
//     ${VAR:-default} from the process environment; ParseEnv takes the
//     lookup function instead (tests, and checks of a deployment's
//     environment).
//   - A returned *File is complete: every optional key holds its default
//     (DefaultJob and DefaultServe; the flags of the one-shot commands use
//     the same values), every job's lock_dsn and grace fall back to the
//     top-level lock_dsn and serve.grace, and every value has been
//     validated (names, cron specs, time zones, durations, devices,
//     max_delete, index strategies, sink schemes). Every numeric key is
//     held to its declared Range (BatchRange, ThreadsRange, …), the one the
//     command-line flag of the same setting uses; a cron spec must fire
//     within five years.
//   - CheckJobName is the job-name rule, for the name key and --job.
//   - An invalid file gives a *ValidationError listing every problem found,
//     each as FILE:LINE: FIELD: message, in file order. Unknown keys are
//     problems too (a typo must not silently fall back to a default).
//   - Messages never contain an expanded value: a problem in a value that
//     references ${VAR} quotes the text as written in the file, so secrets
//     passed through the environment stay out of logs; sink and lock URIs
//     are quoted masked (connector/redact.Redact) even when written in clear.
//   - (*File).Job(name) returns one job by name; with an empty name it
//     returns the only job of a one-job file.
//   - Job.CronSchedule returns the job's schedule in its time zone, parsed
//     by connector/schedule.ParseSpec as validation did. schedule is
//     optional here: a job without one is for the one-shot commands
//     (`imgvec serve` refuses to run it).
//
// Relative paths (sources, sqlite:// sinks) are relative to the working
// directory of the process, as they are for the command-line flags, so a
// config and the equivalent flags behave the same.
package config
