package wiring

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"runtime/debug"
	"strings"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/folder"
	"github.com/imgvec/imgvec/connector/redact"
	"github.com/imgvec/imgvec/connector/s3source"
	"github.com/imgvec/imgvec/connector/urlsource"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks"
)

// ExtractorSettings is the part of j that OpenExtractor reads: jobs that
// agree on it can share one extractor (one copy of the weights).
func ExtractorSettings(j config.Job) config.Job {
	return config.Job{Model: j.Model, Layer: j.Layer, Preprocess: j.Preprocess, Decode: j.Decode, Pool: j.Pool, Batch: j.Batch, Device: j.Device, TF32: j.TF32, Upload: j.Upload, Threads: j.Threads,
		NoNormalize: j.NoNormalize, IgnoreExifOrientation: j.IgnoreExifOrientation, MaxPixels: j.MaxPixels, Download: j.Download}
}

// LoadModel resolves j's model without starting ONNX Runtime.
func LoadModel(ctx context.Context, j config.Job) (*extract.Model, error) {
	fast, decodeErr := extract.ParseDecode(j.Decode)
	if err := errors.Join(extract.CheckPreprocess(j.Preprocess), extract.CheckPool(j.Pool), decodeErr); err != nil {
		return nil, Usage(err)
	}
	return extract.LoadModel(ctx, j.Model, j.Layer, extract.LoadOptions{Download: j.Download, Pool: j.Pool, Preprocess: j.Preprocess, FastDecode: fast})
}

// OpenExtractor loads j's model and opens an ONNX Runtime session on it.
func OpenExtractor(ctx context.Context, j config.Job) (*extract.Extractor, error) {
	devs, err := extract.ParseDevices(j.Device)
	if err != nil {
		return nil, Usagef("--device: %v", err)
	}
	pixels, err := extract.ParseUpload(j.Upload)
	if err != nil {
		return nil, Usagef("--upload: %v", err)
	}
	m, err := LoadModel(ctx, j)
	if err != nil {
		return nil, err
	}
	x, err := extract.New(m, extract.Options{
		Session:     extract.SessionOptions{IntraOpThreads: j.Threads, NoTF32: !j.TF32},
		Devices:     devs,
		PixelUpload: pixels,
		BatchSize:   j.Batch,
		NoNormalize: j.NoNormalize,
		Decode:      imaging.DecodeOptions{MaxPixels: j.MaxPixels, IgnoreOrientation: j.IgnoreExifOrientation},
	})
	// ONNX Runtime now holds the graph: the model file and its cut copy
	// (over 1 GB together for VGG19) are garbage; give the memory back now
	// rather than at the GC's leisure.
	debug.FreeOSMemory()
	return x, err
}

// NewSink validates a sink URI without I/O (the registry, sinks.New);
// what it refuses is a usage error. autoMigrate lets a brand-new database
// be created and migrated (sync/backfill); upgrades stay explicit. index
// is the vector index strategy ("" = exact).
func NewSink(uri string, autoMigrate bool, index string) (sinks.Sink, error) {
	o := sinks.Options{AutoMigrate: migrations.AutoMigrateNever, Index: connector.IndexStrategy(index)}
	if autoMigrate {
		o.AutoMigrate = migrations.AutoMigrateFresh
	}
	s, err := sinks.New(uri, o)
	if err != nil {
		return nil, Usage(err)
	}
	return s, nil
}

func FolderOptions(j config.Job) folder.Options {
	return folder.Options{Include: j.Include, Exclude: j.Exclude, Extensions: j.Extensions,
		FollowSymlinks: j.FollowSymlinks, MaxBytes: j.MaxBytes}
}

// S3Options are j's settings of an S3 source. Credentials come from the
// standard AWS chain.
func S3Options(j config.Job) s3source.Options {
	return s3source.Options{Include: j.Include, Exclude: j.Exclude, Extensions: j.Extensions, MaxBytes: j.MaxBytes,
		Concurrency: j.S3Concurrency, Metadata: j.S3Metadata}
}

// URLOptions are j's settings of a URL-manifest source.
func URLOptions(j config.Job) (urlsource.Options, error) {
	g := urlsource.Guard{AllowPrivate: j.AllowPrivateNetworks}
	for _, c := range j.AllowCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return urlsource.Options{}, Usagef("--allow-cidr %q: want a network such as 10.0.0.0/8", c)
		}
		g.Allow = append(g.Allow, p)
	}
	return urlsource.Options{Guard: g, UserAgent: j.UserAgent, Concurrency: j.URLConcurrency, PerHost: j.URLPerHost,
		Timeout: j.URLTimeout, MaxBytes: j.MaxBytes}, nil
}

// SourceOpener opens j's --source values by kind: s3:// references, URL
// manifests (.jsonl, .csv, .tsv, optionally .gz), else folder paths or
// file:// URIs.
func SourceOpener(j config.Job) func(ref string) (connector.Source, error) {
	return func(ref string) (connector.Source, error) {
		switch {
		case s3source.IsRef(ref) && urlsource.IsManifest(ref):
			// A manifest in a bucket: read through an S3 source over its
			// folder.
			o, err := URLOptions(j)
			if err != nil {
				return nil, err
			}
			u, err := url.Parse(ref)
			if err != nil {
				return nil, Usagef("source %s: %v", redact.URI(ref), err)
			}
			dir, key := path.Split(u.Path)
			folder := *u
			folder.Path = dir
			so := S3Options(j)
			so.Extensions, so.Include, so.Exclude = []string{"*"}, nil, nil
			if o.ManifestSource, err = s3source.New(context.Background(), folder.String(), so); err != nil {
				return nil, err
			}
			o.ManifestKey = key
			return urlsource.New(ref, o)
		case s3source.IsRef(ref):
			// The context only bounds reading the AWS configuration
			// files; New sends no request.
			return s3source.New(context.Background(), ref, S3Options(j))
		case urlsource.IsManifest(ref):
			o, err := URLOptions(j)
			if err != nil {
				return nil, err
			}
			return urlsource.New(ref, o)
		case strings.HasPrefix(ref, "http://"), strings.HasPrefix(ref, "https://"):
			return nil, fmt.Errorf("source %s: a URL source is a manifest ending in .jsonl, .csv or .tsv (optionally .gz)", redact.URI(ref))
		}
		return folder.New(ref, FolderOptions(j))
	}
}
