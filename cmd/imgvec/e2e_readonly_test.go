package main

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the commands run as when the test runs
// as root, which file modes do not stop.
const nobody = 65534

// TestE2EReadOnlyDatabase: the commands that only read — status, search,
// export, dupes, map, sync --dry-run, migrate status and the migrate dry
// runs — read an SQLite database that is a read-only file in a read-only
// directory (a mounted snapshot, a copy being inspected) and change
// nothing there: no byte, no mtime, no -wal or -shm beside it. As root the
// commands run as nobody, for whom the modes hold.
func TestE2EReadOnlyDatabase(t *testing.T) {
	needBinary(t)
	base, err := os.MkdirTemp("", "imgvec-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(base, func(p string, _ os.DirEntry, _ error) error { os.Chmod(p, 0o755); return nil })
		os.RemoveAll(base)
	})
	mkdir := func(name string) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	src, dbDir := mkdir("src"), mkdir("db")
	good := goodImages(t)[:3]
	for _, k := range good {
		copyFile(t, filepath.Join(e2eImages, k), filepath.Join(src, k))
	}
	db := filepath.Join(dbDir, "imgvec.db")
	sinkURI := "sqlite://" + db
	mustCode(t, exitOK, base, "sync", "-q", "--source", src, "--sink", sinkURI, "--model", e2eModel)
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dbDir, 0o555); err != nil {
		t.Fatal(err)
	}
	before := dirFP(t, dbDir)

	// The reader's own folder, where export and map write.
	work := mkdir("work")
	run := func(args ...string) result { return imgvec(t, work, args...) }
	if os.Geteuid() == 0 {
		bin := filepath.Join(mkdir("bin"), "imgvec")
		copyFile(t, e2eBin, bin)
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(work, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		run = func(args ...string) result {
			cmd := e2eCmd(work, args...)
			cmd.Path, cmd.Args[0] = bin, bin
			cmd.Env = append(cmd.Env, "HOME="+work, "XDG_CACHE_HOME="+filepath.Join(work, ".cache"),
				"IMGVEC_CACHE_DIR="+filepath.Join(work, "imgvec-cache"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			return runE2E(t, cmd)
		}
	}
	for _, args := range [][]string{
		{"status", "--sink", sinkURI},
		{"migrate", "status", "--sink", sinkURI},
		{"migrate", "up", "--dry-run", "--sink", sinkURI},
		{"migrate", "down", "--dry-run", "--sink", sinkURI},
		{"sync", "--dry-run", "--source", src, "--sink", sinkURI, "--model", e2eModel},
		{"search", "--sink", sinkURI, "--model", e2eModel, "--image", filepath.Join(src, good[0]), "-k", "2"},
		{"export", "--sink", sinkURI, "--out", "x.jsonl"},
		{"dupes", "--sink", sinkURI},
		{"map", "-q", "--sink", sinkURI, "--out", "map.html"},
	} {
		if r := run(args...); r.code != exitOK {
			t.Errorf("%v on a read-only database: exit %d, want %d\n%s", args, r.code, exitOK, r)
		}
	}
	if after := dirFP(t, dbDir); !maps.Equal(before, after) {
		t.Errorf("the read-only commands changed the database's folder:\nbefore %v\nafter  %v", before, after)
	}
}

// dirFP fingerprints the folder dir and the files in it (not below).
func dirFP(t *testing.T, dir string) map[string]fileFP {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fileFP{}
	add := func(name, p string) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		fp := fileFP{Size: fi.Size(), MTimeNS: fi.ModTime().UnixNano()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			fp.SHA256 = hex.EncodeToString(sum[:])
		}
		out[name] = fp
	}
	add(".", dir)
	for _, e := range ents {
		add(e.Name(), filepath.Join(dir, e.Name()))
	}
	return out
}
