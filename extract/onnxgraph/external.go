package onnxgraph

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxInline is the largest model protobuf can hold (2 GiB - 1); a model whose
// weights are larger keeps them in an external data file.
const MaxInline = 1<<31 - 1

// inlineLimit is MaxInline; tests lower it to exercise the data file.
var inlineLimit int64 = MaxInline

// ErrExternalData is wrapped by errors about a tensor's external data
// reference (a bad location, a missing or short data file).
var ErrExternalData = errors.New("bad external data")

// External is where a tensor's data lives when it is outside the model file
// (TensorProto.data_location EXTERNAL): Length bytes at Offset of Location,
// a path relative to the model file's directory.
type External struct {
	Location    string
	Offset      int64
	Length      int64 // -1 when the model does not say: the tensor's size
	hasLocation bool
}

// External returns where t's data lives, and false when it is in the model.
func (t *Tensor) External() (External, bool) {
	if !t.external {
		return External{}, false
	}
	e := External{Length: -1}
	for _, f := range t.fields {
		if f.num != 13 || f.typ != protowire.BytesType {
			continue
		}
		kv, err := parseFields(f.b, "external data entry", 0)
		if err != nil {
			continue
		}
		var k, v string
		for _, x := range kv {
			switch {
			case x.num == 1 && x.typ == protowire.BytesType:
				k = string(x.b)
			case x.num == 2 && x.typ == protowire.BytesType:
				v = string(x.b)
			}
		}
		switch k {
		case "location":
			e.Location, e.hasLocation = v, true
		case "offset":
			e.Offset, _ = strconv.ParseInt(v, 10, 64)
		case "length":
			e.Length, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return e, true
}

// dataBytes is the size in bytes of t's data when its element type has a
// fixed width, else -1.
func (t *Tensor) dataBytes() int64 {
	w := map[int32]int64{Float: 4, Uint8: 1, Int8: 1, 4: 2, 5: 2, Int32: 4, Int64: 8, Bool: 1, Float16: 2, Double: 8, 12: 4, 13: 8, BFloat16: 2}[t.DataType]
	n := t.NumElements()
	if w == 0 || n < 0 {
		return -1
	}
	return w * n
}

// ExternalFiles lists the data files the model's initializers refer to,
// each once, in first-use order, checked to stay inside the model's
// directory.
func (m *Model) ExternalFiles() ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, t := range m.Graph.Initializers {
		e, ok := t.External()
		if !ok {
			continue
		}
		loc, err := e.path(t.Name)
		if err != nil {
			return nil, err
		}
		if !seen[loc] {
			seen[loc] = true
			files = append(files, loc)
		}
	}
	return files, nil
}

// path checks the location is a plain relative path inside the model's
// directory (as ONNX Runtime requires) and returns it cleaned.
func (e External) path(tensor string) (string, error) {
	if !e.hasLocation || e.Location == "" {
		return "", fmt.Errorf("onnxgraph: tensor %q: external data without a location: %w", tensor, ErrExternalData)
	}
	loc := filepath.Clean(filepath.FromSlash(e.Location))
	if filepath.IsAbs(loc) || loc == ".." || strings.HasPrefix(loc, ".."+string(filepath.Separator)) || filepath.VolumeName(loc) != "" {
		return "", fmt.Errorf("onnxgraph: tensor %q: external data location %q leaves the model's directory: %w", tensor, e.Location, ErrExternalData)
	}
	if e.Offset < 0 {
		return "", fmt.Errorf("onnxgraph: tensor %q: external data offset %d: %w", tensor, e.Offset, ErrExternalData)
	}
	return loc, nil
}

// ExternalBytes is the number of bytes of initializer data kept in external
// files.
func (m *Model) ExternalBytes() int64 {
	var n int64
	for _, t := range m.Graph.Initializers {
		if e, ok := t.External(); ok {
			n += e.length(t)
		}
	}
	return n
}

func (e External) length(t *Tensor) int64 {
	if e.Length >= 0 {
		return e.Length
	}
	return t.dataBytes()
}

// source returns a generator that streams t's external data from dir, after
// checking the file holds it.
func (t *Tensor) source(dir string) (int, func(io.Writer) error, error) {
	e, _ := t.External()
	loc, err := e.path(t.Name)
	if err != nil {
		return 0, nil, err
	}
	n := e.length(t)
	if n < 0 || n > MaxInline {
		return 0, nil, fmt.Errorf("onnxgraph: tensor %q: external data of unknown or huge size %d: %w", t.Name, n, ErrExternalData)
	}
	path := filepath.Join(dir, loc)
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil, fmt.Errorf("onnxgraph: tensor %q: external data: %w", t.Name, err)
	}
	if fi.Size() < e.Offset+n {
		return 0, nil, fmt.Errorf("onnxgraph: tensor %q: external data file %s has %d bytes, needs %d: %w", t.Name, path, fi.Size(), e.Offset+n, ErrExternalData)
	}
	gen := func(w io.Writer) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("onnxgraph: tensor %q: external data: %w", t.Name, err)
		}
		defer f.Close()
		if _, err := io.Copy(w, io.NewSectionReader(f, e.Offset, n)); err != nil {
			return fmt.Errorf("onnxgraph: tensor %q: read external data %s: %w", t.Name, path, err)
		}
		return nil
	}
	return int(n), gen, nil
}

// header encodes t's dims, type and name: the fields a rewritten tensor keeps.
func (t *Tensor) header() []byte {
	var h []byte
	h = putPackedInt64s(h, 1, t.Dims)
	h = putVarint(h, 2, uint64(t.DataType))
	return putString(h, 8, t.Name)
}

