package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/schema"
)

func identity(dim int) schema.ModelIdentity {
	return schema.ModelIdentity{ModelSHA256: strings.Repeat("b", 64), Layer: "fc7", Preprocess: "p", Dim: dim, Normalized: true}
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "vectors.npy")
	s, err := New(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, identity(3)); err != nil {
		t.Fatal(err)
	}
	model := identity(3).ID()
	b := connector.Batch{Upserts: []schema.Record{
		{ID: "1", Source: "file://" + dir, Key: "a.jpg", ModelID: model, Vector: []float32{1, 2, 3}},
		{ID: "2", Source: "files:", Key: "/x/b.png", ModelID: model, Vector: []float32{4, 5, 6}},
	}, Failures: []schema.Failure{{ID: "3", Key: "bad.jpg", Class: schema.FailDecode}}}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output published before Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x93NUMPY\x01\x00")) || len(data) != NPYHeaderLen+6*4 {
		t.Fatalf("npy of %d bytes: %q", len(data), data[:min(len(data), 80)])
	}
	hdr := string(data[10:NPYHeaderLen])
	if !strings.Contains(hdr, "'shape': (2, 3)") || !strings.HasSuffix(hdr, "\n") {
		t.Fatalf("header %q", hdr)
	}
	for i, want := range []float32{1, 2, 3, 4, 5, 6} {
		got := math.Float32frombits(binary.LittleEndian.Uint32(data[NPYHeaderLen+4*i:]))
		if got != want {
			t.Fatalf("value %d = %v, want %v", i, got, want)
		}
	}
	ids, err := os.ReadFile(filepath.Join(dir, "vectors.ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "a.jpg") + "\n/x/b.png\n"; string(ids) != want {
		t.Fatalf("ids %q, want %q", ids, want)
	}
	if len(s.Failures()) != 1 || s.Rows() != 2 {
		t.Fatalf("failures %v rows %d", s.Failures(), s.Rows())
	}
}

func TestJSONLStdoutAndRefusals(t *testing.T) {
	var buf bytes.Buffer
	s, err := New("-", &buf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, identity(2)); err != nil {
		t.Fatal(err)
	}
	model := identity(2).ID()
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{{ID: "x", Key: "k", ModelID: model, Vector: []float32{1, 2, 3}}}}); err == nil {
		t.Fatal("wrong dimension accepted")
	}
	nan := float32(math.NaN())
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{{ID: "x", Key: "k", ModelID: model, Vector: []float32{nan, 1}}}}); err == nil {
		t.Fatal("NaN vector accepted")
	}
	if err := s.Write(ctx, connector.Batch{Upserts: []schema.Record{{ID: "x", Key: "k", ModelID: model, Vector: []float32{0.5, 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != `{"id":"x","path":"k","vector":[0.5,1]}`+"\n" {
		t.Fatalf("jsonl %q", got)
	}
	if _, err := New("out.csv", nil); err == nil {
		t.Fatal("unknown extension accepted")
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "v.npy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), identity(2)); err != nil {
		t.Fatal(err)
	}
	s.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("abort left %v", entries)
	}
}

// Rows go out in the order the tracked sources listed their items, however
// the batches arrive; a failure resolves its place; a row behind an item
// that never arrives waits for Close.
func TestTrackOrder(t *testing.T) {
	ctx := context.Background()
	src := connectortest.NewSource("file:///photos")
	keys := []string{"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"}
	for _, k := range keys {
		src.Put(k, []byte(k), time.Unix(1, 0))
	}
	var buf bytes.Buffer
	s, err := New("-", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, identity(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Track(src).List(ctx, func(connector.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	model := identity(1).ID()
	rec := func(k string) schema.Record {
		return schema.Record{ID: schema.ItemID("file:///photos", k), Source: "file:///photos", Key: k, ModelID: model, Vector: []float32{1}}
	}
	fail := func(k string) schema.Failure {
		return schema.Failure{ID: schema.ItemID("file:///photos", k), Source: "file:///photos", Key: k, ModelID: model, Class: schema.FailDecode}
	}
	written := func() string {
		var paths []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line != "" {
				paths = append(paths, line[strings.Index(line, `"path":"`)+8:strings.Index(line, `","vector"`)])
			}
		}
		return strings.Join(paths, ",")
	}
	steps := []struct {
		b    connector.Batch
		want string // rows flushed so far
	}{
		{connector.Batch{Upserts: []schema.Record{rec("c.jpg"), rec("b.jpg")}}, ""},
		{connector.Batch{Upserts: []schema.Record{rec("a.jpg")}, Failures: []schema.Failure{fail("d.jpg")}}, "/photos/a.jpg,/photos/b.jpg,/photos/c.jpg"},
		{connector.Batch{Upserts: []schema.Record{rec("f.jpg")}}, "/photos/a.jpg,/photos/b.jpg,/photos/c.jpg"},
	}
	for i, st := range steps {
		if err := s.Write(ctx, st.b); err != nil {
			t.Fatal(err)
		}
		s.w.Flush()
		if got := written(); got != st.want {
			t.Errorf("after batch %d: rows %s, want %s", i+1, got, st.want)
		}
	}
	// e.jpg never came (it vanished): Close writes f.jpg after all.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := written(), "/photos/a.jpg,/photos/b.jpg,/photos/c.jpg,/photos/f.jpg"; got != want {
		t.Errorf("after Close: rows %s, want %s", got, want)
	}
	if s.Rows() != 4 {
		t.Errorf("Rows = %d, want 4", s.Rows())
	}
}
