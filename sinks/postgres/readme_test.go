package postgres

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

// The SQL users are shown lies between these markers in SQL.md (and, once
// pasted there, in the README); its ```sql blocks are what the test runs.
const (
	sqlDoc      = "SQL.md"
	readmeDoc   = "../../README.md"
	sectionFrom = "<!-- postgres-sql:begin -->"
	sectionTo   = "<!-- postgres-sql:end -->"
)

func sqlBlocks(t *testing.T, path string) ([]string, bool) {
	t.Helper()
	return sinktest.SQLBlocks(t, path, sectionFrom, sectionTo)
}

// psqlVar is psql's :'name' (the variable quoted as a literal).
var psqlVar = regexp.MustCompile(`:'([a-z_]+)'`)

// bind turns psql's :'name' variables into bind parameters, which is what
// psql's substitution amounts to.
func bind(sql string, vars map[string]string) (string, []any, error) {
	var args []any
	idx := map[string]int{}
	var missing error
	out := psqlVar.ReplaceAllStringFunc(sql, func(m string) string {
		name := psqlVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = fmt.Errorf("no value for :'%s'", name)
		}
		if _, seen := idx[name]; !seen {
			args = append(args, v)
			idx[name] = len(args)
		}
		return "$" + strconv.Itoa(idx[name]) + "::text"
	})
	return out, args, missing
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return 1 - dot/math.Sqrt(na*nb)
}

// TestReadmeSQL runs every SQL block of the section verbatim (psql
// variables bound as parameters) against a table of each storage, without
// and with the binary index, and checks the answers against ones computed
// here.
func TestReadmeSQL(t *testing.T) {
	for _, st := range []Storage{StorageVector, StorageHalfvec} {
		t.Run(string(st), func(t *testing.T) { testReadmeSQL(t, st) })
	}
}

func testReadmeSQL(t *testing.T, storage Storage) {
	dsn, sch := testSchema(t)
	ctx := context.Background()
	blocks, _ := sqlBlocks(t, sqlDoc)
	// Vectors as the table stores them, so that the answers computed here
	// are exact for halfvec too.
	stored := func(v []float32) []float32 {
		if storage == StorageHalfvec {
			for j := range v {
				v[j] = halfRound(v[j])
			}
		}
		return v
	}
	names := []string{"models", "find by key", "similar to id", "nearest to vector", "similar to id in album",
		"similar to id (function)", "nearest to vector (function)", "similar to id in album (function)",
		"nearest to vector (two-stage)"}
	if len(blocks) != len(names) {
		t.Fatalf("%s has %d sql blocks, the test knows %d", sqlDoc, len(blocks), len(names))
	}
	if readme, ok := sqlBlocks(t, readmeDoc); ok && fmt.Sprint(readme) != fmt.Sprint(blocks) {
		t.Errorf("the README's postgres-sql section differs from %s: copy it over", sqlDoc)
	}

	s, err := New(withParams(t, dsn, "schema", sch, "storage", string(storage)), WithAutoMigrate(migrations.AutoMigrateFresh))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
		v = stored(v)
		recs = append(recs, schema.Record{
			ID: schema.ItemID(source, key), Source: source, Key: key,
			Fingerprint: schema.Fingerprint{Size: int64(i), MTime: time.Unix(int64(1e9+i), 0), SHA256: fmt.Sprint(i)},
			ModelID:     m.ID(), Vector: v, ExtractedAt: time.Now(), Metadata: map[string]string{"album": albums[i%3]},
		})
	}
	if err := s.Write(ctx, connector.Batch{Upserts: recs}); err != nil {
		t.Fatal(err)
	}
	// Another model's rows (another dimension) never show up.
	_ = s.Close()
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
	q := make([]float32, 8)
	qs := make([]string, 8)
	for j := range q {
		q[j] = float32(math.Cos(float64(j)))
	}
	for j, x := range stored(q) {
		qs[j] = strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	self := recs[7]
	vars := map[string]string{"id": self.ID, "model": m.ID(), "vector": "[" + strings.Join(qs, ", ") + "]",
		"album": "holidays", "pattern": "%img1_.jpg"}

	nearest := func(q []float32, keep func(schema.Record) bool) []string {
		var rs []schema.Record
		for _, r := range recs {
			if keep(r) {
				rs = append(rs, r)
			}
		}
		sort.Slice(rs, func(i, j int) bool { return cosine(rs[i].Vector, q) < cosine(rs[j].Vector, q) })
		var keys []string
		for _, r := range rs[:min(10, len(rs))] {
			keys = append(keys, r.Key)
		}
		return keys
	}
	var findIDs []string
	var findKeys []string
	for _, r := range recs {
		if regexp.MustCompile(`img1.\.jpg$`).MatchString(r.Key) {
			findKeys = append(findKeys, r.Key)
		}
	}
	sort.Strings(findKeys)
	for _, k := range findKeys {
		findIDs = append(findIDs, schema.ItemID(source, k))
	}
	want := map[string][]string{
		"models":            {m.ID(), other.ID()},
		"find by key":       findIDs,
		"similar to id":     nearest(self.Vector, func(r schema.Record) bool { return r.ID != self.ID }),
		"nearest to vector": nearest(q, func(schema.Record) bool { return true }),
		"similar to id in album": nearest(self.Vector, func(r schema.Record) bool {
			return r.ID != self.ID && r.Metadata["album"] == "holidays"
		}),
	}

	want["similar to id (function)"] = want["similar to id"]
	want["nearest to vector (function)"] = want["nearest to vector"]
	want["similar to id in album (function)"] = want["similar to id in album"]
	want["nearest to vector (two-stage)"] = want["nearest to vector"]

	// A plain connection, as a psql user has: no client-side vector types.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET search_path TO `+pgx.Identifier{sch}.Sanitize()+`, public`); err != nil {
		t.Fatal(err)
	}
	// Every block runs without an index, then with the binary index of the
	// model (the functions and the two-stage query then go through it).
	for _, indexed := range []bool{false, true} {
		if indexed {
			if _, err := s.CreateIndex(ctx, connector.IndexBinary, m.ID(), 0, connector.IndexOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		runBlocks(t, conn, blocks, names, vars, want, indexed)
	}
}

func runBlocks(t *testing.T, conn *pgx.Conn, blocks, names []string, vars map[string]string, want map[string][]string, indexed bool) {
	t.Helper()
	ctx := context.Background()
	for i, block := range blocks {
		name := fmt.Sprintf("%s (indexed: %v)", names[i], indexed)
		sql, args, err := bind(block, vars)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, block)
		}
		var got []string
		var dists []float64
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, fmt.Sprint(vals[0]))
			if d, ok := vals[len(vals)-1].(float64); ok {
				dists = append(dists, d)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[names[i]]) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want[names[i]])
		}
		if strings.Contains(block, "<=>") || strings.Contains(block, "imgvec_s") {
			if len(dists) != len(got) || !sort.Float64sAreSorted(dists) || dists[0] < 0 || dists[len(dists)-1] > 2 {
				t.Errorf("%s: distances %v are not sorted cosine distances", name, dists)
			}
		}
	}
}
