package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Fingerprint is what imgvec knows about an item's bytes without (Size,
// MTime, ETag) and with (SHA256) reading them. Size+MTime(+ETag) is the cheap
// check; SHA256 is the authority.
type Fingerprint struct {
	Size   int64
	MTime  time.Time // modification time as the source reports it (UTC, may be truncated by the source)
	ETag   string    // object stores only; "" for folders
	SHA256 string    // hex; "" until the bytes have been read
}

// SameCheap reports whether size, mtime and ETag agree, i.e. the item may be
// skipped without reading it.
func (f Fingerprint) SameCheap(o Fingerprint) bool {
	return f.Size == o.Size && f.MTime.Equal(o.MTime) && f.ETag == o.ETag
}

// ItemID is the stable identity of the item at key in source: 32 hex digits
// of sha256(source NUL key). Upserts are keyed by it.
func ItemID(source, key string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Record is one stored vector and what it was computed from.
type Record struct {
	ID          string // ItemID(Source, Key)
	Source      string // source identity, e.g. "file:///data/photos"
	Key         string // path relative to the source root, or object key; always valid UTF-8
	Fingerprint        // of the bytes the vector was computed from
	Width       int    // decoded width after orientation
	Height      int    // decoded height after orientation
	Format      string // "jpeg", "png", ...
	ModelID     string // ModelIdentity.ID() of the model that produced Vector
	Layer       string
	Dim         int
	Vector      []float32
	ExtractedAt time.Time
	Metadata    map[string]string // free-form, user-visible (e.g. source-provided tags)
}

// Failure is one entry of the failure ledger: an item that could not be
// turned into a vector at the fingerprint it had when it was last tried.
type Failure struct {
	ID     string
	Source string
	Key    string // valid UTF-8: EscapeKey of the raw key for FailInvalidKey
	Fingerprint
	ModelID   string
	Stage     string
	Class     FailureClass
	Reason    string
	Attempts  int
	FirstSeen time.Time
	LastSeen  time.Time
}

// RunOutcome is how a run ended.
type RunOutcome string

const (
	RunRunning   RunOutcome = "running"
	RunOK        RunOutcome = "ok"        // every listed item is stored or unchanged
	RunPartial   RunOutcome = "partial"   // finished, some items failed (exit code 3); policy skips alone are ok
	RunFailed    RunOutcome = "failed"    // a fatal error stopped the run
	RunCancelled RunOutcome = "cancelled" // stopped by a signal or context
	// RunAbandoned marks a run left "running" by a runner that died
	// (SIGKILL, OOM, power loss) or lost its job lease: the next holder of
	// the job's lease closes it (connector.RunAbandoner).
	RunAbandoned RunOutcome = "abandoned"
)

// Run is the record of one backfill or sync pass. Counters satisfy
// Written + Unchanged + Failed + Skipped == Listed when the run finished.
type Run struct {
	ID     string
	Job    string // job name ("" for ad-hoc CLI runs)
	Kind   string // "backfill" or "sync"
	Source string
	// Shard is the slice of the source the run handled, "I/N"
	// (connector.Shard), or "" for the whole source.
	Shard     string
	ModelID   string
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	Outcome   RunOutcome
	Error     string

	Listed    int64 // items the source listed
	Written   int64 // items stored this run (extracted, reused by sha256, or metadata-only)
	Extracted int64 // of Written: ran through the model
	Reused    int64 // of Written: vector copied from a row with the same sha256
	Unchanged int64 // skipped without reading (same size+mtime, same model)
	Failed    int64 // in the failure ledger at the end of the run (policy skips excluded)
	Skipped   int64 // policy skips (FailureClass.PolicySkip): in the ledger, not failures
	Deleted   int64 // rows removed because their key vanished

	Runner Runner // the process that performs the run
}

// Runner identifies the process performing a run, so that a later run on
// the same host can prove it gone (connector.RunnerGone). Zero fields are
// unknown.
type Runner struct {
	Host   string // host name
	BootID string // the host's boot id (/proc/sys/kernel/random/boot_id)
	PIDNS  string // the process's pid namespace (/proc/self/ns/pid), in which PID is valid
	PID    int64
	Start  int64 // the process's start, in clock ticks after boot (/proc/PID/stat field 22)
}

// ErrNotFinite is wrapped by CheckVector's error for a vector with a NaN
// or infinite element.
var ErrNotFinite = errors.New("vector is not finite")

// CheckVector refuses a vector that is not dim long or not finite (the
// error then wraps ErrNotFinite). It is the one vector check: the
// extractor applies it to model output (class non_finite), the pipeline to
// stored vectors it reuses, and every sink (through connector's
// Batch.Normalize) and search query to what it is given.
func CheckVector(v []float32, dim int) error {
	if len(v) != dim {
		return fmt.Errorf("vector has %d dimensions, the model gives %d", len(v), dim)
	}
	for i, f := range v {
		// f-f is 0 for every finite f and NaN for NaN and ±Inf: one float32
		// operation per element, on every row of every write.
		if f-f != 0 {
			return fmt.Errorf("%w (element %d is %v)", ErrNotFinite, i, f)
		}
	}
	return nil
}
