package main

import (
	"context"
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

// registerModelFlags binds the flags every command that runs the model
// shares onto j's fields: a config job and the flags are one set of
// settings (applyJob puts a file's job under the flags given).
func registerModelFlags(fs *pflag.FlagSet, j *config.Job) {
	fs.StringVar(&j.Model, "model", config.DefaultModel, "model: a preset (vgg19-fc7, vgg19-fc6, resnet50-avgpool) or an .onnx file")
	fs.StringVar(&j.Layer, "layer", "", "layer to read (default: the preset's, or fc7)")
	rangeVar(fs, &j.Batch, "batch", "", config.DefaultBatch, config.BatchRange, "images per inference batch")
	fs.StringVar(&j.Device, "device", config.DefaultDevice, "cpu, cuda[:N] or tensorrt[:N]")
	rangeVar(fs, &j.Threads, "threads", "", 0, config.ThreadsRange, "ONNX Runtime intra-op threads; 0 = number of CPUs")
	fs.BoolVar(&j.NoNormalize, "no-normalize", false, "keep raw activations (default: L2-normalised vectors)")
	fs.BoolVar(&j.IgnoreExifOrientation, "ignore-exif-orientation", false, "do not rotate images by their EXIF orientation (the torchvision recipe does not)")
	rangeVar(fs, &j.MaxPixels, "max-pixels", "", config.DefaultMaxPixels, config.MaxPixelsRange, "refuse images with more pixels than this (checked from the header)")
	fs.BoolVar(&j.Download, "download", false, "download a preset model that is not cached yet")
}

// extractorSettings is the part of j that openExtractor reads: jobs that
// agree on it can share one extractor (one copy of the weights).
func extractorSettings(j config.Job) config.Job {
	return config.Job{Model: j.Model, Layer: j.Layer, Batch: j.Batch, Device: j.Device, Threads: j.Threads,
		NoNormalize: j.NoNormalize, IgnoreExifOrientation: j.IgnoreExifOrientation, MaxPixels: j.MaxPixels, Download: j.Download}
}

// loadModel resolves j's model without starting ONNX Runtime.
func loadModel(ctx context.Context, j config.Job) (*extract.Model, error) {
	return extract.LoadModel(ctx, j.Model, j.Layer, extract.LoadOptions{Download: j.Download})
}

// openExtractor loads j's model and opens an ONNX Runtime session on it.
func openExtractor(ctx context.Context, j config.Job) (*extract.Extractor, error) {
	dev, err := extract.ParseDevice(j.Device)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	m, err := loadModel(ctx, j)
	if err != nil {
		return nil, err
	}
	x, err := extract.New(m, extract.Options{
		Session:     extract.SessionOptions{Device: dev, IntraOpThreads: j.Threads},
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
