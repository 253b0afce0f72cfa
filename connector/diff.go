package connector

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/imgvec/imgvec/connector/extsort"
	"github.com/imgvec/imgvec/schema"
)

// checkEvery is how many items a loop that does not block handles between
// checks of its context.
const checkEvery = 1024

// The diff's memory does not grow with the collection: it is the sum of
// the budgets below, the chunkers' buffers (bufferedAhead) and the Bloom
// filters, whatever the number of items.
//
// Memory of the spills (variables: tests make them tiny, so that
// everything goes through the disk): entries listed out of key order,
// stored items the listing passed without a match, ids of vanished items
// and sizes of the items a dry run would read, a StoredSorter's items.
var (
	lateRunBytes       = 32 << 20
	passedRunBytes     = 8 << 20
	idRunBytes         = 4 << 20
	storedSortRunBytes = 32 << 20
)

// differ diffs a source's listing against the sink's stored items of the
// source as a merge of two streams in key order, so that its memory is
// independent of the collection size (see "Incremental rules" in doc.go):
//
//   - the stored items stream in key order (the Sink.Stored contract);
//   - the listing streams as the source lists. While it comes in key order
//     (a KeyOrderedSource), each entry is matched against the stored
//     stream at once and the stored items it passes without a match are
//     queued (passed); an entry out of order, with a key that is not valid
//     UTF-8, or of a source that promises no order, is "late": it is
//     sorted on disk (extsort) and matched after the listing, against the
//     passed items and the rest of the stored stream;
//   - what neither match found has vanished: its id is counted and
//     spilled (vanished), for the delete decision.
//
// Every listed entry enters the diff in one place (diff's List callback)
// and every stored item in one (diff's Stored callback): a filter of
// either belongs there.
//
// A differ runs once. The sha256 filter (shas) is read by the readers and
// added to by the writer while the diff runs; the rest belongs to diff's
// goroutines until diff returns.
type differ struct {
	source      string
	modelID     string
	retryFailed bool
	shard       Shard  // the slice of the source this diff sees (the zero Shard: all)
	tempDir     string // where the spills go ("": os.TempDir())

	// shas holds the sha256s of the source's rows of the current model and
	// those committed during the run: a hit may be a copy or a move whose
	// vector can be reused (a false positive costs a VectorsBySHA256 query).
	shas *bloom
	// sizes holds the sizes of the same rows (Plan's ReuseCandidates);
	// nil in a Run.
	sizes *bloom
	// onStoredCount, when set, is told the number of stored items once the
	// stored stream ended.
	onStoredCount func(int64)

	storedCount   int64 // ids stored for the source (when diff returned)
	vanishedCount int64
	// vanished spills the ids of the vanished items; nil: count only.
	vanished *extsort.Sorter[string]
}

func newDiffer(source, modelID string, retryFailed bool, shard Shard, tempDir string) *differ {
	return &differ{
		source: source, modelID: modelID, retryFailed: retryFailed, shard: shard, tempDir: tempDir,
		shas: newBloom(shaFilterBytes, shaFilterProbes),
	}
}

// keepVanished makes diff spill the vanished ids (Run deletes them).
func (d *differ) keepVanished() { d.vanished = newIDSpill(d.tempDir) }

// newIDSpill returns a FIFO of ids that spills to dir.
func newIDSpill(dir string) *extsort.Sorter[string] {
	return extsort.New(extsort.Config[string]{
		Encode: extsort.AppendString, Decode: decodeString,
		Size: func(id string) int { return len(id) + 16 }, RunBytes: idRunBytes, Dir: dir,
	})
}

// close removes the vanished ids' spill.
func (d *differ) close() {
	if d.vanished != nil {
		d.vanished.Close() //nolint:errcheck // a temporary file that is already unlinked
	}
}

// emitFunc is told each listed entry with its category and what is
// stored for it (found: anything). An error stops the diff.
type emitFunc func(e Entry, c Category, st StoredItem, found bool) error

// itemID is the id of a listed entry.
func (d *differ) itemID(e Entry, st StoredItem, found bool) string {
	if found {
		return st.ID
	}
	return schema.ItemID(d.source, e.Key)
}

