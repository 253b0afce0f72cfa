// Package wiring builds the parts of a job from its settings (a
// config.Job, filled by the file and the flags): the sink through the
// registry, the extractor, the source opener and the job's lease home. The
// one-shot commands and `imgvec serve` build jobs through it, so that both
// run the same parts (connector/jobrun runs them).
//
// Errors: a setting that cannot be used (a bad URI, an unknown device) is a
// *UsageError, which the command line reports with exit code 2; the rest
// are run-time errors. Every function here is safe for concurrent use.
package wiring
