package s3source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/keyfilter"
	"github.com/imgvec/imgvec/connector/retry"
	"github.com/imgvec/imgvec/schema"
)

// Defaults of Options.
const (
	DefaultConcurrency = 32
	DefaultTimeout     = 2 * time.Minute
	DefaultPageSize    = 1000
)

// Options configure a Source. The zero value lists every image with a
// default extension through the standard credential chain.
type Options struct {
	Include, Exclude, Extensions []string // see connector/keyfilter
	// MaxBytes refuses objects larger than this (connector.ErrTooLarge);
	// 0: no limit.
	MaxBytes int64
	// Concurrency bounds the requests in flight (default
	// DefaultConcurrency: an S3 endpoint serves many parallel reads).
	Concurrency int
	// Metadata stores each object's user metadata as the item's metadata.
	Metadata bool
	// Timeout bounds each try of one request: a listing page, or an
	// object's whole read (default DefaultTimeout).
	Timeout time.Duration
	// Retry bounds the tries of each request (zero: retry.Default).
	Retry retry.Policy
	// PageSize is the keys per listing page (default and most S3 servers'
	// maximum: 1000).
	PageSize int32
	// Credentials, when set, replace the standard AWS credential chain.
	Credentials aws.CredentialsProvider
}

// Ref is a parsed s3:// reference.
type Ref struct {
	Bucket, Prefix string // Prefix is "" or ends in "/"
	Endpoint       string
	Region         string
	PathStyle      bool
}

// IsRef reports whether ref names an S3 source.
func IsRef(ref string) bool { return strings.HasPrefix(ref, "s3://") }

// ParseRef parses s3://BUCKET[/PREFIX][?endpoint=…&region=…&path_style=true].
func ParseRef(ref string) (Ref, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return Ref{}, fmt.Errorf("s3 source: %w", err)
	}
	if u.Scheme != "s3" {
		return Ref{}, fmt.Errorf("s3 source %s: want s3://BUCKET/PREFIX", ref)
	}
	if u.User != nil {
		return Ref{}, errors.New("s3 source: the reference carries credentials; give them through the AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...) instead")
	}
	r := Ref{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if r.Bucket == "" {
		return Ref{}, fmt.Errorf("s3 source %s: no bucket", ref)
	}
	if r.Prefix != "" && !strings.HasSuffix(r.Prefix, "/") {
		r.Prefix += "/"
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil {
				return Ref{}, fmt.Errorf("s3 source %s: endpoint: want http(s)://HOST[:PORT] without credentials", r.name())
			}
			r.Endpoint = v
		case "region":
			r.Region = v
		case "path_style":
			switch v {
			case "true", "1":
				r.PathStyle = true
			case "false", "0", "":
			default:
				return Ref{}, fmt.Errorf("s3 source %s: path_style=%q: want true or false", r.name(), v)
			}
		default:
			return Ref{}, fmt.Errorf("s3 source %s: unknown option %q (want endpoint, region, path_style)", r.name(), k)
		}
	}
	return r, nil
}

func (r Ref) name() string { return "s3://" + r.Bucket + "/" + r.Prefix }

// Source lists and reads the objects under one bucket prefix.
type Source struct {
	ref    Ref
	name   string
	opts   Options
	filter *keyfilter.Filter
	client *s3.Client
	sem    chan struct{}

	mu         sync.Mutex
	transports []*http.Transport // the HTTP client's, to close idle connections
}

var (
	_ connector.Source           = (*Source)(nil)
	_ connector.ItemReader       = (*Source)(nil)
	_ connector.ConcurrentSource = (*Source)(nil)
)