// diff lists src while it streams the sink's stored items of the source,
// and calls emit for every listed entry, from one goroutine, mostly in
// key order. listErr is the listing's own error (the listing is
// incomplete: everything listed was still emitted and the vanished ones
// counted); err is what stopped the diff (the sink, emit, ctx).
func (d *differ) diff(ctx context.Context, src Source, sink Sink, emit emitFunc) (listErr, err error) {
	ordered := false
	if o, ok := src.(KeyOrderedSource); ok {
		ordered = o.ListsInKeyOrder()
	}
	g, gctx := errgroup.WithContext(ctx)
	listed := newChunker[Entry](gctx)
	stored := newChunker[StoredItem](gctx)
	g.Go(func() error {
		defer listed.close()
		listErr = src.List(gctx, func(e Entry) error {
			// Every listed entry enters the diff here.
			if !d.shard.containsKey(d.source, e.Key) {
				return nil // another shard's item: not listed by this run
			}
			return listed.add(e)
		})
		return nil
	})
	g.Go(func() error {
		defer stored.close()
		var n int64
		shas, sizes := bloomBatch{b: d.shas}, bloomBatch{b: d.sizes}
		err := sink.Stored(gctx, d.source, func(st StoredItem) error {
			// Every stored item enters the diff here.
			if !st.Failed && st.ModelID == d.modelID {
				// Of every shard: a copy reuses a vector another shard stored.
				shas.addString(st.SHA256)
				if d.sizes != nil {
					sizes.addInt(st.Size)
				}
			}
			if !d.shard.Contains(st.ID) {
				return nil // another shard's: never classified, never deleted here
			}
			n++
			return stored.add(st)
		})
		if err != nil {
			return fmt.Errorf("read stored items of %s: %w", d.source, err)
		}
		shas.flush()
		d.shas.complete.Store(true)
		if d.sizes != nil {
			sizes.flush()
			d.sizes.complete.Store(true)
		}
		d.storedCount = n
		if d.onStoredCount != nil {
			d.onStoredCount(n)
		}
		return nil
	})
	g.Go(func() error {
		m := &merge{d: d, ctx: gctx, ordered: ordered, emit: emit, stored: &storedCursor{in: stored, source: d.source}}
		defer m.close()
		return m.run(listed)
	})
	err = g.Wait()
	return listErr, err
}

// merge is the diff's matching, in one goroutine.
type merge struct {
	d       *differ
	ctx     context.Context
	ordered bool
	emit    emitFunc
	stored  *storedCursor
	late    *extsort.Sorter[lateEntry]  // entries listed out of key order
	passed  *extsort.Sorter[StoredItem] // stored items passed by the ordered listing without a match
}

func (m *merge) close() {
	for _, s := range []interface{ Close() error }{m.late, m.passed} {
		if s != nil {
			s.Close() //nolint:errcheck // temporary files that are already unlinked
		}
	}
}

func (m *merge) classify(e Entry, st StoredItem, found bool) error {
	return m.emit(e, Classify(e, st, found, m.d.modelID, m.d.retryFailed), st, found)
}

// run matches the listing as it comes (phase 1), then the late entries
// against what the listing passed and the rest of the stored stream
// (phase 2).
func (m *merge) run(listed *chunker[Entry]) error {
	m.late = extsort.New(extsort.Config[lateEntry]{Compare: compareLate, Encode: encodeLate, Decode: decodeLate,
		Size:     func(l lateEntry) int { return len(l.e.Key) + len(l.e.ETag) + len(l.key) + len(l.id) + 128 },
		RunBytes: lateRunBytes, Dir: m.d.tempDir})
	m.passed = extsort.New(extsort.Config[StoredItem]{Encode: encodeStored, Decode: decodeStored,
		Size: storedSize, RunBytes: passedRunBytes, Dir: m.d.tempDir})
	var (
		last     string // the last key matched in order
		haveLast bool
	)
	for {
		chunk, ok, err := listed.next()
		if err != nil {
			return err
		}
		if !ok {
			return m.matchLate()
		}
		for _, e := range chunk {
			valid := utf8.ValidString(e.Key)
			if !m.ordered || !valid || (haveLast && e.Key <= last) {
				key := e.Key
				if !valid {
					key = schema.EscapeKey(e.Key)
				}
				if err := m.late.Add(lateEntry{e: e, key: key, id: schema.ItemID(m.d.source, e.Key)}); err != nil {
					return fmt.Errorf("keep entries of %s listed out of key order: %w", m.d.source, err)
				}
				continue
			}
			last, haveLast = e.Key, true
			st, found, err := m.matchInOrder(e.Key)
			if err != nil {
				return err
			}
			if err := m.classify(e, st, found); err != nil {
				return err
			}
		}
		listed.recycle(chunk)
	}
}

