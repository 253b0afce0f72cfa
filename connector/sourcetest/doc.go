// Package sourcetest is the conformance suite every connector.Source
// passes: the folder source, the S3 source, the file-list source of `imgvec embed`, the
// in-memory fake, and every new source. A source is done when
//
//	sourcetest.Run(t, sourcetest.Harness{New: ...})
//
// passes in its package's tests.
//
// # What the suite needs from a source's test
//
// A Harness whose New stores the suite's items (key, bytes, mtime) in a
// fresh, isolated location (its own t.TempDir(), bucket prefix, …) and
// returns a Fixture: a source over exactly those items, how the source
// keys each item, how to open a second instance over the same location,
// and how to break the location so that a listing can no longer be
// complete (an unreadable subfolder, a named file that vanished, an
// injected listing error). The suite closes the sources it gets.
//
// # What the suite checks (the connector.Source contract)
//
//   - A complete listing calls fn exactly once per item, with the item's
//     size (unless the entry is to be revalidated: Entry.Revalidate) and
//     (Harness.MTime) its mtime in UTC, and returns nil; an empty
//     location lists nothing and returns nil.
//   - A listing that cannot be complete returns an error (never nil, never
//     a context error) and lists only real items, each at most once.
//   - An error from fn stops the listing and is returned (errors.Is).
//   - A cancelled context stops List (fn is not called again) and Read,
//     both returning an error that wraps the context's error, even when
//     nothing remains to list.
//   - Read returns the bytes of each item, from many goroutines at once
//     (run the suite with -race); Read of a key the source does not hold
//     returns an error wrapping fs.ErrNotExist.
//   - Name does no I/O and is the same across calls and across instances
//     over the same location.
//   - Close may be called more than once and returns nil each time.
package sourcetest
