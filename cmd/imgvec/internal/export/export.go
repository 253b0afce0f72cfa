package export

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/file"
)

// Format is an export file format.
type Format string

const (
	JSONL   Format = "jsonl"
	Parquet Format = "parquet"
	NPY     Format = "npy"
)

// ParseFormat reads a --format value; "" takes the format from out's
// extension (.jsonl/.ndjson, .parquet, .npy; "-" is JSON Lines).
func ParseFormat(s, out string) (Format, error) {
	if s == "" {
		switch ext := strings.ToLower(filepath.Ext(out)); {
		case out == "-" || ext == ".jsonl" || ext == ".ndjson":
			return JSONL, nil
		case ext == ".parquet":
			return Parquet, nil
		case ext == ".npy":
			return NPY, nil
		}
		return "", fmt.Errorf("--out %q: give --format npy, parquet or jsonl, or an .npy, .parquet or .jsonl file name", out)
	}
	switch f := Format(strings.ToLower(s)); f {
	case JSONL, Parquet, NPY:
		if out == "-" && f != JSONL {
			return "", fmt.Errorf("--out -: standard output takes --format jsonl only")
		}
		if f == NPY && !strings.EqualFold(filepath.Ext(out), ".npy") {
			return "", fmt.Errorf("--format npy: --out %q must end in .npy (the rows go beside it, in NAME.rows.jsonl)", out)
		}
		return f, nil
	}
	return "", fmt.Errorf("--format %q: want npy, parquet or jsonl", s)
}

// RowsPath is the side file of an .npy export: the rows' ids, keys and
// metadata, one JSON object per matrix row.
func RowsPath(npy string) string { return strings.TrimSuffix(npy, filepath.Ext(npy)) + ".rows.jsonl" }