// matchInOrder advances the stored stream to key and returns the item
// stored under it. Items before key are passed (a late entry may still
// match them). A ledger entry of an invalid key is never matched here: its
// key is the escaped one, which a valid listed key may equal.
func (m *merge) matchInOrder(key string) (StoredItem, bool, error) {
	for {
		st, ok, err := m.stored.peek()
		if err != nil || !ok {
			return StoredItem{}, false, err
		}
		invalidKey := st.Failed && st.Class == schema.FailInvalidKey
		switch {
		case st.Key < key || (st.Key == key && invalidKey):
			if err := m.passed.Add(st); err != nil {
				return StoredItem{}, false, fmt.Errorf("keep stored items of %s the listing passed: %w", m.d.source, err)
			}
			m.stored.pop()
		case st.Key == key:
			m.stored.pop()
			return st, true, nil
		default:
			return StoredItem{}, false, nil
		}
	}
}

// matchLate merges the sorted late entries with the passed stored items
// followed by the rest of the stored stream (both in key order), by key
// and id. Stored items left unmatched have vanished.
func (m *merge) matchLate() error {
	nextStored := func() (StoredItem, bool, error) {
		if st, ok, err := m.passed.Next(); ok || err != nil {
			return st, ok, err
		}
		st, ok, err := m.stored.peek()
		if ok {
			m.stored.pop()
		}
		return st, ok, err
	}
	l, lok, err := m.late.Next()
	if err != nil {
		return err
	}
	st, sok, err := nextStored()
	if err != nil {
		return err
	}
	for n := 0; lok || sok; n++ {
		if n%checkEvery == 0 && m.ctx.Err() != nil {
			return m.ctx.Err()
		}
		c := 0
		switch {
		case !sok:
			c = -1
		case !lok:
			c = 1
		default:
			c = cmp.Or(strings.Compare(l.key, st.Key), strings.Compare(l.id, st.ID))
		}
		switch {
		case c > 0:
			if err := m.d.vanish(st.ID); err != nil {
				return err
			}
		case c == 0:
			if err := m.classify(l.e, st, true); err != nil {
				return err
			}
		default:
			if err := m.classify(l.e, StoredItem{}, false); err != nil {
				return err
			}
		}
		if c <= 0 {
			if l, lok, err = m.late.Next(); err != nil {
				return err
			}
		}
		if c >= 0 {
			if st, sok, err = nextStored(); err != nil {
				return err
			}
		}
	}
	return nil
}

// vanish records a stored id that no listed entry matched.
func (d *differ) vanish(id string) error {
	d.vanishedCount++
	if d.vanished == nil {
		return nil
	}
	if err := d.vanished.Add(id); err != nil {
		return fmt.Errorf("keep the ids of vanished items of %s: %w", d.source, err)
	}
	return nil
}

// storedCursor reads the stored stream one item at a time and checks the
// order the Sink contract promises: a sink that broke it would make items
// look vanished, and the run delete them.
type storedCursor struct {
	in              *chunker[StoredItem]
	source          string
	buf             []StoredItem
	i               int
	lastKey, lastID string
	started         bool
}

func (c *storedCursor) peek() (StoredItem, bool, error) {
	for c.i == len(c.buf) {
		if c.buf != nil {
			c.in.recycle(c.buf)
			c.buf, c.i = nil, 0
		}
		chunk, ok, err := c.in.next()
		if err != nil || !ok {
			return StoredItem{}, false, err
		}
		c.buf = chunk
	}
	st := c.buf[c.i]
	if c.started && cmp.Or(strings.Compare(c.lastKey, st.Key), strings.Compare(c.lastID, st.ID)) >= 0 {
		return StoredItem{}, false, fmt.Errorf("stored items of %s out of order: key %q (id %s) after key %q (id %s); the sink breaks the Stored contract (key order, then id)",
			c.source, st.Key, st.ID, c.lastKey, c.lastID)
	}
	return st, true, nil
}

func (c *storedCursor) pop() {
	st := c.buf[c.i]
	c.buf[c.i] = StoredItem{}
	c.i++
	c.lastKey, c.lastID, c.started = st.Key, st.ID, true
}

// chunker carries values from one goroutine to another without a channel
// operation per value and without delaying any: the sender appends to a
// buffer of up to bufferedAhead values, and the receiver takes the whole
// buffer at once whenever it is not empty, so that a slow (or blocked)
// sender's values are never held back. The two buffers alternate: the
// sender makes one only when none was given back, so that there are never
// more than two (one sent, one filling), and none is dropped — a receiver
// that takes small chunks fast gives both back between two of the
// sender's adds. Waits watch ctx.
type chunker[T any] struct {
	ctx   context.Context
	mu    sync.Mutex
	buf   []T   // the sender's side: values not taken yet
	spare [][]T // the buffers the receiver gave back (at most two)
	ended bool
	wake  chan struct{} // the receiver may find values (or the end)
	room  chan struct{} // the sender may find room
}

