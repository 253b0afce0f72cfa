package main

// The S3 source end to end, against the test S3 server (SeaweedFS,
// `make services`): add, overwrite, copy, delete, a multipart object,
// metadata, wrong credentials, a listing broken part-way, and a sync
// killed with SIGKILL and rerun.

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector/s3source/s3test"
)

// s3Images are small test images put into buckets.
var s3Images = []string{"small.jpg", "lossy.webp", "exif3.jpg", "exif6.jpg", "gray.jpg", "palette_trns.png"}

func readImage(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e2eImages, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// s3Row is a stored row as the S3 tests check it.
type s3Row struct {
	Key, ETag, SHA256 string
	Size              int64
	Metadata          map[string]string
}

func s3Rows(t *testing.T, db string) map[string]s3Row {
	t.Helper()
	rows, err := openDB(t, db).Query(`SELECT key, etag, sha256, size, coalesce(metadata, '') FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]s3Row{}
	for rows.Next() {
		var r s3Row
		var md string
		if err := rows.Scan(&r.Key, &r.ETag, &r.SHA256, &r.Size, &md); err != nil {
			t.Fatal(err)
		}
		if md != "" {
			if err := json.Unmarshal([]byte(md), &r.Metadata); err != nil {
				t.Fatalf("metadata of %s: %v", r.Key, err)
			}
		}
		out[r.Key] = r
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestE2ES3Sync(t *testing.T) {
	needBinary(t)
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "s3.db")
	ref := srv.Ref(bucket, "photos")
	for i, name := range s3Images[:4] {
		var meta map[string]string
		if i == 0 {
			meta = map[string]string{"album": "trip", "camera": "x100"}
		}
		srv.Put(t, bucket, "photos/"+name, readImage(t, name), meta)
	}
	srv.Put(t, bucket, "elsewhere/"+s3Images[4], readImage(t, s3Images[4]), nil) // outside the prefix
	sync := func(want int) runLine {
		t.Helper()
		return parseRunLine(t, mustCodeEnv(t, want, tmp, srv.Env(), "sync", "-q", "--source", ref, "--sink", "sqlite://"+db,
			"--model", e2eModel, "--s3-metadata", "--s3-concurrency", "4"))
	}

	// Add.
	if r := sync(exitOK); r.Listed != 4 || r.Extracted != 4 || r.Source != "s3://"+bucket+"/photos/" {
		t.Fatalf("first sync: %+v; want 4 listed and extracted from s3://%s/photos/", r, bucket)
	}
	rows := s3Rows(t, db)
	first := rows[s3Images[0]]
	if first.Metadata["album"] != "trip" || first.Metadata["camera"] != "x100" || first.ETag == "" {
		t.Errorf("row of %s: %+v; want its ETag and user metadata", s3Images[0], first)
	}
	// Nothing changed: nothing read.
	if r := sync(exitOK); r.Unchanged != 4 || r.Written != 0 {
		t.Errorf("second sync: %+v; want 4 unchanged", r)
	}
	// Overwrite (new bytes, new ETag), copy (same bytes under a new key:
	// the vector is reused), delete, and a multipart object.
	srv.Put(t, bucket, "photos/"+s3Images[1], readImage(t, s3Images[5]), nil)
	srv.Put(t, bucket, "photos/copy/"+s3Images[2], readImage(t, s3Images[2]), nil)
	srv.Delete(t, bucket, "photos/"+s3Images[3])
	big := noisePNG(t, 1400, 1400) // over 5 MiB: S3's smallest part
	srv.PutMultipart(t, bucket, "photos/multi.png", big[:5<<20], big[5<<20:])
	r := sync(exitOK)
	if r.Listed != 5 || r.Extracted != 2 || r.Reused != 1 || r.Unchanged != 2 || r.Deleted != 1 {
		t.Errorf("sync after overwrite, copy, delete, multipart: %+v; want listed 5, extracted 2, reused 1, unchanged 2, deleted 1", r)
	}
	rows = s3Rows(t, db)
	if got := rows[s3Images[1]]; got.SHA256 != sha(readImage(t, s3Images[5])) {
		t.Errorf("overwritten %s stored with sha256 %s, not the new bytes'", s3Images[1], got.SHA256)
	}
	if m := rows["multi.png"]; !regexp.MustCompile(`-2"?$`).MatchString(m.ETag) || m.SHA256 != sha(big) {
		t.Errorf("multipart row %+v: want a multipart ETag and the whole object's sha256", m)
	}
	if _, ok := rows[s3Images[3]]; ok || len(rows) != 5 {
		t.Errorf("rows after the delete: %d, deleted key still there: %v", len(rows), ok)
	}

	// Wrong credentials: a clear error, exit 1, no secret shown.
	const secret = "wrong-secret-do-not-print-0123"
	res := imgvecEnv(t, tmp, []string{"AWS_ACCESS_KEY_ID=nobody", "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_REGION=us-east-1"},
		"sync", "-q", "--source", ref, "--sink", "sqlite://"+db, "--model", e2eModel)
	if res.code != exitFatal || !strings.Contains(res.stderr, "InvalidAccessKeyId") || strings.Contains(res.stdout+res.stderr, secret) {
		t.Errorf("sync with wrong credentials: want exit 1 naming InvalidAccessKeyId without the secret\n%s", res)
	}
	if got := s3Rows(t, db); len(got) != 5 {
		t.Errorf("after the failed listing: %d rows, want the 5 kept", len(got))
	}
}

// noisePNG encodes a w×h image of random pixels: PNG cannot compress it.
func noisePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if buf.Len() <= 5<<20 {
		t.Fatalf("noise PNG of %d bytes: want over 5 MiB", buf.Len())
	}
	return buf.Bytes()
}

