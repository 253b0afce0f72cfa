package main

// The URL-manifest source end to end against a local HTTP server:
// conditional GETs (304 costs nothing), 404 twice → deleted, opt-outs as
// policy skips (not failures), HTML as a format failure, metadata columns in SQL, and the SSRF
// guard (loopback needs --allow-private-networks).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector/s3source/s3test"
)

// imageServer serves testdata/images under /img/ with ETags and
// Last-Modified (304 on a match), 404 for gone.jpg, an HTML page as
// page.jpg, and gray.jpg with X-Robots-Tag: noai. It counts full answers
// and 304s.
type imageServer struct {
	*httptest.Server
	full, notModified atomic.Int32
}

func newImageServer(t *testing.T) *imageServer {
	s := &imageServer{}
	modTime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/img/")
		switch name {
		case "gone.jpg":
			http.NotFound(w, r)
			return
		case "page.jpg":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!doctype html><html><body>sign in</body></html>"))
			return
		}
		b, err := os.ReadFile(filepath.Join(e2eImages, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if name == "gray.jpg" {
			w.Header().Set("X-Robots-Tag", "noai")
		}
		w.Header().Set("ETag", `"`+sha(b)[:16]+`"`)
		rec := &statusRecorder{ResponseWriter: w}
		http.ServeContent(rec, r, name, modTime, bytes.NewReader(b))
		if rec.code == http.StatusNotModified {
			s.notModified.Add(1)
		} else {
			s.full.Add(1)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// writeURLManifest writes dir/urls.jsonl: one line per image name, with
// album (trip, home, trip, …) and rank columns.
func writeURLManifest(t *testing.T, dir string, srv *imageServer, names ...string) {
	t.Helper()
	var lines bytes.Buffer
	for i, name := range names {
		row := map[string]any{"url": srv.URL + "/img/" + name, "album": []string{"trip", "home"}[i%2], "rank": i}
		j, _ := json.Marshal(row)
		lines.Write(append(j, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.jsonl"), lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestE2EURLManifest(t *testing.T) {
	needBinary(t)
	srv := newImageServer(t)
	full, notModified := &srv.full, &srv.notModified
	tmp := t.TempDir()
	db := filepath.Join(tmp, "urls.db")
	writeURLManifest(t, tmp, srv, "small.jpg", "lossy.webp", "exif3.jpg", "gone.jpg", "page.jpg", "gray.jpg")
	args := []string{"sync", "-q", "--source", "urls.jsonl", "--sink", "sqlite://" + db, "--model", e2eModel}

	// Loopback is refused without the flag: every item is blocked.
	r := parseRunLine(t, mustCode(t, exitItemFailures, tmp, args...))
	if r.Failed != 6 || full.Load()+notModified.Load() != 0 {
		t.Fatalf("sync without --allow-private-networks: %+v after %d requests; want 6 failed, none sent", r, full.Load())
	}
	args = append(args, "--allow-private-networks")
	r = parseRunLine(t, mustCode(t, exitItemFailures, tmp, args...))
	if r.Listed != 6 || r.Extracted != 3 || r.Failed != 2 || r.Skipped != 1 || r.Outcome != "partial" {
		t.Errorf("first sync: %+v; want 3 extracted, 2 failed (gone, not an image), 1 skipped (opted out)", r)
	}
	classes := map[string]string{}
	for _, f := range readDB(t, db).Failures {
		classes[f.Key[strings.LastIndex(f.Key, "/")+1:]] = f.Class
	}
	if classes["gone.jpg"] != "gone" || classes["page.jpg"] != "not_an_image" || classes["gray.jpg"] != "opted_out" || len(classes) != 3 {
		t.Errorf("ledger classes %v; want gone, not_an_image, opted_out", classes)
	}
	// Metadata columns reach SQL.
	var trip []string
	rows, err := openDB(t, db).Query(`SELECT key FROM items WHERE json_extract(metadata, '$.album') = 'trip' ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		rows.Scan(&k)
		trip = append(trip, k[strings.LastIndex(k, "/")+1:])
	}
	rows.Close()
	if strings.Join(trip, ",") != "exif3.jpg,small.jpg" {
		t.Errorf("items with album=trip: %v", trip)
	}

	// Second sync: 304s cost nothing; gone twice → deleted.
	fullBefore := full.Load()
	r = parseRunLine(t, mustCode(t, exitItemFailures, tmp, args...))
	if r.Unchanged != 3 || r.Written != 0 || r.Deleted != 1 || r.Failed != 2 || r.Skipped != 1 {
		t.Errorf("second sync: %+v; want 3 unchanged (304), nothing written, 1 deleted (gone twice), 1 skipped", r)
	}
	if n := full.Load() - fullBefore; n != 1 || notModified.Load() != 3 {
		t.Errorf("second sync: %d full responses (the opted-out one only), %d 304s; want 1, 3", n, notModified.Load())
	}
	if st := readDB(t, db); len(st.Items) != 3 || len(st.Failures) != 2 {
		t.Errorf("after the second sync: %d rows, %d ledger entries; want 3, 2", len(st.Items), len(st.Failures))
	}
}

// A run whose only problem is a policy skip (the server opts out) is ok
// and exits 0; the run row counts it as skipped, `imgvec status` shows it.
func TestE2EURLPolicySkipOnly(t *testing.T) {
	needBinary(t)
	srv := newImageServer(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "skip.db")
	writeURLManifest(t, tmp, srv, "small.jpg", "gray.jpg")
	args := []string{"sync", "-q", "--source", "urls.jsonl", "--sink", "sqlite://" + db, "--model", e2eModel, "--allow-private-networks"}
	for i := range 2 {
		r := parseRunLine(t, mustCode(t, exitOK, tmp, args...))
		if r.Outcome != "ok" || r.Skipped != 1 || r.Failed != 0 || r.Listed != 2 {
			t.Errorf("sync %d: %+v; want ok, 1 skipped, 0 failed", i+1, r)
		}
	}
	st := mustCode(t, exitOK, tmp, "status", "--sink", "sqlite://"+db).stdout
	head, row, _ := strings.Cut(st[strings.Index(st, "STARTED"):], "\n")
	cols, vals := strings.Fields(head), strings.Fields(row)
	if i := slices.Index(cols, "SKIPPED"); i < 0 || len(vals) <= i || vals[i] != "1" || vals[slices.Index(cols, "FAILED")] != "0" {
		t.Errorf("status runs table lacks SKIPPED 1, FAILED 0:\n%s", st)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// A URL manifest and a folder in one job, into PostgreSQL: the metadata
// columns are jsonb there, and the second sync revalidates with 304s.
func TestE2EURLManifestPostgresMixed(t *testing.T) {
	needBinary(t)
	sinkURI := pgSink(t)
	srv := newImageServer(t)
	tmp := t.TempDir()
	writeURLManifest(t, tmp, srv, "small.jpg", "lossy.webp", "exif3.jpg")
	folder := filepath.Join(tmp, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gray.jpg", "portrait.jpg"} {
		if err := os.WriteFile(filepath.Join(folder, name), readImage(t, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"sync", "-q", "--source", "urls.jsonl", "--source", "folder", "--sink", sinkURI, "--model", e2eModel, "--allow-private-networks"}
	r := mustCode(t, exitOK, tmp, args...)
	if runs := runLineRE.FindAllString(r.stderr, -1); len(runs) != 2 {
		t.Fatalf("want one run summary per source\n%s", r)
	}
	r = mustCode(t, exitOK, tmp, args...)
	for _, m := range runLineRE.FindAllStringSubmatch(r.stderr, -1) {
		if m[6] != "0" { // written
			t.Errorf("second sync wrote items: %s", m[0])
		}
	}
	if srv.notModified.Load() != 3 {
		t.Errorf("second sync: %d 304s, want 3", srv.notModified.Load())
	}
	u, _ := url.Parse(sinkURI)
	conn, err := pgx.Connect(t.Context(), os.Getenv("IMGVEC_TEST_PG_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	table := pgx.Identifier{u.Query().Get("schema"), "images"}.Sanitize()
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` WHERE metadata->>'album' = 'trip'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows with album=trip: %d, %v; want 2", n, err)
	}
}

// A manifest stored in a bucket (s3://BUCKET/KEY.jsonl) is read through
// the S3 source's client and credentials.
func TestE2EURLManifestInBucket(t *testing.T) {
	needBinary(t)
	s3srv := s3test.Open(t)
	bucket := s3srv.Bucket(t)
	srv := newImageServer(t)
	tmp := t.TempDir()
	writeURLManifest(t, tmp, srv, "small.jpg", "lossy.webp", "exif3.jpg")
	b, err := os.ReadFile(filepath.Join(tmp, "urls.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	s3srv.Put(t, bucket, "lists/urls.jsonl", b, nil)
	ref := "s3://" + bucket + "/lists/urls.jsonl?endpoint=" + s3srv.Endpoint + "&region=us-east-1&path_style=true"
	r := parseRunLine(t, mustCodeEnv(t, exitOK, tmp, s3srv.Env(), "sync", "-q", "--source", ref, "--sink", "sqlite://"+filepath.Join(tmp, "m.db"),
		"--model", e2eModel, "--allow-private-networks"))
	if r.Extracted != 3 || r.Source != "manifest+s3://"+bucket+"/lists/urls.jsonl" {
		t.Errorf("sync of a manifest in a bucket: %+v; want 3 extracted from manifest+s3://%s/lists/urls.jsonl", r, bucket)
	}
}
