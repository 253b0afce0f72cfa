package main

// End-to-end tests of the commands, run through the built binary as a user
// would (see e2e_helpers_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/schema"
)

// TestE2EEmbed: embed a folder of good and bad images to .npy, .jsonl and
// stdout.
func TestE2EEmbed(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "imgs")
	copyTree(t, e2eImages, imgs)
	good := goodImages(t)
	listed := len(good) + len(badClasses)

	// .npy + .ids.txt
	r := mustCode(t, exitItemFailures, tmp, "embed", "imgs", "--model", e2eModel, "--out", "x.npy")
	rows, cols, data := readNPY(t, filepath.Join(tmp, "x.npy"))
	if rows != len(good) || cols != e2eDim {
		t.Fatalf("x.npy is %d×%d, want %d×%d", rows, cols, len(good), e2eDim)
	}
	for i := 0; i < rows; i++ {
		v := data[i*cols : (i+1)*cols]
		if !allFinite(v) {
			t.Errorf("row %d not finite", i)
		} else if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("row %d has norm %v, want 1", i, n)
		}
	}
	idsText, err := os.ReadFile(filepath.Join(tmp, "x.ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(idsText), "\n") {
		t.Errorf("x.ids.txt does not end in a newline")
	}
	ids := strings.Split(strings.TrimSuffix(string(idsText), "\n"), "\n")
	if len(ids) != rows {
		t.Fatalf("x.ids.txt has %d lines for %d rows", len(ids), rows)
	}
	wantPaths := map[string]bool{}
	for _, k := range good {
		wantPaths[filepath.Join(imgs, k)] = true
	}
	npyByPath := map[string][]float32{}
	for i, p := range ids {
		abs := p
		if !filepath.IsAbs(p) {
			abs = filepath.Join(tmp, p)
		}
		if !wantPaths[abs] {
			t.Errorf("x.ids.txt line %d: %q is not one of the good images", i+1, p)
		}
		if _, dup := npyByPath[abs]; dup {
			t.Errorf("x.ids.txt: %s twice", p)
		}
		npyByPath[abs] = data[i*cols : (i+1)*cols]
	}
	// The failure summary names every bad class, its count and its files.
	if !strings.Contains(r.stderr, fmt.Sprintf("embedded %d of %d images; %d failed:", len(good), listed, len(badClasses))) {
		t.Errorf("no failure summary on stderr\n%s", r)
	}
	byClass := map[schema.FailureClass][]string{}
	for k, c := range badClasses {
		byClass[c] = append(byClass[c], k)
	}
	for c, keys := range byClass {
		line := regexp.MustCompile(`(?m)^\s+` + string(c) + `\s+(\d+)\s+(.*)$`).FindStringSubmatch(r.stderr)
		if line == nil {
			t.Errorf("failure summary has no line for class %s\n%s", c, r.stderr)
			continue
		}
		if line[1] != fmt.Sprint(len(keys)) {
			t.Errorf("class %s: count %s, want %d", c, line[1], len(keys))
		}
		for _, k := range keys {
			if !strings.Contains(line[2], k) {
				t.Errorf("class %s: line %q does not name %s", c, line[0], k)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(tmp, "x.npy")); err == nil && fi.Mode().Perm()&0o044 == 0 {
		t.Logf("note: x.npy has mode %v (only its owner can read it)", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, ".x*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	// .jsonl: the same vectors.
	mustCode(t, exitItemFailures, tmp, "embed", "imgs", "-q", "--model", e2eModel, "--out", "x.jsonl")
	f, err := os.ReadFile(filepath.Join(tmp, "x.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	jl := parseJSONL(t, f)
	if len(jl) != len(good) {
		t.Fatalf("x.jsonl has %d lines, want %d", len(jl), len(good))
	}
	for _, row := range jl {
		abs := row.Path
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(tmp, abs)
		}
		want, ok := npyByPath[abs]
		if !ok {
			t.Errorf("x.jsonl: path %q not in x.ids.txt", row.Path)
			continue
		}
		if row.ID == "" || len(row.Vector) != e2eDim {
			t.Errorf("x.jsonl %s: id %q, %d dims", row.Path, row.ID, len(row.Vector))
			continue
		}
		for i := range want {
			if math.Abs(float64(row.Vector[i]-want[i])) > 1e-6 {
				t.Errorf("x.jsonl %s: vector[%d] = %v, .npy has %v", row.Path, i, row.Vector[i], want[i])
				break
			}
		}
	}

	// - : JSON Lines on stdout and nothing else there; files as arguments.
	r = mustCode(t, exitItemFailures, tmp, "embed", "imgs/small.jpg", "imgs/gray.jpg", "imgs/bad/empty.jpg",
		"--model", e2eModel, "--out", "-")
	out := parseJSONL(t, []byte(r.stdout))
	if len(out) != 2 {
		t.Fatalf("--out -: %d lines, want 2\n%s", len(out), r)
	}
	for _, row := range out {
		if row.Path != "imgs/small.jpg" && row.Path != "imgs/gray.jpg" {
			t.Errorf("--out -: path %q, want the argument as given", row.Path)
		}
		want := npyByPath[filepath.Join(tmp, row.Path)]
		if len(want) == e2eDim && math.Abs(float64(row.Vector[7]-want[7])) > 1e-6 {
			t.Errorf("--out -: %s differs from the folder run", row.Path)
		}
	}
	if !strings.Contains(r.stderr, "embedded 2 of 3 images; 1 failed") || !strings.Contains(r.stderr, "imgs/bad/empty.jpg") {
		t.Errorf("--out -: failure summary missing from stderr\n%s", r)
	}

	// --no-normalize: raw activations, same directions.
	mustCode(t, exitItemFailures, tmp, "embed", "imgs", "-q", "--model", e2eModel, "--no-normalize", "--out", "raw.npy")
	rawRows, rawCols, raw := readNPY(t, filepath.Join(tmp, "raw.npy"))
	if rawRows != rows || rawCols != cols {
		t.Fatalf("raw.npy is %d×%d, want %d×%d", rawRows, rawCols, rows, cols)
	}
	rawIDs, _ := os.ReadFile(filepath.Join(tmp, "raw.ids.txt"))
	nonUnit := 0
	for i, p := range strings.Split(strings.TrimSuffix(string(rawIDs), "\n"), "\n") {
		v := raw[i*cols : (i+1)*cols]
		n := norm(v)
		if !allFinite(v) || n == 0 {
			t.Errorf("raw row %s: norm %v", p, n)
			continue
		}
		if math.Abs(n-1) > 1e-3 {
			nonUnit++
		}
		abs := p
		if !filepath.IsAbs(p) {
			abs = filepath.Join(tmp, p)
		}
		if want := npyByPath[abs]; len(want) == cols {
			for j := range v {
				if math.Abs(float64(v[j])/n-float64(want[j])) > 1e-5 {
					t.Errorf("raw row %s: direction differs from the normalised row", p)
					break
				}
			}
		}
	}
	if nonUnit == 0 {
		t.Errorf("--no-normalize: every row has norm 1")
	}

	// Usage errors: exit 2, nothing written.
	r = mustCode(t, exitUsage, tmp, "embed", "imgs", "--model", e2eModel)
	if !strings.Contains(r.stderr, "--out") {
		t.Errorf("no --out: message does not mention --out\n%s", r)
	}
	mustCode(t, exitUsage, tmp, "embed", "imgs", "--model", e2eModel, "--out", "x.txt")
	mustCode(t, exitUsage, tmp, "embed", "--model", e2eModel, "--out", "y.npy")
	mustCode(t, exitUsage, tmp, "embed", "imgs", "--model", e2eModel, "--out", "y.npy", "--batch", "0")
	mustCode(t, exitUsage, tmp, "embed", "imgs", "--no-such-flag", "--out", "y.npy")
	if _, err := os.Stat(filepath.Join(tmp, "y.npy")); err == nil {
		t.Errorf("a usage error wrote y.npy")
	}
	// A good folder alone: exit 0.
	mustCode(t, exitOK, tmp, "embed", "imgs/small.jpg", "-q", "--model", e2eModel, "--out", "one.npy")
}

type jsonlRow struct {
	ID     string    `json:"id"`
	Path   string    `json:"path"`
	Vector []float32 `json:"vector"`
}

func parseJSONL(t *testing.T, b []byte) []jsonlRow {
	t.Helper()
	var rows []jsonlRow
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r jsonlRow
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("not a JSON line (%v): %.200s", err, sc.Text())
		}
		rows = append(rows, r)
	}
	return rows
}

// writeJPEG writes a new JPEG (content derived from seed) to path.
func writeJPEG(t *testing.T, path string, seed int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 120+seed%50, 90))
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			img.Set(x, y, color.RGBA{uint8(x*seed + y), uint8(y * 3), uint8(seed * 40), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type searchHit struct {
	Rank     int
	ID       string
	Source   string
	Key      string
	Distance float64
	ModelID  string `json:"model_id"`
}

func search(t *testing.T, dir string, args ...string) []searchHit {
	t.Helper()
	r := mustCode(t, exitOK, dir, append([]string{"search", "--json"}, args...)...)
	var hits []searchHit
	if err := json.Unmarshal([]byte(r.stdout), &hits); err != nil {
		t.Fatalf("search --json: %v\n%s", err, r)
	}
	return hits
}

// TestE2ESync: sync into a fresh SQLite database and follow the incremental
// rules through changes to the folder.
func TestE2ESync(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, e2eImages, src)
	os.RemoveAll(filepath.Join(src, "bad"))
	good := goodImages(t)
	db := filepath.Join(tmp, "x.db")
	sinkURI := "sqlite://" + db
	source := "file://" + filepath.ToSlash(src)
	syncArgs := func(extra ...string) []string {
		return append([]string{"sync", "-q", "--source", "src", "--sink", sinkURI, "--model", e2eModel}, extra...)
	}
	expect := func(step string, got runLine, want runLine) {
		t.Helper()
		want.Kind, want.Source = got.Kind, got.Source
		if got != want {
			t.Fatalf("%s: %+v\nwant %+v", step, got, want)
		}
	}
	n := int64(len(good))

	// 1. A fresh database.
	r := mustCode(t, exitOK, tmp, syncArgs()...)
	rl := parseRunLine(t, r)
	if rl.Source != source {
		t.Errorf("run source %q, want %q", rl.Source, source)
	}
	expect("first sync", rl, runLine{Outcome: "ok", Listed: n, Written: n, Extracted: n})
	st := readDB(t, db)
	var modelID string
	for _, it := range st.Items {
		modelID = it.ModelID
	}
	if n := checkInvariant(t, st, src, modelID, true); n > 0 {
		t.Fatalf("%d invariant violations after the first sync", n)
	}

	// 2. search --image: the image itself first, at distance ~0.
	hits := search(t, tmp, "--sink", sinkURI, "--model", e2eModel, "--image", "src/small.jpg", "-k", "5")
	if len(hits) != 5 || hits[0].Key != "small.jpg" || math.Abs(hits[0].Distance) > 1e-5 {
		t.Fatalf("search --image src/small.jpg: %+v", hits)
	}
	for i, h := range hits {
		if h.ModelID != modelID || h.Rank != i+1 || (i > 0 && h.Distance < hits[i-1].Distance) {
			t.Errorf("hit %d: %+v (model %s)", i, h, modelID)
		}
	}
	r = mustCode(t, exitOK, tmp, "search", "--sink", sinkURI, "--model", e2eModel, "--image", "src/small.jpg", "-k", "2")
	if !strings.Contains(r.stdout, "small.jpg") || !strings.Contains(r.stdout, "DISTANCE") {
		t.Errorf("search (text): %s", r)
	}
	// search --id: the item itself is not among its neighbours.
	smallID := schema.ItemID(source, "small.jpg")
	hits = search(t, tmp, "--sink", sinkURI, "--id", smallID, "-k", "4")
	if len(hits) != 4 {
		t.Fatalf("search --id: %d hits, want 4", len(hits))
	}
	for _, h := range hits {
		if h.ID == smallID {
			t.Errorf("search --id %s returned the item itself", smallID)
		}
	}
	all := search(t, tmp, "--sink", sinkURI, "--id", smallID, "-k", "1000")
	if len(all) != len(good)-1 {
		t.Errorf("search --id -k 1000: %d hits, want %d", len(all), len(good)-1)
	}
	mustCode(t, exitUsage, tmp, "search", "--sink", sinkURI, "--id", smallID, "--image", "src/small.jpg")
	mustCode(t, exitUsage, tmp, "search", "--sink", sinkURI)
	mustCode(t, exitUsage, tmp, "search", "--sink", sinkURI, "--id", smallID, "-k", "0")
	r = mustCode(t, exitFatal, tmp, "search", "--sink", sinkURI, "--id", "0123456789abcdef0123456789abcdef")
	if !strings.Contains(r.stderr, "no stored item") {
		t.Errorf("search --id unknown: %s", r)
	}

	// 3. status --json agrees with the database.
	sj := status(t, tmp, sinkURI)
	if len(sj.Models) != 1 || sj.Models[0].ModelID != modelID || sj.Models[0].Rows != n || sj.Models[0].Dim != e2eDim || sj.Models[0].Layer != "fc7" {
		t.Errorf("status models: %+v", sj.Models)
	}
	if sj.Failures != 0 || len(sj.Runs) != 1 || sj.Runs[0].Listed != n || sj.Runs[0].Written != n || sj.Runs[0].Outcome != "ok" {
		t.Errorf("status: %+v", sj)
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI)
	if !strings.Contains(r.stdout, modelID) || !strings.Contains(r.stdout, "failure ledger: 0") {
		t.Errorf("status (text):\n%s", r)
	}

	// 4. Nothing changed: everything is skipped.
	expect("second sync", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)),
		runLine{Outcome: "ok", Listed: n, Unchanged: n})

	// 5. New bytes in one file: re-extracted.
	writeJPEG(t, filepath.Join(src, "landscape.jpg"), 1)
	expect("modified file", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)),
		runLine{Outcome: "ok", Listed: n, Written: 1, Extracted: 1, Unchanged: n - 1})

	// 6. Same bytes, new mtime: metadata only.
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(src, "portrait.jpg"), later, later); err != nil {
		t.Fatal(err)
	}
	expect("touched file", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)),
		runLine{Outcome: "ok", Listed: n, Written: 1, Unchanged: n - 1})
	st = readDB(t, db)
	if it, ok := st.itemByKey("portrait.jpg"); !ok || it.MTimeNS.Int64 != later.UnixNano() {
		t.Errorf("touched file: stored mtime %v, want %d", it.MTimeNS, later.UnixNano())
	}

	// 7. A copy under a new name: its vector is reused.
	b, _ := os.ReadFile(filepath.Join(src, "gray.jpg"))
	os.WriteFile(filepath.Join(src, "gray-copy.jpg"), b, 0o644)
	n++
	expect("copied file", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)),
		runLine{Outcome: "ok", Listed: n, Written: 1, Reused: 1, Unchanged: n - 1})
	st = readDB(t, db)
	orig, _ := st.itemByKey("gray.jpg")
	cp, ok := st.itemByKey("gray-copy.jpg")
	if !ok || cp.SHA256 != orig.SHA256 || fmt.Sprint(cp.Vector) != fmt.Sprint(orig.Vector) {
		t.Errorf("copy: row %v, sha256 %.12s vs %.12s, or a different vector", ok, cp.SHA256, orig.SHA256)
	}

	// 8. A vanished file: --dry-run shows the plan and changes nothing.
	os.Remove(filepath.Join(src, "yuv444.jpg"))
	n--
	before := readDB(t, db)
	r = mustCode(t, exitOK, tmp, syncArgs("--dry-run")...)
	for _, want := range []string{fmt.Sprintf("%d listed", n), fmt.Sprintf("%d unchanged", n), "1 to delete", modelID} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run plan does not say %q:\n%s", want, r)
		}
	}
	after := readDB(t, db)
	if len(after.Runs) != len(before.Runs) || len(after.Items) != len(before.Items) {
		t.Errorf("--dry-run changed the database: %d→%d runs, %d→%d rows", len(before.Runs), len(after.Runs), len(before.Items), len(after.Items))
	}
	sameState(t, before, after)

	// 9. --max-delete 0 refuses, with the numbers and the flag to change.
	r = mustCode(t, exitFatal, tmp, syncArgs("--max-delete", "0")...)
	if !regexp.MustCompile(`refusing to delete 1 of \d+ stored items`).MatchString(r.stderr) || !strings.Contains(r.stderr, "--max-delete") {
		t.Errorf("--max-delete 0: unclear message\n%s", r)
	}
	if _, ok := readDB(t, db).itemByKey("yuv444.jpg"); !ok {
		t.Fatalf("--max-delete 0 deleted the vanished item")
	}
	mustCode(t, exitUsage, tmp, syncArgs("--max-delete", "lots")...)

	// 10. A plain sync deletes it.
	expect("vanished file", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)),
		runLine{Outcome: "ok", Listed: n, Unchanged: n, Deleted: 1})
	if _, ok := readDB(t, db).itemByKey("yuv444.jpg"); ok {
		t.Fatalf("the vanished item is still stored")
	}

	// 11. Bad images: exit 3, each in the ledger with its class.
	copyTree(t, filepath.Join(e2eImages, "bad"), filepath.Join(src, "bad"))
	nb := int64(len(badClasses))
	r = mustCode(t, exitItemFailures, tmp, syncArgs()...)
	expect("bad images", parseRunLine(t, r), runLine{Outcome: "partial", Listed: n + nb, Unchanged: n, Failed: nb})
	if !strings.Contains(r.stderr, "some items failed") {
		t.Errorf("no item-failure message\n%s", r)
	}
	st = readDB(t, db)
	checkLedger := func(attempts int) {
		t.Helper()
		if len(st.Failures) != len(badClasses) {
			t.Errorf("%d ledger entries, want %d", len(st.Failures), len(badClasses))
		}
		for key, class := range badClasses {
			f, ok := st.Failures[schema.ItemID(source, key)]
			switch {
			case !ok:
				t.Errorf("%s not in the ledger", key)
			case f.Class != string(class) || f.Key != key || f.Reason == "" || f.Stage == "":
				t.Errorf("%s: ledger %+v, want class %s", key, f, class)
			case f.Attempts != attempts:
				t.Errorf("%s: %d attempts, want %d", key, f.Attempts, attempts)
			}
		}
	}
	checkLedger(1)
	sj = status(t, tmp, sinkURI)
	if sj.Failures != nb {
		t.Errorf("status: %d failures, want %d", sj.Failures, nb)
	}
	for key, class := range badClasses {
		_ = key
		want := int64(0)
		for _, c := range badClasses {
			if c == class {
				want++
			}
		}
		if sj.ByClass[string(class)] != want {
			t.Errorf("status by class %s: %d, want %d", class, sj.ByClass[string(class)], want)
		}
	}
	// Known failures are not retried...
	expect("known failures", parseRunLine(t, mustCode(t, exitItemFailures, tmp, syncArgs()...)),
		runLine{Outcome: "partial", Listed: n + nb, Unchanged: n, Failed: nb})
	st = readDB(t, db)
	checkLedger(1)
	// ...unless --retry-failed.
	expect("--retry-failed", parseRunLine(t, mustCode(t, exitItemFailures, tmp, syncArgs("--retry-failed")...)),
		runLine{Outcome: "partial", Listed: n + nb, Unchanged: n, Failed: nb})
	st = readDB(t, db)
	checkLedger(2)
	// A repaired file leaves the ledger.
	writeJPEG(t, filepath.Join(src, "bad", "empty.jpg"), 2)
	expect("repaired file", parseRunLine(t, mustCode(t, exitItemFailures, tmp, syncArgs()...)),
		runLine{Outcome: "partial", Listed: n + nb, Written: 1, Extracted: 1, Unchanged: n, Failed: nb - 1})
	st = readDB(t, db)
	if _, ok := st.Failures[schema.ItemID(source, "bad/empty.jpg")]; ok {
		t.Errorf("the repaired file is still in the ledger")
	}
	if n := checkInvariant(t, st, src, modelID, true); n > 0 {
		t.Fatalf("%d invariant violations at the end", n)
	}
	last := st.Runs[len(st.Runs)-1]
	if last.Written+last.Unchanged+last.Failed != last.Listed {
		t.Errorf("last run: %+v does not add up", last)
	}

	// 12. A listing that comes back empty deletes nothing; nor does one
	// that fails (the folder is gone).
	stored := len(st.Items) + len(st.Failures)
	if err := os.Rename(src, src+".away"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(src, 0o755)
	expect("empty listing", parseRunLine(t, mustCode(t, exitOK, tmp, syncArgs()...)), runLine{Outcome: "ok"})
	os.Remove(src)
	r = mustCode(t, exitFatal, tmp, syncArgs()...)
	if !strings.Contains(r.stderr, "incomplete listing") {
		t.Errorf("sync of a missing folder: %s", r)
	}
	if st = readDB(t, db); len(st.Items)+len(st.Failures) != stored {
		t.Errorf("an empty or failed listing deleted %d items", stored-len(st.Items)-len(st.Failures))
	}

	// 13. migrate status / up on the migrated database.
	r = mustCode(t, exitOK, tmp, "migrate", "status", "--sink", sinkURI)
	if v, latest := schemaVersion(t, r); v != latest || !strings.Contains(r.stdout, "applied  0001") {
		t.Errorf("migrate status:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "migrate", "up", "--sink", sinkURI)
	if !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("migrate up on an up-to-date database:\n%s", r)
	}
	mustCode(t, exitUsage, tmp, "migrate", "sideways", "--sink", sinkURI)
	mustCode(t, exitUsage, tmp, "sync", "--sink", sinkURI, "--model", e2eModel)
	mustCode(t, exitUsage, tmp, "sync", "--source", "src", "--sink", "mysql://x")
}

// TestE2EMigrate: an explicit migration of a new database, and a database
// with pending migrations that sync refuses to upgrade on its own.
func TestE2EMigrate(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	sinkURI := "sqlite://" + filepath.Join(tmp, "m.db")
	r := mustCode(t, exitOK, tmp, "migrate", "status", "--sink", sinkURI)
	if v, _ := schemaVersion(t, r); v != 0 || !strings.Contains(r.stdout, "pending  0001") {
		t.Errorf("migrate status of a new database:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "migrate", "up", "--dry-run", "--sink", sinkURI)
	if r2 := mustCode(t, exitOK, tmp, "migrate", "status", "--sink", sinkURI); func() bool { v, _ := schemaVersion(t, r2); return v != 0 }() {
		t.Errorf("migrate up --dry-run applied something:\n%s", r2)
	}
	r = mustCode(t, exitOK, tmp, "migrate", "up", "--sink", sinkURI)
	if !regexp.MustCompile(`(?m)^up 0001 \S+`).MatchString(r.stdout) {
		t.Errorf("migrate up:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI)
	if !strings.Contains(r.stdout, "failure ledger: 0") {
		t.Errorf("status of an empty database:\n%s", r)
	}
	// status never creates a database.
	r = mustCode(t, exitFatal, tmp, "status", "--sink", "sqlite://"+filepath.Join(tmp, "none.db"))
	if !strings.Contains(r.stderr, "migrate up") {
		t.Errorf("status of a missing database: %s", r)
	}
	if _, err := os.Stat(filepath.Join(tmp, "none.db")); err == nil {
		t.Errorf("status created none.db")
	}
}

// TestE2EModel: inspect, cut, list and fetch, and the model id of a cut
// model.
func TestE2EModel(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	r := mustCode(t, exitOK, tmp, "model", "inspect", e2eModel)
	for layer, dim := range map[string]int{"fc6": 64, "fc7": 64, "fc8": 10} {
		if !regexp.MustCompile(`(?m)^` + layer + `\s+` + fmt.Sprint(dim) + `\s`).MatchString(r.stdout) {
			t.Errorf("model inspect: no %s (%d-d) line\n%s", layer, dim, r.stdout)
		}
	}
	r = mustCode(t, exitOK, tmp, "model", "inspect", "--json", e2eModel)
	var rep struct {
		Layers []struct {
			Name string
			Dim  int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("model inspect --json: %v\n%s", err, r)
	}
	if len(rep.Layers) < 3 {
		t.Errorf("model inspect --json: layers %+v", rep.Layers)
	}
	mustCode(t, exitFatal, tmp, "model", "inspect", filepath.Join(tmp, "nope.onnx"))
	os.WriteFile(filepath.Join(tmp, "junk.onnx"), []byte("<html>not a model</html>"), 0o644)
	mustCode(t, exitFatal, tmp, "model", "inspect", "junk.onnx")

	// cut to a file = cut in memory, byte for byte.
	r = mustCode(t, exitOK, tmp, "model", "cut", e2eModel, "--layer", "fc7", "-o", "cut7.onnx")
	if !strings.Contains(r.stdout, "fc7") || !strings.Contains(r.stdout, "64-d") {
		t.Errorf("model cut: %s", r)
	}
	cut, err := os.ReadFile(filepath.Join(tmp, "cut7.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := extract.LoadModel(context.Background(), e2eModel, "fc7", extract.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes, cut) {
		t.Errorf("model cut wrote %d bytes that differ from the in-memory cut (%d bytes)", len(cut), len(m.Bytes))
	}
	mustCode(t, exitOK, tmp, "model", "cut", e2eModel, "--layer", "fc6", "-o", "cut6.onnx")
	mustCode(t, exitUsage, tmp, "model", "cut", e2eModel, "--layer", "fc7")
	r = mustCode(t, exitFatal, tmp, "model", "cut", e2eModel, "--layer", "fc99", "-o", "bad.onnx")
	if _, err := os.Stat(filepath.Join(tmp, "bad.onnx")); err == nil {
		t.Errorf("a failed cut left bad.onnx")
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, ".imgvec-*")); len(left) > 0 {
		t.Errorf("a failed cut left %v", left)
	}

	// The model id hashes the bytes that run: the uncut model (cut in
	// memory) and the cut file give the same id, and the same rows.
	src := filepath.Join(tmp, "src")
	for _, k := range []string{"small.jpg", "gray.jpg", "rgba.png"} {
		b, _ := os.ReadFile(filepath.Join(e2eImages, k))
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, k), b, 0o644)
	}
	sync := func(db, model string, extra ...string) runLine {
		t.Helper()
		return parseRunLine(t, mustCode(t, exitOK, tmp, append([]string{"sync", "-q", "--source", "src",
			"--sink", "sqlite://" + filepath.Join(tmp, db), "--model", model}, extra...)...))
	}
	sync("uncut.db", e2eModel)
	sync("cut.db", "cut7.onnx")
	idUncut := status(t, tmp, "sqlite://"+filepath.Join(tmp, "uncut.db")).Models[0].ModelID
	idCut := status(t, tmp, "sqlite://"+filepath.Join(tmp, "cut.db")).Models[0].ModelID
	t.Logf("model id: uncut %s, cut file %s", idUncut, idCut)
	if idUncut != idCut {
		t.Errorf("uncut model id %s != cut file model id %s", idUncut, idCut)
	}
	sameState(t, readDB(t, filepath.Join(tmp, "uncut.db")), readDB(t, filepath.Join(tmp, "cut.db")))
	// So the cut file finds nothing to do in the uncut model's database.
	if rl := sync("uncut.db", "cut7.onnx"); rl.Unchanged != 3 || rl.Written != 0 {
		t.Errorf("cut file on the uncut model's rows: %+v, want all unchanged", rl)
	}
	// Another layer is another model id: the rows are stale and re-embedded.
	if rl := sync("uncut.db", "cut6.onnx", "--layer", "fc6"); rl.Extracted != 3 || rl.Unchanged != 0 {
		t.Errorf("fc6 over fc7 rows: %+v, want 3 re-extracted", rl)
	}
	sj := status(t, tmp, "sqlite://"+filepath.Join(tmp, "uncut.db"))
	if len(sj.Models) != 1 || sj.Models[0].ModelID == idUncut || sj.Models[0].Layer != "fc6" || sj.Models[0].Rows != 3 {
		t.Errorf("after the fc6 sync: %+v", sj.Models)
	}
	// Normalisation is part of the id.
	if rl := sync("cut.db", "cut7.onnx", "--no-normalize"); rl.Extracted != 3 {
		t.Errorf("--no-normalize over normalised rows: %+v, want 3 re-extracted", rl)
	}

	// model list: the presets, none cached in the test's empty cache.
	r = mustCode(t, exitOK, tmp, "model", "list")
	for _, want := range []string{"PRESET", "vgg19-fc7", "vgg19-fc6", "resnet50-avgpool"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("model list does not show %s\n%s", want, r)
		}
	}
	if !regexp.MustCompile(`(?m)^vgg19-fc7\s+fc7\s+4096\s+false`).MatchString(r.stdout) {
		t.Errorf("model list: vgg19-fc7 should be 4096-d and not cached\n%s", r.stdout)
	}
}

// TestE2EModelFetch fetches the tiny model from a local HTTP server.
func TestE2EModelFetch(t *testing.T) {
	needBinaryNoORT(t)
	tmp := t.TempDir()
	model, err := os.ReadFile(e2eModel)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(model)
	hexsum := hex.EncodeToString(sum[:])
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Write(model)
	}))
	defer srv.Close()
	url := srv.URL + "/vgg19-tiny.onnx"
	cache := filepath.Join(tmp, "cache")

	r := mustCode(t, exitFatal, tmp, "model", "fetch", url, "--cache-dir", cache)
	if !strings.Contains(r.stderr, "--sha256") {
		t.Errorf("fetch without a sha256: %s", r)
	}
	r = mustCode(t, exitFatal, tmp, "model", "fetch", url, "--cache-dir", cache, "--sha256", strings.Repeat("ab", 32))
	if !strings.Contains(strings.ToLower(r.stderr), "sha256") {
		t.Errorf("fetch with a wrong sha256: %s", r)
	}
	r = mustCode(t, exitOK, tmp, "model", "fetch", url, "--cache-dir", cache, "--sha256", hexsum)
	m := regexp.MustCompile(`(?m)^cut at fc7 \(64-d\): (.+)$`).FindStringSubmatch(r.stdout)
	if !strings.HasPrefix(r.stdout, "downloaded") || m == nil {
		t.Fatalf("fetch: %s", r)
	}
	cut, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	mustCode(t, exitOK, tmp, "model", "cut", e2eModel, "-o", "cut7.onnx")
	if want, _ := os.ReadFile(filepath.Join(tmp, "cut7.onnx")); !bytes.Equal(cut, want) {
		t.Errorf("fetched and cut model differs from `model cut`")
	}
	before := hits
	r = mustCode(t, exitOK, tmp, "model", "fetch", url, "--cache-dir", cache, "--sha256", hexsum)
	if !strings.HasPrefix(r.stdout, "cached") || hits != before {
		t.Errorf("second fetch: %d requests, output %s", hits-before, r.stdout)
	}
	r = mustCode(t, exitFatal, tmp, "model", "fetch", "no-such-preset", "--cache-dir", cache)
	if !strings.Contains(r.stderr, "vgg19-fc7") {
		t.Errorf("fetch of an unknown preset should list the presets: %s", r)
	}
}

