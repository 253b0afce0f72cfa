package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"

	"github.com/imgvec/imgvec/sinks/milvus"
	"github.com/imgvec/imgvec/sinks/milvus/milvustest"
)

// eachMilvus runs fn once per test server (milvustest.Servers: Milvus
// 2.3.5 and Milvus Lite 3.2.2, started by `make services`) as a subtest,
// with a milvus:// sink URI whose collections are its own, dropped after
// the subtest.
func eachMilvus(t *testing.T, fn func(t *testing.T, sinkURI string)) {
	milvustest.Each(t, func(t *testing.T, addr string) {
		base := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
		t.Cleanup(func() { dropCollections(t, addr, base) })
		fn(t, "milvus://"+addr+"?collection="+base)
	})
}

// dropCollections drops the alias base and the collections base_*.
func dropCollections(t *testing.T, addr, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.NewClient(ctx, client.Config{Address: addr})
	if err != nil {
		t.Logf("drop collections %s_*: %v", base, err)
		return
	}
	defer c.Close()
	_ = c.DropAlias(ctx, base)
	names, err := milvus.CollectionNames(ctx, c)
	if err != nil {
		t.Logf("drop collections %s_*: %v", base, err)
		return
	}
	for _, name := range names {
		if strings.HasPrefix(name, base+"_") {
			_ = c.DropCollection(ctx, name)
		}
	}
}

// TestE2EMilvus runs the user's commands against each Milvus: migrate
// status, backfill, search, an unchanged sync, a delete, a model change
// (blue/green: both models searchable), status, and credentials that
// never show.
func TestE2EMilvus(t *testing.T) {
	needBinary(t)
	eachMilvus(t, testE2EMilvus)
}

func testE2EMilvus(t *testing.T, sinkURI string) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, filepath.Join("..", "..", "testdata", "images"), src)
	model := []string{"--model", e2eModel}

	if r := mustCode(t, exitOK, tmp, "migrate", "status", "--sink", sinkURI); !strings.Contains(r.stdout, "pending  0001") {
		t.Errorf("migrate status of a new store:\n%s", r)
	}
	r := mustCode(t, exitItemFailures, tmp, append([]string{"backfill", "-q", "--source", src, "--sink", sinkURI}, model...)...)
	first := parseRunLine(t, r)
	if first.Written != int64(len(goodImages(t))) || first.Failed == 0 {
		t.Fatalf("backfill: %+v\n%s", first, r)
	}
	r = mustCode(t, exitOK, tmp, append([]string{"search", "--image", filepath.Join(src, "landscape.jpg"), "-k", "3", "--sink", sinkURI}, model...)...)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 || !strings.Contains(lines[1], "landscape.jpg") {
		t.Errorf("search:\n%s", r)
	}
	r = mustCode(t, exitItemFailures, tmp, append([]string{"sync", "-q", "--source", src, "--sink", sinkURI}, model...)...)
	if again := parseRunLine(t, r); again.Unchanged != first.Written || again.Written != 0 {
		t.Errorf("second sync: %+v", again)
	}
	if err := os.Remove(filepath.Join(src, "portrait.jpg")); err != nil {
		t.Fatal(err)
	}
	r = mustCode(t, exitItemFailures, tmp, append([]string{"sync", "-q", "--source", src, "--sink", sinkURI}, model...)...)
	if del := parseRunLine(t, r); del.Deleted != 1 {
		t.Errorf("sync after a delete: %+v", del)
	}
	// Another layer is another model id: a new collection, filled by sync.
	r = mustCode(t, exitItemFailures, tmp, append([]string{"sync", "-q", "--layer", "fc6", "--source", src, "--sink", sinkURI}, model...)...)
	if fc6 := parseRunLine(t, r); fc6.Extracted != first.Written-1 {
		t.Errorf("sync with another model: %+v", fc6)
	}
	st := status(t, tmp, sinkURI)
	if len(st.Models) != 2 || st.Models[0].Rows != first.Written-1 || st.Models[1].Rows != first.Written-1 {
		t.Errorf("status: %+v", st)
	}
	for _, layer := range []string{"fc6", "fc7"} {
		r = mustCode(t, exitOK, tmp, append([]string{"search", "--layer", layer, "--image", filepath.Join(src, "landscape.jpg"), "-k", "2", "--sink", sinkURI}, model...)...)
		if !strings.Contains(r.stdout, "landscape.jpg") {
			t.Errorf("search %s after the model change:\n%s", layer, r)
		}
	}
	if r := mustCode(t, exitOK, tmp, "migrate", "status", "--sink", sinkURI); func() bool { v, latest := schemaVersion(t, r); return v != latest }() {
		t.Errorf("migrate status:\n%s", r)
	}
	// Credentials come from the environment and never show.
	t.Setenv("IMGVEC_MILVUS_USER", "root")
	t.Setenv("IMGVEC_MILVUS_PASSWORD", "hunter2")
	bad := strings.Replace(sinkURI, "127.0.0.1:", "127.0.0.1:1", 1)
	r = imgvec(t, tmp, "status", "--sink", bad)
	if r.code == exitOK || strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stdout, "hunter2") {
		t.Errorf("status with credentials against no server: exit %d\n%s", r.code, r)
	}
}

// TestE2EMilvusInvalidKeyName: a file name that is not valid UTF-8 is an
// invalid_key failure of that item only; it used to fail the run.
func TestE2EMilvusInvalidKeyName(t *testing.T) {
	needBinary(t)
	eachMilvus(t, checkInvalidKeyName)
}
