package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	xdraw "golang.org/x/image/draw"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/export"
	"github.com/imgvec/imgvec/schema"
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

// plantedBases are the testdata images that get near-duplicate copies.
var plantedBases = []string{"landscape.jpg", "portrait.jpg", "small.jpg", "yuv422.jpg", "large.jpg", "progressive.jpg"}

// plantDupes writes into dir every good test image and, for each of
// plantedBases, a copy resized to half its size (PNG), one recompressed
// at JPEG quality 75 and one flipped left to right (JPEG quality 90);
// plus a byte-for-byte copy of the first base. It returns, per base, the
// names of its copies.
func plantDupes(t *testing.T, dir string) map[string][]string {
	t.Helper()
	for _, k := range goodImages(t) {
		copyFile(t, filepath.Join(e2eImages, k), filepath.Join(dir, k))
	}
	copyFile(t, filepath.Join(e2eImages, plantedBases[0]), filepath.Join(dir, "copy-of-"+plantedBases[0]))
	out := map[string][]string{}
	for _, base := range plantedBases {
		f, err := os.Open(filepath.Join(e2eImages, base))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		b := img.Bounds()
		half := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
		xdraw.CatmullRom.Scale(half, half.Bounds(), img, b, xdraw.Src, nil)
		flipped := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		for y := range b.Dy() {
			for x := range b.Dx() {
				flipped.Set(b.Dx()-1-x, y, img.At(b.Min.X+x, b.Min.Y+y))
			}
		}
		stem := strings.TrimSuffix(base, filepath.Ext(base))
		copies := []struct {
			name string
			img  image.Image
			q    int // JPEG quality; 0: PNG
		}{{stem + "-half.png", half, 0}, {stem + "-q75.jpg", img, 75}, {stem + "-flipped.jpg", flipped, 90}}
		for _, c := range copies {
			var buf bytes.Buffer
			if c.q == 0 {
				err = png.Encode(&buf, c.img)
			} else {
				err = jpeg.Encode(&buf, c.img, &jpeg.Options{Quality: c.q})
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.name), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out[base] = append(out[base], c.name)
		}
	}
	return out
}

// dupesThreshold separates, with the tiny model, the resized and
// recompressed copies (measured: distances 0.0007–0.0158 to their base)
// from every pair of different test images (nearest 0.0306). Flipped
// copies (0.083–0.391) are as far as different images (median 0.157):
// no threshold finds them with this model.
const dupesThreshold = 0.025

type dupesGroup struct {
	Group   int
	Kind    string
	Size    int
	Members []struct {
		ID, Source, Key, SHA256 string
		Distance                float64
	}
}

// dupesKeys runs dupes --json and returns each group as "kind: key key…".
func dupesKeys(t *testing.T, dir, sinkURI string, args ...string) ([]string, result) {
	t.Helper()
	r := mustCode(t, exitOK, dir, append([]string{"dupes", "--json", "--sink", sinkURI}, args...)...)
	var groups []dupesGroup
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil {
		t.Fatalf("dupes --json: %v\n%s", err, r)
	}
	var out []string
	for i, g := range groups {
		keys := []string{g.Kind + ":"}
		for _, m := range g.Members {
			keys = append(keys, m.Key)
			if zero := g.Kind == "exact" || m.SHA256 == g.Members[0].SHA256; zero != (m.Distance == 0) {
				t.Errorf("group %d member %s: distance %v to the first member", i+1, m.Key, m.Distance)
			}
			if g.Kind == "near" && m.Distance > dupesThreshold*2 {
				t.Errorf("group %d member %s: distance %v", i+1, m.Key, m.Distance)
			}
		}
		if g.Group != i+1 || g.Size != len(g.Members) || (i > 0 && g.Size > groups[i-1].Size) {
			t.Errorf("group %d: number %d, size %d of %d members (largest first)", i+1, g.Group, g.Size, len(g.Members))
		}
		out = append(out, strings.Join(keys, " "))
	}
	return out, r
}

// wantDupes is what dupes finds in plantDupes' folder at dupesThreshold.
func wantDupes(planted map[string][]string) []string {
	first := plantedBases[0]
	want := []string{"exact: copy-of-" + first + " " + first}
	for _, base := range plantedBases {
		keys := []string{base}
		if base == first {
			keys = append(keys, "copy-of-"+first)
		}
		for _, c := range planted[base] {
			if !strings.Contains(c, "flipped") {
				keys = append(keys, c)
			}
		}
		slices.Sort(keys)
		want = append(want, "near: "+strings.Join(keys, " "))
	}
	return want
}

