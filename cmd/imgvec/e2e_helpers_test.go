package main

// Helpers of the end-to-end tests (e2e_*_test.go): they build the imgvec
// binary once in TestMain and run it as a user would, in temporary
// directories, then look at its exit code, its output and the files and
// databases it wrote.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"

	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/schema/testenv"
)

var (
	e2eBin      string // the imgvec binary built by TestMain ("" if the build failed)
	e2eBuildErr error
	e2eORTLib   string // ONNX Runtime library handed to the binary
	e2eORTErr   error
	e2eModel    string // absolute path of testdata/models/vgg19-tiny.onnx
	e2eImages   string // absolute path of testdata/images
	e2eHome     string // HOME / cache dir of the binary: nothing of the user's is touched
)

const e2eDim = 64 // fc7 of the tiny model

func TestMain(m *testing.M) {
	os.Exit(e2eMain(m))
}

func e2eMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "imgvec-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	e2eHome = filepath.Join(tmp, "home")
	os.MkdirAll(e2eHome, 0o755)
	if wd, err := os.Getwd(); err == nil {
		root := filepath.Join(wd, "..", "..")
		e2eModel = filepath.Join(root, "testdata", "models", "vgg19-tiny.onnx")
		e2eImages = filepath.Join(root, "testdata", "images")
	}
	// LibraryPath walks up from the working directory (cmd/imgvec) to the
	// repository's .cache; the binary runs elsewhere, so hand it the path.
	e2eORTLib, e2eORTErr = extract.LibraryPath()

	flag.Parse()
	if !testing.Short() { // with -short every end-to-end test skips
		e2eBin, e2eBuildErr = buildBinary(tmp)
	}
	code := m.Run()
	if genRoot != "" {
		os.RemoveAll(genRoot)
	}
	return code
}

// buildBinary builds imgvec into dir.
func buildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "imgvec")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// needBinary fails the test if the binary did not build and skips it
// (fails under CI=true) if ONNX Runtime is missing.
func needBinary(t *testing.T) {
	t.Helper()
	needBinaryNoORT(t)
	if e2eORTErr != nil {
		testenv.Skip(t, "ONNX Runtime not installed (run `make setup`): %v", e2eORTErr)
	}
}

// needBinaryNoORT is needBinary for commands that never load ONNX Runtime
// (migrate, status, model inspect/cut/list/fetch).
func needBinaryNoORT(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (runs the imgvec binary) skipped with -short")
	}
	if e2eBuildErr != nil {
		t.Fatal(e2eBuildErr)
	}
	if _, err := os.Stat(e2eModel); err != nil {
		t.Fatalf("tiny model: %v", err)
	}
}

// result is what one run of the binary did.
type result struct {
	code   int
	stdout string
	stderr string
	wall   time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.wall.Round(time.Millisecond), r.stdout, r.stderr)
}

// e2eCmd prepares the binary with args, run in dir with the test's
// environment except imgvec's own settings: its own HOME and cache (so
// nothing of the user's is read or written) and the ONNX Runtime library.
func e2eCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(e2eBin, args...)
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IMGVEC_") || k == "HOME" || k == "XDG_CACHE_HOME" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env,
		"HOME="+e2eHome,
		"XDG_CACHE_HOME="+filepath.Join(e2eHome, ".cache"),
		"IMGVEC_CACHE_DIR="+filepath.Join(e2eHome, "imgvec-cache"),
		"IMGVEC_ORT_LIB="+e2eORTLib,
	)
	return cmd
}

// imgvec runs the binary to completion (at most two minutes).
func imgvec(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return imgvecEnv(t, dir, nil, args...)
}

// imgvecEnv is imgvec with extra environment variables (KEY=VALUE).
func imgvecEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := e2eCmd(dir, args...)
	cmd.Env = append(cmd.Env, env...)
	return runE2E(t, cmd)
}

// runE2E runs cmd, the binary prepared by e2eCmd, to completion (at most
// two minutes).
func runE2E(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	args := cmd.Args[1:]
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start imgvec %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("imgvec %v: still running after 2 minutes\n%s\n%s", args, stdout.String(), stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("imgvec %v: %v", args, err)
	}
	return r
}

