package file

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
)

// Format is the output encoding.
type Format int

const (
	NPY   Format = iota // .npy matrix + .ids.txt
	JSONL               // one JSON object per line
)

// Sink writes vectors to a file. Create it with New; Close publishes it.
type Sink struct {
	path   string
	format Format
	stdout io.Writer

	model    schema.ModelIdentity
	dim      int
	rows     int64
	out      *os.File // temp file (nil for stdout)
	ids      *os.File // temp ids file (NPY only)
	w        *bufio.Writer
	idw      *bufio.Writer
	failures []schema.Failure
	closed   bool

	// The order rows go out in (Track): each listed item's ordinal, the
	// rows and failures that arrived before an earlier item was resolved,
	// and the next ordinal to write.
	mu      sync.Mutex // guards order and listed (the lister records while the writer writes)
	order   map[string]int
	listed  int
	pending map[int]pendingRow
	next    int
}

// pendingRow is one resolved item waiting for the items listed before it:
// its encoded row (npy bytes and ids line, or a JSON line), or none for a
// failure.
type pendingRow struct {
	row, idLine []byte
	failed      bool
}

// NPYHeaderLen is the fixed length of the header NPYHeader writes, large
// enough for any row count, so that the final shape can be rewritten in
// place once the rows are written (here at Close; `imgvec export` too).
const NPYHeaderLen = 128

// New returns a sink writing to path: a .npy or .jsonl/.json file, or "-"
// for JSON Lines on stdout. It does no I/O.
func New(path string, stdout io.Writer) (*Sink, error) {
	s := &Sink{path: path, stdout: stdout, order: map[string]int{}, pending: map[int]pendingRow{}}
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case path == "-":
		s.format = JSONL
	case ext == ".npy":
		s.format = NPY
	case ext == ".jsonl" || ext == ".json" || ext == ".ndjson":
		s.format = JSONL
	default:
		return nil, fmt.Errorf("output %q: want a .npy or .jsonl file, or - for stdout", path)
	}
	return s, nil
}

// Open creates the temporary output files.
func (s *Sink) Open(_ context.Context, model schema.ModelIdentity) error {
	s.model, s.dim = model, model.Dim
	if s.path == "-" {
		s.w = bufio.NewWriter(s.stdout)
		return nil
	}
	var err error
	if s.out, err = os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(s.path)+".*.tmp"); err != nil {
		return fmt.Errorf("create output %s: %w", s.path, err)
	}
	s.w = bufio.NewWriterSize(s.out, 1<<20)
	if s.format == NPY {
		if _, err := s.w.Write(NPYHeader(0, s.dim)); err != nil {
			return fmt.Errorf("write %s: %w", s.path, err)
		}
		if s.ids, err = os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(idsPath(s.path))+".*.tmp"); err != nil {
			return fmt.Errorf("create ids file for %s: %w", s.path, err)
		}
		s.idw = bufio.NewWriter(s.ids)
	}
	return nil
}

func idsPath(npy string) string { return strings.TrimSuffix(npy, filepath.Ext(npy)) + ".ids.txt" }

// NPYHeader is a version 1.0 .npy header for a float32 rows×dim matrix,
// padded to NPYHeaderLen bytes.
func NPYHeader(rows int64, dim int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, dim)
	h := make([]byte, 0, NPYHeaderLen)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(NPYHeaderLen-10))
	h = append(h, dict...)
	for len(h) < NPYHeaderLen-1 {
		h = append(h, ' ')
	}
	return append(h, '\n')
}

// Stored yields nothing: embed extracts every listed item.
func (s *Sink) Stored(context.Context, string, func(connector.StoredItem) error) error { return nil }

// VectorsBySHA256 finds nothing: the file is write-only.
func (s *Sink) VectorsBySHA256(context.Context, string, []string) (map[string][]float32, error) {
	return nil, nil
}

// Delete is never needed for a fresh file.
func (s *Sink) Delete(context.Context, string, []string) error {
	return errors.New("file sink: delete is not supported")
}

type jsonRow struct {
	ID     string    `json:"id"`
	Path   string    `json:"path"`
	Vector []float32 `json:"vector"`
}

// Track returns src with its listing recorded, so that rows are written
// in the order the tracked sources list their items (sources run one after
// the other): a row that is ready before an item listed earlier waits for
// it (its row or its failure). Only src's Source methods are kept (the
// sources of `imgvec embed`, folder and filelist, have no others).
func (s *Sink) Track(src connector.Source) connector.Source { return &tracked{Source: src, sink: s} }

type tracked struct {
	connector.Source
	sink *Sink
}

func (t *tracked) List(ctx context.Context, fn func(connector.Entry) error) error {
	name := t.Name()
	return t.Source.List(ctx, func(e connector.Entry) error {
		t.sink.mu.Lock()
		t.sink.order[schema.ItemID(name, e.Key)] = t.sink.listed
		t.sink.listed++
		t.sink.mu.Unlock()
		return fn(e)
	})
}

