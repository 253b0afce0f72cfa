package urlsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/schema"
)

// Defaults of Options.
const (
	DefaultConcurrency    = 32
	DefaultPerHost        = 4
	DefaultConnectTimeout = 10 * time.Second
	DefaultHeaderTimeout  = 30 * time.Second
	DefaultTimeout        = 2 * time.Minute
	DefaultUserAgent      = "imgvec (+https://github.com/imgvec/imgvec)"
	// MaxRedirects is the most redirects one fetch follows.
	MaxRedirects = 5
)

// The failure classes of fetches (besides schema.FailTooLarge,
// schema.FailTruncated and schema.FailGone).
const (
	FailBadURL           schema.FailureClass = "bad_url"
	FailBlockedAddress   schema.FailureClass = "blocked_address"
	FailDNS              schema.FailureClass = "dns"
	FailConnect          schema.FailureClass = "connect"
	FailTimeout          schema.FailureClass = "timeout"
	FailTLS              schema.FailureClass = "tls"
	FailHTTP4xx          schema.FailureClass = "http_4xx"
	FailHTTP5xx          schema.FailureClass = "http_5xx"
	FailTooManyRedirects schema.FailureClass = "too_many_redirects"
	FailNotAnImage       schema.FailureClass = "not_an_image"
	FailHashMismatch     schema.FailureClass = "hash_mismatch"
	// FailOptedOut is a policy skip, not an error: the server asked that
	// the image not be used for AI (X-Robots-Tag noai/noimageai, also
	// scoped as "imgvec: noai", or tdm-reservation: 1). Runs count it as
	// skipped, not failed (schema.FailureClass.PolicySkip).
	FailOptedOut = schema.FailOptedOut
)

// Options configure a Source.
type Options struct {
	Guard       Guard
	UserAgent   string // default DefaultUserAgent
	Concurrency int    // fetches in flight (default DefaultConcurrency)
	PerHost     int    // fetches in flight per host (default DefaultPerHost)
	// ConnectTimeout bounds a connection's setup, HeaderTimeout the wait
	// for the response headers, Timeout one whole try (headers and body).
	ConnectTimeout, HeaderTimeout, Timeout time.Duration
	// MaxBytes refuses bodies above this (too_large); 0: no limit.
	MaxBytes int64
	// Retry bounds the tries of one fetch (zero: retry.Default); 429 and
	// 5xx answers, resets and timeouts are retried, honouring Retry-After.
	Retry retry.Policy
	// ManifestSource, when set, holds the manifest (an S3 bucket): the
	// manifest is its item ManifestKey, and the manifest reference given
	// to New only names it (without its query). Close closes it.
	ManifestSource connector.Source
	ManifestKey    string
}

// Source is the items of one URL manifest.
type Source struct {
	manifest string // path, or http(s) URL
	name     string
	format   format
	gz       bool
	opts     Options
	client   *http.Client
	tr       *http.Transport
	global   chan struct{}

	mu      sync.Mutex
	keys    []string
	rows    map[string]row // nil until a manifest was read
	perHost map[string]chan struct{}
}

var (
	_ connector.Source           = (*Source)(nil)
	_ connector.ItemReader       = (*Source)(nil)
	_ connector.ConcurrentSource = (*Source)(nil)
)

