package connector

import (
	"fmt"
	"strings"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// Kinds of run.
const (
	// KindSync processes new, changed and stale items and, after a complete
	// listing, deletes the items whose keys vanished (within MaxDelete).
	KindSync = "sync"
	// KindBackfill processes new, changed and stale items and never
	// deletes. An interrupted backfill resumes where it stopped: committed
	// items are unchanged on the next run.
	KindBackfill = "backfill"
)

// Category is what the diff decides for one listed item, from its listing
// entry and what the sink stores for its id, without reading its bytes.
type Category int

const (
	// New: the sink holds neither a row nor a ledger entry for the id.
	// The item is read, hashed and extracted (or its vector reused).
	New Category = iota
	// Changed: a row of the current model whose size, mtime or ETag
	// differ. The item is read and hashed: the same sha256 as stored is a
	// metadata-only update, another one is re-extracted (or reused).
	Changed
	// Unchanged: a row of the current model with the same size, mtime and
	// ETag. Skipped without reading.
	Unchanged
	// Stale: a row of another model id. Read, hashed and re-embedded.
	Stale
	// Retry: a ledger entry whose size, mtime or ETag changed, that was
	// recorded under another model id, or any ledger entry when
	// RetryFailed is set. Read and processed like a new item.
	Retry
	// FailedKnown: a ledger entry with the same size, mtime and ETag (and
	// the current or no model id). Skipped without reading and counted as
	// failed.
	FailedKnown
	// SkippedKnown: FailedKnown for a ledger entry of a policy-skip class
	// (schema.FailureClass.PolicySkip): counted as skipped, not failed.
	SkippedKnown
)

var categoryNames = [...]string{"new", "changed", "unchanged", "stale", "retry", "failed-known", "skipped-known"}

func (c Category) String() string {
	if int(c) >= 0 && int(c) < len(categoryNames) {
		return categoryNames[c]
	}
	return fmt.Sprintf("Category(%d)", int(c))
}

// Classify applies the incremental rules to one listed entry. st is what
// the sink stores for the entry's id and found whether it stores anything;
// modelID is the current model's id.
func Classify(e Entry, st StoredItem, found bool, modelID string, retryFailed bool) Category {
	if !found {
		return New
	}
	cheap := schema.Fingerprint{Size: e.Size, MTime: e.MTime, ETag: e.ETag}
	if e.Revalidate {
		switch {
		case st.Failed:
			return Retry
		case st.ModelID != modelID:
			return Stale
		}
		return Changed
	}
	if st.Failed {
		sameModel := st.ModelID == "" || st.ModelID == modelID
		if !retryFailed && sameModel && st.Fingerprint.SameCheap(cheap) {
			if st.Class.PolicySkip() {
				return SkippedKnown
			}
			return FailedKnown
		}
		return Retry
	}
	if st.ModelID != modelID {
		return Stale
	}
	if st.Fingerprint.SameCheap(cheap) {
		return Unchanged
	}
	return Changed
}

// needsRead reports whether items of category c go through the pipeline.
func (c Category) needsRead() bool { return c != Unchanged && c != FailedKnown && c != SkippedKnown }

// Plan is what a run would do, computed from one read of the sink and one
// listing, without reading any item and without writing anything
// (Syncer.Plan, for --dry-run).
type Plan struct {
	Source  string
	ModelID string
	Kind    string
	Stored  int64 // ids the sink holds for the source (rows and ledger entries, any model)

	Listed      int64
	New         int64 // never seen: extract (or reuse)
	Changed     int64 // size/mtime/ETag changed: read; metadata-only if sha256 is unchanged
	Unchanged   int64 // skipped without reading
	Stale       int64 // stored under another model id: re-embed
	Retry       int64 // ledger entries to try again
	FailedKnown int64 // ledger entries skipped (same fingerprint)
	// SkippedKnown counts ledger entries of policy skips (opted_out) with
	// the same fingerprint: skipped again, not failures.
	SkippedKnown int64
	InvalidKeys  int64 // keys that are not valid UTF-8: to the ledger (invalid_key), unread
	// ReuseCandidates counts items to read whose size equals that of a
	// stored row of the current model: copies and moved files are among
	// them. Those whose sha256 matches a stored row reuse its vector
	// without inference. The sizes are kept in a fixed-size Bloom filter,
	// so that the count may include a few items too many (about 5% of
	// the items to read at 10 million stored rows, none that matter
	// below a million).
	ReuseCandidates int64

	ToDelete   int64  // ids whose keys vanished (0 when nothing would be deleted)
	Vanished   int64  // ids whose keys vanished, whether or not they would be deleted
	DeleteNote string // why nothing would be deleted, when Vanished > 0 and ToDelete == 0
	DeleteErr  error  // *DeleteGuardError when Vanished exceeds MaxDelete
	ListErr    error  // non-nil when the listing was incomplete
}

// ToRead is the number of items the run would read and hash.
func (p Plan) ToRead() int64 { return p.New + p.Changed + p.Stale + p.Retry }

// Estimate is the time to process ToRead items at rate images per second
// (an upper bound: metadata-only updates and reused vectors skip the
// model). It returns 0 when rate is not positive.
func (p Plan) Estimate(rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(p.ToRead()) / rate * float64(time.Second)).Round(time.Second)
}

// String is a one-paragraph human summary.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s (model %s): %d listed, %d stored; %d new, %d changed, %d unchanged, %d stale, %d to retry, %d known failures; %d reuse candidates; ",
		p.Kind, p.Source, p.ModelID, p.Listed, p.Stored, p.New, p.Changed, p.Unchanged, p.Stale, p.Retry, p.FailedKnown, p.ReuseCandidates)
	if p.SkippedKnown > 0 {
		fmt.Fprintf(&b, "%d known policy skips; ", p.SkippedKnown)
	}
	if p.InvalidKeys > 0 {
		fmt.Fprintf(&b, "%d keys not valid UTF-8 (to the ledger as invalid_key); ", p.InvalidKeys)
	}
	switch {
	case p.DeleteErr != nil:
		fmt.Fprintf(&b, "%d vanished: %v", p.Vanished, p.DeleteErr)
	case p.DeleteNote != "":
		fmt.Fprintf(&b, "%d vanished, none deleted: %s", p.Vanished, p.DeleteNote)
	default:
		fmt.Fprintf(&b, "%d to delete", p.ToDelete)
	}
	if p.ListErr != nil {
		fmt.Fprintf(&b, "; listing incomplete: %v", p.ListErr)
	}
	return b.String()
}

// deleteDecision applies the delete rules after a listing to the number of
// vanished ids: whether to delete them, or a note saying why none are
// deleted, or a guard error.
func deleteDecision(kind string, listErr error, stopped bool, listed, vanished int64, limit MaxDelete, source string, stored int64) (del bool, note string, err error) {
	switch {
	case vanished == 0:
		return false, "", nil
	case kind == KindBackfill:
		return false, "a backfill never deletes", nil
	case listErr != nil:
		return false, "the listing was incomplete", nil
	case stopped:
		return false, "the run was stopped", nil
	case listed == 0:
		return false, "the listing was empty (an empty listing never deletes)", nil
	}
	if err := limit.Check(source, vanished, stored); err != nil {
		return false, "", err
	}
	return true, "", nil
}
