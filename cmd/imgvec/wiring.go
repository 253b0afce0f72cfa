package main

import (
	"context"
	"errors"
	"runtime/debug"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/extract"
	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/sinks"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func ortVersion() string { return extract.ORTVersion }

// modelFlags are the flags every command that runs the model shares.
type modelFlags struct {
	model             string
	layer             string
	pool              string
	preprocess        string
	batch             int
	device            string
	threads           int
	noNormalize       bool
	ignoreOrientation bool
	maxPixels         int64
	download          bool
}

func (f *modelFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.model, "model", config.DefaultModel, "model: a preset (vgg19-fc7, vgg19-fc6, resnet50-avgpool), an .onnx file or a model folder (model.onnx + preprocessor_config.json)")
	fs.StringVar(&f.layer, "layer", "", "layer alias (fc7, pool5, ...) or any tensor name to read (default: the preset's, fc7, or the only graph output)")
	fs.StringVar(&f.preprocess, "preprocess", "", "preprocessing: imagenet, clip, vit, dinov2, efficientnet-b0 or a preprocessor_config.json (default: the model folder's, else imagenet; part of the model id)")
	fs.StringVar(&f.pool, "pool", "", "pool a token output [N,T,D] (ViT/DINOv2 last_hidden_state): cls or mean")
	rangeVar(fs, &f.batch, "batch", "", config.DefaultBatch, config.BatchRange, "images per inference batch")
	fs.StringVar(&f.device, "device", config.DefaultDevice, "cpu, cuda[:N] or tensorrt[:N]")
	rangeVar(fs, &f.threads, "threads", "", 0, config.ThreadsRange, "ONNX Runtime intra-op threads; 0 = number of CPUs")
	fs.BoolVar(&f.noNormalize, "no-normalize", false, "keep raw activations (default: L2-normalised vectors)")
	fs.BoolVar(&f.ignoreOrientation, "ignore-exif-orientation", false, "do not rotate images by their EXIF orientation (the torchvision recipe does not)")
	rangeVar(fs, &f.maxPixels, "max-pixels", "", config.DefaultMaxPixels, config.MaxPixelsRange, "refuse images with more pixels than this (checked from the header)")
	fs.BoolVar(&f.download, "download", false, "download a preset model that is not cached yet")
}

// loadModel resolves the model without starting ONNX Runtime.
func (f *modelFlags) loadModel(ctx context.Context) (*extract.Model, error) {
	if err := errors.Join(extract.CheckPreprocess(f.preprocess), extract.CheckPool(f.pool)); err != nil {
		return nil, usageError{err.Error()}
	}
	return extract.LoadModel(ctx, f.model, f.layer, extract.LoadOptions{Download: f.download, Pool: f.pool, Preprocess: f.preprocess})
}

// extractor loads the model and opens an ONNX Runtime session on it.
func (f *modelFlags) extractor(ctx context.Context) (*extract.Extractor, error) {
	dev, err := extract.ParseDevice(f.device)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	m, err := f.loadModel(ctx)
	if err != nil {
		return nil, err
	}
	x, err := extract.New(m, extract.Options{
		Session:     extract.SessionOptions{Device: dev, IntraOpThreads: f.threads},
		BatchSize:   f.batch,
		NoNormalize: f.noNormalize,
		Decode:      imaging.DecodeOptions{MaxPixels: f.maxPixels, IgnoreOrientation: f.ignoreOrientation},
	})
	// ONNX Runtime now holds the graph: the model file and its cut copy
	// (over 1 GB together for VGG19) are garbage; give the memory back now
	// rather than at the GC's leisure.
	debug.FreeOSMemory()
	return x, err
}

// defaultSink is the embedded default.
const defaultSink = config.DefaultSink

// newSink validates a sink URI without I/O (the registry, sinks.New);
// what it refuses is a usage error. autoMigrate lets a brand-new database
// be created and migrated (sync/backfill); upgrades stay explicit. index
// is the vector index strategy ("" = exact).
func newSink(uri string, autoMigrate bool, index string) (sinks.Sink, error) {
	o := sinks.Options{AutoMigrate: migrations.AutoMigrateNever, Index: connector.IndexStrategy(index)}
	if autoMigrate {
		o.AutoMigrate = migrations.AutoMigrateFresh
	}
	s, err := sinks.New(uri, o)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return s, nil
}
