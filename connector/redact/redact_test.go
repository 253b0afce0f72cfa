package redact

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://imgvec:s3cr3t@db:5432/imgvec?table=images", "postgres://imgvec:xxxxx@db:5432/imgvec?table=images"},
		{"postgres://imgvec@db/imgvec?sslmode=require&password=s3cr3t&table=t", "postgres://imgvec@db/imgvec?sslmode=require&password=xxxxx&table=t"},
		{"postgresql://u@db/x?PassWord=s3cr3t", "postgresql://u@db/x?PassWord=xxxxx"},
		{"postgres://u@db/x?pass%77ord=s3cr3t", "postgres://u@db/x?pass%77ord=xxxxx"},
		{"postgres://u@db/x?sslpassword=s3cr3t&sslkey=/k.pem", "postgres://u@db/x?sslpassword=xxxxx&sslkey=/k.pem"},
		{"postgres://u:pa/ss@word@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u:@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u:s3cr3t@db/%zz?x=1", "postgres://u:xxxxx@db/%zz?x=1"}, // does not parse
		{"milvus://127.0.0.1:19530?collection=c&token=root:Milvus", "milvus://127.0.0.1:19530?collection=c&token=xxxxx"},
		{"milvus://h?api_key=k1&Secret_Access_Key=k2&access_key=k3&client_secret=k4&x-amz-signature=k5", "milvus://h?api_key=xxxxx&Secret_Access_Key=xxxxx&access_key=xxxxx&client_secret=xxxxx&x-amz-signature=xxxxx"},
		{"sqlite://./imgvec.db", "sqlite://./imgvec.db"},
		{"sqlite:///data/a b@c:d.db", "sqlite:///data/a b@c:d.db"},
		{"sqlite:///tmp/x.db?token=t#frag", "sqlite:///tmp/x.db?token=xxxxx#frag"},
		{"host=db user=u password=s3cr3t dbname=x", "host=db user=u password=xxxxx dbname=x"},
		{"host=db password='s3 cr\\'3t' sslpassword=p2", "host=db password=xxxxx sslpassword=xxxxx"},
		{"", ""},
	} {
		if got := URI(tc.in); got != tc.want {
			t.Errorf("URI(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestIsSecretKey(t *testing.T) {
	for _, k := range []string{"password", "PASSWORD", "sslpassword", "token", "auth_token", "secret", "api_key", "apikey",
		"access_key", "secret_key", "aws_secret_access_key", "pwd", "pass", "sig", "X-Amz-Security-Token"} {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false", k)
		}
	}
	for _, k := range []string{"table", "schema", "sslmode", "collection", "passive", "host", "user", "storage", "tls_ca"} {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true", k)
		}
	}
}

func TestScrub(t *testing.T) {
	uri := "postgres://u:p%40ss%2Fw0rd@db/x?sslpassword=ssl+pw&token=t0k&table=items"
	msg := `cannot parse "postgres://u:p%40ss%2Fw0rd@db/x": password p@ss/w0rd, ssl pw ssl+pw / ssl%2Bpw, token t0k; table items`
	got := Scrub(msg, uri)
	for _, secret := range []string{"p%40ss%2Fw0rd", "p@ss/w0rd", "ssl pw", "ssl+pw", "t0k"} {
		if strings.Contains(got, secret) {
			t.Errorf("Scrub left %q in %q", secret, got)
		}
	}
	if !strings.Contains(got, "table items") {
		t.Errorf("Scrub removed more than the secrets: %q", got)
	}
	if got := Scrub("password s3cr3t", "host=db password='s3cr3t'"); got != "password xxxxx" {
		t.Errorf("keyword DSN: %q", got)
	}
	if got := Scrub("no secrets here", "sqlite://./x.db"); got != "no secrets here" {
		t.Errorf("sqlite: %q", got)
	}
}