// TestE2EDeviceCUDA: this ONNX Runtime is CPU-only; --device cuda fails at
// start, with exit 1 and a message that says how to fix it.
func TestE2EDeviceCUDA(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	img := filepath.Join(e2eImages, "small.jpg")
	for _, args := range [][]string{
		{"embed", img, "--model", e2eModel, "--device", "cuda", "--out", "v.npy"},
		{"sync", "--source", e2eImages, "--sink", "sqlite://" + filepath.Join(tmp, "c.db"), "--model", e2eModel, "--device", "cuda:0"},
		{"search", "--image", img, "--sink", "sqlite://" + filepath.Join(tmp, "c.db"), "--model", e2eModel, "--device", "cuda"},
	} {
		r := imgvec(t, tmp, args...)
		if r.code != exitFatal {
			if r.code == exitOK {
				t.Logf("%s: --device cuda worked: this ONNX Runtime has CUDA", args[0])
				continue
			}
			t.Errorf("%s --device cuda: exit %d, want 1\n%s", args[0], r.code, r)
			continue
		}
		msg := strings.ToLower(r.stderr)
		for _, want := range []string{"cuda execution provider", "--device cpu", "imgvec_ort_lib", "onnxruntime-gpu"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s --device cuda: message does not mention %q:\n%s", args[0], want, r.stderr)
			}
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
			t.Errorf("%s --device cuda: want one error, got\n%s", args[0], r.stderr)
		}
	}
	for _, f := range []string{"v.npy", "c.db"} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err == nil {
			t.Errorf("--device cuda left %s behind", f)
		}
	}
	r := mustCode(t, exitUsage, tmp, "embed", img, "--model", e2eModel, "--device", "npu", "--out", "v.npy")
	if !strings.Contains(r.stderr, "cuda") {
		t.Errorf("--device npu: message should list the devices: %s", r)
	}
}

