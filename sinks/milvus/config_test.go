package milvus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseURI(t *testing.T) {
	t.Setenv(EnvToken, "")
	t.Setenv(EnvUser, "")
	t.Setenv(EnvPassword, "")
	c, err := parseURI("milvus://db.example:19531?collection=photos&index=ivf_flat&grace=1h&chunk_mb=16&writers=3&tls=true")
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "db.example:19531" || c.base != "photos" || c.index != IndexIVFFlat || c.grace != time.Hour ||
		c.chunkBytes != 16<<20 || c.writers != 3 || c.tls == nil {
		t.Errorf("parsed %+v", c)
	}
	if c, _ := parseURI("milvus://h"); c.addr != "h:19530" || c.base != "imgvec" || c.index != IndexHNSW || c.chunkBytes != DefaultChunkBytes {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []string{
		"postgres://h", "milvus://", "milvus://h?collection=1abc", "milvus://h?collection=a-b", "milvus://h?index=DISKANN",
		"milvus://h?chunk_mb=64", "milvus://h?writers=0", "milvus://h?grace=soon", "milvus://h?tls=maybe", "milvus://h?colection=x",
		"milvus://h?collection=", "milvus://h?collection=ok&collection=",
	} {
		if _, err := parseURI(bad); err == nil {
			t.Errorf("parseURI(%q) accepted", bad)
		}
	}
	// The error names the parameter, like the PostgreSQL sink's table=.
	if _, err := parseURI("milvus://h?collection="); err == nil || !strings.Contains(err.Error(), "collection=") {
		t.Errorf("empty collection: %v", err)
	}
}

func TestCredentialsOnlyFromEnvironment(t *testing.T) {
	_, err := parseURI("milvus://root:s3cret-pw@h:19530")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), EnvPassword) {
		t.Errorf("URI with a password: %v; want a refusal naming %s without the password", err, EnvPassword)
	}
	// A URI that does not parse: url's error would quote it whole.
	for _, bad := range []string{"milvus://root:s3cret-pw@h:19530/%zz", "milvus://root:s3cret-pw@h:port", "milvus://h?token=s3cret-pw"} {
		if _, err := parseURI(bad); err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("parseURI(invalid URI with a secret) = %v; want an error without the secret", err)
		}
	}
	t.Setenv(EnvUser, "root")
	t.Setenv(EnvPassword, "s3cret-pw")
	t.Setenv(EnvToken, "")
	c, err := parseURI("milvus://h")
	if err != nil || c.user != "root" || c.pass != "s3cret-pw" {
		t.Fatalf("credentials from the environment: %+v %v", c, err)
	}
	if got := scrub(errors.New("auth failed for root:s3cret-pw"), c).Error(); strings.Contains(got, "s3cret-pw") {
		t.Errorf("scrub left the password: %q", got)
	}
	t.Setenv(EnvToken, "tok")
	if _, err := parseURI("milvus://h"); err == nil {
		t.Error("token and user/password both set: accepted")
	}
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{`a"b`, `\`, `" || id != "`, "nl\n", "\x00\xff", "ü", `\x41`} {
		q := quote(s)
		if !strings.HasPrefix(q, `"`) || !strings.HasSuffix(q, `"`) || strings.Contains(q[1:len(q)-1], "\n") {
			t.Errorf("quote(%q) = %s", s, q)
		}
		inner := q[1 : len(q)-1]
		for i := 0; i < len(inner); i++ { // every quote inside is escaped
			if inner[i] == '\\' {
				i++
			} else if inner[i] == '"' {
				t.Errorf("quote(%q) = %s: unescaped quote", s, q)
			}
		}
	}
	if got := inList("id", []string{`a"`, "b"}); got != `id in ["a\"","b"]` {
		t.Errorf("inList = %s", got)
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "down"), true},
		{errors.Join(errors.New("upsert"), status.Error(codes.ResourceExhausted, "rate")), true},
		{status.Error(codes.InvalidArgument, "bad"), false},
		{errors.New("collection not found"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
