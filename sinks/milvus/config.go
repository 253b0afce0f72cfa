package milvus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/entity"
)

// Environment variables holding credentials. They are read by New and never
// appear in errors, logs or URI().
const (
	EnvToken    = "IMGVEC_MILVUS_TOKEN"
	EnvUser     = "IMGVEC_MILVUS_USER"
	EnvPassword = "IMGVEC_MILVUS_PASSWORD"
)

// Defaults of the write path, chosen from `make bench-milvus` (see the
// README's Milvus section for the numbers).
const (
	DefaultChunkBytes = 32 << 20
	DefaultWriters    = 1
	// maxRequestBytes is Milvus' default gRPC request limit
	// (proxy.grpc.serverMaxRecvSize): a chunk never reaches it.
	maxRequestBytes = 64 << 20
)

// IndexKind is the vector index of item collections.
type IndexKind string

const (
	IndexHNSW      IndexKind = "HNSW"
	IndexIVFFlat   IndexKind = "IVF_FLAT"
	IndexAutoIndex IndexKind = "AUTOINDEX"
)

// Metric is the distance every item collection is indexed with: cosine,
// like the other sinks (distance = 1 - Milvus' COSINE similarity).
const Metric = entity.COSINE

// config is a parsed milvus:// URI and the credentials from the
// environment.
type config struct {
	addr       string
	base       string // base collection name; readers use it as an alias
	db         string
	tls        *tls.Config
	index      IndexKind
	grace      time.Duration // how long a retired collection is kept
	chunkBytes int
	writers    int
	user, pass string // from the environment
	token      string // from the environment
	retries    int
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,199}$`)

// parseURI reads milvus://HOST:PORT?collection=NAME&db=DB&tls=true&
// tls_ca=FILE&index=HNSW&grace=24h&chunk_mb=32&writers=2&retries=4.
func parseURI(uri string) (config, error) {
	c := config{base: "imgvec", index: IndexHNSW, grace: 24 * time.Hour,
		chunkBytes: DefaultChunkBytes, writers: DefaultWriters, retries: 4}
	u, err := url.Parse(uri)
	if err != nil {
		// url's error quotes the whole URI, secrets included: keep only
		// its cause.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return c, fmt.Errorf("milvus sink URI: %w", err)
	}
	if u.Scheme != "milvus" {
		return c, fmt.Errorf("milvus sink URI: scheme %q, want milvus://HOST:PORT?collection=NAME", u.Scheme)
	}
	if u.User != nil {
		return c, fmt.Errorf("milvus sink URI: credentials do not belong in the URI; set %s, or %s and %s", EnvToken, EnvUser, EnvPassword)
	}
	if u.Host == "" {
		return c, errors.New("milvus sink URI: no host; want milvus://HOST:PORT?collection=NAME")
	}
	c.addr = u.Host
	if u.Port() == "" {
		c.addr += ":19530"
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "collection", "db", "tls", "tls_ca", "index", "grace", "chunk_mb", "writers", "retries":
		default:
			return c, fmt.Errorf("milvus sink URI: unknown parameter %q", k)
		}
	}
	if v, ok := q["collection"]; ok {
		c.base = v[len(v)-1]
	}
	// The companion collections add a suffix of up to 9 characters.
	if !nameRE.MatchString(c.base) || len(c.base) > 190 {
		return c, fmt.Errorf("milvus sink URI: collection=%q: want 1-190 letters, digits or _, not starting with a digit (default imgvec when the parameter is absent)", c.base)
	}
	c.db = q.Get("db")
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("milvus sink URI: tls=%q: want true or false", v)
		}
		if on {
			c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	if v := q.Get("tls_ca"); v != "" {
		pem, err := os.ReadFile(v)
		if err != nil {
			return c, fmt.Errorf("milvus sink URI: tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return c, fmt.Errorf("milvus sink URI: tls_ca %s holds no PEM certificate", v)
		}
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	if v := q.Get("index"); v != "" {
		switch k := IndexKind(strings.ToUpper(v)); k {
		case IndexHNSW, IndexIVFFlat, IndexAutoIndex:
			c.index = k
		default:
			return c, fmt.Errorf("milvus sink URI: index=%q: want HNSW, IVF_FLAT or AUTOINDEX", v)
		}
	}
	if v := q.Get("grace"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("milvus sink URI: grace=%q: want a duration such as 24h", v)
		}
		c.grace = d
	}
	if v := q.Get("chunk_mb"); v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil || mb < 1 || mb<<20 >= maxRequestBytes {
			return c, fmt.Errorf("milvus sink URI: chunk_mb=%q: want 1 to 63 (requests are capped at 64 MB)", v)
		}
		c.chunkBytes = mb << 20
	}
	if v := q.Get("writers"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 16 {
			return c, fmt.Errorf("milvus sink URI: writers=%q: want 1 to 16", v)
		}
		c.writers = n
	}
	if v := q.Get("retries"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return c, fmt.Errorf("milvus sink URI: retries=%q: want 1 to 20", v)
		}
		c.retries = n
	}
	c.token = os.Getenv(EnvToken)
	c.user, c.pass = os.Getenv(EnvUser), os.Getenv(EnvPassword)
	if c.token != "" && c.user != "" {
		return c, fmt.Errorf("milvus sink: set either %s or %s/%s, not both", EnvToken, EnvUser, EnvPassword)
	}
	return c, nil
}

// Collection names derived from the base name.
func (c config) failuresName() string { return c.base + "_failures" }
func (c config) runsName() string     { return c.base + "_runs" }
func (c config) metaName() string     { return c.base + "_meta" }
func (c config) itemsName(v int) string {
	return c.base + "_v" + strconv.Itoa(v)
}

// itemsVersion parses NAME_vN; ok is false for any other name.
func (c config) itemsVersion(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, c.base+"_v")
	if !ok || rest == "" || rest[0] == '0' {
		return 0, false
	}
	v, err := strconv.Atoi(rest)
	return v, err == nil && v > 0
}
