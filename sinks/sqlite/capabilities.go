package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imgvec/imgvec/connector/lease"
	"github.com/imgvec/imgvec/migrations"
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

// Absent reports, creating nothing, whether the database file does not
// exist yet (the first sync or `migrate up` creates it).
func (s *Sink) Absent() (name string, absent bool, err error) {
	_, err = os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s.path, true, nil
	}
	if err != nil {
		return s.path, false, fmt.Errorf("sqlite sink: %w", err)
	}
	return s.path, false, nil
}

// Migrations lists the migrations that create and upgrade the database.
func (s *Sink) Migrations() ([]migrations.Migration, error) { return migrations.SQLiteMigrations() }
