// Package retry runs an idempotent operation again when it fails with an
// error that a later try may not have: the one retry loop of the sinks
// and the network sources, each of which classifies its own errors (restic's backend retry and
// Telegraf's retry-by-SQLSTATE are the models).
//
// # Contract
//
//   - Do calls op at most Policy.Attempts times, sequentially, from the
//     calling goroutine; it starts no goroutine.
//   - An error is retried only when the caller's Retryable says so and ctx
//     is not done: a cancelled or expired ctx is never retried, and the
//     wait between tries ends at once when ctx ends.
//   - Waits grow from Base by doubling up to Max, each with jitter (a
//     uniform draw from its upper half), so that writers failing together
//     do not retry together. An error that is a RetryAfter (a server's
//     Retry-After) waits at least what it asks, up to MaxRetryAfter.
//   - Do returns nil or op's last error, unwrapped and unchanged: the
//     caller names the operation and the item when it wraps it.
//   - Op must be idempotent: Do cannot know whether a failed try had an
//     effect (a lost COMMIT reply, an upsert whose answer was lost).
package retry
