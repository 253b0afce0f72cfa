// Package lease gives a job one active runner across processes and
// machines: `imgvec serve` replicas, and `imgvec sync|backfill --job` run by
// hand or by a Kubernetes CronJob, share a job's lease.
//
// # Model
//
// A Lease is a claim on a job by a holder (a process), numbered by an epoch
// that grows by one at every acquisition and valid until Expires. A Store
// keeps the leases:
//
//   - Acquire takes the job's lease when it is free, expired, or already
//     the caller's (same holder), and returns it with a new epoch;
//     otherwise it returns an error wrapping ErrHeld (a *HeldError naming
//     the holder and expiry). "Already the caller's" is how a restarted
//     process with a stable holder identity (`imgvec serve --replica-id`)
//     takes its previous incarnation's lease at once instead of waiting
//     for it to expire: the new epoch fences that incarnation out, should
//     it still be alive. Two live processes must therefore never share a
//     holder identity.
//   - Renew extends a lease that is still valid and still the caller's
//     (same holder and epoch); otherwise it returns an error wrapping
//     ErrLost. Renew never revives an expired lease: an expired lease may
//     already belong to someone else.
//   - Check returns nil while the lease is valid, an error wrapping ErrLost
//     otherwise. Release ends the lease early (nil if it was already gone).
//   - Current reads, without changing anything, who holds the job's lease
//     and until when: the valid lease (Holder, Epoch, Expires), or the zero
//     Lease when the job is free or its lease expired. Expires is zero
//     when the lease lasts as long as its holder's process (FileStore).
//     The answer may be stale by the time the caller acts on it.
//
// Stores with a server clock (PostgreSQL: sinks/postgres) judge expiry by
// the server's clock only, so replicas' clocks need not agree.
//
// # Fencing
//
// A lease alone cannot stop a paused process (SIGSTOP, a long GC, a VM
// migration) from writing after its lease expired and another runner took
// over. Writes are therefore fenced: a sink that implements Fenceable
// checks the lease (holder, epoch, not expired) inside every commit's
// transaction and refuses to commit otherwise, with an error wrapping
// ErrLost. For sinks without that, Guard checks the lease before every
// commit, which narrows the window without closing it; the README says so.
//
// FileStore (a lock file with flock(2), for the embedded SQLite sink) needs
// no fencing: the kernel releases the lock only when its process is gone,
// so a paused holder keeps it and nobody else writes meanwhile.
//
// # Keeping a lease
//
// Hold acquires a lease and renews it every TTL/3 from a goroutine it owns
// until Release. When renewal fails with ErrLost, or keeps failing until
// the lease's expiry has passed on the local clock, Lost() is closed: the
// runner must stop (its commits would be refused anyway).
package lease