// New returns a Source for a manifest: a path or an http(s) URL whose
// name ends in .jsonl, .csv or .tsv (optionally .gz). It does no I/O.
func New(manifest string, opts Options) (*Source, error) {
	f, gz, ok := manifestFormat(manifest)
	if !ok {
		return nil, fmt.Errorf("url source %s: want a manifest ending in .jsonl, .csv or .tsv (optionally .gz)", redact.URI(manifest))
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("url source %s: negative size cap %d", redact.URI(manifest), opts.MaxBytes)
	}
	s := &Source{manifest: manifest, format: f, gz: gz, perHost: map[string]chan struct{}{}}
	if opts.ManifestSource != nil {
		u, err := url.Parse(manifest)
		if err != nil {
			return nil, fmt.Errorf("url source %s: %w", redact.URI(manifest), err)
		}
		u.RawQuery, u.User = "", nil
		s.name = "manifest+" + u.String()
	} else if u, err := normalizeURL(manifest); err == nil {
		s.manifest = u.String()
		// The name is the identity in the sink: not the query, which may
		// carry an expiring signature or a token.
		u.RawQuery = ""
		s.name = "manifest+" + u.String()
	} else if strings.Contains(manifest, "://") {
		return nil, fmt.Errorf("url source %s: %w", redact.URI(manifest), err)
	} else {
		abs, err := filepath.Abs(manifest)
		if err != nil {
			return nil, fmt.Errorf("url source %s: %w", manifest, err)
		}
		s.manifest, s.name = abs, "manifest+file://"+filepath.ToSlash(abs)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.PerHost <= 0 {
		opts.PerHost = DefaultPerHost
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	opts.Retry.PerTry = opts.Timeout
	s.opts = opts
	s.global = make(chan struct{}, opts.Concurrency)
	s.tr = &http.Transport{
		// No proxy: the guard checks the address dialled, which would be
		// the proxy's.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second, Control: opts.Guard.control}).DialContext,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		MaxIdleConnsPerHost:   opts.PerHost,
		IdleConnTimeout:       90 * time.Second,
		// The bytes as served: sizes and sha256s are of the image file.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	s.client = &http.Client{Transport: s.tr, CheckRedirect: checkRedirect}
	return s, nil
}

// errTooManyRedirects and errRedirectScheme end a redirect chain.
var (
	errTooManyRedirects = fmt.Errorf("more than %d redirects", MaxRedirects)
	errRedirectScheme   = errors.New("redirect to a scheme other than http or https")
)

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return errTooManyRedirects
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return errRedirectScheme
	}
	return nil
}

// Name is "manifest+" followed by the manifest's file://, http(s) or s3
// URL, without a query.
func (s *Source) Name() string { return s.name }

// ReadConcurrency is Options.Concurrency.
func (s *Source) ReadConcurrency() int { return s.opts.Concurrency }

// Close releases idle connections and closes Options.ManifestSource.
func (s *Source) Close() error {
	s.tr.CloseIdleConnections()
	if s.opts.ManifestSource != nil {
		return s.opts.ManifestSource.Close()
	}
	return nil
}

// load reads and parses the manifest, and keeps its rows for reads.
func (s *Source) load(ctx context.Context) ([]string, map[string]row, []error, error) {
	var r io.ReadCloser
	switch {
	case s.opts.ManifestSource != nil:
		b, err := s.opts.ManifestSource.Read(ctx, s.opts.ManifestKey)
		if err != nil {
			return nil, nil, nil, err
		}
		r = io.NopCloser(bytes.NewReader(b))
	case strings.HasPrefix(s.manifest, "http://") || strings.HasPrefix(s.manifest, "https://"):
		u, _ := normalizeURL(s.manifest)
		c, err := s.fetch(ctx, row{url: s.manifest, parsed: u}, nil, false)
		if err != nil {
			return nil, nil, nil, err
		}
		r = io.NopCloser(bytes.NewReader(c.Data))
	default:
		f, err := os.Open(s.manifest)
		if err != nil {
			return nil, nil, nil, err
		}
		r = f
	}
	defer r.Close()
	keys, rows, problems, err := parseManifest(r, s.format, s.gz)
	if err != nil {
		return nil, nil, nil, err
	}
	s.mu.Lock()
	s.keys, s.rows = keys, rows
	s.mu.Unlock()
	return keys, rows, problems, nil
}

// List reads the manifest and lists one entry per good line, each to be
// revalidated (Entry.Revalidate). Bad lines make the listing incomplete:
// List returns an error naming them (by line number) after listing the
// others.
func (s *Source) List(ctx context.Context, fn func(connector.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys, _, problems, err := s.load(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", s.name, err)
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", s.name, err)
		}
		if err := fn(connector.Entry{Key: k, Revalidate: true}); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		shown := problems[:min(len(problems), 10)]
		more := ""
		if n := len(problems) - len(shown); n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		return fmt.Errorf("list %s: %d bad lines%s: %w", s.name, len(problems), more, errors.Join(shown...))
	}
	return nil
}

// row returns key's manifest row, reading the manifest if no listing did.
func (s *Source) row(ctx context.Context, key string) (row, error) {
	s.mu.Lock()
	rows := s.rows
	s.mu.Unlock()
	if rows == nil {
		var err error
		if _, rows, _, err = s.load(ctx); err != nil {
			return row{}, err
		}
	}
	rw, ok := rows[key]
	if !ok {
		return row{}, fs.ErrNotExist
	}
	return rw, nil
}

// Read fetches key's URL: the bytes as served, without ReadItem's
// checks (opt-outs, sniffing, the manifest's sha256).
func (s *Source) Read(ctx context.Context, key string) ([]byte, error) {
	c, err := s.read(ctx, key, nil, false)
	return c.Data, err
}

// ReadItem fetches key's URL; given the stored fingerprint, conditionally
// (If-None-Match on its ETag, If-Modified-Since on its mtime): a 304
// answers NotModified.
func (s *Source) ReadItem(ctx context.Context, e connector.Entry, stored *schema.Fingerprint) (connector.Content, error) {
	return s.read(ctx, e.Key, stored, true)
}

func (s *Source) read(ctx context.Context, key string, stored *schema.Fingerprint, checks bool) (connector.Content, error) {
	if err := ctx.Err(); err != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	rw, err := s.row(ctx, key)
	if err != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	c, err := s.fetch(ctx, rw, stored, checks)
	if err != nil {
		if ctx.Err() != nil {
			return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, ctx.Err())
		}
		return connector.Content{}, err
	}
	c.Entry.Key = key
	return c, nil
}

