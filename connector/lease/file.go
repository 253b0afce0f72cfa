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
	files map[string]lockedFile // job → the open, locked file
}

type lockedFile struct {
	f      *os.File
	holder string
}

// NewFileStore returns a store whose lock files are PREFIX.JOB.lock.
func NewFileStore(prefix string) *FileStore {
	return &FileStore{prefix: prefix, files: map[string]lockedFile{}}
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
	if lf, ok := s.files[job]; ok {
		return Lease{}, &HeldError{Job: job, Holder: lf.holder + " (this process)"}
	}
	path := s.Path(job)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return Lease{}, fmt.Errorf("lease of job %s: open lock file: %w", job, err)
	}
	// Current's probe holds the lock for moments: a busy lock is tried
	// again a few times before it counts as held.
	for try := 0; ; try++ {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || try == probeRetries {
			break
		}
		time.Sleep(probeRetryPause)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return Lease{}, &HeldError{Job: job, Holder: s.lockHolder(job)}
		}
		return Lease{}, fmt.Errorf("lease of job %s: lock %s: %w", job, path, err)
	}
	// Best effort: the holder's id is only for messages.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder+"\n"), 0)
	}
	s.files[job] = lockedFile{f: f, holder: holder}
	return Lease{Job: job, Holder: holder, Epoch: 1, Expires: farFuture}, nil
}

const (
	probeRetries    = 3
	probeRetryPause = 5 * time.Millisecond
)

// lockHolder names the process holding job's lock file, as it wrote itself
// there, with the file's path.
func (s *FileStore) lockHolder(job string) string {
	path := s.Path(job)
	owner, _ := os.ReadFile(path)
	who := strings.TrimSpace(string(owner))
	if who == "" {
		who = "another process"
	}
	return who + " (lock file " + path + ")"
}

// Current reports who holds job's lock: this store's holder, or another
// process's (found with a shared lock tried without waiting and dropped at
// once; Acquire tries again past such a probe). Expires is zero: a lock
// lasts as long as its process.
func (s *FileStore) Current(ctx context.Context, job string) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if lf, ok := s.files[job]; ok {
		return Lease{Job: job, Holder: lf.holder, Epoch: 1}, nil
	}
	path := s.Path(job)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Lease{}, nil // never locked
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease of job %s: open lock file: %w", job, err)
	}
	defer f.Close() // drops the probe's lock
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		return Lease{}, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return Lease{Job: job, Holder: s.lockHolder(job), Epoch: 1}, nil
	default:
		return Lease{}, fmt.Errorf("lease of job %s: probe lock %s: %w", job, path, err)
	}
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
	lf, ok := s.files[l.Job]
	if !ok {
		return nil
	}
	delete(s.files, l.Job)
	_ = lf.f.Truncate(0)
	return lf.f.Close() // closing the last descriptor drops the flock
}