// New returns a Source for an s3:// reference. It resolves the AWS
// configuration (environment, shared files) but sends no request: a
// missing bucket or refused credentials make List fail.
func New(ctx context.Context, ref string, opts Options) (*Source, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("s3 source %s: negative size cap %d", r.name(), opts.MaxBytes)
	}
	filter, err := keyfilter.New(opts.Include, opts.Exclude, opts.Extensions)
	if err != nil {
		return nil, fmt.Errorf("s3 source %s: %w", r.name(), err)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	opts.Retry.PerTry = opts.Timeout
	src := &Source{ref: r, name: r.name(), opts: opts, filter: filter, sem: make(chan struct{}, opts.Concurrency)}
	// A BuildableClient, so that the SDK can still add AWS_CA_BUNDLE's
	// roots to the transport.
	hc := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 10 * time.Second
	}).WithTransportOptions(func(t *http.Transport) {
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = 30 * time.Second
		t.MaxIdleConnsPerHost = opts.Concurrency
		src.mu.Lock()
		src.transports = append(src.transports, t)
		src.mu.Unlock()
	})
	lo := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// connector/retry retries each request (with jitter, under its
		// own deadline): the SDK's retryer would multiply the tries.
		config.WithRetryMaxAttempts(1),
	}
	if r.Region != "" {
		lo = append(lo, config.WithRegion(r.Region))
	}
	if opts.Credentials != nil {
		lo = append(lo, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("s3 source %s: AWS configuration: %w", r.name(), err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if r.Endpoint != "" {
			o.BaseEndpoint = aws.String(r.Endpoint)
		}
		o.UsePathStyle = r.PathStyle
		// Checksums only where the API requires them: self-hosted servers
		// often send none, and the sha256 of every read is the authority.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	src.client = client
	return src, nil
}

// Name is "s3://BUCKET/PREFIX/".
func (s *Source) Name() string { return s.name }

// ReadConcurrency is Options.Concurrency.
func (s *Source) ReadConcurrency() int { return s.opts.Concurrency }

// Close releases idle connections.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	return nil
}

// acquire takes one of the Concurrency request slots.
func (s *Source) acquire(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// retryable: transient transport and server errors (the SDK's own
// classification: 5xx, throttling, connection resets), a body cut short,
// and a try that ran past its own deadline.
func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return awsretry.IsErrorRetryables(awsretry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// List lists the objects under the prefix, page by page.
func (s *Source) List(ctx context.Context, fn func(connector.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var token *string
	listed := 0
	for page := 1; ; page++ {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(s.ref.Bucket), Prefix: aws.String(s.ref.Prefix),
			ContinuationToken: token, MaxKeys: aws.Int32(s.opts.PageSize)}
		var out *s3.ListObjectsV2Output
		err := retry.Do(ctx, s.opts.Retry, retryable, func(ctx context.Context) error {
			var err error
			out, err = s.client.ListObjectsV2(ctx, in)
			return err
		})
		if ctx.Err() != nil {
			return fmt.Errorf("list %s: %w", s.name, ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("list %s: page %d (after %d objects): %w", s.name, page, listed, err)
		}
		for _, o := range out.Contents {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", s.name, err)
			}
			key := strings.TrimPrefix(aws.ToString(o.Key), s.ref.Prefix)
			if key == "" || strings.HasSuffix(key, "/") || !s.filter.Wanted(key) {
				continue
			}
			e := connector.Entry{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)}
			if o.LastModified != nil {
				e.MTime = o.LastModified.UTC()
			}
			if err := fn(e); err != nil {
				return err
			}
			listed++
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		token = out.NextContinuationToken
	}
}

// ListsInKeyOrder is true: ListObjectsV2 returns keys in UTF-8 binary
// order (AWS S3 general-purpose buckets; servers that list otherwise only
// make the diff sort the keys out of order after the listing), and
// removing the common prefix keeps that order.
func (s *Source) ListsInKeyOrder() bool { return true }

// Read returns the object's bytes.
func (s *Source) Read(ctx context.Context, key string) ([]byte, error) {
	c, err := s.get(ctx, key, "")
	return c.Data, err
}

// ReadItem reads the object conditionally on the listed ETag; an object
// replaced since is read again, with its new fingerprint.
// It never answers NotModified: the listing's ETag already decided that.
func (s *Source) ReadItem(ctx context.Context, e connector.Entry, _ *schema.Fingerprint) (connector.Content, error) {
	if s.opts.MaxBytes > 0 && e.Size > s.opts.MaxBytes {
		return connector.Content{}, fmt.Errorf("read %s from %s: %d bytes, above the cap of %d: %w", e.Key, s.name, e.Size, s.opts.MaxBytes, connector.ErrTooLarge)
	}
	c, err := s.get(ctx, e.Key, e.ETag)
	if errors.Is(err, errReplaced) {
		return s.get(ctx, e.Key, "")
	}
	return c, err
}

// errReplaced: the object's ETag is no longer the listed one.
var errReplaced = errors.New("object replaced since the listing")

// get reads key, conditionally on ifMatch when not empty.
func (s *Source) get(ctx context.Context, key, ifMatch string) (connector.Content, error) {
	if err := ctx.Err(); err != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	defer release()
	in := &s3.GetObjectInput{Bucket: aws.String(s.ref.Bucket), Key: aws.String(s.ref.Prefix + key)}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	var c connector.Content
	err = retry.Do(ctx, s.opts.Retry, retryable, func(ctx context.Context) error {
		var err error
		c, err = s.getOnce(ctx, in)
		return err
	})
	if ctx.Err() != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, ctx.Err())
	}
	if err != nil {
		return connector.Content{}, fmt.Errorf("read %s from %s: %w", key, s.name, err)
	}
	c.Entry.Key = key
	return c, nil
}

func (s *Source) getOnce(ctx context.Context, in *s3.GetObjectInput) (connector.Content, error) {
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "NoSuchKey", "NotFound":
				return connector.Content{}, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
			case "PreconditionFailed":
				return connector.Content{}, fmt.Errorf("%w: %w", errReplaced, err)
			}
		}
		return connector.Content{}, err
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	limit := s.opts.MaxBytes
	if limit > 0 && size > limit {
		return connector.Content{}, fmt.Errorf("%d bytes, above the cap of %d: %w", size, limit, connector.ErrTooLarge)
	}
	var r io.Reader = out.Body
	if limit > 0 {
		r = io.LimitReader(out.Body, limit+1)
	}
	buf := make([]byte, 0, max(size, 0)+1) // +1: EOF is seen without growing
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return connector.Content{}, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
	if limit > 0 && int64(len(buf)) > limit {
		return connector.Content{}, fmt.Errorf("more than the cap of %d bytes: %w", limit, connector.ErrTooLarge)
	}
	if size >= 0 && out.ContentLength != nil && int64(len(buf)) != size {
		return connector.Content{}, fmt.Errorf("body of %d bytes, announced %d: %w", len(buf), size, io.ErrUnexpectedEOF)
	}
	c := connector.Content{Data: buf, Entry: connector.Entry{Size: int64(len(buf)), ETag: aws.ToString(out.ETag)}}
	if out.LastModified != nil {
		c.Entry.MTime = out.LastModified.UTC()
	}
	if s.opts.Metadata && len(out.Metadata) > 0 {
		c.Metadata = make(map[string]string, len(out.Metadata))
		for k, v := range out.Metadata {
			c.Metadata[strings.ToLower(k)] = v
		}
	}
	return c, nil
}