// committedRows counts the rows of a database that may not exist or be
// migrated yet (0 then).
func committedRows(db string) int {
	if _, err := os.Stat(db); err != nil {
		return 0
	}
	h, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=1000")
	if err != nil {
		return 0
	}
	defer h.Close()
	var n int
	if h.QueryRow(`SELECT count(*) FROM items`).Scan(&n) != nil {
		return 0
	}
	return n
}

func mustCodeEnv(t *testing.T, want int, dir string, env []string, args ...string) result {
	t.Helper()
	r := imgvecEnv(t, dir, env, args...)
	if r.code != want {
		t.Fatalf("imgvec %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, want, r)
	}
	return r
}

// A listing broken part-way (the server stops answering after a first,
// partial page) deletes nothing.
func TestE2ES3BrokenListingDeletesNothing(t *testing.T) {
	needBinary(t)
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "s3.db")
	for _, name := range s3Images[:4] {
		srv.Put(t, bucket, name, readImage(t, name), nil)
	}
	// A proxy that, once broken, answers the first listing page with two
	// objects and "more to come", then fails as a stopped server would.
	target, _ := url.Parse(srv.Endpoint)
	var broken atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && r.URL.Query().Has("continuation-token") {
			hj, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "stopped", http.StatusServiceUnavailable)
				return
			}
			c, _, _ := hj.Hijack()
			c.Close() // connection dropped: the server is gone
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Host = r.Host
		out.ContentLength = r.ContentLength
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if broken.Load() && r.URL.Query().Get("list-type") == "2" {
			s := string(body)
			// Keep the first two objects, announce another page.
			parts := strings.SplitAfter(s, "</Contents>")
			s = strings.Join(parts[:2], "") + "<NextContinuationToken>next</NextContinuationToken>" + parts[len(parts)-1]
			s = strings.Replace(s, "<IsTruncated>false</IsTruncated>", "<IsTruncated>true</IsTruncated>", 1)
			body = []byte(s)
		}
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	defer proxy.Close()
	ref := "s3://" + bucket + "?endpoint=" + proxy.URL + "&region=us-east-1&path_style=true"
	args := []string{"sync", "-q", "--source", ref, "--sink", "sqlite://" + db, "--model", e2eModel}
	if r := parseRunLine(t, mustCodeEnv(t, exitOK, tmp, srv.Env(), args...)); r.Listed != 4 {
		t.Fatalf("first sync: %+v", r)
	}
	broken.Store(true)
	res := imgvecEnv(t, tmp, srv.Env(), args...)
	if res.code == exitOK || !strings.Contains(res.stderr, "page 2") {
		t.Errorf("sync over a listing broken after page 1: want a failure naming page 2\n%s", res)
	}
	if r := parseRunLine(t, res); r.Listed != 2 || r.Deleted != 0 {
		t.Errorf("broken listing: %+v; want 2 listed, none deleted", r)
	}
	if got := s3Rows(t, db); len(got) != 4 {
		t.Errorf("after the broken listing: %d rows, want all 4 kept", len(got))
	}
}

// A sync killed with SIGKILL part-way, then rerun, stores every object
// once at its current bytes.
func TestE2ES3KillAndRerun(t *testing.T) {
	needBinary(t)
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "s3.db")
	ents, err := os.ReadDir(e2eImages)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, e := range ents {
		if e.Type().IsRegular() && isImageName(e.Name()) {
			b := readImage(t, e.Name())
			srv.Put(t, bucket, e.Name(), b, nil)
			want[e.Name()] = sha(b)
		}
	}
	args := []string{"sync", "-q", "--source", srv.Ref(bucket, ""), "--sink", "sqlite://" + db, "--model", e2eModel, "--batch", "2", "--s3-concurrency", "2"}
	p := startBGEnv(t, tmp, srv.Env(), args...)
	// Kill once some rows are committed (or when it ends first).
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if committedRows(db) > 0 {
			break
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	exited := p.kill(syscall.SIGKILL)
	p.wait(t, 30*time.Second)
	t.Logf("first sync: %s (exited before the kill: %v), %d rows", p.summary(), exited, len(s3Rows(t, db)))
	r := parseRunLine(t, mustCodeEnv(t, exitOK, tmp, srv.Env(), args...))
	rows := s3Rows(t, db)
	if len(rows) != len(want) || r.Listed != int64(len(want)) {
		t.Errorf("after the rerun: %d rows, listed %d; want %d", len(rows), r.Listed, len(want))
	}
	for k, s := range want {
		if rows[k].SHA256 != s {
			t.Errorf("%s: stored sha256 %q, want %s", k, rows[k].SHA256, s)
		}
	}
	if r.Extracted+r.Reused+r.Unchanged != int64(len(want)) {
		t.Errorf("rerun: %+v: extracted + reused + unchanged != %d", r, len(want))
	}
}
