package connector

import (
	"errors"
	"fmt"
)

// ErrTooLarge is wrapped by Source.Read errors for items above the source's
// size cap. The pipeline records such items in the ledger with class
// schema.FailTooLarge instead of schema.FailIO.
var ErrTooLarge = errors.New("item too large")

// ErrGone is wrapped by Source.Read errors for items their source says
// are gone for good (HTTP 404 and 410). The pipeline records the item in
// the ledger with class schema.FailGone; when it was already recorded so
// (gone on the previous run too), the item is also deleted like a
// vanished one: after a complete listing, within MaxDelete.
var ErrGone = errors.New("item gone")

// ErrStopped is returned by Syncer.Run after a soft stop (Syncer.Stop) let
// the in-flight batches drain and commit. The run's outcome is
// schema.RunCancelled; nothing was deleted.
var ErrStopped = errors.New("run stopped")

// ErrGraceExpired is returned by Syncer.Run when in-flight batches did not
// drain within Options.Grace after a soft stop, so the run was hard
// cancelled. The batch in flight was abandoned whole (Sink.Write is atomic).
var ErrGraceExpired = errors.New("run stopped: grace period expired, in-flight batch abandoned")

// ErrIncompleteListing wraps a Source.List error. Items listed before the
// error were processed; nothing was deleted.
var ErrIncompleteListing = errors.New("incomplete listing")

// DeleteGuardError is returned when the keys that vanished from a complete
// listing are more than the max-delete guard allows. Nothing was deleted.
type DeleteGuardError struct {
	Source   string
	Deleting int64     // ids that vanished from the listing
	Stored   int64     // ids the sink held for the source before the run
	Limit    MaxDelete // the guard in force
}

func (e *DeleteGuardError) Error() string {
	pct := 0.0
	if e.Stored > 0 {
		pct = 100 * float64(e.Deleting) / float64(e.Stored)
	}
	return fmt.Sprintf("delete vanished items of %s: refusing to delete %d of %d stored items (%.1f%%), above --max-delete=%s (at most %d); "+
		"if the deletions are intended, rerun with a larger --max-delete (e.g. --max-delete=%d)",
		e.Source, e.Deleting, e.Stored, pct, e.Limit, e.Limit.Allowed(e.Stored), e.Deleting)
}