// WriteInline writes the model with every external tensor's data read from
// the files under dir (the original model's directory) and stored in the
// model itself, so the result loads from anywhere. The data is streamed,
// never held in memory. It fails when the result would be over MaxInline.
func (m *Model) WriteInline(w io.Writer, dir string) (int64, error) {
	var err error
	c := m.encodeWith(func(t *Tensor) *chunks {
		if _, ok := t.External(); !ok {
			return nil
		}
		n, gen, e := t.source(dir)
		if e != nil {
			err = errors.Join(err, e)
			return nil
		}
		c := &chunks{}
		h := t.header()
		h = protowire.AppendTag(h, 9, protowire.BytesType)
		c.add(protowire.AppendVarint(h, uint64(n)))
		c.addGen(n, gen)
		return c
	})
	if err != nil {
		return 0, err
	}
	if c.n > MaxInline {
		return 0, fmt.Errorf("onnxgraph: model with inlined weights would have %d bytes, over protobuf's 2 GiB", c.n)
	}
	return c.writeTo(w)
}

// ExternalOptions says how WriteExternal lays out the data file.
type ExternalOptions struct {
	// Dir is the directory the model's current external data files are
	// relative to (the original model's directory).
	Dir string
	// Location is the data file's name, relative to where the written
	// model will be (usually its base name + ".data").
	Location string
	// MinBytes moves inline raw_data and generated tensors of at least this
	// many bytes to the data file too; 0 moves only tensors already external.
	MinBytes int
}

// WriteExternal writes the model to w and its external tensors' data (and
// tensors over o.MinBytes) to data, one after the other, each at an offset
// aligned to 4096 bytes; the written model refers to them as o.Location.
// Data is streamed from its source, never held in memory.
func (m *Model) WriteExternal(w, data io.Writer, o ExternalOptions) error {
	if o.Location == "" || filepath.IsAbs(o.Location) {
		return fmt.Errorf("onnxgraph: external data location %q: want a relative file name", o.Location)
	}
	const align = 4096
	var (
		err  error
		off  int64
		gens []part
	)
	c := m.encodeWith(func(t *Tensor) *chunks {
		var (
			n   int
			gen func(io.Writer) error
		)
		switch _, ext := t.External(); {
		case ext:
			var e error
			if n, gen, e = t.source(o.Dir); e != nil {
				err = errors.Join(err, e)
				return nil
			}
		case o.MinBytes > 0 && t.gen != nil && t.genN >= o.MinBytes:
			n, gen = t.genN, t.gen
		case o.MinBytes > 0 && t.gen == nil:
			raw := t.rawData()
			if raw == nil || len(raw) < o.MinBytes {
				return nil
			}
			n, gen = len(raw), func(w io.Writer) error { _, err := w.Write(raw); return err }
		default:
			return nil
		}
		if pad := (align - off%align) % align; pad > 0 {
			gens = append(gens, part{b: make([]byte, pad), n: int(pad)})
			off += pad
		}
		gens = append(gens, part{gen: gen, n: n})
		h := t.header()
		for _, kv := range [][2]string{{"location", filepath.ToSlash(o.Location)}, {"offset", strconv.FormatInt(off, 10)}, {"length", strconv.Itoa(n)}} {
			var e []byte
			e = putString(e, 1, kv[0])
			e = putString(e, 2, kv[1])
			h = putBytes(h, 13, e)
		}
		h = putVarint(h, 14, 1) // data_location = EXTERNAL
		off += int64(n)
		c := &chunks{}
		c.add(h)
		return c
	})
	if err != nil {
		return err
	}
	if _, err := (&chunks{parts: gens}).writeTo(data); err != nil {
		return fmt.Errorf("onnxgraph: write external data: %w", err)
	}
	if _, err := c.writeTo(w); err != nil {
		return fmt.Errorf("onnxgraph: write model: %w", err)
	}
	return nil
}

// rawData returns the raw_data payload of a tensor read from a file, or nil.
func (t *Tensor) rawData() []byte {
	for _, f := range t.fields {
		if f.num == 9 && f.typ == protowire.BytesType {
			return f.b
		}
	}
	return nil
}

// Save writes the model to path so that it loads from anywhere: external
// weights (read from srcDir, the original model's directory) are inlined
// when the result stays under MaxInline, else written to a data file beside
// path, named after it + ".data", which Save returns. Both files are written
// to temporary names and renamed into place when complete.
func (m *Model) Save(path, srcDir string) (dataPath string, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".imgvec-*.onnx")
	if err != nil {
		return "", fmt.Errorf("onnxgraph: save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if m.Size()+m.ExternalBytes() < inlineLimit {
		_, err = m.WriteInline(bw, srcDir)
	} else {
		dataPath = path + ".data"
		var dt *os.File
		if dt, err = os.CreateTemp(dir, ".imgvec-*.data"); err != nil {
			tmp.Close()
			return "", fmt.Errorf("onnxgraph: save %s: %w", path, err)
		}
		defer os.Remove(dt.Name())
		dw := bufio.NewWriterSize(dt, 1<<20)
		err = m.WriteExternal(bw, dw, ExternalOptions{Dir: srcDir, Location: filepath.Base(dataPath)})
		if err == nil {
			err = errors.Join(dw.Flush(), dt.Chmod(0o644), dt.Close())
		} else {
			dt.Close()
		}
		if err == nil {
			err = os.Rename(dt.Name(), dataPath)
		}
	}
	if err == nil {
		err = errors.Join(bw.Flush(), tmp.Chmod(0o644), tmp.Close())
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("onnxgraph: save %s: %w", path, err)
	}
	return dataPath, nil
}
