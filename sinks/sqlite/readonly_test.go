package sqlite

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// envReadHelper makes the test binary run TestOpenReadHelper: one OpenRead
// and Status of the named database, the error (or "ok") on stdout.
const envReadHelper = "IMGVEC_SQLITE_READ_HELPER"

// TestOpenReadHelper is not a test: TestOpenReadIsReadOnly runs it in a
// process of an unprivileged user.
func TestOpenReadHelper(t *testing.T) {
	path := os.Getenv(envReadHelper)
	if path == "" {
		t.Skip("helper process of TestOpenReadIsReadOnly")
	}
	os.Stdout.WriteString(tryRead(path) + "\n")
}

func tryRead(path string) string {
	ctx := context.Background()
	s, err := New(Scheme + path)
	if err == nil {
		err = s.OpenRead(ctx)
	}
	if err == nil {
		_, err = s.Status(ctx)
		s.Close()
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// readAs runs tryRead(path) as an unprivileged user: in this process when
// the test does not run as root, otherwise in a copy of the test binary
// run as nobody (root ignores file permissions).
func readAs(t *testing.T, dir, path string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return tryRead(path)
	}
	bin := filepath.Join(dir, "..", "sqlite.test")
	if _, err := os.Stat(bin); err != nil {
		copyFile(t, os.Args[0], bin, 0o755)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenReadHelper$")
	cmd.Env = append(os.Environ(), envReadHelper+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return first
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// OpenRead (imgvec status, search) opens read-only, creates nothing, and
// says precisely what is wrong with a missing or unreadable file or a
// read-only directory.
func TestOpenReadIsReadOnly(t *testing.T) {
	ctx := context.Background()
	base, err := os.MkdirTemp("", "sqlite-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.Walk(base, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
		os.RemoveAll(base)
	})
	dir := filepath.Join(base, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "imgvec.db")
	entries := func() []string {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	// Missing: said so, and nothing is created.
	if got := tryRead(path); !strings.Contains(got, "does not exist") || !strings.Contains(got, "imgvec migrate up") {
		t.Errorf("missing file: %s", got)
	}
	if n := entries(); len(n) != 0 {
		t.Errorf("OpenRead of a missing file created %v", n)
	}

	// A database with a row; OpenRead reads it and refuses writes.
	w, _ := New(Scheme+path, WithAutoMigrate(migrations.AutoMigrateFresh))
	m := testModel(4)
	if err := w.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	rec := schema.Record{ID: "a", Source: "s", Key: "a.jpg", ModelID: m.ID(), Vector: []float32{1, 0, 0, 0}, ExtractedAt: time.Now()}
	if err := w.Write(ctx, connector.Batch{Upserts: []schema.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r, _ := New(Scheme + path)
	if err := r.OpenRead(ctx); err != nil {
		t.Fatalf("OpenRead: %v", err)
	}
	if st, err := r.Status(ctx); err != nil || len(st.Models) != 1 {
		t.Errorf("Status: %+v, %v", st, err)
	}
	if err := r.Write(ctx, connector.Batch{Upserts: []schema.Record{rec}}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Write through OpenRead: %v", err)
	}
	if err := r.Delete(ctx, "s", []string{"a"}); err == nil {
		t.Error("Delete through OpenRead accepted")
	}
	gone := func(schema.Runner) bool { return true }
	if _, err := r.AbandonDeadRuns(ctx, "here", gone, time.Now(), "gone"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("AbandonDeadRuns through OpenRead: %v", err)
	}
	r.Close()

	if n := entries(); len(n) != 1 {
		t.Errorf("OpenRead left %v beside the database", n)
	}

	// Read-only directory: an unprivileged reader reads the database.
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	if got := readAs(t, dir, path); got != "ok" {
		t.Errorf("read-only directory: %s", got)
	}
	// ... unless SQLite needs a -shm it cannot create there: said so.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, os.DevNull, path+"-wal", 0o644)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	got := readAs(t, dir, path)
	if !strings.Contains(got, "imgvec.db-shm") || !strings.Contains(got, "read-only for this user") {
		t.Errorf("read-only directory without -shm: %s", got)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}

	// Unreadable file.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	got = readAs(t, dir, path)
	if !strings.Contains(got, "cannot read the database file") || !strings.Contains(got, "permission denied") {
		t.Errorf("unreadable file: %s", got)
	}
}
