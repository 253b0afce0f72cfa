// Package extsort sorts, or just queues, more records than should be held
// in memory: a Sorter keeps up to a budget of records in memory and spills
// the rest, in sorted runs, to one temporary file; reading merges the runs.
//
// Contract:
//   - A Sorter is used by one goroutine at a time: Add any number of
//     records, then Next until it reports the end; Add after the first
//     Next is an error. A Sorter is read once.
//   - With Config.Compare nil the Sorter is a FIFO: Next returns the
//     records in the order they were added (a spilled queue).
//   - Records are equal for Compare need not keep their order (the merge
//     is not stable); callers that need a tie-break compare on it.
//   - Memory: at most Config.RunBytes of records (as Config.Size counts
//     them) plus one read buffer per spilled run. Nothing is written to
//     disk until RunBytes is exceeded.
//   - Close removes the temporary file and may be called at any time, more
//     than once, also after an error; the owner calls it (defer). On Unix
//     the file is unlinked as soon as it is created, so that nothing is
//     left behind even when the process is killed.
//   - Errors name the operation and wrap the cause; a Decode error is
//     returned by Next. The package does no other I/O and never blocks on
//     anything but the file.
package extsort

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Config describes the records of a Sorter.
type Config[T any] struct {
	// Compare orders the records; nil keeps the order of Add (FIFO).
	Compare func(a, b T) int
	// Encode appends v's encoding to buf; Decode reverses it (and must
	// copy what it keeps: b is reused).
	Encode func(buf []byte, v T) []byte
	Decode func(b []byte) (T, error)
	// Size is the memory a record holds, roughly (bytes); RunBytes is the
	// budget of the records held in memory at once. Defaults: 64 per
	// record, 16 MiB.
	Size     func(v T) int
	RunBytes int
	// Dir is where the temporary file goes (default os.TempDir()).
	Dir string
}

const (
	defaultRunBytes = 16 << 20
	readBuffer      = 32 << 10
)

// Sorter is an external sort (or a spilled FIFO); see the package
// documentation.
type Sorter[T any] struct {
	cfg   Config[T]
	mem   []T
	bytes int
	n     int64

	file    *os.File
	unlink  bool // the file still has a name to remove at Close
	w       *bufio.Writer
	off     int64
	runs    []run
	buf     []byte
	reading bool
	next    func() (T, bool, error)
	closed  bool
}

// run is one sorted stretch of the file.
type run struct{ off, len int64 }

// New returns an empty Sorter.
func New[T any](cfg Config[T]) *Sorter[T] {
	if cfg.RunBytes <= 0 {
		cfg.RunBytes = defaultRunBytes
	}
	return &Sorter[T]{cfg: cfg}
}

// Len is the number of records added.
func (s *Sorter[T]) Len() int64 { return s.n }

// Add adds one record.
func (s *Sorter[T]) Add(v T) error {
	switch {
	case s.closed:
		return errors.New("extsort: add: sorter closed")
	case s.reading:
		return errors.New("extsort: add after reading began")
	}
	s.mem = append(s.mem, v)
	s.n++
	if s.cfg.Size != nil {
		s.bytes += s.cfg.Size(v)
	} else {
		s.bytes += 64
	}
	if s.bytes >= s.cfg.RunBytes {
		return s.spill()
	}
	return nil
}

// spill writes the records in memory as one run (sorted unless FIFO).
func (s *Sorter[T]) spill() error {
	if len(s.mem) == 0 {
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.cfg.Dir, "imgvec-extsort-*")
		if err != nil {
			return fmt.Errorf("extsort: create spill file: %w", err)
		}
		s.file, s.w = f, bufio.NewWriterSize(f, readBuffer)
		// Unlinked now where the system allows it: nothing is left behind
		// whatever happens; elsewhere Close removes it.
		s.unlink = os.Remove(f.Name()) != nil
	}
	if s.cfg.Compare != nil {
		slices.SortFunc(s.mem, s.cfg.Compare)
	}
	start := s.off
	for _, v := range s.mem {
		s.buf = s.cfg.Encode(s.buf[:0], v)
		var hdr [binary.MaxVarintLen64]byte
		h := binary.PutUvarint(hdr[:], uint64(len(s.buf)))
		if _, err := s.w.Write(hdr[:h]); err != nil {
			return fmt.Errorf("extsort: write spill file: %w", err)
		}
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("extsort: write spill file: %w", err)
		}
		s.off += int64(h + len(s.buf))
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("extsort: write spill file: %w", err)
	}
	s.runs = append(s.runs, run{off: start, len: s.off - start})
	clear(s.mem)
	s.mem, s.bytes = s.mem[:0], 0
	return nil
}