// TestE2EDupes: among the test images and planted copies, dupes groups
// each base with its resized and recompressed copies, the byte copy as an
// exact group, and nothing else; text, JSON and CSV agree.
func TestE2EDupes(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.Mkdir(src, 0o755)
	planted := plantDupes(t, src)
	sinkURI := "sqlite://" + filepath.Join(tmp, "db.sqlite")
	mustCode(t, exitOK, tmp, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)

	got, r := dupesKeys(t, tmp, sinkURI, "--threshold", fmt.Sprint(dupesThreshold))
	want := wantDupes(planted)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("groups:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), r.stderr)
	}
	if !strings.Contains(r.stderr, "1 exact groups (2 images), 6 near groups") || !strings.Contains(r.stderr, "exact comparison") {
		t.Errorf("summary:\n%s", r.stderr)
	}
	// The default text and CSV list the same members.
	text := mustCode(t, exitOK, tmp, "dupes", "--sink", sinkURI, "--threshold", fmt.Sprint(dupesThreshold))
	csvOut := mustCode(t, exitOK, tmp, "dupes", "--csv", "--sink", sinkURI, "--threshold", fmt.Sprint(dupesThreshold))
	recs, err := csv.NewReader(strings.NewReader(csvOut.stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	members := 0
	for _, g := range got {
		members += len(strings.Fields(g)) - 1
	}
	if lines := strings.Split(strings.TrimSpace(text.stdout), "\n"); len(lines) != members+1 || !strings.HasPrefix(lines[0], "GROUP") {
		t.Errorf("text output has %d lines for %d members:\n%s", len(lines), members, text.stdout)
	}
	if len(recs) != members+1 || strings.Join(recs[0], ",") != "group,kind,size,distance,source,key,id,sha256" {
		t.Errorf("CSV has %d records for %d members:\n%s", len(recs), members, csvOut.stdout)
	}
	// Threshold 0: only the exact copies.
	if got, _ := dupesKeys(t, tmp, sinkURI, "--threshold", "0"); len(got) != 1 || !strings.HasPrefix(got[0], "exact:") {
		t.Errorf("threshold 0: %v", got)
	}
	mustCode(t, exitUsage, tmp, "dupes", "--sink", sinkURI, "--json", "--csv")
	mustCode(t, exitUsage, tmp, "dupes", "--sink", sinkURI, "--threshold", "3")
}

// TestE2EDupesServers: PostgreSQL (exact, then through its binary index)
// and each Milvus (through its HNSW index) find the groups SQLite finds.
func TestE2EDupesServers(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.Mkdir(src, 0o755)
	want := wantDupes(plantDupes(t, src))
	slices.Sort(want)
	check := func(t *testing.T, sinkURI, how string) {
		t.Helper()
		got, r := dupesKeys(t, tmp, sinkURI, "--threshold", fmt.Sprint(dupesThreshold))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(r.stderr, how) {
			t.Errorf("dupes did not use %s:\n%s", how, r.stderr)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		sinkURI := pgSink(t)
		mustCode(t, exitOK, tmp, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
		check(t, sinkURI, "exact comparison")
		mustCode(t, exitOK, tmp, "index", "create", "binary", "--sink", sinkURI)
		check(t, sinkURI, "through the sink's index")
	})
	eachMilvus(t, func(t *testing.T, sinkURI string) {
		mustCode(t, exitOK, tmp, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
		check(t, sinkURI, "through the sink's index")
	})
}

// TestE2EEmbedInputOrder: embed writes rows in the order of its
// arguments, a folder's images in listing order, the same on every run
// (small batches finish out of order); a plain-file argument's id is
// ItemID("files:", the path as given, cleaned).
func TestE2EEmbedInputOrder(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	copyTree(t, e2eImages, filepath.Join(tmp, "imgs"))
	abs, _ := filepath.EvalSymlinks(tmp) // the binary's working directory, as os.Getwd gives it
	want := []string{"imgs/small.jpg"}
	for _, k := range goodImages(t) { // sorted, as the folder lists them
		want = append(want, filepath.Join(abs, "imgs", k))
	}
	want = append(want, "imgs/landscape.jpg", "imgs/gray.jpg")
	args := []string{"embed", "-q", "--model", e2eModel, "--batch", "2", "./imgs/../imgs/small.jpg", "imgs", "imgs/landscape.jpg", "imgs/gray.jpg"}
	for run := range 3 {
		mustCode(t, exitItemFailures, tmp, append(args, "--out", "x.npy")...)
		b, err := os.ReadFile(filepath.Join(tmp, "x.ids.txt"))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: rows\n%s\nwant\n%s", run+1, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	r := mustCode(t, exitOK, tmp, "embed", "-q", "--model", e2eModel, "--out", "-", "./imgs/../imgs/small.jpg")
	rows := parseJSONL(t, []byte(r.stdout))
	if len(rows) != 1 || rows[0].ID != schema.ItemID("files:", "imgs/small.jpg") || rows[0].Path != "imgs/small.jpg" {
		t.Errorf("a plain-file argument's row: %+v", rows)
	}
}
