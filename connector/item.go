package connector

import (
	"errors"

	"github.com/imgvec/imgvec/schema"
)

// itemKind is what the pipeline does with an item once it has been read.
type itemKind int

const (
	kindExtract   itemKind = iota // decode, preprocess, infer, upsert
	kindReuse                     // upsert with a stored vector of the same sha256
	kindMeta                      // metadata-only update of the stored row
	kindFailed                    // ledger entry
	kindUnchanged                 // revalidated by the source: nothing to write
	kindVanished                  // gone between listing and read: as if not listed
)

// item is one listed entry on its way through the pipeline. It is owned by
// one stage at a time: the channel send hands it over.
type item struct {
	entry  Entry
	id     string
	cat    Category
	stored StoredItem // what the sink held for id (when found)
	found  bool

	kind   itemKind
	size   int64  // bytes read
	sha    string // hex sha256 of the bytes read
	data   []byte // until prepared
	prep   *schema.Prepared
	width  int
	height int
	format string
	vec    []float32
	meta   map[string]string // from an ItemReader source
	gone   bool              // gone on this run and the last: delete after the run
	err    *schema.ItemError
}

func (it *item) fail(stage string, class schema.FailureClass, reason string, cause error) {
	it.kind = kindFailed
	it.err = &schema.ItemError{Item: it.entry.Key, Stage: stage, Class: class, Reason: reason, Err: cause}
	it.data = nil
	it.vec = nil
}

// refuseKey makes the item of a key that is not valid UTF-8 a ledger
// entry without reading it: no sink stores such a key. The id stays that of
// the raw key (the next run finds the entry by it); the entry's key is the
// escaped one.
func (it *item) refuseKey() {
	it.entry.Key = schema.EscapeKey(it.entry.Key)
	it.fail("list", schema.FailInvalidKey, `key is not valid UTF-8; recorded escaped (invalid bytes as \xHH, backslashes doubled), not read`, nil)
}

// failWith records err, which should be an *schema.ItemError; any other
// error is wrapped with the given stage and class.
func (it *item) failWith(err error, stage string, class schema.FailureClass) {
	var ie *schema.ItemError
	if errors.As(err, &ie) {
		cp := *ie
		cp.Item = it.entry.Key
		if cp.Stage == "" {
			cp.Stage = stage
		}
		if cp.Class == "" {
			cp.Class = class
		}
		it.kind, it.err, it.data, it.vec = kindFailed, &cp, nil, nil
		return
	}
	it.fail(stage, class, err.Error(), err)
}

// wbatch is one unit of writing: the items inferred together plus the items
// that need no inference (reused, metadata-only, failed) that arrived
// meanwhile.
type wbatch struct {
	infer []*item
	pass  []*item
}

func (b *wbatch) len() int { return len(b.infer) + len(b.pass) }