// TestE2EMultiDevice: --device cpu,cpu runs one session per device, and
// --upload uint8 sends pixels normalised in the graph; both store, bit for
// bit, the vectors of a plain one-device run (and the vector oracle's). A
// bad device list or upload mode is a usage error naming the flag, on the
// command line and in a config file.
func TestE2EMultiDevice(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	runs := map[string][]string{
		"plain":   {"--device", "cpu"},
		"two cpu": {"--device", "cpu,cpu"},
		"uint8":   {"--device", "cpu,cpu", "--upload", "uint8"},
	}
	states := map[string]dbState{}
	for name, flags := range runs {
		db := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-")+".db")
		mustCode(t, exitOK, tmp, append([]string{"sync", "-q", "--source", e2eImages, "--exclude", "bad/**", "--sink", "sqlite://" + db,
			"--model", e2eModel, "--batch", "2"}, flags...)...)
		states[name] = readDB(t, db)
	}
	plain := states["plain"]
	if len(plain.Items) < 8 {
		t.Fatalf("%d rows", len(plain.Items))
	}
	for name, st := range states {
		if len(st.Items) != len(plain.Items) {
			t.Errorf("%s: %d rows, want %d", name, len(st.Items), len(plain.Items))
		}
		for id, it := range st.Items {
			if want, ok := plain.Items[id]; !ok || !slices.Equal(want.Vector, it.Vector) || want.ModelID != it.ModelID {
				t.Errorf("%s: %s: the stored vector or model id differs from a plain run's", name, it.Key)
			}
		}
		var model string
		for _, it := range st.Items {
			model = it.ModelID
		}
		checkOracleSQLite(t, st, e2eImages, model)
	}

	for _, bad := range [][]string{
		{"--device", "cuda:0,cuda:0"}, {"--device", "cpu,cuda:0"}, {"--device", "cuda:256"}, {"--device", "cpu,"},
		{"--upload", "int8"},
	} {
		r := mustCode(t, exitUsage, tmp, append([]string{"embed", filepath.Join(e2eImages, "small.jpg"), "--model", e2eModel, "--out", "v.npy"}, bad...)...)
		if !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%s %s: the message does not name %s: %s", bad[0], bad[1], bad[0], r)
		}
	}
	cfg := filepath.Join(tmp, "imgvec.yaml")
	if err := os.WriteFile(cfg, []byte("jobs:\n  - name: a\n    source: "+e2eImages+"\n    device: cuda:1,cuda:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustCode(t, exitUsage, tmp, "config", "check", "--config", cfg)
	if !strings.Contains(r.stdout+r.stderr, "jobs[0].device") || !strings.Contains(r.stdout+r.stderr, "listed twice") {
		t.Errorf("config check of a duplicate device: %s", r)
	}
}

// TestE2EMigrateStatusDoesNotCreate: only `migrate up` creates a SQLite
// database; status and dry runs of a missing file report it as absent.
func TestE2EMigrateStatusDoesNotCreate(t *testing.T) {
	needBinaryNoORT(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "absent.db")
	for _, args := range [][]string{{"migrate", "status"}, {"migrate", "up", "--dry-run"}, {"migrate", "down"}} {
		r := mustCode(t, 0, dir, append(args, "--sink", "sqlite://"+db)...)
		if !strings.Contains(r.stdout, "does not exist yet") {
			t.Errorf("%v: %s", args, r)
		}
		if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created the database file (%v)", args, err)
		}
	}
	mustCode(t, 0, dir, "migrate", "up", "--sink", "sqlite://"+db)
	if r := mustCode(t, 0, dir, "migrate", "status", "--sink", "sqlite://"+db); !strings.Contains(r.stdout, "applied") {
		t.Errorf("status after up: %s", r)
	}
}

