package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/export"
	"github.com/imgvec/imgvec/schema/testenv"
)

// exportCheck reads an export back with NumPy and pyarrow (argv: the .npy,
// its rows file, the .parquet, the .jsonl): the three formats hold the same
// rows in the same order, vectors bit for bit.
const exportCheck = `
import json, sys
import numpy as np, pyarrow.parquet as pq
npy, rows_path, pq_path, jsonl_path = sys.argv[1:5]
a = np.load(npy)
assert a.dtype == np.float32 and a.ndim == 2, (a.dtype, a.shape)
rows = [json.loads(l) for l in open(rows_path, encoding="utf-8")]
full = [json.loads(l) for l in open(jsonl_path, encoding="utf-8")]
assert len(rows) == len(full) == a.shape[0], (len(rows), len(full), a.shape)
assert [r["key"] for r in rows] == [r["key"] for r in full]
j = np.array([r["vector"] for r in full], dtype=np.float32).reshape(a.shape)
assert np.array_equal(j.view(np.uint32), a.view(np.uint32)), "jsonl vectors differ from the npy"
t = pq.read_table(pq_path)
assert t.num_rows == a.shape[0], t.num_rows
for col in ("id", "source", "key", "sha256"):
    assert t.column(col).to_pylist() == [r[col] for r in rows], col
assert [json.loads(m) for m in t.column("metadata").to_pylist()] == [r["metadata"] for r in rows]
assert set(t.column("dim").to_pylist()) <= {a.shape[1]}
p = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32) if t.num_rows else a
assert np.array_equal(p.view(np.uint32), a.view(np.uint32)), "parquet vectors differ from the npy"
print("ok", a.shape[0], a.shape[1])
`

// exportAll exports the sink's vectors in the three formats into dir (each
// twice: the bytes must not change), checks them with NumPy and pyarrow,
// and returns the JSON Lines rows.
func exportAll(t *testing.T, dir, sinkURI string, extra ...string) []export.Row {
	t.Helper()
	py := testenv.Python(t, "numpy", "pyarrow")
	out := func(ext string) string { return filepath.Join(dir, "vectors."+ext) }
	files := map[string][]byte{}
	for pass := range 2 {
		for _, ext := range []string{"jsonl", "parquet", "npy"} {
			r := mustCode(t, exitOK, dir, append([]string{"export", "--sink", sinkURI, "--out", out(ext)}, extra...)...)
			if !strings.Contains(r.stderr, "exported ") {
				t.Errorf("export %s: no summary\n%s", ext, r)
			}
		}
		for _, f := range []string{out("jsonl"), out("parquet"), out("npy"), export.RowsPath(out("npy"))} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if pass == 1 && !bytes.Equal(b, files[f]) {
				t.Errorf("a second export of the same data changed %s", filepath.Base(f))
			}
			files[f] = b
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".vectors*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	cmd := exec.Command(py, "-c", exportCheck, out("npy"), export.RowsPath(out("npy")), out("parquet"), out("jsonl"))
	if b, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "ok ") {
		t.Fatalf("NumPy/pyarrow read-back: %v\n%s", err, b)
	}
	// Standard output gets the same JSON Lines.
	r := mustCode(t, exitOK, dir, append([]string{"export", "--sink", sinkURI, "--out", "-"}, extra...)...)
	if r.stdout != string(files[out("jsonl")]) {
		t.Errorf("export --out - differs from the .jsonl file")
	}
	var rows []export.Row
	dec := json.NewDecoder(bytes.NewReader(files[out("jsonl")]))
	dec.DisallowUnknownFields()
	for dec.More() {
		var row export.Row
		if err := dec.Decode(&row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if !slices.IsSortedFunc(rows, func(a, b export.Row) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	}) {
		t.Errorf("rows are not in key order: %v", keysOf(rows))
	}
	return rows
}

func keysOf(rows []export.Row) []string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
	}
	return keys
}

