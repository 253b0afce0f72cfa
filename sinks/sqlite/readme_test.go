package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/schema/testenv"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

// The README's SQLite section lies between these markers; its ```sql blocks
// are what the tests run.
const (
	readmeSQL   = "../../README.md"
	sectionFrom = "<!-- sqlite-sql:begin -->"
	sectionTo   = "<!-- sqlite-sql:end -->"
)

// sqlBlocks returns the ```sql blocks of the README's SQLite section, verbatim.
func sqlBlocks(t *testing.T) []string {
	t.Helper()
	blocks, found := sinktest.SQLBlocks(t, readmeSQL, sectionFrom, sectionTo)
	if !found {
		t.Fatalf("%s has no %s section", readmeSQL, sectionFrom)
	}
	return blocks
}

// readmeQueries names the README's blocks in order.
var readmeQueries = []string{"models", "find by key", "similar to id", "nearest to vector", "similar to id in album"}

type readmeFixture struct {
	path   string
	model  schema.ModelIdentity
	recs   []schema.Record
	params map[string]string // :name -> value
}

func populate(t *testing.T) readmeFixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readme.db")
	s, err := New(Scheme+path, WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	m := testModel(8)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	const source = "file:///photos"
	albums := []string{"holidays", "family", "work"}
	var recs []schema.Record
	for i := range 40 {
		key := fmt.Sprintf("%s/img%02d.jpg", albums[i%3], i)
		v := make([]float32, 8)
		for j := range v {
			v[j] = float32(math.Sin(float64(i*8+j)*1.7)) + 0.05
		}
		recs = append(recs, schema.Record{
			ID: schema.ItemID(source, key), Source: source, Key: key,
			Fingerprint: schema.Fingerprint{Size: int64(i), MTime: time.Unix(int64(1e9+i), 0), SHA256: fmt.Sprint(i)},
			ModelID:     m.ID(), Vector: v, ExtractedAt: time.Now(),
			Metadata: map[string]string{"album": albums[i%3]},
		})
	}
	if err := s.Write(ctx, connector.Batch{Upserts: recs}); err != nil {
		t.Fatal(err)
	}
	// Another model's rows (another dimension) must never show up.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := testModel(16)
	if err := s.Open(ctx, other); err != nil {
		t.Fatal(err)
	}
	var others []schema.Record
	for i := range 5 {
		key := fmt.Sprintf("holidays/other%d.jpg", i)
		v := make([]float32, 16)
		v[i] = 1
		others = append(others, schema.Record{ID: schema.ItemID(source, key), Source: source, Key: key,
			ModelID: other.ID(), Vector: v, ExtractedAt: time.Now(), Metadata: map[string]string{"album": "holidays"}})
	}
	if err := s.Write(ctx, connector.Batch{Upserts: others}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	q := make([]string, 8)
	for j := range q {
		q[j] = strconv.FormatFloat(math.Cos(float64(j)), 'g', -1, 32)
	}
	return readmeFixture{
		path: path, model: m, recs: recs,
		params: map[string]string{
			"id":      recs[7].ID,
			"model":   m.ID(),
			"vector":  "[" + strings.Join(q, ", ") + "]",
			"album":   "holidays",
			"pattern": "%img1_.jpg",
		},
	}
}

func cosineDistance(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return 1 - dot/math.Sqrt(na*nb)
}

type result struct {
	first    []string  // first column of each row
	distance []float64 // last column of each row, when numeric
}

// expected computes each README query's answer in Go.
func (f readmeFixture) expected(name string) []string {
	nearest := func(q []float32, keep func(schema.Record) bool) []string {
		var rs []schema.Record
		for _, r := range f.recs {
			if keep(r) {
				rs = append(rs, r)
			}
		}
		sort.Slice(rs, func(i, j int) bool { return cosineDistance(rs[i].Vector, q) < cosineDistance(rs[j].Vector, q) })
		var keys []string
		for _, r := range rs[:min(10, len(rs))] {
			keys = append(keys, r.Key)
		}
		return keys
	}
	self := f.recs[7]
	switch name {
	case "models":
		return []string{f.model.ID(), testModel(16).ID()}
	case "find by key":
		var ids []string
		for _, r := range f.recs {
			if regexp.MustCompile(`img1.\.jpg$`).MatchString(r.Key) { // LIKE '%img1_.jpg'
				ids = append(ids, r.Key)
			}
		}
		sort.Strings(ids)
		for i, k := range ids {
			ids[i] = schema.ItemID("file:///photos", k)
		}
		return ids
	case "similar to id":
		return nearest(self.Vector, func(r schema.Record) bool { return r.ID != self.ID })
	case "nearest to vector":
		q := make([]float32, 8)
		for j := range q {
			q[j] = float32(math.Cos(float64(j)))
		}
		return nearest(q, func(schema.Record) bool { return true })
	case "similar to id in album":
		return nearest(self.Vector, func(r schema.Record) bool { return r.ID != self.ID && r.Metadata["album"] == "holidays" })
	}
	panic(name)
}

var paramRE = regexp.MustCompile(`:([a-z]+)`)

func (f readmeFixture) checkResult(t *testing.T, name string, got result) {
	t.Helper()
	want := f.expected(name)
	if strings.Join(got.first, ",") != strings.Join(want, ",") {
		t.Errorf("%s: first column = %v\nwant %v", name, got.first, want)
	}
	if !strings.HasPrefix(name, "similar") && name != "nearest to vector" {
		return
	}
	if len(got.distance) != len(got.first) {
		t.Fatalf("%s: %d distances for %d rows", name, len(got.distance), len(got.first))
	}
	for i := 1; i < len(got.distance); i++ {
		if got.distance[i] < got.distance[i-1] {
			t.Errorf("%s: distances not ascending: %v", name, got.distance)
		}
	}
}

// TestReadmeSQL runs exactly the ```sql blocks of the README's SQLite section through the
// Go driver against a populated database.
func TestReadmeSQL(t *testing.T) {
	blocks := sqlBlocks(t)
	if len(blocks) != len(readmeQueries) {
		t.Fatalf("%s has %d sql blocks, the test knows %d (%v)", readmeSQL, len(blocks), len(readmeQueries), readmeQueries)
	}
	f := populate(t)
	db, err := sql.Open("sqlite3", "file:"+f.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, q := range blocks {
		name := readmeQueries[i]
		var args []any
		for _, m := range paramRE.FindAllStringSubmatch(q, -1) {
			v, ok := f.params[m[1]]
			if !ok {
				t.Fatalf("%s: unknown parameter :%s", name, m[1])
			}
			args = append(args, sql.Named(m[1], v))
		}
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, q)
		}
		cols, _ := rows.Columns()
		var res result
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for j := range vals {
				ptrs[j] = &vals[j]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			res.first = append(res.first, fmt.Sprint(vals[0]))
			if d, ok := vals[len(vals)-1].(float64); ok {
				res.distance = append(res.distance, d)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows.Close()
		f.checkResult(t, name, res)
	}
}

// findVec0 returns the loadable sqlite-vec extension for the sqlite3 shell.
func findVec0() (string, bool) {
	if p := os.Getenv("IMGVEC_VEC0_SO"); p != "" {
		return p, true
	}
	root, _ := filepath.Abs("../..")
	candidates := []string{filepath.Join(root, ".cache/sqlite-vec/node_modules/sqlite-vec-linux-x64/vec0.so")}
	if m, _ := filepath.Glob(filepath.Join(root, ".cache/venv/lib/python3*/site-packages/sqlite_vec/vec0.so")); len(m) > 0 {
		candidates = append(candidates, m...)
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, true
		}
	}
	if out, err := exec.Command("python3", "-c", "import sqlite_vec; print(sqlite_vec.loadable_path())").Output(); err == nil {
		p := strings.TrimSpace(string(out)) + ".so"
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// TestReadmeSQLShell runs the same blocks through the real sqlite3 shell
// with the loadable extension, set up as the README tells users.
func TestReadmeSQLShell(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		testenv.Skip(t, "no sqlite3 shell: apt-get install sqlite3")
	}
	vec0, ok := findVec0()
	if !ok {
		testenv.Skip(t, "no loadable sqlite-vec (vec0.so): run `npm install --prefix .cache/sqlite-vec sqlite-vec-linux-x64@0.1.6` "+
			"in the repository root, or `pip install sqlite-vec==0.1.6`, or set IMGVEC_VEC0_SO=/path/to/vec0.so")
	}
	blocks := sqlBlocks(t)
	if len(blocks) != len(readmeQueries) {
		t.Fatalf("%s has %d sql blocks, want %d", readmeSQL, len(blocks), len(readmeQueries))
	}
	f := populate(t)
	for i, q := range blocks {
		name := readmeQueries[i]
		var script strings.Builder
		fmt.Fprintf(&script, ".bail on\n.load %s\n.mode list\n.separator |\n.headers off\n", strings.TrimSuffix(vec0, ".so"))
		for _, m := range paramRE.FindAllStringSubmatch(q, -1) {
			fmt.Fprintf(&script, ".param set :%s \"'%s'\"\n", m[1], f.params[m[1]])
		}
		script.WriteString(q)
		cmd := exec.Command(shell, "-batch", f.path)
		cmd.Stdin = strings.NewReader(script.String())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: sqlite3: %v\n%s\nscript:\n%s", name, err, out, script.String())
		}
		var res result
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" {
				continue
			}
			cols := strings.Split(line, "|")
			res.first = append(res.first, cols[0])
			if d, err := strconv.ParseFloat(cols[len(cols)-1], 64); err == nil {
				res.distance = append(res.distance, d)
			}
		}
		f.checkResult(t, name, res)
	}
}