// ordinal is id's place in the listing; an untracked id goes after every
// item listed so far.
func (s *Sink) ordinal(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ord, ok := s.order[id]
	if !ok {
		ord = s.listed
		s.listed++
	}
	delete(s.order, id)
	return ord
}

// Write encodes the batch's vectors and writes them, in listing order, as
// far as every earlier listed item is resolved; it remembers the
// failures. The batch is checked first (connector.Batch.Normalize, as
// every sink does), so a bad vector fails the batch before anything of it
// is written.
func (s *Sink) Write(_ context.Context, b connector.Batch) error {
	b, err := b.Normalize(s.model, time.Now())
	if err != nil {
		return fmt.Errorf("write to %s: %w", s.path, err)
	}
	for _, r := range b.Upserts {
		var p pendingRow
		path := pathOf(r)
		switch s.format {
		case NPY:
			p.row = make([]byte, 4*len(r.Vector))
			for i, f := range r.Vector {
				binary.LittleEndian.PutUint32(p.row[4*i:], math.Float32bits(f))
			}
			p.idLine = []byte(path + "\n")
		case JSONL:
			line, err := json.Marshal(jsonRow{ID: r.ID, Path: path, Vector: r.Vector})
			if err != nil {
				return fmt.Errorf("encode %s: %w", r.Key, err)
			}
			p.row = append(line, '\n')
		}
		s.pending[s.ordinal(r.ID)] = p
	}
	for _, f := range b.Failures {
		s.pending[s.ordinal(f.ID)] = pendingRow{failed: true}
	}
	s.failures = append(s.failures, b.Failures...)
	for {
		p, ok := s.pending[s.next]
		if !ok {
			return nil
		}
		delete(s.pending, s.next)
		s.next++
		if err := s.emit(p); err != nil {
			return err
		}
	}
}

// emit writes one resolved item.
func (s *Sink) emit(p pendingRow) error {
	if p.failed {
		return nil
	}
	if _, err := s.w.Write(p.row); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if p.idLine != nil {
		if _, err := s.idw.Write(p.idLine); err != nil {
			return fmt.Errorf("write ids of %s: %w", s.path, err)
		}
	}
	s.rows++
	return nil
}

// flushPending writes the rows still waiting (behind items listed but
// never resolved, such as files that vanished), in listing order.
func (s *Sink) flushPending() error {
	ords := make([]int, 0, len(s.pending))
	for o := range s.pending {
		ords = append(ords, o)
	}
	slices.Sort(ords)
	for _, o := range ords {
		if err := s.emit(s.pending[o]); err != nil {
			return err
		}
		delete(s.pending, o)
	}
	return nil
}

// pathOf is the file a record came from: its key under a folder source's
// root, or the key itself.
func pathOf(r schema.Record) string {
	if root, ok := strings.CutPrefix(r.Source, "file://"); ok {
		return filepath.Join(root, r.Key)
	}
	return r.Key
}

// Failures returns the failures written so far.
func (s *Sink) Failures() []schema.Failure { return s.failures }

// Rows returns the number of vectors written so far (rows waiting for an
// item listed before them are not counted until Close writes them).
func (s *Sink) Rows() int64 { return s.rows }

// Close flushes, fixes the .npy shape and renames the files into place.
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w == nil {
		return nil
	}
	err := s.flushPending()
	if err == nil {
		err = s.w.Flush()
	}
	if s.out == nil {
		return err
	}
	if err == nil && s.format == NPY {
		_, err = s.out.WriteAt(NPYHeader(s.rows, s.dim), 0)
		if err == nil {
			err = s.idw.Flush()
		}
	}
	// CreateTemp makes owner-only files; outputs are ordinary files.
	err = errors.Join(err, s.out.Chmod(0o644), s.out.Close())
	if s.ids != nil {
		err = errors.Join(err, s.ids.Chmod(0o644), s.ids.Close())
	}
	if err == nil {
		err = os.Rename(s.out.Name(), s.path)
	}
	if err == nil && s.ids != nil {
		err = os.Rename(s.ids.Name(), idsPath(s.path))
	}
	if err != nil {
		os.Remove(s.out.Name())
		if s.ids != nil {
			os.Remove(s.ids.Name())
		}
		return fmt.Errorf("close output %s: %w", s.path, err)
	}
	return nil
}

// Abort removes the temporary files without publishing them.
func (s *Sink) Abort() {
	if s.closed || s.out == nil {
		return
	}
	s.closed = true
	s.out.Close()
	os.Remove(s.out.Name())
	if s.ids != nil {
		s.ids.Close()
		os.Remove(s.ids.Name())
	}
}
