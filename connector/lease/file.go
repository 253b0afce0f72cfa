package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FileStore keeps leases as lock files held with flock(2): the embedded
// SQLite sink's leases. The lock file of job J is PREFIX.J.lock beside the
// database; it holds the holder's id for messages. A lock lives as long as
// its process: the kernel drops it when the holder exits or is killed, so
// leases never expire and need no fencing (Epoch is always 1). flock locks
// are per open file, so two runners in one process exclude each other too.
//
// flock is advisory and unreliable on network file systems (NFS, SMB): the
// SQLite sink, and so its lock files, belong on a local disk.
type FileStore struct {
	prefix string

	mu    sync.Mutex
	files map[string]*os.File // job → the open, locked file
}

// NewFileStore returns a store whose lock files are PREFIX.JOB.lock.
func NewFileStore(prefix string) *FileStore {
	return &FileStore{prefix: prefix, files: map[string]*os.File{}}
}

// Path is job's lock file.
func (s *FileStore) Path(job string) string { return s.prefix + "." + job + ".lock" }

// farFuture stands for "until the process ends".
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Acquire locks job's file without waiting.
func (s *FileStore) Acquire(ctx context.Context, job, holder string, _ time.Duration) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[job]; ok {
		return Lease{}, &HeldError{Job: job, Holder: "this process"}
	}
	path := s.Path(job)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return Lease{}, fmt.Errorf("lease of job %s: open lock file: %w", job, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(owner))
			if who == "" {
				who = "another process"
			}
			return Lease{}, &HeldError{Job: job, Holder: who + " (lock file " + path + ")"}
		}
		return Lease{}, fmt.Errorf("lease of job %s: lock %s: %w", job, path, err)
	}
	// Best effort: the holder's id is only for messages.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder+"\n"), 0)
	}
	s.files[job] = f
	return Lease{Job: job, Holder: holder, Epoch: 1, Expires: farFuture}, nil
}

// Renew confirms the lock is still held by this store.
func (s *FileStore) Renew(ctx context.Context, l Lease, _ time.Duration) (Lease, error) {
	return l, s.Check(ctx, l)
}

// Check confirms the lock is still held by this store.
func (s *FileStore) Check(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[l.Job]; !ok {
		return fmt.Errorf("job %s: %w: lock file %s was released", l.Job, ErrLost, s.Path(l.Job))
	}
	return nil
}

// Release unlocks and closes job's file. The file stays (removing it would
// race with a runner that opened it and is about to lock it).
func (s *FileStore) Release(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[l.Job]
	if !ok {
		return nil
	}
	delete(s.files, l.Job)
	_ = f.Truncate(0)
	return f.Close() // closing the last descriptor drops the flock
}
