package folder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/connector/sourcetest"
	"github.com/imgvec/imgvec/schema"
)

// tree creates files (key → content) under a new temporary root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range files {
		p := filepath.Join(root, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func list(t *testing.T, s *Source) ([]string, error) {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), func(e connector.Entry) error {
		keys = append(keys, e.Key)
		return nil
	})
	return keys, err
}

var sample = map[string]string{
	"a.jpg":            "a",
	"B.JPG":            "b",
	"c.png":            "c",
	"notes.txt":        "n",
	"noext":            "x",
	".hidden.jpg":      "h",
	".git/x.jpg":       "g",
	"sub/d.jpeg":       "d",
	"sub/.cache/y.png": "y",
	"sub/deep/e.webp":  "e",
	"thumbs/t.jpg":     "t",
	"raw/f.TIF":        "f",
	"raw/g.bmp":        "g",
	"anim/h.gif":       "h",
}

func TestListFilters(t *testing.T) {
	root := tree(t, sample)
	all := []string{"B.JPG", "a.jpg", "anim/h.gif", "c.png", "raw/f.TIF", "raw/g.bmp", "sub/d.jpeg", "sub/deep/e.webp", "thumbs/t.jpg"}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"defaults", Options{}, all},
		{"include subtree", Options{Include: []string{"sub/**"}}, []string{"sub/d.jpeg", "sub/deep/e.webp"}},
		{"include is case-sensitive", Options{Include: []string{"**/*.jpg"}}, []string{"a.jpg", "thumbs/t.jpg"}},
		{"include alternatives", Options{Include: []string{"*.{png,JPG}", "raw/*"}}, []string{"B.JPG", "c.png", "raw/f.TIF", "raw/g.bmp"}},
		{"exclude directory by name", Options{Exclude: []string{"thumbs"}}, slices.DeleteFunc(slices.Clone(all), func(k string) bool { return k == "thumbs/t.jpg" })},
		{"exclude deep directories", Options{Exclude: []string{"**/deep"}}, slices.DeleteFunc(slices.Clone(all), func(k string) bool { return k == "sub/deep/e.webp" })},
		{"exclude files", Options{Exclude: []string{"**/*.{png,gif}"}}, []string{"B.JPG", "a.jpg", "raw/f.TIF", "raw/g.bmp", "sub/d.jpeg", "sub/deep/e.webp", "thumbs/t.jpg"}},
		{"include and exclude", Options{Include: []string{"sub/**"}, Exclude: []string{"sub/deep/**"}}, []string{"sub/d.jpeg"}},
		{"extensions case-insensitive", Options{Extensions: []string{"JPG", ".tif"}}, []string{"B.JPG", "a.jpg", "raw/f.TIF", "thumbs/t.jpg"}},
		{"any extension, still no hidden", Options{Extensions: []string{"*"}}, []string{"B.JPG", "a.jpg", "anim/h.gif", "c.png", "noext", "notes.txt", "raw/f.TIF", "raw/g.bmp", "sub/d.jpeg", "sub/deep/e.webp", "thumbs/t.jpg"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(root, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := list(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestEntryFields(t *testing.T) {
	root := tree(t, map[string]string{"x/a.png": "12345"})
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	if err := os.Chtimes(filepath.Join(root, "x", "a.png"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s, _ := New(root, Options{})
	var got []connector.Entry
	if err := s.List(context.Background(), func(e connector.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "x/a.png" || got[0].Size != 5 || !got[0].MTime.Equal(mtime) || got[0].MTime.Location() != time.UTC || got[0].ETag != "" {
		t.Errorf("entries %+v", got)
	}
}

func TestNameAndRoot(t *testing.T) {
	root := t.TempDir()
	s1, err := New(root+"/./sub/..", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New("file://"+filepath.ToSlash(root), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Name() != "file://"+filepath.ToSlash(root) || s2.Name() != s1.Name() {
		t.Errorf("names %q %q", s1.Name(), s2.Name())
	}
	t.Chdir(root)
	s3, err := New("rel/dir", Options{})
	if err != nil || s3.Root() != filepath.Join(root, "rel", "dir") {
		t.Errorf("relative root %q, %v", s3.Root(), err)
	}
	s4, err := New("file:///tmp/with%20space", Options{})
	if err != nil || s4.Name() != "file:///tmp/with space" {
		t.Errorf("escaped URL: %v, %v", s4, err)
	}
	for _, bad := range []string{"", "file://host/x", "file:rel", "file://", root + "/bad\xff", "file:///tmp/bad%FF", "rel\xfe"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := New(root, Options{Include: []string{"[a-"}}); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := New(root, Options{Extensions: []string{""}}); err == nil {
		t.Error("empty extension accepted")
	}
}

func TestSymlinks(t *testing.T) {
	root := tree(t, map[string]string{"real/a.jpg": "a", "top.jpg": "t"})
	outside := tree(t, map[string]string{"o.jpg": "o"})
	links := map[string]string{
		"link.jpg":     filepath.Join(root, "top.jpg"),
		"linkdir":      filepath.Join(root, "real"),
		"out":          outside,
		"real/loop":    root,             // loop back to the root
		"real/self":    "self",           // self-referential
		"dangling.jpg": "does-not-exist", // dangling
		"real/up":      "..",             // relative loop
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	s, _ := New(root, Options{})
	got, err := list(t, s)
	if err != nil || !slices.Equal(got, []string{"real/a.jpg", "top.jpg"}) {
		t.Errorf("not following: %v, %v", got, err)
	}
	if _, err := s.Read(context.Background(), "link.jpg"); err == nil {
		t.Error("read through a link that is not followed")
	}

	s, _ = New(root, Options{FollowSymlinks: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, err = list(t, s)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("symlink loop: listing does not end")
	}
	// Each directory is walked once: "linkdir" is "real", which keeps its
	// own key; "real/loop" and "real/up" lead back to the root.
	slices.Sort(got)
	want := []string{"link.jpg", "out/o.jpg", "real/a.jpg", "top.jpg"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("following: %v, %v; want %v", got, err, want)
	}
	// A link into a directory that is not otherwise walked is followed.
	if err := os.Symlink(filepath.Join(root, "real"), filepath.Join(outside, "in")); err != nil {
		t.Fatal(err)
	}
	s2, _ := New(outside, Options{FollowSymlinks: true})
	if got, err := list(t, s2); err != nil || !slices.Equal(got, []string{"o.jpg", "in/a.jpg", "in/loop/link.jpg", "in/loop/top.jpg"}) {
		t.Errorf("outside root: %v, %v", got, err)
	}
	b, err := s.Read(context.Background(), "out/o.jpg")
	if err != nil || string(b) != "o" {
		t.Errorf("read through link: %q, %v", b, err)
	}
}

func TestUnreadableDirectory(t *testing.T) {
	root := tree(t, map[string]string{"a.jpg": "a", "locked/b.jpg": "b", "locked/c.jpg": "c", "z/d.jpg": "d"})
	locked := filepath.Join(root, "locked")
	if os.Geteuid() == 0 {
		// root reads any directory: simulate the failure.
		orig := readDir
		readDir = func(dir string) ([]fs.DirEntry, error) {
			if dir == locked {
				return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrPermission}
			}
			return orig(dir)
		}
		t.Cleanup(func() { readDir = orig })
	} else {
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(locked, 0o755) })
	}
	s, _ := New(root, Options{})
	got, err := list(t, s)
	if err == nil || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("err %v", err)
	}
	if !slices.Equal(got, []string{"a.jpg", "z/d.jpg"}) {
		t.Errorf("the rest of the tree was not listed: %v", got)
	}

	// A sync over the incomplete listing deletes nothing: the items of the
	// unreadable directory stay in the sink.
	model := connectortest.Model("A", 8)
	sink := connectortest.NewSink()
	if err := sink.Open(context.Background(), model); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"locked/b.jpg", "locked/c.jpg"} {
		sink.Put(schema.Record{Source: s.Name(), Key: k, ModelID: model.ID(), Dim: 8, Vector: make([]float32, 8)})
	}
	syn, err := connector.NewSyncer(connector.Options{Source: s, Sink: sink, Embedder: connectortest.NewEmbedder(model, 2)})
	if err != nil {
		t.Fatal(err)
	}
	run, err := syn.Run(context.Background())
	if !errors.Is(err, connector.ErrIncompleteListing) || run.Deleted != 0 || run.Written != 2 {
		t.Fatalf("run %+v, err %v", run, err)
	}
	if n := len(sink.Rows()); n != 4 {
		t.Errorf("%d rows, want 4 (2 new, 2 kept)", n)
	}
}

func TestMissingRoot(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "gone"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := list(t, s); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err %v", err)
	}
	f := filepath.Join(tree(t, map[string]string{"f.jpg": "x"}), "f.jpg")
	s, _ = New(f, Options{})
	if _, err := list(t, s); err == nil {
		t.Error("a file as root listed")
	}
}

func TestListStops(t *testing.T) {
	files := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d"} {
		files[k+"/x.jpg"] = k
	}
	s, _ := New(tree(t, files), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := s.List(ctx, func(connector.Entry) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("cancel: %d entries, %v", n, err)
	}
	stop := errors.New("stop")
	if err := s.List(context.Background(), func(connector.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn error: %v", err)
	}
}

func TestRead(t *testing.T) {
	big := strings.Repeat("x", 3<<20+17)
	root := tree(t, map[string]string{"a.jpg": "hello", "big.png": big, "empty.jpg": ""})
	s, _ := New(root, Options{MaxBytes: 1 << 20})
	ctx := context.Background()
	if b, err := s.Read(ctx, "a.jpg"); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
	if b, err := s.Read(ctx, "empty.jpg"); err != nil || len(b) != 0 {
		t.Errorf("read empty %q, %v", b, err)
	}
	if _, err := s.Read(ctx, "big.png"); !errors.Is(err, connector.ErrTooLarge) || !strings.Contains(err.Error(), "big.png") {
		t.Errorf("over the cap: %v", err)
	}
	if _, err := s.Read(ctx, "missing.jpg"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("missing: %v", err)
	}
	for _, bad := range []string{"../etc/passwd", "/abs", "a/../../x", ".", ""} {
		if _, err := s.Read(ctx, bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	s, _ = New(root, Options{})
	if b, err := s.Read(ctx, "big.png"); err != nil || string(b) != big {
		t.Errorf("read big: %d bytes, %v", len(b), err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Read(cctx, "a.jpg"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v", err)
	}
}

// TestSyncFolder runs the pipeline over a real folder: first run, touch,
// edit, copy, delete.
func TestSyncFolder(t *testing.T) {
	root := tree(t, map[string]string{"a.jpg": "A", "b/b.png": "B", "c.gif": "corrupt C"})
	s, _ := New(root, Options{})
	model := connectortest.Model("A", 8)
	sink := connectortest.NewSink()
	if err := sink.Open(context.Background(), model); err != nil {
		t.Fatal(err)
	}
	run := func() schema.Run {
		t.Helper()
		syn, err := connector.NewSyncer(connector.Options{Source: s, Sink: sink, Embedder: connectortest.NewEmbedder(model, 2), Linger: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r, err := syn.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(); r.Written != 2 || r.Failed != 1 || r.Outcome != schema.RunPartial {
		t.Fatalf("first run %+v", r)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "a.jpg"), later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "copy.jpg"), []byte("B"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "c.gif")); err != nil {
		t.Fatal(err)
	}
	r := run()
	if r.Written != 2 || r.Extracted != 0 || r.Reused != 1 || r.Unchanged != 1 || r.Deleted != 1 || r.Failed != 0 {
		t.Fatalf("second run %+v", r)
	}
	rows := sink.Rows()
	if a := rows[schema.ItemID(s.Name(), "a.jpg")]; !a.MTime.Equal(later.UTC()) {
		t.Errorf("metadata update: mtime %v, want %v", a.MTime, later)
	}
	if len(rows) != 3 || len(sink.Ledger()) != 0 {
		t.Errorf("%d rows, %d ledger entries", len(rows), len(sink.Ledger()))
	}
}

func TestConformance(t *testing.T) {
	// Break makes a subfolder unreadable: by its mode, or, for root (who
	// reads any directory), through readDir.
	var unreadable sync.Map // directory path → true
	if os.Geteuid() == 0 {
		orig := readDir
		readDir = func(dir string) ([]fs.DirEntry, error) {
			if _, ok := unreadable.Load(dir); ok {
				return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrPermission}
			}
			return orig(dir)
		}
		t.Cleanup(func() { readDir = orig })
	}
	sourcetest.Run(t, sourcetest.Harness{MTime: true, New: func(t *testing.T, items []sourcetest.Item) sourcetest.Fixture {
		root := t.TempDir()
		for _, it := range items {
			p := filepath.Join(root, filepath.FromSlash(it.Key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, it.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, it.MTime, it.MTime); err != nil {
				t.Fatal(err)
			}
		}
		open := func(t *testing.T, ref string) connector.Source {
			s, err := New(ref, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return sourcetest.Fixture{
			Source: open(t, root),
			Reopen: func(t *testing.T) connector.Source { return open(t, "file://"+filepath.ToSlash(root)+"/") },
			Break: func(t *testing.T) {
				dir := filepath.Join(root, "sub", "deep")
				if os.Geteuid() == 0 {
					unreadable.Store(dir, true)
					return
				}
				if err := os.Chmod(dir, 0); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o755) })
			},
		}
	}})
}

// The walk lists keys in byte order, as ListsInKeyOrder promises, although
// os.ReadDir sorts a directory by name alone ("a" before "a-c", whose key
// sorts before "a/b").
func TestListsInKeyOrder(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"a/b.jpg", "a-c.jpg", "a.jpg", "a0.jpg", "a/b/c.jpg", "a/b-d.jpg", "B.jpg", "z.jpg", "a b/x.jpg"} {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !src.ListsInKeyOrder() {
		t.Error("ListsInKeyOrder is false")
	}
	var keys []string
	if err := src.List(context.Background(), func(e connector.Entry) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(keys) || len(keys) != 9 {
		t.Errorf("listed %q, want 9 keys in byte order", keys)
	}
}
