package export

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/file"
)

func testRecords(n, dim int) []schema.Record {
	var out []schema.Record
	for i := range n {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(i*dim+j) / 7
		}
		v[0] = float32(math.Copysign(0, -1))
		r := schema.Record{Source: "file:///photos", Key: fmt.Sprintf("dir/<%03d>.jpg", i), Width: 640, Height: 480,
			Format: "jpeg", ModelID: "fc7-0123", Layer: "fc7", Dim: dim, Vector: v,
			ExtractedAt: time.Date(2024, 5, 17, 10, 11, 12, 123456789, time.UTC)}
		r.ID = schema.ItemID(r.Source, r.Key)
		r.SHA256 = strings.Repeat(fmt.Sprintf("%x", i%16), 64)
		r.Size = int64(1000 + i)
		if i%2 == 0 {
			r.MTime = time.Unix(1_700_000_000, int64(i)).UTC()
			r.Metadata = map[string]string{"b": "2", "a": "1 & <x>"}
		}
		out = append(out, r)
	}
	return out
}

func scanOf(recs []schema.Record) Scan {
	return func(fn func(schema.Record) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// Every format writes the rows in scan order, the same bytes twice, and
// gives back what it was given.
func TestWriteRoundTrip(t *testing.T) {
	const dim = 5
	recs := testRecords(7, dim)
	dir := t.TempDir()
	for _, f := range []Format{JSONL, Parquet, NPY} {
		out := filepath.Join(dir, "out."+string(f))
		n, files, err := Write(f, out, nil, dim, scanOf(recs))
		if err != nil || n != int64(len(recs)) {
			t.Fatalf("%s: %d rows, %v", f, n, err)
		}
		first := readAll(t, files)
		if _, _, err := Write(f, out, nil, dim, scanOf(recs)); err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(first, readAll(t, files), bytes.Equal) {
			t.Errorf("%s: a second export of the same rows differs", f)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(left) > 0 {
			t.Errorf("%s: temporary files left: %v", f, left)
		}
		var vecs [][]float32
		var rows []Row
		switch f {
		case JSONL:
			rows = parseRows(t, first[0])
			for _, r := range rows {
				vecs = append(vecs, r.Vector)
			}
		case NPY:
			data := first[0]
			if !bytes.Equal(data[:file.NPYHeaderLen], file.NPYHeader(int64(len(recs)), dim)) {
				t.Errorf("npy header %q", data[:file.NPYHeaderLen])
			}
			for i := range recs {
				v := make([]float32, dim)
				for j := range v {
					v[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[file.NPYHeaderLen+4*(i*dim+j):]))
				}
				vecs = append(vecs, v)
			}
			if files[1] != filepath.Join(dir, "out.rows.jsonl") {
				t.Errorf("side file %s", files[1])
			}
			rows = parseRows(t, first[1])
		case Parquet:
			got, err := parquet.Read[parquetRow](bytes.NewReader(first[0]), int64(len(first[0])))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range got {
				var md map[string]string
				if err := json.Unmarshal([]byte(p.Metadata), &md); err != nil {
					t.Fatal(err)
				}
				vecs = append(vecs, p.Vector)
				var mt *string
				if p.MTime != nil {
					s := p.MTime.Format(time.RFC3339Nano)
					mt = &s
				}
				rows = append(rows, Row{ID: p.ID, Key: p.Key, SHA256: p.SHA256, MTime: mt, Metadata: md})
			}
		}
		if len(rows) != len(recs) || len(vecs) != len(recs) {
			t.Fatalf("%s: %d rows, %d vectors, want %d", f, len(rows), len(vecs), len(recs))
		}
		for i, r := range recs {
			want := rowOf(r, false)
			got := rows[i]
			if got.ID != r.ID || got.Key != r.Key || got.SHA256 != r.SHA256 || fmt.Sprint(got.Metadata) != fmt.Sprint(want.Metadata) ||
				(got.MTime == nil) != (want.MTime == nil) || (got.MTime != nil && *got.MTime != *want.MTime) {
				t.Errorf("%s: row %d = %+v, want %+v", f, i, got, want)
			}
			if !slices.EqualFunc(vecs[i], r.Vector, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Errorf("%s: row %d vector %v, want %v", f, i, vecs[i], r.Vector)
			}
		}
	}
}

// An export that fails part way leaves no file, and an older export of the
// same name as it was.
func TestWriteFailureLeavesNothing(t *testing.T) {
	const dim = 3
	recs := testRecords(4, dim)
	bad := errors.New("scan broke")
	failing := func(fn func(schema.Record) error) error {
		if err := fn(recs[0]); err != nil {
			return err
		}
		return bad
	}
	for _, f := range []Format{JSONL, Parquet, NPY} {
		dir := t.TempDir()
		out := filepath.Join(dir, "out."+string(f))
		if err := os.WriteFile(out, []byte("older"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Write(f, out, nil, dim, failing); !errors.Is(err, bad) {
			t.Errorf("%s: err %v, want the scan's", f, err)
		}
		wrongDim := testRecords(2, dim+1)
		if _, _, err := Write(f, out, nil, dim, scanOf(wrongDim)); err == nil || !strings.Contains(err.Error(), wrongDim[0].ID) {
			t.Errorf("%s: a row of another dimension: %v, want an error naming it", f, err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("%s: files left after failed exports: %v", f, ents)
		}
		if b, _ := os.ReadFile(out); string(b) != "older" {
			t.Errorf("%s: the older file became %q", f, b)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		format, out string
		want        Format
		bad         bool
	}{
		{"", "x.npy", NPY, false},
		{"", "x.PARQUET", Parquet, false},
		{"", "x.jsonl", JSONL, false},
		{"", "-", JSONL, false},
		{"", "x.csv", "", true},
		{"parquet", "x.bin", Parquet, false},
		{"npy", "x.bin", "", true},
		{"npy", "-", "", true},
		{"jsonl", "-", JSONL, false},
		{"csv", "x.csv", "", true},
	} {
		got, err := ParseFormat(c.format, c.out)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("ParseFormat(%q, %q) = %q, %v", c.format, c.out, got, err)
		}
	}
}

func readAll(t *testing.T, files []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func parseRows(t *testing.T, b []byte) []Row {
	t.Helper()
	var rows []Row
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r Row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}