// Row is one exported row in JSON Lines (and the .npy side file, without
// the vector). Times are RFC 3339 in UTC with nanoseconds as stored; mtime
// is null for sources that have none.
type Row struct {
	ID          string            `json:"id"`
	Source      string            `json:"source"`
	Key         string            `json:"key"`
	SHA256      string            `json:"sha256"`
	Size        int64             `json:"size"`
	MTime       *string           `json:"mtime"`
	ETag        string            `json:"etag"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	Format      string            `json:"format"`
	ModelID     string            `json:"model_id"`
	Layer       string            `json:"layer"`
	Dim         int               `json:"dim"`
	ExtractedAt string            `json:"extracted_at"`
	Metadata    map[string]string `json:"metadata"`
	Vector      []float32         `json:"vector,omitempty"`
}

func rowOf(r schema.Record, withVector bool) Row {
	row := Row{ID: r.ID, Source: r.Source, Key: r.Key, SHA256: r.SHA256, Size: r.Size, ETag: r.ETag,
		Width: r.Width, Height: r.Height, Format: r.Format, ModelID: r.ModelID, Layer: r.Layer, Dim: r.Dim,
		ExtractedAt: r.ExtractedAt.UTC().Format(time.RFC3339Nano), Metadata: r.Metadata}
	if !r.MTime.IsZero() {
		mt := r.MTime.UTC().Format(time.RFC3339Nano)
		row.MTime = &mt
	}
	if row.Metadata == nil {
		row.Metadata = map[string]string{}
	}
	if withVector {
		row.Vector = r.Vector
	}
	return row
}

// parquetRow is the Parquet schema: vector is LIST<FLOAT>, metadata a JSON
// object string (JSON logical type; a Parquet MAP would not keep a
// deterministic order), times TIMESTAMP(NANOS, UTC).
type parquetRow struct {
	ID          string     `parquet:"id"`
	Source      string     `parquet:"source,dict"`
	Key         string     `parquet:"key"`
	SHA256      string     `parquet:"sha256"`
	Size        int64      `parquet:"size"`
	MTime       *time.Time `parquet:"mtime,optional,timestamp(nanosecond)"`
	ETag        string     `parquet:"etag"`
	Width       int32      `parquet:"width"`
	Height      int32      `parquet:"height"`
	Format      string     `parquet:"format,dict"`
	ModelID     string     `parquet:"model_id,dict"`
	Layer       string     `parquet:"layer,dict"`
	Dim         int32      `parquet:"dim"`
	ExtractedAt time.Time  `parquet:"extracted_at,timestamp(nanosecond)"`
	Metadata    string     `parquet:"metadata,json"`
	Vector      []float32  `parquet:"vector,list"`
}

// rowGroupBytes bounds the vectors of one Parquet row group, which the
// writer buffers in memory.
const rowGroupBytes = 64 << 20

// Scan streams rows to its argument (connector.VectorScanner.ScanVectors
// bound to a model id).
type Scan func(fn func(schema.Record) error) error

// Write exports the rows of scan, each of dimension dim, to out in format
// f ("-": JSON Lines on stdout) and returns the number of rows and the
// files written.
func Write(f Format, out string, stdout io.Writer, dim int, scan Scan) (rows int64, files []string, err error) {
	if out == "-" {
		w := bufio.NewWriter(stdout)
		enc := newEncoder(w)
		err := scan(func(r schema.Record) error {
			if err := checkDim(r, dim); err != nil {
				return err
			}
			rows++
			return enc.Encode(rowOf(r, true))
		})
		if err == nil {
			err = w.Flush()
		}
		return rows, nil, err
	}
	main, err := create(out)
	if err != nil {
		return 0, nil, err
	}
	outs := []*output{main}
	defer func() {
		if err != nil {
			for _, o := range outs {
				o.abort()
			}
		}
	}()
	var write func(schema.Record) error
	finish := func() error { return nil }
	switch f {
	case JSONL:
		enc := newEncoder(main.w)
		write = func(r schema.Record) error { return enc.Encode(rowOf(r, true)) }
	case NPY:
		side, err := create(RowsPath(out))
		if err != nil {
			return 0, nil, err
		}
		outs = append(outs, side)
		if _, err := main.w.Write(file.NPYHeader(0, dim)); err != nil {
			return 0, nil, fmt.Errorf("write %s: %w", out, err)
		}
		enc := newEncoder(side.w)
		buf := make([]byte, 4*dim)
		write = func(r schema.Record) error {
			for i, x := range r.Vector {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
			}
			if _, err := main.w.Write(buf); err != nil {
				return err
			}
			return enc.Encode(rowOf(r, false))
		}
		finish = func() error {
			if err := main.w.Flush(); err != nil {
				return err
			}
			_, err := main.f.WriteAt(file.NPYHeader(rows, dim), 0)
			return err
		}
	case Parquet:
		pw := parquet.NewGenericWriter[parquetRow](main.w, parquet.Compression(&snappy.Codec{}),
			parquet.MaxRowsPerRowGroup(int64(max(1, rowGroupBytes/(4*dim)))))
		batch := make([]parquetRow, 1)
		write = func(r schema.Record) error {
			md, err := json.Marshal(rowOf(r, false).Metadata) // sorted keys
			if err != nil {
				return err
			}
			p := parquetRow{ID: r.ID, Source: r.Source, Key: r.Key, SHA256: r.SHA256, Size: r.Size, ETag: r.ETag,
				Width: int32(r.Width), Height: int32(r.Height), Format: r.Format, ModelID: r.ModelID, Layer: r.Layer,
				Dim: int32(r.Dim), ExtractedAt: r.ExtractedAt.UTC(), Metadata: string(md), Vector: r.Vector}
			if !r.MTime.IsZero() {
				mt := r.MTime.UTC()
				p.MTime = &mt
			}
			batch[0] = p
			_, err = pw.Write(batch)
			return err
		}
		finish = pw.Close
	default:
		return 0, nil, fmt.Errorf("export: unknown format %q", f)
	}
	err = scan(func(r schema.Record) error {
		if err := checkDim(r, dim); err != nil {
			return err
		}
		if err := write(r); err != nil {
			return fmt.Errorf("write %s: row %s: %w", out, schema.Printable(r.Key), err)
		}
		rows++
		return nil
	})
	if err == nil {
		if err = finish(); err != nil {
			err = fmt.Errorf("write %s: %w", out, err)
		}
	}
	for _, o := range outs {
		if err == nil {
			err = o.publish()
		}
		files = append(files, o.path)
	}
	if err != nil {
		return 0, nil, err
	}
	return rows, files, nil
}

// newEncoder writes one JSON object per line; keys and paths keep their
// characters (no HTML escaping of <, > and &).
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

func checkDim(r schema.Record, dim int) error {
	if len(r.Vector) != dim {
		return fmt.Errorf("export: row %s (%s) has %d dimensions, the model %s has %d", r.ID, schema.Printable(r.Key), len(r.Vector), r.ModelID, dim)
	}
	return nil
}

// output is a file written under a temporary name in its target's folder
// and renamed into place by publish.
type output struct {
	path      string
	f         *os.File
	w         *bufio.Writer
	published bool
}

func create(path string) (*output, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &output{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// publish flushes, closes and renames the file into place. CreateTemp
// makes owner-only files; exports are ordinary files.
func (o *output) publish() error {
	err := o.w.Flush()
	err = errors.Join(err, o.f.Chmod(0o644), o.f.Close())
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	o.published = true
	return nil
}

// abort removes the temporary file, or the published one when a later
// file of the same export failed (an .npy without its rows is no export).
func (o *output) abort() {
	if o.published {
		os.Remove(o.path)
		return
	}
	o.f.Close()
	os.Remove(o.f.Name())
}