// slots takes a global and a per-host fetch slot.
func (s *Source) slots(ctx context.Context, host string) (func(), error) {
	s.mu.Lock()
	h, ok := s.perHost[host]
	if !ok {
		h = make(chan struct{}, s.opts.PerHost)
		s.perHost[host] = h
	}
	s.mu.Unlock()
	select {
	case s.global <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case h <- struct{}{}:
	case <-ctx.Done():
		<-s.global
		return nil, ctx.Err()
	}
	return func() { <-h; <-s.global }, nil
}

// fetchError is one failed try, classified.
type fetchError struct {
	class      schema.FailureClass
	retry      bool
	retryAfter time.Duration
	err        error
}

func (e *fetchError) Error() string             { return e.err.Error() }
func (e *fetchError) Unwrap() error             { return e.err }
func (e *fetchError) RetryAfter() time.Duration { return e.retryAfter }

func retryable(err error) bool {
	var fe *fetchError
	return errors.As(err, &fe) && fe.retry
}

// fetch GETs rw's URL with retries; errors other than ctx's are
// *schema.ItemError with the class. checks: the result is an image item
// (opt-outs, sniffing and the sha256 apply).
func (s *Source) fetch(ctx context.Context, rw row, stored *schema.Fingerprint, checks bool) (connector.Content, error) {
	if rw.parsed == nil {
		_, perr := normalizeURL(rw.url)
		return connector.Content{}, s.itemError(rw, FailBadURL, perr)
	}
	release, err := s.slots(ctx, rw.parsed.Host)
	if err != nil {
		return connector.Content{}, err
	}
	defer release()
	var c connector.Content
	err = retry.Do(ctx, s.opts.Retry, retryable, func(ctx context.Context) error {
		var err error
		c, err = s.fetchOnce(ctx, rw, stored, checks)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return connector.Content{}, ctx.Err()
		}
		var fe *fetchError
		if errors.As(err, &fe) {
			return connector.Content{}, s.itemError(rw, fe.class, fe.err)
		}
		return connector.Content{}, s.itemError(rw, FailConnect, err)
	}
	return c, nil
}

func (s *Source) itemError(rw row, class schema.FailureClass, err error) error {
	return &schema.ItemError{Stage: "read", Class: class, Reason: "GET " + redact.URI(rw.url), Err: err}
}

