package connector

import (
	"context"
	"time"
)

// Entry is one item a Source lists: enough to decide, without reading the
// bytes, whether it changed since the sink last saw it.
type Entry struct {
	Key   string    // relative path or object key; unique within the source
	Size  int64     // bytes
	MTime time.Time // modification time, UTC
	ETag  string    // object stores only
}

// Source lists and reads the items of one image collection.
//
// Contract:
//   - Name returns the stable identity of the source (e.g. "file:///abs/dir"),
//     used with each key to derive item ids. It does no I/O.
//   - List calls fn once per item, in any order, and returns nil only if the
//     listing was complete. An error from fn stops the listing and is
//     returned. A listing that returns an error must never cause deletes.
//     List honours ctx cancellation and returns ctx.Err().
//   - Read returns the whole content of key. It is safe for concurrent use
//     by several goroutines and honours ctx. Errors wrap the cause and name
//     the key; a missing key wraps fs.ErrNotExist.
//   - Close releases resources; the caller that created the Source closes it.
type Source interface {
	Name() string
	List(ctx context.Context, fn func(Entry) error) error
	Read(ctx context.Context, key string) ([]byte, error)
	Close() error
}