// mustCode runs imgvec and fails unless it exits with want.
func mustCode(t *testing.T, want int, dir string, args ...string) result {
	t.Helper()
	r := imgvec(t, dir, args...)
	if r.code != want {
		t.Fatalf("imgvec %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, want, r)
	}
	return r
}

// runLine is the summary a sync or backfill prints on stderr.
type runLine struct {
	Kind, Source, Shard, Outcome                                            string
	Listed, Written, Extracted, Reused, Unchanged, Failed, Skipped, Deleted int64
}

var runLineRE = regexp.MustCompile(`(?m)^(sync|backfill) (\S+)(?: shard (\d+/\d+))?: (\w+) in \S+ — listed (\d+), written (\d+) \(extracted (\d+), reused (\d+)\), unchanged (\d+), failed (\d+), skipped (\d+), deleted (\d+)$`)

// schemaVersion reads "schema version V of LATEST" from `migrate status`
// (LATEST ≥ 1), so that tests need no change when a migration is added.
func schemaVersion(t *testing.T, r result) (v, latest int) {
	t.Helper()
	m := regexp.MustCompile(`schema version (\d+) of ([1-9]\d*)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no schema version in migrate status:\n%s", r)
	}
	v, _ = strconv.Atoi(m[1])
	latest, _ = strconv.Atoi(m[2])
	return v, latest
}

// parseRunLine finds the (last) run summary in r's stderr.
func parseRunLine(t *testing.T, r result) runLine {
	t.Helper()
	all := runLineRE.FindAllStringSubmatch(r.stderr, -1)
	if len(all) == 0 {
		t.Fatalf("no run summary on stderr\n%s", r)
	}
	m := all[len(all)-1]
	n := func(i int) int64 {
		v, _ := strconv.ParseInt(m[i], 10, 64)
		return v
	}
	return runLine{Kind: m[1], Source: m[2], Shard: m[3], Outcome: m[4], Listed: n(5), Written: n(6), Extracted: n(7),
		Reused: n(8), Unchanged: n(9), Failed: n(10), Skipped: n(11), Deleted: n(12)}
}

// copyTree copies the regular files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// isImageName is the folder source's default extension filter.
func isImageName(name string) bool {
	switch strings.ToLower(strings.TrimPrefix(filepath.Ext(name), ".")) {
	case "jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff":
		return !strings.HasPrefix(filepath.Base(name), ".")
	}
	return false
}

// badClasses are the failure classes of the committed bad images (those
// the default extension filter lists; fake.heic and image.svg are not).
var badClasses = map[string]schema.FailureClass{
	"bad/bomb.png":      schema.FailTooLarge,
	"bad/empty.jpg":     schema.FailEmpty,
	"bad/lying.gif":     schema.FailDecode,
	"bad/lying.png":     schema.FailDecode,
	"bad/random.jpg":    schema.FailUnsupportedFormat,
	"bad/text.png":      schema.FailUnsupportedFormat,
	"bad/truncated.jpg": schema.FailTruncated,
	"bad/truncated.png": schema.FailTruncated,
}

// goodImages lists the committed good images (keys relative to
// testdata/images) that the default extension filter lists.
func goodImages(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e2eImages)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range ents {
		if e.Type().IsRegular() && isImageName(e.Name()) {
			keys = append(keys, e.Name())
		}
	}
	if len(keys) < 10 {
		t.Fatalf("only %d good test images in %s", len(keys), e2eImages)
	}
	return keys
}

// ---- .npy ----

// readNPY parses a version 1.x little-endian float32 C-order .npy matrix.
func readNPY(t *testing.T, path string) (rows, cols int, data []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		t.Fatalf("%s: not a .npy file", path)
	}
	if b[6] != 1 {
		t.Fatalf("%s: .npy version %d.%d, want 1.x", path, b[6], b[7])
	}
	hlen := int(binary.LittleEndian.Uint16(b[8:10]))
	if (10+hlen)%64 != 0 {
		t.Errorf("%s: data offset %d is not a multiple of 64", path, 10+hlen)
	}
	header := string(b[10 : 10+hlen])
	if !strings.HasSuffix(header, "\n") {
		t.Errorf("%s: header does not end in a newline: %q", path, header)
	}
	m := regexp.MustCompile(`^\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \((\d+), (\d+)\), \} *\n$`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("%s: unexpected header %q", path, header)
	}
	if m[1] != "<f4" || m[2] != "False" {
		t.Fatalf("%s: descr %s fortran_order %s, want <f4 False", path, m[1], m[2])
	}
	rows, _ = strconv.Atoi(m[3])
	cols, _ = strconv.Atoi(m[4])
	body := b[10+hlen:]
	if len(body) != rows*cols*4 {
		t.Fatalf("%s: %d data bytes, want %d×%d×4 = %d", path, len(body), rows, cols, rows*cols*4)
	}
	data = make([]float32, rows*cols)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return rows, cols, data
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func allFinite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// ---- SQLite ----

// openDB opens an imgvec database read-only (so that a hot WAL left by a
// killed process is left for imgvec to recover).
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type dbItem struct {
	ID, Source, Key, SHA256, ModelID, Layer string
	Size                                    int64
	MTimeNS                                 sql.NullInt64
	Dim                                     int
	Vector                                  []float32
}

type dbFailure struct {
	ID, Source, Key, SHA256, ModelID, Stage, Class, Reason string
	Size                                                   int64
	MTimeNS                                                sql.NullInt64
	Attempts                                               int
}

type dbRun struct {
	ID, Kind, Source, ModelID, Outcome, Error, StartedAt           string
	EndedAt                                                        sql.NullString
	Listed, Written, Extracted, Reused, Unchanged, Failed, Deleted int64
}

type dbState struct {
	Items    map[string]dbItem
	Failures map[string]dbFailure
	Runs     []dbRun // by started_at
}

func readDB(t *testing.T, path string) dbState {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	st := dbState{Items: map[string]dbItem{}, Failures: map[string]dbFailure{}}
	rows, err := db.Query(`SELECT id, source, key, size, mtime_ns, sha256, model_id, layer, dim, vector FROM items`)
	if err != nil {
		t.Fatalf("query items of %s: %v", path, err)
	}
	for rows.Next() {
		var it dbItem
		var blob []byte
		if err := rows.Scan(&it.ID, &it.Source, &it.Key, &it.Size, &it.MTimeNS, &it.SHA256, &it.ModelID, &it.Layer, &it.Dim, &blob); err != nil {
			t.Fatal(err)
		}
		if len(blob)%4 != 0 {
			t.Fatalf("item %s: vector of %d bytes", it.Key, len(blob))
		}
		it.Vector = make([]float32, len(blob)/4)
		for i := range it.Vector {
			it.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32(blob[4*i:]))
		}
		if _, dup := st.Items[it.ID]; dup {
			t.Errorf("duplicate item id %s", it.ID)
		}
		st.Items[it.ID] = it
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	rows, err = db.Query(`SELECT id, source, key, size, mtime_ns, sha256, model_id, stage, class, reason, attempts FROM failures`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f dbFailure
		if err := rows.Scan(&f.ID, &f.Source, &f.Key, &f.Size, &f.MTimeNS, &f.SHA256, &f.ModelID, &f.Stage, &f.Class, &f.Reason, &f.Attempts); err != nil {
			t.Fatal(err)
		}
		if _, dup := st.Failures[f.ID]; dup {
			t.Errorf("duplicate ledger id %s", f.ID)
		}
		st.Failures[f.ID] = f
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	rows, err = db.Query(`SELECT id, kind, source, model_id, outcome, error, started_at, ended_at, listed, written, extracted, reused, unchanged, failed, deleted FROM runs ORDER BY started_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r dbRun
		if err := rows.Scan(&r.ID, &r.Kind, &r.Source, &r.ModelID, &r.Outcome, &r.Error, &r.StartedAt, &r.EndedAt,
			&r.Listed, &r.Written, &r.Extracted, &r.Reused, &r.Unchanged, &r.Failed, &r.Deleted); err != nil {
			t.Fatal(err)
		}
		st.Runs = append(st.Runs, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// Keys are unique per source as well as ids.
	var dups int
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT source, key FROM items GROUP BY source, key HAVING count(*) > 1)`).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Errorf("%d (source, key) pairs with more than one row", dups)
	}
	var ic string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil {
		t.Fatal(err)
	}
	if ic != "ok" {
		t.Errorf("PRAGMA integrity_check: %s", ic)
	}
	return st
}

// itemByKey finds the row of key.
func (s dbState) itemByKey(key string) (dbItem, bool) {
	for _, it := range s.Items {
		if it.Key == key {
			return it, true
		}
	}
	return dbItem{}, false
}

// ---- the listed files and the invariant ----

// fileFP is what a file is now.
type fileFP struct {
	Size    int64
	MTimeNS int64
	SHA256  string
}

// listTree fingerprints the files the folder source lists under dir.
func listTree(t *testing.T, dir string) map[string]fileFP {
	t.Helper()
	out := map[string]fileFP{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !isImageName(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fileFP{Size: fi.Size(), MTimeNS: fi.ModTime().UnixNano(), SHA256: hex.EncodeToString(sum[:])}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkInvariant checks "Nothing lost" on st for the files of dir under
// modelID. complete: every listed file must be stored or in the ledger
// (after a finished run); otherwise only what is there must be right
// (after a kill). It returns the number of problems found.
func checkInvariant(t *testing.T, st dbState, dir, modelID string, complete bool) int {
	t.Helper()
	files := listTree(t, dir)
	source := "file://" + filepath.ToSlash(dir)
	bad := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for key, fp := range files {
		id := schema.ItemID(source, key)
		it, stored := st.Items[id]
		f, failed := st.Failures[id]
		switch {
		case stored && failed:
			errorf("%s: both a row and a ledger entry (%s)", key, f.Class)
		case !stored && !failed:
			if complete {
				errorf("%s: neither stored nor in the ledger", key)
			}
		case stored:
			if it.Key != key || it.Source != source {
				errorf("%s: row has source %q key %q", key, it.Source, it.Key)
			}
			if it.Size != fp.Size || !it.MTimeNS.Valid || it.MTimeNS.Int64 != fp.MTimeNS || it.SHA256 != fp.SHA256 {
				errorf("%s: row fingerprint (%d, %v, %.12s) != file (%d, %d, %.12s)", key, it.Size, it.MTimeNS.Int64, it.SHA256, fp.Size, fp.MTimeNS, fp.SHA256)
			}
			if it.ModelID != modelID {
				errorf("%s: row of model %s, want %s", key, it.ModelID, modelID)
			}
			if it.Dim != e2eDim || len(it.Vector) != e2eDim {
				errorf("%s: dim %d, vector of %d, want %d", key, it.Dim, len(it.Vector), e2eDim)
			}
			if !allFinite(it.Vector) {
				errorf("%s: vector not finite", key)
			} else if n := norm(it.Vector); math.Abs(n-1) > 1e-4 {
				errorf("%s: vector norm %v, want 1", key, n)
			}
		case failed:
			if f.Size != fp.Size || !f.MTimeNS.Valid || f.MTimeNS.Int64 != fp.MTimeNS {
				errorf("%s: ledger fingerprint (%d, %v) != file (%d, %d)", key, f.Size, f.MTimeNS.Int64, fp.Size, fp.MTimeNS)
			}
			if f.Class == "" || f.Stage == "" || f.Reason == "" || f.Attempts < 1 {
				errorf("%s: ledger entry without class/stage/reason/attempts: %+v", key, f)
			}
		}
	}
	for id, it := range st.Items {
		if _, ok := files[it.Key]; !ok || it.Source != source {
			errorf("row %s for %s %s that is not listed", id, it.Source, it.Key)
		}
		if schema.ItemID(it.Source, it.Key) != id {
			errorf("row %s: id is not ItemID(%s, %s)", id, it.Source, it.Key)
		}
	}
	for id, f := range st.Failures {
		if _, ok := files[f.Key]; !ok || f.Source != source {
			errorf("ledger entry %s for %s %s that is not listed", id, f.Source, f.Key)
		}
	}
	return bad
}

// sameState compares the items and ledgers of two databases of the same
// source: same ids, sha256s and vectors (within 1e-5), same ledger ids and
// classes.
func sameState(t *testing.T, want, got dbState) {
	t.Helper()
	if len(got.Items) != len(want.Items) {
		t.Errorf("%d rows, want %d", len(got.Items), len(want.Items))
	}
	for id, w := range want.Items {
		g, ok := got.Items[id]
		if !ok {
			t.Errorf("row %s (%s) missing", id, w.Key)
			continue
		}
		if g.SHA256 != w.SHA256 || g.ModelID != w.ModelID || len(g.Vector) != len(w.Vector) {
			t.Errorf("%s: sha256 %.12s model %s dim %d, want %.12s %s %d", w.Key, g.SHA256, g.ModelID, len(g.Vector), w.SHA256, w.ModelID, len(w.Vector))
			continue
		}
		for i := range w.Vector {
			if math.Abs(float64(g.Vector[i]-w.Vector[i])) > 1e-5 {
				t.Errorf("%s: vector[%d] = %v, want %v", w.Key, i, g.Vector[i], w.Vector[i])
				break
			}
		}
	}
	for id, g := range got.Items {
		if _, ok := want.Items[id]; !ok {
			t.Errorf("extra row %s (%s)", id, g.Key)
		}
	}
	if len(got.Failures) != len(want.Failures) {
		t.Errorf("%d ledger entries, want %d", len(got.Failures), len(want.Failures))
	}
	for id, w := range want.Failures {
		g, ok := got.Failures[id]
		if !ok {
			t.Errorf("ledger entry %s (%s) missing", id, w.Key)
		} else if g.Class != w.Class {
			t.Errorf("ledger %s: class %s, want %s", w.Key, g.Class, w.Class)
		}
	}
	for id, g := range got.Failures {
		if _, ok := want.Failures[id]; !ok {
			t.Errorf("extra ledger entry %s (%s, %s)", id, g.Key, g.Class)
		}
	}
}

// statusJSON is what `imgvec status --json` prints.
type statusJSON struct {
	Models []struct {
		ModelID string
		Layer   string
		Dim     int
		Rows    int64
	}
	Failures int64
	ByClass  map[string]int64
	Runs     []struct {
		Job, Shard, Kind, Outcome, ModelID                                      string
		Listed, Written, Extracted, Reused, Unchanged, Failed, Skipped, Deleted int64
	}
}

func status(t *testing.T, dir, sinkURI string) statusJSON {
	t.Helper()
	r := mustCode(t, 0, dir, "status", "--sink", sinkURI, "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	return st
}

// ---- the vector oracle ----

// oracleTolerance is how far a stored vector may be from a fresh embed of
// its file: the batch size and ONNX Runtime's accumulation order move unit
// vectors by far less (extract's golden test), a vector of another image
// by far more.
const oracleTolerance = 1e-5

// freshVectors caches what `imgvec embed` gave, by the identity flags it
// ran with and the sha256 of the file's bytes, so that tests over copies
// of one collection embed it once.
var freshVectors struct {
	sync.Mutex
	byFlags map[string]map[string][]float32
}

// checkVectorOracle checks that every stored vector (stored: key → vector,
// keys relative to the folder src) equals, within oracleTolerance, the
// vector a fresh `imgvec embed --model <tiny> FILES --out x.jsonl` gives for
// the file src/key as it is now. flags are the run's flags that change the
// computation (--no-normalize, --ignore-exif-orientation, --layer); batch
// size and threads do not, beyond float noise. It reports every key that
// differs.
func checkVectorOracle(t *testing.T, src string, stored map[string][]float32, flags ...string) {
	t.Helper()
	if len(stored) == 0 {
		t.Errorf("vector oracle: no stored rows to check")
		return
	}
	keys := make([]string, 0, len(stored))
	for k := range stored {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	shaOf := map[string]string{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(k)))
		if err != nil {
			t.Errorf("vector oracle: stored row %s: %v", k, err)
			continue
		}
		sum := sha256.Sum256(b)
		shaOf[k] = hex.EncodeToString(sum[:])
	}

	freshVectors.Lock()
	defer freshVectors.Unlock()
	if freshVectors.byFlags == nil {
		freshVectors.byFlags = map[string]map[string][]float32{}
	}
	flagsKey := strings.Join(flags, " ")
	fresh := freshVectors.byFlags[flagsKey]
	if fresh == nil {
		fresh = map[string][]float32{}
		freshVectors.byFlags[flagsKey] = fresh
	}
	var paths []string // one file of each content not embedded yet
	shaOfPath := map[string]string{}
	queued := map[string]bool{}
	for _, k := range keys {
		sha, ok := shaOf[k]
		if !ok || fresh[sha] != nil || queued[sha] {
			continue
		}
		queued[sha] = true
		p := filepath.Join(src, filepath.FromSlash(k))
		paths = append(paths, p)
		shaOfPath[p] = sha
	}
	// Chunks keep each command line well below the kernel's limit on
	// arguments (long ones are fine: extract.TestInitRuntimeLongCommandLine).
	for chunk := range slices.Chunk(paths, 1000) {
		tmp := t.TempDir()
		args := append(append([]string{"embed", "-q", "--model", e2eModel}, flags...), "--out", "fresh.jsonl")
		r := imgvec(t, tmp, append(args, chunk...)...)
		if r.code != exitOK && r.code != exitItemFailures {
			t.Fatalf("vector oracle: imgvec embed of %d files: %s", len(chunk), r)
		}
		b, err := os.ReadFile(filepath.Join(tmp, "fresh.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range parseJSONL(t, b) {
			if sha, ok := shaOfPath[row.Path]; ok {
				fresh[sha] = row.Vector
			} else {
				t.Fatalf("vector oracle: embed wrote a row for %q, not one of its arguments", row.Path)
			}
		}
	}

	var differ []string
	for _, k := range keys {
		sha, ok := shaOf[k]
		if !ok {
			continue
		}
		want, got := fresh[sha], stored[k]
		switch {
		case want == nil:
			differ = append(differ, k)
			t.Errorf("vector oracle: %s is stored, but a fresh embed of it fails", k)
		case len(got) != len(want):
			differ = append(differ, k)
			t.Errorf("vector oracle: %s: stored vector of %d dims, a fresh embed gives %d", k, len(got), len(want))
		default:
			var maxDiff float64
			for i := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			if maxDiff > oracleTolerance {
				differ = append(differ, k)
				if len(differ) <= 5 {
					t.Errorf("vector oracle: %s: max |stored - fresh embed| = %g > %g", k, maxDiff, oracleTolerance)
				}
			}
		}
	}
	if len(differ) > 0 {
		t.Errorf("vector oracle: %d of %d stored vectors differ from a fresh embed of their file: %s",
			len(differ), len(keys), strings.Join(differ, " "))
	}
}

// checkOracleSQLite runs the vector oracle on the rows of st (a SQLite
// database) of the folder src and modelID.
func checkOracleSQLite(t *testing.T, st dbState, src, modelID string, flags ...string) {
	t.Helper()
	source := "file://" + filepath.ToSlash(src)
	stored := map[string][]float32{}
	for _, it := range st.Items {
		if it.Source == source && it.ModelID == modelID {
			stored[it.Key] = it.Vector
		}
	}
	checkVectorOracle(t, src, stored, flags...)
}

// checkOraclePG runs the vector oracle on the rows of the PostgreSQL sink
// (table images of the sink's schema) of the folder src and modelID.
func checkOraclePG(t *testing.T, sinkURI, src, modelID string, flags ...string) {
	t.Helper()
	checkVectorOracle(t, src, pgStoredVectors(t, sinkURI, src, modelID), flags...)
}

// pgStoredVectors reads the vectors of the PostgreSQL sink's rows (table
// images of the sink's schema) of the folder src and modelID, by key.
func pgStoredVectors(t *testing.T, sinkURI, src, modelID string) map[string][]float32 {
	t.Helper()
	stored := map[string][]float32{}
	pgQuery(t, sinkURI, func(c *pgx.Conn, sch string) {
		ctx := context.Background()
		rows, err := c.Query(ctx, `SELECT key, embedding::real[] FROM `+pgx.Identifier{sch, "images"}.Sanitize()+
			` WHERE source = $1 AND model_id = $2`, "file://"+filepath.ToSlash(src), modelID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var v []float32
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			stored[k] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
	return stored
}