func (s *Source) fetchOnce(ctx context.Context, rw row, stored *schema.Fingerprint, checks bool) (connector.Content, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rw.parsed.String(), nil)
	if err != nil {
		return connector.Content{}, &fetchError{class: FailBadURL, err: err}
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	if stored != nil {
		if stored.ETag != "" {
			req.Header.Set("If-None-Match", stored.ETag)
		}
		if !stored.MTime.IsZero() {
			req.Header.Set("If-Modified-Since", stored.MTime.UTC().Format(http.TimeFormat))
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return connector.Content{}, classifyTransport(err)
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusNotModified && stored != nil:
		return connector.Content{NotModified: true}, nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return connector.Content{}, &fetchError{class: schema.FailGone, err: fmt.Errorf("HTTP %s: %w", resp.Status, connector.ErrGone)}
	case code == http.StatusTooManyRequests || code >= 500:
		class := FailHTTP5xx
		if code < 500 {
			class = FailHTTP4xx
		}
		return connector.Content{}, &fetchError{class: class, retry: true, retryAfter: retryAfter(resp.Header.Get("Retry-After")),
			err: fmt.Errorf("HTTP %s", resp.Status)}
	case code < 200 || code > 299:
		return connector.Content{}, &fetchError{class: FailHTTP4xx, err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	if checks {
		if why := optOut(resp.Header); why != "" {
			return connector.Content{}, &fetchError{class: FailOptedOut, err: fmt.Errorf("policy skip: the server opts out (%s)", why)}
		}
	}
	limit := s.opts.MaxBytes
	if limit > 0 && resp.ContentLength > limit {
		return connector.Content{}, &fetchError{class: schema.FailTooLarge,
			err: fmt.Errorf("%d bytes, above the cap of %d: %w", resp.ContentLength, limit, connector.ErrTooLarge)}
	}
	var body io.Reader = resp.Body
	if limit > 0 {
		body = io.LimitReader(resp.Body, limit+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		c := classifyTransport(err)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			c = &fetchError{class: schema.FailTruncated, retry: true, err: fmt.Errorf("body cut after %d of %d bytes: %w", len(data), resp.ContentLength, err)}
		}
		return connector.Content{}, c
	}
	if limit > 0 && int64(len(data)) > limit {
		return connector.Content{}, &fetchError{class: schema.FailTooLarge, err: fmt.Errorf("more than the cap of %d bytes: %w", limit, connector.ErrTooLarge)}
	}
	c := connector.Content{Data: data, Entry: connector.Entry{Size: int64(len(data)), ETag: resp.Header.Get("ETag")}, Metadata: rw.meta}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		c.Entry.MTime = t.UTC()
	}
	if !checks {
		return c, nil
	}
	if sniffed := http.DetectContentType(data); len(data) > 0 && (strings.HasPrefix(sniffed, "text/") || strings.HasPrefix(sniffed, "application/json")) {
		return connector.Content{}, &fetchError{class: FailNotAnImage,
			err: fmt.Errorf("the body is %s (Content-Type %q), not an image", sniffed, resp.Header.Get("Content-Type"))}
	}
	if rw.sha256 != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != rw.sha256 {
			return connector.Content{}, &fetchError{class: FailHashMismatch, err: fmt.Errorf("sha256 %s, the manifest says %s", got, rw.sha256)}
		}
	}
	return c, nil
}

// optOut returns why the response opts out of AI use, or "".
func optOut(h http.Header) string {
	for _, v := range h.Values("X-Robots-Tag") {
		// "noai, noimageai", or scoped to a user agent: "imgvec: noai"
		// ("otherbot: noai" is someone else's).
		scope, rules, scoped := strings.Cut(v, ":")
		if scoped && !strings.Contains(scope, ",") && strings.TrimSpace(strings.ToLower(scope)) != "imgvec" {
			continue
		}
		if !scoped {
			rules = v
		}
		for r := range strings.SplitSeq(rules, ",") {
			switch strings.ToLower(strings.TrimSpace(r)) {
			case "noai", "noimageai":
				return "X-Robots-Tag: " + v
			}
		}
	}
	if strings.TrimSpace(h.Get("Tdm-Reservation")) == "1" {
		return "tdm-reservation: 1"
	}
	return ""
}

// retryAfter parses a Retry-After value (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// classifyTransport classifies an error of a request (no response).
func classifyTransport(err error) *fetchError {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return &fetchError{class: FailBlockedAddress, err: err}
	case errors.Is(err, errTooManyRedirects):
		return &fetchError{class: FailTooManyRedirects, err: err}
	case errors.Is(err, errRedirectScheme):
		return &fetchError{class: FailBadURL, err: err}
	case errors.As(err, &dnsErr):
		return &fetchError{class: FailDNS, retry: dnsErr.IsTemporary || dnsErr.IsTimeout, err: err}
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &recErr):
		return &fetchError{class: FailTLS, err: err}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &fetchError{class: FailTimeout, retry: true, err: err}
	}
	return &fetchError{class: FailConnect, retry: true, err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