// checkInvalidKeyName syncs a folder of good images plus an image whose
// file name holds byte 0xff into sinkURI. On every sink: exit 3, the good
// images stored, the odd name one invalid_key ledger entry under its
// escaped key, and the next sync finds it a known failure (not read again,
// not deleted) and exits 3 again.
func checkInvalidKeyName(t *testing.T, sinkURI string) {
	t.Helper()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	good := goodImages(t)
	for _, k := range good {
		copyFile(t, filepath.Join(e2eImages, k), filepath.Join(src, k))
	}
	copyFile(t, filepath.Join(e2eImages, "landscape.jpg"), filepath.Join(src, "odd\xffname.jpg"))
	sync := []string{"sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel}

	r := mustCode(t, exitItemFailures, tmp, sync...)
	if first := parseRunLine(t, r); first.Outcome != "partial" || first.Written != int64(len(good)) || first.Failed != 1 {
		t.Fatalf("first sync: %+v\n%s", first, r)
	}
	st := status(t, tmp, sinkURI)
	if st.Failures != 1 || st.ByClass[string(schema.FailInvalidKey)] != 1 || len(st.Models) != 1 || st.Models[0].Rows != int64(len(good)) {
		t.Errorf("status after the first sync: %+v", st)
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI)
	if !strings.Contains(r.stdout, `invalid_key`) || !strings.Contains(r.stdout, `odd\xffname.jpg`) || !utf8.ValidString(r.stdout) {
		t.Errorf("status does not show the invalid_key entry under its escaped key:\n%s", r)
	}

	r = mustCode(t, exitItemFailures, tmp, sync...)
	if again := parseRunLine(t, r); again.Unchanged != int64(len(good)) || again.Written != 0 || again.Failed != 1 || again.Deleted != 0 {
		t.Errorf("second sync: %+v\n%s", again, r)
	}
	var recent struct {
		Recent []struct {
			Key, Class string
			Attempts   int
		}
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &recent); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	if len(recent.Recent) != 1 || recent.Recent[0].Key != `odd\xffname.jpg` || recent.Recent[0].Class != string(schema.FailInvalidKey) || recent.Recent[0].Attempts != 1 {
		t.Errorf("ledger after the second sync (attempts 1: not tried again): %+v", recent.Recent)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestE2EInvalidKeyNameSQLite: a file name that is not valid UTF-8 is an
// invalid_key failure of that item only.
func TestE2EInvalidKeyNameSQLite(t *testing.T) {
	needBinary(t)
	checkInvalidKeyName(t, "sqlite://"+filepath.Join(t.TempDir(), "imgvec.db"))
}

// TestE2EControlCharactersEscaped: file and folder names with terminal
// escape sequences are printed escaped by the human-readable outputs (run
// summary, dry-run plan, status, search) and exactly by the JSON ones.
func TestE2EControlCharactersEscaped(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "photos\x1b[31m")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	shown, hidden := "esc\x1b]0;pwned\x07.jpg", "clear\x1b[2J\u009b.png"
	copyFile(t, filepath.Join(e2eImages, "landscape.jpg"), filepath.Join(src, shown))
	copyFile(t, filepath.Join(e2eImages, "small.jpg"), filepath.Join(src, "small.jpg"))
	if err := os.WriteFile(filepath.Join(src, hidden), nil, 0o644); err != nil { // empty: a ledger entry
		t.Fatal(err)
	}
	sinkURI := "sqlite://" + filepath.Join(tmp, "imgvec.db")
	sync := []string{"sync", "--source", src, "--sink", sinkURI, "--model", e2eModel}
	raw := func(name string, r result) {
		t.Helper()
		if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\u009b") {
			t.Errorf("%s printed a raw control character:\n%q\n%q", name, r.stdout, r.stderr)
		}
	}

	r := mustCode(t, exitItemFailures, tmp, sync...)
	raw("sync", r)
	// An error that names a path: the final "imgvec: …" line escapes it.
	r = mustCode(t, exitFatal, tmp, "sync", "--source", filepath.Join(tmp, "gone\x1b[2J"), "--sink", sinkURI, "--model", e2eModel)
	raw("sync of a missing folder", r)
	r = mustCode(t, exitOK, tmp, append(sync, "--dry-run")...)
	raw("sync --dry-run", r)
	if !strings.Contains(r.stdout, `photos\x1b[31m`) {
		t.Errorf("dry-run plan does not name the source escaped:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI)
	raw("status", r)
	if !strings.Contains(r.stdout, `clear\x1b[2J\u009b.png`) || !strings.Contains(r.stdout, `photos\x1b[31m`) {
		t.Errorf("status does not show the names escaped:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "search", "--sink", sinkURI, "--model", e2eModel, "--image", filepath.Join(src, "small.jpg"), "-k", "2")
	raw("search", r)
	if !strings.Contains(r.stdout, `esc\x1b]0;pwned\x07.jpg`) {
		t.Errorf("search does not show the key escaped:\n%s", r)
	}

	// JSON keeps the exact strings.
	hits := search(t, tmp, "--sink", sinkURI, "--model", e2eModel, "--image", filepath.Join(src, "small.jpg"), "-k", "2")
	if len(hits) != 2 || (hits[0].Key != shown && hits[1].Key != shown) {
		t.Errorf("search --json: %+v, want the key %q exactly", hits, shown)
	}
	r = mustCode(t, exitOK, tmp, "status", "--sink", sinkURI, "--json")
	if !strings.Contains(r.stdout, `"clear\u001b[2J`) {
		t.Errorf("status --json does not hold the exact key:\n%s", r.stdout)
	}
}

// TestE2ESinkNameErrors: a bad table or collection name is a usage error
// (exit 2) that names the parameter; status never creates a database.
func TestE2ESinkNameErrors(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	for _, tc := range []struct{ sink, want string }{
		{"postgres://u@127.0.0.1:1/db?table=Bad-Name", "table"},
		{"postgres://u@127.0.0.1:1/db?table=", "table"},
		{"postgres://u@127.0.0.1:1/db?schema=1x", "schema"},
		{"milvus://127.0.0.1:1?collection=bad-name", "collection="},
		{"milvus://127.0.0.1:1?collection=", "collection="},
	} {
		r := mustCode(t, exitUsage, tmp, "status", "--sink", tc.sink)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("status --sink %s: the error does not name %s:\n%s", tc.sink, tc.want, r)
		}
	}
	db := filepath.Join(tmp, "none.db")
	r := mustCode(t, exitFatal, tmp, "status", "--sink", "sqlite://"+db)
	if !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("status of a missing database:\n%s", r)
	}
	r = mustCode(t, exitFatal, tmp, "search", "--sink", "sqlite://"+db, "--id", "00")
	if !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("search of a missing database:\n%s", r)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("status and search created %v", ents)
	}
}
