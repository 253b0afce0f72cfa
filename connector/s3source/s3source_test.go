package s3source_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/connector/s3source"
	"github.com/imgvec/imgvec/connector/s3source/s3test"
	"github.com/imgvec/imgvec/connector/sourcetest"
)

// fastRetry keeps failing tests quick.
var fastRetry = retry.Policy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}

// proxy forwards to the S3 server; once broken, it fails every listing
// page after the first (a listing broken part-way).
type proxy struct {
	*httptest.Server
	broken atomic.Bool
}

func newProxy(t *testing.T, endpoint string) *proxy {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.broken.Load() && r.URL.Query().Has("continuation-token") {
			http.Error(w, "broken for the test", http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func open(t *testing.T, srv s3test.Server, ref string, opts s3source.Options) *s3source.Source {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = srv.Credentials()
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry = fastRetry
	}
	s, err := s3source.New(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := s3test.Open(t)
	sourcetest.Run(t, sourcetest.Harness{New: func(t *testing.T, items []sourcetest.Item) sourcetest.Fixture {
		bucket := srv.Bucket(t)
		for _, it := range items {
			srv.Put(t, bucket, "set/"+it.Key, it.Data, nil)
		}
		srv.Put(t, bucket, "elsewhere/0.jpg", []byte("outside the prefix"), nil)
		p := newProxy(t, srv.Endpoint)
		// Through the proxy, with small pages: Break fails pages 2 and on.
		ref := "s3://" + bucket + "/set?endpoint=" + p.URL + "&region=us-east-1&path_style=true"
		opts := s3source.Options{Extensions: []string{"*"}, PageSize: 5}
		return sourcetest.Fixture{
			Source: open(t, srv, ref, opts),
			Reopen: func(t *testing.T) connector.Source { return open(t, srv, srv.Ref(bucket, "set/"), opts) },
			Break:  func(*testing.T) { p.broken.Store(true) },
		}
	}})
}

func TestParseRef(t *testing.T) {
	r, err := s3source.ParseRef("s3://b/photos/2024?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	if r != (s3source.Ref{Bucket: "b", Prefix: "photos/2024/", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true}) {
		t.Errorf("ParseRef = %+v", r)
	}
	for _, bad := range []string{"s3://", "s3:///p", "s3://b/?colour=red", "s3://b?path_style=maybe", "s3://b?endpoint=ftp://x",
		"s3://key:secret@b/p", "s3://b?endpoint=http://key:secret@host"} {
		_, err := s3source.ParseRef(bad)
		if err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseRef(%q) error shows the secret: %v", bad, err)
		}
	}
}

func TestName(t *testing.T) {
	for ref, want := range map[string]string{
		"s3://b":                              "s3://b/",
		"s3://b/p":                            "s3://b/p/",
		"s3://b/p/?endpoint=http://h:1":       "s3://b/p/",
		"s3://b/a/b?region=x&path_style=true": "s3://b/a/b/",
	} {
		s, err := s3source.New(context.Background(), ref, s3source.Options{Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
		if err != nil {
			t.Fatal(err)
		}
		if s.Name() != want {
			t.Errorf("Name of %s = %q, want %q", ref, s.Name(), want)
		}
	}
}

func TestListFiltersAndMarkers(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	for _, k := range []string{"p/a.jpg", "p/sub/b.PNG", "p/notes.txt", "p/sub/", "q/c.jpg", "pp/d.jpg"} {
		srv.Put(t, bucket, k, []byte("x"+k), nil)
	}
	s := open(t, srv, srv.Ref(bucket, "p"), s3source.Options{Exclude: []string{"skip/**"}})
	var got []string
	if err := s.List(t.Context(), func(e connector.Entry) error {
		if e.ETag == "" || e.MTime.IsZero() || e.MTime.Location() != time.UTC {
			t.Errorf("%s: ETag %q, mtime %v: want both, in UTC", e.Key, e.ETag, e.MTime)
		}
		got = append(got, e.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a.jpg,sub/b.PNG" {
		t.Errorf("listed %v, want [a.jpg sub/b.PNG]", got)
	}
}

// listOne lists the single object of a source.
func listOne(t *testing.T, s connector.Source) connector.Entry {
	t.Helper()
	var es []connector.Entry
	if err := s.List(t.Context(), func(e connector.Entry) error { es = append(es, e); return nil }); err != nil || len(es) != 1 {
		t.Fatalf("List = %v, %v; want one entry", es, err)
	}
	return es[0]
}

// An object replaced between the listing and the read comes back with
// its new fingerprint, never under the listed one.
func TestReplacedBetweenListAndRead(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	srv.Put(t, bucket, "a.jpg", []byte("first version"), nil)
	s := open(t, srv, srv.Ref(bucket, ""), s3source.Options{})
	e := listOne(t, s)
	srv.Put(t, bucket, "a.jpg", []byte("second, longer version"), nil)
	c, err := s.ReadItem(t.Context(), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Data) != "second, longer version" || c.Entry.ETag == e.ETag || c.Entry.Size != int64(len(c.Data)) {
		t.Errorf("ReadItem after a replace = %q with %+v; listed %+v: want the new bytes with their own ETag and size", c.Data, c.Entry, e)
	}
	// Unreplaced: the listed fingerprint.
	e = listOne(t, s)
	if c, err = s.ReadItem(t.Context(), e, nil); err != nil || c.Entry.ETag != e.ETag || !c.Entry.MTime.Equal(e.MTime) {
		t.Errorf("ReadItem of an unchanged object = %+v, %v; want the listed %+v", c.Entry, err, e)
	}
}

// An object deleted between the listing and the read is missing
// (fs.ErrNotExist: the connector treats it as vanished), not a failure.
func TestDeletedBetweenListAndRead(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	srv.Put(t, bucket, "a.jpg", []byte("x"), nil)
	s := open(t, srv, srv.Ref(bucket, ""), s3source.Options{})
	e := listOne(t, s)
	srv.Delete(t, bucket, "a.jpg")
	if _, err := s.ReadItem(t.Context(), e, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadItem of a deleted object: %v, want fs.ErrNotExist", err)
	}
}

func TestMultipartETag(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	part1 := bytes.Repeat([]byte{7}, 5<<20)
	srv.PutMultipart(t, bucket, "big.jpg", part1, []byte("tail"))
	s := open(t, srv, srv.Ref(bucket, ""), s3source.Options{})
	e := listOne(t, s)
	c, err := s.ReadItem(t.Context(), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Data, append(part1, "tail"...)) || c.Entry.ETag != e.ETag {
		t.Errorf("multipart object: %d bytes, ETag %q (listed %q)", len(c.Data), c.Entry.ETag, e.ETag)
	}
	t.Logf("multipart ETag %s", e.ETag)
}

func TestMetadataAndSizeCap(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	srv.Put(t, bucket, "a.jpg", []byte("0123456789"), map[string]string{"Camera": "X100", "album": "trip"})
	plain := open(t, srv, srv.Ref(bucket, ""), s3source.Options{})
	e := listOne(t, plain)
	if c, err := plain.ReadItem(t.Context(), e, nil); err != nil || c.Metadata != nil {
		t.Errorf("without Metadata: %v, %v; want no metadata", c.Metadata, err)
	}
	withMeta := open(t, srv, srv.Ref(bucket, ""), s3source.Options{Metadata: true})
	if c, err := withMeta.ReadItem(t.Context(), e, nil); err != nil || c.Metadata["camera"] != "X100" || c.Metadata["album"] != "trip" {
		t.Errorf("with Metadata: %v, %v; want camera=X100 album=trip", c.Metadata, err)
	}
	capped := open(t, srv, srv.Ref(bucket, ""), s3source.Options{MaxBytes: 9})
	if _, err := capped.ReadItem(t.Context(), e, nil); !errors.Is(err, connector.ErrTooLarge) {
		t.Errorf("ReadItem above the cap: %v, want ErrTooLarge", err)
	}
	if _, err := capped.Read(t.Context(), "a.jpg"); !errors.Is(err, connector.ErrTooLarge) {
		t.Errorf("Read above the cap: %v, want ErrTooLarge", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := s3test.Open(t)
	bucket := srv.Bucket(t)
	srv.Put(t, bucket, "a.jpg", []byte("x"), nil)
	const secret = "not-the-secret-0123456789"
	s := open(t, srv, srv.Ref(bucket, ""), s3source.Options{Credentials: credentials.NewStaticCredentialsProvider("nobody", secret, "")})
	err := s.List(t.Context(), func(connector.Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("List with wrong credentials: %v; want an error naming the 403", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the secret: %v", err)
	}
	t.Log(err)
}
