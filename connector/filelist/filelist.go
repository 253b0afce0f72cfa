// Package filelist is a connector.Source over files named one by one, as
// on the command line of `imgvec embed FILE…`.
//
// Keys are the cleaned paths as given (relative paths stay relative to the
// working directory), listed in the order given; the name is "files:".
// Every named file must exist: a file that cannot be inspected stops the
// listing with an error naming it, so the listing is incomplete. Close
// does nothing.
package filelist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imgvec/imgvec/connector"
)

// Source lists and reads a fixed list of files.
type Source struct{ paths []string }

var _ connector.Source = (*Source)(nil)

// New returns a Source over paths. It does not touch the file system.
func New(paths []string) *Source {
	s := &Source{paths: make([]string, len(paths))}
	for i, p := range paths {
		s.paths[i] = filepath.Clean(p)
	}
	return s
}

// Name is "files:": the keys are paths, unique without a location.
func (s *Source) Name() string { return "files:" }

// Close does nothing.
func (s *Source) Close() error { return nil }

// List calls fn for each file, in the order given.
func (s *Source) List(ctx context.Context, fn func(connector.Entry) error) error {
	// Checked before the loop too: an empty list under a cancelled
	// context is not a complete listing.
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, p := range s.paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("list %s: %w", p, err)
		}
		if err := fn(connector.Entry{Key: p, Size: fi.Size(), MTime: fi.ModTime().UTC()}); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the content of the file at key (a path).
func (s *Source) Read(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}