// bufferedAhead is how many values a chunker holds: listed entries that
// wait for the stored items they are diffed against, and stored items
// that wait for the listing (an Entry is ~100 bytes, a StoredItem ~300).
const bufferedAhead = 1 << 15

func newChunker[T any](ctx context.Context) *chunker[T] {
	return &chunker[T]{ctx: ctx, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// add queues v; the sender's side. It waits while the buffer is full.
func (c *chunker[T]) add(v T) error {
	c.mu.Lock()
	for len(c.buf) >= bufferedAhead {
		c.mu.Unlock()
		select {
		case <-c.room:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		c.mu.Lock()
	}
	if c.buf == nil && len(c.spare) > 0 {
		c.buf = c.spare[len(c.spare)-1]
		c.spare = c.spare[:len(c.spare)-1]
	}
	c.buf = append(c.buf, v)
	first := len(c.buf) == 1
	c.mu.Unlock()
	if first {
		signal(c.wake)
	}
	return nil
}

// close ends the stream; the sender's side, once.
func (c *chunker[T]) close() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	signal(c.wake)
}

// next returns every value queued, waiting for one; ok is false at the
// end. The receiver gives the chunk back with recycle when done with it.
func (c *chunker[T]) next() ([]T, bool, error) {
	for {
		c.mu.Lock()
		if len(c.buf) > 0 {
			chunk := c.buf
			c.buf = nil
			c.mu.Unlock()
			signal(c.room)
			return chunk, true, nil
		}
		ended := c.ended
		c.mu.Unlock()
		if ended {
			return nil, false, nil
		}
		select {
		case <-c.wake:
		case <-c.ctx.Done():
			return nil, false, c.ctx.Err()
		}
	}
}

// recycle gives a chunk the receiver is done with back to the sender.
func (c *chunker[T]) recycle(chunk []T) {
	clear(chunk)
	c.mu.Lock()
	c.spare = append(c.spare, chunk[:0])
	c.mu.Unlock()
}

// lateEntry is a listed entry matched after the listing: key is the key it
// is stored under (escaped when not valid UTF-8), id its item id.
type lateEntry struct {
	e       Entry
	key, id string
}

func compareLate(a, b lateEntry) int {
	return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.id, b.id))
}

func encodeLate(b []byte, l lateEntry) []byte {
	b = extsort.AppendString(b, l.e.Key)
	b = extsort.AppendInt(b, l.e.Size)
	b = extsort.AppendTime(b, l.e.MTime)
	b = extsort.AppendString(b, l.e.ETag)
	b = extsort.AppendInt(b, boolInt(l.e.Revalidate))
	b = extsort.AppendString(b, l.key)
	return extsort.AppendString(b, l.id)
}

func decodeLate(b []byte) (lateEntry, error) {
	d := extsort.NewDecoder(b)
	l := lateEntry{e: Entry{Key: d.String(), Size: d.Int(), MTime: d.Time(), ETag: d.String(), Revalidate: d.Int() != 0}}
	l.key, l.id = d.String(), d.String()
	return l, d.Err()
}

func encodeStored(b []byte, st StoredItem) []byte {
	b = extsort.AppendString(b, st.ID)
	b = extsort.AppendString(b, st.Key)
	b = extsort.AppendInt(b, st.Size)
	b = extsort.AppendTime(b, st.MTime)
	b = extsort.AppendString(b, st.ETag)
	b = extsort.AppendString(b, st.SHA256)
	b = extsort.AppendString(b, st.ModelID)
	b = extsort.AppendInt(b, boolInt(st.Failed))
	return extsort.AppendString(b, string(st.Class))
}

func decodeStored(b []byte) (StoredItem, error) {
	d := extsort.NewDecoder(b)
	st := readStored(d)
	return st, d.Err()
}

// readStored reads what encodeStored wrote.
func readStored(d *extsort.Decoder) StoredItem {
	st := StoredItem{ID: d.String(), Key: d.String()}
	st.Size, st.MTime, st.ETag, st.SHA256 = d.Int(), d.Time(), d.String(), d.String()
	st.ModelID, st.Failed, st.Class = d.String(), d.Int() != 0, schema.FailureClass(d.String())
	return st
}

func storedSize(st StoredItem) int {
	return len(st.ID) + len(st.Key) + len(st.ETag) + len(st.SHA256) + len(st.ModelID) + len(st.Class) + 160
}

func decodeString(b []byte) (string, error) {
	d := extsort.NewDecoder(b)
	s := d.String()
	return s, d.Err()
}

func decodeInt(b []byte) (int64, error) {
	d := extsort.NewDecoder(b)
	v := d.Int()
	return v, d.Err()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