// TestE2EExport: the exports of a SQLite sink hold every stored row, in
// key order, with its vector bit for bit, and read back in NumPy and
// pyarrow; the model id is the only one stored or must be named; errors
// leave no file.
func TestE2EExport(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, e2eImages, src)
	sinkURI := "sqlite://" + filepath.Join(tmp, "db.sqlite")
	mustCode(t, exitItemFailures, tmp, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
	st := readDB(t, filepath.Join(tmp, "db.sqlite"))

	rows := exportAll(t, tmp, sinkURI)
	if len(rows) != len(st.Items) || len(rows) != len(goodImages(t)) {
		t.Fatalf("export has %d rows, the sink %d", len(rows), len(st.Items))
	}
	for _, r := range rows {
		it, ok := st.Items[r.ID]
		if !ok || it.Key != r.Key || it.SHA256 != r.SHA256 || it.ModelID != r.ModelID || r.Dim != e2eDim {
			t.Errorf("exported row %+v does not match the stored %+v", r.Key, it.Key)
			continue
		}
		if !slices.EqualFunc(r.Vector, it.Vector, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Errorf("%s: exported vector differs from the stored one", r.Key)
		}
	}

	// A model id that is not stored: a usage error naming the one there is.
	modelID := rows[0].ModelID
	r := mustCode(t, exitUsage, tmp, "export", "--sink", sinkURI, "--model", "fc7-nope", "--out", "x.jsonl")
	if !strings.Contains(r.stderr, modelID) {
		t.Errorf("unknown --model: the error does not list %s\n%s", modelID, r)
	}
	mustCode(t, exitOK, tmp, "export", "--sink", sinkURI, "--model", modelID, "--out", "x.jsonl")
	// A second model (of another source: an item holds one row): --model
	// is then required.
	other := filepath.Join(tmp, "other")
	os.Mkdir(other, 0o755)
	copyFile(t, filepath.Join(src, "small.jpg"), filepath.Join(other, "small.jpg"))
	mustCode(t, exitOK, tmp, "sync", "-q", "--layer", "fc6", "--source", other, "--sink", sinkURI, "--model", e2eModel)
	r = mustCode(t, exitUsage, tmp, "export", "--sink", sinkURI, "--out", "y.jsonl")
	if !strings.Contains(r.stderr, "--model") || !strings.Contains(r.stderr, modelID) {
		t.Errorf("two models without --model:\n%s", r)
	}
	// Usage errors and failures leave no file behind.
	mustCode(t, exitUsage, tmp, "export", "--sink", sinkURI, "--out", "y.csv")
	mustCode(t, exitUsage, tmp, "export", "--sink", sinkURI, "--format", "npy", "--out", "y.bin")
	mustCode(t, exitFatal, tmp, "export", "--sink", "sqlite://"+filepath.Join(tmp, "missing.db"), "--out", "y.jsonl")
	for _, name := range []string{"y.jsonl", "y.csv", "y.bin", "missing.db"} {
		if _, err := os.Stat(filepath.Join(tmp, name)); err == nil {
			t.Errorf("%s exists after a failed export", name)
		}
	}
}

// TestE2EExportServers: the same exports from PostgreSQL and each Milvus
// hold the rows the SQLite export holds, in the same order.
func TestE2EExportServers(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, e2eImages, src)
	sqliteURI := "sqlite://" + filepath.Join(tmp, "db.sqlite")
	mustCode(t, exitItemFailures, tmp, "sync", "-q", "--source", src, "--sink", sqliteURI, "--model", e2eModel)
	dir := filepath.Join(tmp, "sqlite")
	os.Mkdir(dir, 0o755)
	want := exportAll(t, dir, sqliteURI)
	check := func(t *testing.T, sinkURI string) {
		mustCode(t, exitItemFailures, tmp, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
		dir := t.TempDir()
		got := exportAll(t, dir, sinkURI)
		if !slices.Equal(keysOf(got), keysOf(want)) {
			t.Fatalf("keys %v, want %v", keysOf(got), keysOf(want))
		}
		for i := range got {
			for j, x := range got[i].Vector {
				if math.Abs(float64(x-want[i].Vector[j])) > oracleTolerance {
					t.Fatalf("%s: element %d is %v, SQLite's export has %v", got[i].Key, j, x, want[i].Vector[j])
				}
			}
		}
	}
	t.Run("postgres", func(t *testing.T) { check(t, pgSink(t)) })
	eachMilvus(t, check)
}