// Next returns the next record in order; ok is false at the end or on an
// error.
func (s *Sorter[T]) Next() (v T, ok bool, err error) {
	if s.closed {
		return v, false, errors.New("extsort: next: sorter closed")
	}
	if !s.reading {
		s.reading = true
		if err := s.start(); err != nil {
			return v, false, err
		}
	}
	return s.next()
}

// start chooses how to read: from memory when nothing was spilled, else
// one reader per run, concatenated (FIFO) or merged.
func (s *Sorter[T]) start() error {
	if s.file == nil {
		if s.cfg.Compare != nil {
			slices.SortFunc(s.mem, s.cfg.Compare)
		}
		mem, i := s.mem, 0
		s.mem = nil
		s.next = func() (T, bool, error) {
			var zero T
			if i == len(mem) {
				mem, i = nil, 0
				return zero, false, nil
			}
			v := mem[i]
			mem[i] = zero
			i++
			return v, true, nil
		}
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	s.mem = nil
	readers := make([]*runReader[T], len(s.runs))
	for i, r := range s.runs {
		readers[i] = &runReader[T]{r: bufio.NewReaderSize(io.NewSectionReader(s.file, r.off, r.len), readBuffer), decode: s.cfg.Decode}
	}
	if s.cfg.Compare == nil {
		s.next = func() (T, bool, error) {
			for len(readers) > 0 {
				v, ok, err := readers[0].read()
				if ok || err != nil {
					return v, ok, err
				}
				readers = readers[1:]
			}
			var zero T
			return zero, false, nil
		}
		return nil
	}
	h := &mergeHeap[T]{cmp: s.cfg.Compare}
	for _, r := range readers {
		v, ok, err := r.read()
		if err != nil {
			return err
		}
		if ok {
			h.items = append(h.items, headOf[T]{v: v, r: r})
		}
	}
	heap.Init(h)
	s.next = func() (T, bool, error) {
		var zero T
		if len(h.items) == 0 {
			return zero, false, nil
		}
		top := &h.items[0]
		v := top.v
		nv, ok, err := top.r.read()
		switch {
		case err != nil:
			return zero, false, err
		case ok:
			top.v = nv
			heap.Fix(h, 0)
		default:
			heap.Pop(h)
		}
		return v, true, nil
	}
	return nil
}

// Close removes the spill file and drops what is held. It returns the
// error of closing or removing the file.
func (s *Sorter[T]) Close() error {
	if s.closed {
		return nil
	}
	s.closed, s.mem, s.next = true, nil, nil
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	if s.unlink {
		if rerr := os.Remove(s.file.Name()); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("extsort: remove spill file: %w", err)
	}
	return nil
}

type runReader[T any] struct {
	r      *bufio.Reader
	decode func([]byte) (T, error)
	buf    []byte
}

func (rr *runReader[T]) read() (T, bool, error) {
	var zero T
	n, err := binary.ReadUvarint(rr.r)
	if errors.Is(err, io.EOF) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("extsort: read spill file: %w", err)
	}
	rr.buf = slices.Grow(rr.buf[:0], int(n))[:n]
	if _, err := io.ReadFull(rr.r, rr.buf); err != nil {
		return zero, false, fmt.Errorf("extsort: read spill file: %w", err)
	}
	v, err := rr.decode(rr.buf)
	if err != nil {
		return zero, false, fmt.Errorf("extsort: decode a spilled record: %w", err)
	}
	return v, true, nil
}

type headOf[T any] struct {
	v T
	r *runReader[T]
}

type mergeHeap[T any] struct {
	items []headOf[T]
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int           { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool { return h.cmp(h.items[i].v, h.items[j].v) < 0 }
func (h *mergeHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)         { h.items = append(h.items, x.(headOf[T])) }
func (h *mergeHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
