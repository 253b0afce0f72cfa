package connector

import (
	"context"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// Entry is one item a Source lists: enough to decide, without reading the
// bytes, whether it changed since the sink last saw it.
type Entry struct {
	Key   string    // relative path or object key; unique within the source
	Size  int64     // bytes
	MTime time.Time // modification time, UTC
	ETag  string    // object stores only
	// Revalidate: the listing cannot tell whether the item changed (a URL
	// list has no size or mtime; Size, MTime and ETag may be zero): a
	// stored row of the current model is
	// never skipped unread, and a ledger entry is always retried; the
	// source's ItemReader revalidates cheaply (a conditional request).
	Revalidate bool
}

// Source lists and reads the items of one image collection.
//
// Contract (connector/sourcetest checks it; every Source passes that suite):
//   - Name returns the stable identity of the source (e.g. "file:///abs/dir"),
//     used with each key to derive item ids: the same on every call and for
//     every instance over the same location. It does no I/O.
//   - List calls fn once per item, in any order, and returns nil only if the
//     listing was complete. Incompleteness is reported only by a non-nil
//     error (there is no other signal): a listing that cannot be complete
//     still calls fn for the items it could list, at most once each, then
//     returns an error naming what it could not list. An error from fn stops
//     the listing and is returned. A listing that returns an error must never
//     cause deletes. List honours ctx cancellation: once ctx is done it calls
//     fn no more and returns an error wrapping ctx.Err(), also when nothing
//     was left to list.
//   - Read returns the whole content of key. It is safe for concurrent use
//     by several goroutines and honours ctx (an error wrapping ctx.Err()).
//     Errors wrap the cause and name the key; a key the source does not
//     hold wraps fs.ErrNotExist.
//   - Close releases resources; the caller that created the Source closes it,
//     after its last List or Read returned. Close may be called more than
//     once: later calls do nothing and return nil.
type Source interface {
	Name() string
	List(ctx context.Context, fn func(Entry) error) error
	Read(ctx context.Context, key string) ([]byte, error)
	Close() error
}

// ItemReader is an optional interface of a Source whose reads know more
// than the bytes (object stores, URL lists). The pipeline calls ReadItem,
// not Read, on a Source that implements it.
//
//   - e is the entry as listed; stored is the fingerprint of the item's
//     row of the current model (nil when it has none: new, stale, in the
//     ledger). Given one, ReadItem may answer Content.NotModified
//     (validators such as an HTTP ETag kept in stored.ETag and
//     stored.MTime say the item did not change): the item then counts as
//     unchanged and nothing is written.
//   - ReadItem returns the item's bytes with the
//     entry they were read at: when the item was replaced between the
//     listing and the read (a read conditional on the listed ETag failed),
//     the new bytes come with their own size, mtime and ETag, and the
//     pipeline stores that fingerprint, never the listed one with the new
//     bytes. Content.Entry.Key is ignored (the listed key stays).
//   - Content.Metadata, when not nil, is stored with the item's row
//     (schema.Record.Metadata) when the item is extracted or its vector
//     reused; a metadata-only update (same bytes) keeps the stored
//     metadata.
//   - Errors, concurrency and cancellation as for Read.
type ItemReader interface {
	ReadItem(ctx context.Context, e Entry, stored *schema.Fingerprint) (Content, error)
}

// Content is what ItemReader.ReadItem returns.
type Content struct {
	Data     []byte
	Entry    Entry             // the item as read (size, mtime, ETag)
	Metadata map[string]string // stored with the row; nil: none
	// NotModified: the item is as stored (Data, Entry and Metadata are
	// unused).
	NotModified bool
}

// ConcurrentSource is an optional interface of a Source whose reads wait
// on a network more than on a disk: ReadConcurrency is how many reads
// the pipeline keeps in flight (Options.ReadWorkers, when not set).
type ConcurrentSource interface {
	ReadConcurrency() int
}

// KeyOrderedSource is an optional interface of a Source whose List calls
// fn in key order (bytewise, as Go compares strings): a folder walked in
// key order, an S3 listing. The diff then matches each entry against the
// sink's stored items as it is listed, and the pipeline starts reading at
// once. The order is a promise about speed, not correctness: entries out
// of order (a directory reached through a symbolic link, a server that
// lists differently) are sorted on disk and matched after the listing.
// A Source that is not one (a URL manifest, a file list) has its whole
// listing sorted on disk before anything is read.
type KeyOrderedSource interface {
	ListsInKeyOrder() bool
}
