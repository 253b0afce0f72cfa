package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/extract"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func ortVersion() string { return extract.ORTVersion }

// registerModelFlags binds the flags every command that runs the model
// shares onto j's fields: a config job and the flags are one set of
// settings (applyJob puts a file's job under the flags given).
func registerModelFlags(fs *pflag.FlagSet, j *config.Job) {
	fs.StringVar(&j.Model, "model", config.DefaultModel, "model: a preset (vgg19-fc7, vgg19-fc6, resnet50-avgpool), an .onnx file or a model folder (model.onnx + preprocessor_config.json)")
	fs.StringVar(&j.Layer, "layer", "", "layer alias (fc7, pool5, ...) or any tensor name to read (default: the preset's, fc7, or the only graph output)")
	fs.StringVar(&j.Preprocess, "preprocess", "", "preprocessing: imagenet, clip, vit, dinov2, efficientnet-b0 or a preprocessor_config.json (default: the model folder's, else imagenet; part of the model id)")
	fs.StringVar(&j.Decode, "decode", extract.DecodeExact, "exact (as Pillow decodes) or fast (JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain; part of the model id)")
	fs.StringVar(&j.Pool, "pool", "", "pool a token output [N,T,D] (ViT/DINOv2 last_hidden_state): cls or mean")
	j.Batch = config.DefaultBatch
	fs.Var(batchValue{&j.Batch}, "batch", "images per inference batch ("+config.BatchRange.String()+"), or auto: "+
		fmt.Sprint(extract.DefaultBatch)+" on the CPU, "+fmt.Sprint(extract.GPUBatch)+" on a GPU; a batch that runs out of device memory is halved")
	fs.StringVar(&j.Device, "device", config.DefaultDevice, "cpu, cuda[:N] or tensorrt[:N]; a comma-separated list (cuda:0,cuda:1) runs one session per device")
	fs.BoolVar(&j.TF32, "tf32", true, "CUDA: run float32 convolutions and matrix products in TensorFloat-32 (faster; --tf32=false for full float32)")
	fs.StringVar(&j.Upload, "upload", extract.UploadFloat, "what goes to the device: float (normalised tensors) or uint8 (pixels, normalised in the graph: 4x fewer bytes, same vectors)")
	rangeVar(fs, &j.Threads, "threads", "", 0, config.ThreadsRange, "ONNX Runtime intra-op threads; 0 = number of CPUs")
	fs.BoolVar(&j.NoNormalize, "no-normalize", false, "keep raw activations (default: L2-normalised vectors)")
	fs.BoolVar(&j.IgnoreExifOrientation, "ignore-exif-orientation", false, "do not rotate images by their EXIF orientation (the torchvision recipe does not)")
	rangeVar(fs, &j.MaxPixels, "max-pixels", "", config.DefaultMaxPixels, config.MaxPixelsRange, "refuse images with more pixels than this (checked from the header)")
	fs.BoolVar(&j.Download, "download", false, "download a preset model that is not cached yet")
}

// batchValue is --batch: a number or auto (config.ParseBatch).
type batchValue struct{ p *int }

func (v batchValue) Set(s string) error {
	n, err := config.ParseBatch(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v batchValue) String() string { return config.FormatBatch(*v.p) }
func (v batchValue) Type() string   { return "int|auto" }

// defaultSink is the embedded default.
const defaultSink = config.DefaultSink
