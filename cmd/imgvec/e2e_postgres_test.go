package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/schema/testenv"
)

// pgSink returns a postgres:// sink URI in a schema of its own on the test
// server (IMGVEC_TEST_PG_DSN, started by `make services`), dropped after t.
func pgSink(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("IMGVEC_TEST_PG_DSN")
	if dsn == "" {
		testenv.Skip(t, "IMGVEC_TEST_PG_DSN is not set: run `make services` and source .cache/services.env")
	}
	schemaName := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop schema %s: %v", schemaName, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schemaName}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schemaName, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schemaName)
	q.Set("table", "images")
	u.RawQuery = q.Encode()
	return u.String()
}

// TestE2EPostgres runs the user's commands against a real PostgreSQL with
// pgvector: a backfill that builds the binary index after the load, search
// through it, incremental sync, status, and the index commands.
func TestE2EPostgres(t *testing.T) {
	needBinary(t)
	sinkURI := pgSink(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, filepath.Join("..", "..", "testdata", "images"), src)
	model := []string{"--model", e2eModel}

	r := mustCode(t, exitItemFailures, tmp, append([]string{"backfill", "-q", "--index", "binary", "--source", src, "--sink", sinkURI}, model...)...)
	first := parseRunLine(t, r)
	if first.Written != int64(len(goodImages(t))) || first.Failed == 0 {
		t.Fatalf("backfill: %+v\n%s", first, r)
	}
	if !strings.Contains(r.stderr, "built index") {
		t.Errorf("backfill into an empty table did not build the deferred index:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, "index", "status", "--sink", sinkURI)
	if !strings.Contains(r.stdout, "binary") || !strings.Contains(r.stdout, "true") {
		t.Errorf("index status:\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, append([]string{"search", "--image", filepath.Join(src, "landscape.jpg"), "-k", "3", "--sink", sinkURI}, model...)...)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 || !strings.Contains(lines[1], "landscape.jpg") {
		t.Errorf("search through the index:\n%s", r)
	}
	// The next sync finds everything unchanged (and the failures known).
	r = mustCode(t, exitItemFailures, tmp, append([]string{"sync", "-q", "--index", "binary", "--source", src, "--sink", sinkURI}, model...)...)
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
	st := status(t, tmp, sinkURI)
	if len(st.Models) != 1 || st.Models[0].Rows != first.Written-1 {
		t.Errorf("status: %+v", st)
	}
	mustCode(t, exitOK, tmp, "index", "drop", "--sink", sinkURI)
	if r = mustCode(t, exitOK, tmp, "index", "status", "--sink", sinkURI); !strings.Contains(r.stdout, "no vector index") {
		t.Errorf("index status after drop:\n%s", r)
	}
	mustCode(t, exitUsage, tmp, "index", "status", "--sink", "sqlite://"+filepath.Join(tmp, "x.db"))
	// The password never shows: not when the server is unreachable (exit
	// 1), not when the DSN is malformed (a usage error, exit 2).
	u, err := url.Parse(sinkURI)
	if err != nil {
		t.Fatal(err)
	}
	u.User, u.Host = url.UserPassword(u.User.Username(), "hunter2"), "127.0.0.1:1"
	for code, bad := range map[int]string{exitFatal: u.String(), exitUsage: strings.Replace(u.String(), "127.0.0.1:1", "127.0.0.1:155432", 1)} {
		r = mustCode(t, code, tmp, "status", "--sink", bad)
		if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stdout, "hunter2") {
			t.Errorf("password in output:\n%s", r)
		}
	}
}

// TestE2EPostgresInvalidKeyName: a file name that is not valid UTF-8 is an
// invalid_key failure of that item only; it used to roll back every batch.
func TestE2EPostgresInvalidKeyName(t *testing.T) {
	needBinary(t)
	checkInvalidKeyName(t, pgSink(t))
}
