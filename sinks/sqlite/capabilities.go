package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imgvec/imgvec/connector/lease"
)

// Leases keeps job leases in lock files beside the database
// (DB.JOB.lock, flock): a lease dies with its process.
func (s *Sink) Leases() lease.Store { return lease.NewFileStore(s.path) }

// Probe reports whether a run could start: the database's folder exists
// (the first run creates the file). It opens nothing.
func (s *Sink) Probe(context.Context) error {
	if _, err := os.Stat(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("sqlite sink: folder of %s: %w", s.path, err)
	}
	return nil
}
