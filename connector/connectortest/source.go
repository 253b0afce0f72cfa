package connectortest

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/imgvec/imgvec/connector"
)

// File is one item of a fake Source.
type File struct {
	Data  []byte
	MTime time.Time
	ETag  string
}

// Source is an in-memory connector.Source that lists its keys in sorted
// order and counts reads.
type Source struct {
	// ListErr, if set, is returned by List after ListErrAfter entries
	// (all of them when ListErrAfter is 0 or larger than the listing).
	ListErr      error
	ListErrAfter int
	// ReadErr fails Read of these keys.
	ReadErr map[string]error
	// ReadDelay delays each Read (honouring ctx).
	ReadDelay time.Duration
	// OnList, if set, is called before each entry is passed to fn, with
	// its index; it may block (e.g. to stage a test).
	OnList func(i int, key string)

	name  string
	mu    sync.Mutex
	files map[string]File
	reads map[string]int
}

var _ connector.Source = (*Source)(nil)

// NewSource returns an empty source called name.
func NewSource(name string) *Source {
	return &Source{name: name, files: make(map[string]File), reads: make(map[string]int)}
}

// Put adds or replaces key.
func (s *Source) Put(key string, data []byte, mtime time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[key] = File{Data: slices.Clone(data), MTime: mtime.UTC()}
}

// Touch changes the mtime of key.
func (s *Source) Touch(key string, mtime time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[key]
	f.MTime = mtime.UTC()
	s.files[key] = f
}

// Remove deletes key.
func (s *Source) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, key)
}

// Keys returns the keys, sorted.
func (s *Source) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.files))
	for k := range s.files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// File returns key's content.
func (s *Source) File(key string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[key]
	return f, ok
}

// Reads returns how often key was read.
func (s *Source) Reads(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[key]
}

// TotalReads returns the number of Read calls.
func (s *Source) TotalReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.reads {
		n += c
	}
	return n
}

func (s *Source) Name() string { return s.name }

// ListsInKeyOrder is true: List lists the keys sorted.
func (s *Source) ListsInKeyOrder() bool { return true }

func (s *Source) List(ctx context.Context, fn func(connector.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, k := range s.Keys() {
		if s.ListErr != nil && s.ListErrAfter > 0 && i >= s.ListErrAfter {
			return s.ListErr
		}
		if s.OnList != nil {
			s.OnList(i, k)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, ok := s.File(k)
		if !ok {
			continue
		}
		if err := fn(connector.Entry{Key: k, Size: int64(len(f.Data)), MTime: f.MTime, ETag: f.ETag}); err != nil {
			return err
		}
	}
	return s.ListErr
}

func (s *Source) Read(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	s.reads[key]++
	s.mu.Unlock()
	if s.ReadDelay > 0 {
		t := time.NewTimer(s.ReadDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.ReadErr[key]; err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	f, ok := s.File(key)
	if !ok {
		return nil, fmt.Errorf("read %s: %w", key, fs.ErrNotExist)
	}
	return slices.Clone(f.Data), nil
}

func (s *Source) Close() error { return nil }
