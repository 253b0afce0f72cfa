package main

// The URL-manifest source end to end against a local HTTP server:
// conditional GETs (304 costs nothing), 404 twice → deleted, opt-outs and
// HTML as policy/format failures, metadata columns in SQL, and the SSRF
// guard (loopback needs --allow-private-networks).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestE2EURLManifest(t *testing.T) {
	needBinary(t)
	var full, notModified atomic.Int32
	modTime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
			notModified.Add(1)
		} else {
			full.Add(1)
		}
	}))
	defer srv.Close()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "urls.db")
	var lines bytes.Buffer
	for i, name := range []string{"small.jpg", "lossy.webp", "exif3.jpg", "gone.jpg", "page.jpg", "gray.jpg"} {
		row := map[string]any{"url": srv.URL + "/img/" + name, "album": []string{"trip", "home"}[i%2], "rank": i}
		j, _ := json.Marshal(row)
		lines.Write(append(j, '\n'))
	}
	if err := os.WriteFile(filepath.Join(tmp, "urls.jsonl"), lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"sync", "-q", "--source", "urls.jsonl", "--sink", "sqlite://" + db, "--model", e2eModel}

	// Loopback is refused without the flag: every item is blocked.
	r := parseRunLine(t, mustCode(t, exitItemFailures, tmp, args...))
	if r.Failed != 6 || full.Load()+notModified.Load() != 0 {
		t.Fatalf("sync without --allow-private-networks: %+v after %d requests; want 6 failed, none sent", r, full.Load())
	}
	args = append(args, "--allow-private-networks")
	r = parseRunLine(t, mustCode(t, exitItemFailures, tmp, args...))
	if r.Listed != 6 || r.Extracted != 3 || r.Failed != 3 {
		t.Errorf("first sync: %+v; want 3 extracted, 3 failed (gone, not an image, opted out)", r)
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
	if r.Unchanged != 3 || r.Written != 0 || r.Deleted != 1 || r.Failed != 3 {
		t.Errorf("second sync: %+v; want 3 unchanged (304), nothing written, 1 deleted (gone twice)", r)
	}
	if n := full.Load() - fullBefore; n != 1 || notModified.Load() != 3 {
		t.Errorf("second sync: %d full responses (the opted-out one only), %d 304s; want 1, 3", n, notModified.Load())
	}
	if st := readDB(t, db); len(st.Items) != 3 || len(st.Failures) != 2 {
		t.Errorf("after the second sync: %d rows, %d ledger entries; want 3, 2", len(st.Items), len(st.Failures))
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
