package milvus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

func model(dim int) schema.ModelIdentity {
	return schema.ModelIdentity{ModelSHA256: strings.Repeat("ab", 32), Layer: "fc7", Preprocess: "test-v1", Dim: dim, Normalized: true}
}

func record(m schema.ModelIdentity, source, key string, seed int) schema.Record {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	v := make([]float32, m.Dim)
	for i := range v {
		v[i] = rng.Float32() - 0.5
	}
	return schema.Record{ID: schema.ItemID(source, key), Source: source, Key: key,
		Fingerprint: schema.Fingerprint{Size: int64(seed), MTime: time.Unix(1_700_000_000, int64(seed)).UTC(), SHA256: fmt.Sprintf("%064x", seed)},
		ModelID:     m.ID(), Vector: v}
}

func open(t *testing.T, s *Sink, m schema.ModelIdentity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func storedIDs(t *testing.T, s *Sink, source string) map[string]connector.StoredItem {
	t.Helper()
	out := map[string]connector.StoredItem{}
	err := s.Stored(context.Background(), source, func(it connector.StoredItem) error {
		if _, dup := out[it.ID]; dup {
			return fmt.Errorf("Stored yielded %s twice", it.ID)
		}
		out[it.ID] = it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Keys, ids and sources with quotes, backslashes and expression syntax are
// data in every filter: they match themselves and nothing else.
func TestHostileFilterValues(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (~10 s against the server); skipped with -short")
	}
	milvustest.Each(t, testHostileFilterValues)
}

func testHostileFilterValues(t *testing.T, addr string) {
	s := newTestSink(t, addr, testBase(t, addr))
	m := model(8)
	open(t, s, m)
	ctx := context.Background()
	hostile := []string{`a"b`, `a\"b`, `\`, `\\"`, `" || id != "`, `x" or source != "`, "new\nline", `'single'`, `%_like`, `\x41`, "tab\there", `"]`}
	const plain = "file:///plain"
	var recs []schema.Record
	for i, h := range hostile {
		recs = append(recs, record(m, plain, h, i+1))
		recs = append(recs, record(m, h, "k.jpg", 100+i))
	}
	if err := s.Write(ctx, connector.Batch{Upserts: recs}); err != nil {
		t.Fatal(err)
	}
	for i, h := range hostile {
		got := storedIDs(t, s, h)
		if len(got) != 1 || got[schema.ItemID(h, "k.jpg")].Key != "k.jpg" {
			t.Errorf("Stored(%q) = %v, want only its own item", h, got)
		}
		r, ok, err := s.Get(ctx, recs[2*i].ID)
		if err != nil || !ok || r.Key != h {
			t.Errorf("Get of key %q: %v %v %q", h, ok, err, r.Key)
		}
	}
	// An id the query iterator could not page past is refused up front.
	bad := record(m, plain, "bad-id.jpg", 99)
	bad.ID = `x" || id != "`
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{bad}}); err == nil || !strings.Contains(err.Error(), "bad-id.jpg") {
		t.Errorf("Write of an id with a quote: %v", err)
	}
	// Deleting hostile ids in a hostile source removes exactly that item.
	victim := hostile[4]
	ids := append([]string{schema.ItemID(victim, "k.jpg")}, hostile...)
	if err := s.Delete(ctx, victim, ids); err != nil {
		t.Fatal(err)
	}
	if n := len(storedIDs(t, s, victim)); n != 0 {
		t.Errorf("after Delete, source %q still has %d items", victim, n)
	}
	if n := len(storedIDs(t, s, plain)); n != len(hostile) {
		t.Errorf("Delete in source %q touched other sources: %d of %d items left in %s", victim, n, len(hostile), plain)
	}
	st, err := s.Status(ctx)
	if err != nil || len(st.Models) != 1 || st.Models[0].Rows != int64(2*len(hostile)-1) {
		t.Errorf("status after delete: %+v %v, want %d rows", st.Models, err, 2*len(hostile)-1)
	}
}

// A collection imgvec did not make the way it needs is refused at Open
// with a hint: auto_id, another dimension, another metric.
func TestRefusesIncompatibleCollection(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test (~20 s: builds collections and indexes); skipped with -short")
	}
	milvustest.Each(t, testRefusesIncompatibleCollection)
}

func testRefusesIncompatibleCollection(t *testing.T, addr string) {
	m := model(8)
	idxL2, _ := entity.NewIndexHNSW(entity.L2, 16, 200)
	idxCos, _ := vectorIndex(IndexHNSW)
	d := description{Kind: "items", Schema: ItemsSchemaVersion, ModelID: m.ID(), Layer: m.Layer, Dim: m.Dim}
	tests := []struct {
		name string
		make func(name string) (*entity.Schema, entity.Index)
		want string
	}{
		{"auto_id", func(name string) (*entity.Schema, entity.Index) {
			sc := itemsSchema(name, d)
			sc.Fields[0] = entity.NewField().WithName(fID).WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true).WithIsAutoID(true)
			return sc, idxCos
		}, "auto_id"},
		{"dimension", func(name string) (*entity.Schema, entity.Index) {
			d2 := d
			d2.Dim = 16
			return itemsSchema(name, d2), idxCos
		}, "dimension 16"},
		{"metric", func(name string) (*entity.Schema, entity.Index) { return itemsSchema(name, d), idxL2 }, "metric L2"},
		{"missing field", func(name string) (*entity.Schema, entity.Index) {
			sc := itemsSchema(name, d)
			sc.Fields = sc.Fields[:len(sc.Fields)-1]
			return sc, idxCos
		}, "no field " + fExtracted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := testBase(t, addr)
			s := newTestSink(t, addr, base)
			open(t, s, m) // creates the companions and NAME_v1
			s.Close()
			ctx := context.Background()
			c, err := client.NewClient(ctx, client.Config{Address: addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			name := base + "_v1"
			if err := c.DropCollection(ctx, name); err != nil {
				t.Fatal(err)
			}
			sc, idx := tt.make(name)
			if err := create(ctx, c, sc, idx); err != nil {
				t.Fatal(err)
			}
			err = s.Open(ctx, m)
			if err == nil {
				t.Fatal("Open accepted the collection")
			}
			if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "drop") {
				t.Errorf("Open error %q: want ErrIncompatible naming %q with a hint", err, tt.want)
			}
		})
	}
}

func TestChunksByBytes(t *testing.T) {
	m := model(4096)
	recs := make([]schema.Record, 5000) // 5000 × 16 KB ≈ 82 MB: over Milvus' 64 MB request limit
	for i := range recs {
		recs[i] = schema.Record{ID: fmt.Sprint(i), Vector: make([]float32, m.Dim)}
	}
	parts := chunks(recs, DefaultChunkBytes)
	n := 0
	for _, p := range parts {
		size := 0
		for _, r := range p {
			size += rowBytes(r)
		}
		if size > DefaultChunkBytes || size >= maxRequestBytes {
			t.Errorf("chunk of %d rows is %d bytes, over %d", len(p), size, DefaultChunkBytes)
		}
		n += len(p)
	}
	if n != len(recs) || len(parts) != 3 {
		t.Errorf("%d rows in %d chunks, want %d in 3", n, len(parts), len(recs))
	}
	if got := chunks(recs[:1], 10); len(got) != 1 {
		t.Errorf("a row over the limit: %d chunks, want 1", len(got))
	}
}

// A batch of 4096-d vectors over 64 MB is split, not rejected. Milvus
// standalone only: the limit is its proxy's (Milvus Lite takes 256 MB and
// needs a minute for these 80 MB).
func TestWriteOver64MB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 80 MB; skipped with -short")
	}
	addr := milvustest.Standalone.Addr(t)
	s := newTestSink(t, addr, testBase(t, addr))
	m := model(4096)
	open(t, s, m)
	const src, n = "file:///big", 5000
	var b connector.Batch
	for i := range n {
		b.Upserts = append(b.Upserts, record(m, src, fmt.Sprintf("%05d.jpg", i), i))
	}
	ctx := context.Background()
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkConverged(t, s, src, b.Upserts)
}

// checkConverged verifies with Strong reads that exactly want is stored:
// the count, every id once, and a sample of vectors bit for bit.
func checkConverged(t *testing.T, s *Sink, src string, want []schema.Record) {
	t.Helper()
	ctx := context.Background()
	c, items, model, err := s.state()
	if err != nil {
		t.Fatal(err)
	}
	coll := items[model.ID()].name
	n, err := count(ctx, c, coll, eq(fSource, src))
	if err != nil {
		t.Fatal(err)
	}
	got := storedIDs(t, s, src)
	if n != int64(len(want)) || len(got) != len(want) {
		t.Fatalf("Strong count %d, distinct stored ids %d, want %d", n, len(got), len(want))
	}
	for i, r := range want {
		if _, ok := got[r.ID]; !ok {
			t.Fatalf("item %s missing", r.Key)
		}
		if i%997 == 0 {
			rec, ok, err := s.Get(ctx, r.ID)
			if err != nil || !ok || !equalVec(rec.Vector, r.Vector) {
				t.Fatalf("Get %s: %v %v, vector equal %v", r.Key, ok, err, equalVec(rec.Vector, r.Vector))
			}
		}
	}
}

func equalVec(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// privateServer starts a Milvus of its own (port, temp data folder) with
// .ci/services/milvus.sh, which the test may kill and restart.
type privateServer struct {
	t    *testing.T
	env  []string
	addr string
}

func startPrivate(t *testing.T) *privateServer {
	milvustest.Standalone.Addr(t) // the same rule: skip (or fail under CI) when the tests have no Milvus
	port := freePorts(t)
	p := &privateServer{t: t, env: append(os.Environ(), fmt.Sprintf("IMGVEC_MILVUS_PORT=%d", port), "IMGVEC_MILVUS_DIR="+t.TempDir())}
	p.addr = strings.TrimPrefix(strings.TrimSpace(p.script("start")), "IMGVEC_TEST_MILVUS_ADDR=")
	t.Cleanup(func() { p.script("kill") }) // its data is a temp folder: no need to wait for a clean stop
	return p
}

// freePorts finds a port base whose ports (PORT..PORT+11 and PORT+90, see
// .ci/services/milvus.sh) are all free, so that tests running at the same
// time on one machine start separate servers.
func freePorts(t *testing.T) int {
	t.Helper()
	for base := 19700; base < 20500; base += 100 {
		free := true
		for _, p := range append([]int{base + 90}, seq(base, base+11)...) {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port range for a private Milvus between 19700 and 20500")
	return 0
}

func seq(lo, hi int) []int {
	var out []int
	for p := lo; p <= hi; p++ {
		out = append(out, p)
	}
	return out
}

func (p *privateServer) script(cmd string) string {
	p.t.Helper()
	out, err := p.run(cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// run runs milvus.sh cmd; unlike script it may be called from any goroutine.
func (p *privateServer) run(cmd string) (string, error) {
	c := exec.Command("bash", filepath.Join("..", "..", ".ci", "services", "milvus.sh"), cmd)
	c.Env = p.env
	if p.addr != "" {
		c.Env = append(c.Env, "IMGVEC_MILVUS_KEEP_DATA=1") // a restart
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("milvus.sh %s: %w\n%s", cmd, err, stderr.String())
	}
	return string(out), nil
}

// killBeforeChunk returns an Option that SIGKILLs p's server just before
// the Write sends its item chunk number k (1-based): the chunks before it
// are stored, the rest meet a dead server. killed is closed once the
// server is dead. A kill placed so cannot miss the write.
func killBeforeChunk(t *testing.T, p *privateServer, k int) (opt Option, killed <-chan struct{}) {
	done := make(chan struct{})
	var sent int
	return func(s *Sink) {
		s.beforeUpsert = func() {
			if sent++; sent == k {
				if _, err := p.run("kill"); err != nil {
					t.Error(err)
				}
				close(done)
			}
		}
	}, done
}

// The server is SIGKILLed in the middle of an upsert and restarted: the
// rerun of the batch converges (every item once, nothing missing).
func TestServerKilledMidUpsert(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a Milvus server; skipped with -short")
	}
	p := startPrivate(t)
	base := "fault"
	m := model(4096)
	const src, n = "file:///fault", 3000
	var b connector.Batch
	for i := range n {
		b.Upserts = append(b.Upserts, record(m, src, fmt.Sprintf("%05d.jpg", i), i))
	}
	b.Run = &schema.Run{ID: "run-1", Kind: "sync", Source: src, ModelID: m.ID(), StartedAt: time.Now().UTC(), Outcome: schema.RunRunning}

	kill, killed := killBeforeChunk(t, p, 4)
	s := newTestSink(t, p.addr, base, WithChunk(2<<20, 1), kill) // small chunks, one writer: the kill lands between two
	open(t, s, m)
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), b) }()
	<-killed
	t0 := time.Now()
	p.script("start") // while Write retries
	t.Logf("restarted in %v", time.Since(t0))
	err := <-done
	t.Logf("Write across the restart (its retries may bridge it): %v", err)
	s.Close()

	t0 = time.Now()
	s2 := newTestSink(t, p.addr, base, WithChunk(2<<20, 1))
	open(t, s2, m)
	t.Logf("reopened in %v", time.Since(t0))
	t.Logf("after the restart %d of %d items are stored", len(storedIDs(t, s2, src)), n)
	if err := s2.Write(context.Background(), b); err != nil {
		t.Fatalf("rerun after the restart: %v", err)
	}
	checkConverged(t, s2, src, b.Upserts)
	s2.Close()

	// Killed again, with one try per request (the SDK's own retries still
	// run, ~20 s): the Write fails, the server restarts, the rerun converges.
	const src2 = "file:///fault-2"
	var b2 connector.Batch
	for i := range n {
		b2.Upserts = append(b2.Upserts, record(m, src2, fmt.Sprintf("%05d.jpg", i), n+i))
	}
	kill, _ = killBeforeChunk(t, p, 4)
	s3, err := New("milvus://"+p.addr+"?collection="+base+"&retries=1", WithChunk(2<<20, 1), kill)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	open(t, s3, m)
	go func() { done <- s3.Write(context.Background(), b2) }()
	if err := <-done; err == nil {
		t.Fatal("the Write with one try per request succeeded across the kill: the kill interrupted nothing")
	} else {
		t.Logf("interrupted Write: %v", err)
	}
	s3.Close()
	p.script("start")
	open(t, s3, m)
	t.Logf("after the restart %d of %d items are stored", len(storedIDs(t, s3, src2)), n)
	if err := s3.Write(context.Background(), b2); err != nil {
		t.Fatalf("rerun after the restart: %v", err)
	}
	checkConverged(t, s3, src2, b2.Upserts)
	checkConverged(t, s3, src, b.Upserts)
}
