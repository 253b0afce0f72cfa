package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/models"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

// DefaultLayer is the layer read when none is named.
const DefaultLayer = "fc7"

// Model is an ONNX model ready to run: its graph output is the feature
// layer. SHA256 is the hash of exactly these bytes (the model identity),
// and of the external data files when the weights live outside them.
type Model struct {
	Name  string // what the user named: a preset or a path
	Path  string // file the bytes came from
	Bytes []byte // the (cut) model that runs
	// DataDir is the directory the model's external data files are
	// relative to; "" when the weights are all in Bytes.
	DataDir string
	SHA256  string
	Layer   string // candidate layer alias (lower case) or tensor name
	Pool    string // pooling of a token output (onnxgraph.PoolCLS, PoolMean) or ""
	Dim     int
	Spec    imaging.Spec
}

// LoadOptions says how to resolve a preset.
type LoadOptions struct {
	CacheDir string // model cache; "" = models.DefaultCacheDir()
	// Download lets a preset that is not cached be downloaded. Presets
	// without a known sha256 still refuse to download unverified.
	Download bool
	// Pool reduces a token output [N, T, D] to [N, D]: "cls" or "mean".
	// A token output without it fails, naming the choices.
	Pool string
	// Preprocess is a recipe name (imaging.Recipe: imagenet, clip, vit,
	// dinov2, efficientnet-b0) or the path of a preprocessor_config.json.
	// "" is the model folder's preprocessor_config.json, else imagenet.
	Preprocess string
	// FastDecode decodes JPEGs at a reduced DCT scale (imaging.Spec.FastJPEG,
	// part of the preprocessing's version and so of the model identity).
	FastDecode bool
}

// Decode modes (--decode, decode:): exact decodes as Pillow does; fast
// decodes JPEGs at a reduced DCT scale (LoadOptions.FastDecode).
const (
	DecodeExact = "exact"
	DecodeFast  = "fast"
)

// ParseDecode reads a --decode value ("" is exact) and reports whether it
// is the fast mode.
func ParseDecode(mode string) (fast bool, err error) {
	return parseMode("decode", mode, DecodeExact, DecodeFast)
}

// parseMode reads a setting of two values: "" and off are false, on is
// true.
func parseMode(setting, mode, off, on string) (bool, error) {
	switch mode {
	case "", off:
		return false, nil
	case on:
		return true, nil
	}
	return false, fmt.Errorf("%s %q: want %s or %s", setting, mode, off, on)
}

// ParsePreprocess resolves a --preprocess value: a recipe name or the path
// of a preprocessor_config.json.
func ParsePreprocess(spec string) (imaging.Spec, error) {
	if s, err := imaging.Recipe(spec); err == nil {
		return s, nil
	}
	if !strings.HasSuffix(spec, ".json") {
		_, err := imaging.Recipe(spec)
		return imaging.Spec{}, err
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		return imaging.Spec{}, fmt.Errorf("preprocess: %w", err)
	}
	s, err := imaging.SpecFromHFConfig(data)
	if err != nil {
		return imaging.Spec{}, fmt.Errorf("preprocess %s: %w", spec, err)
	}
	return s, nil
}

// CheckPreprocess validates a --preprocess value without reading files: a
// recipe name, a path ending in .json, or "".
func CheckPreprocess(spec string) error {
	if spec == "" || strings.HasSuffix(spec, ".json") {
		return nil
	}
	_, err := imaging.Recipe(spec)
	return err
}

// hfConfigName is the preprocessing file of a Hugging Face model folder.
const hfConfigName = "preprocessor_config.json"

// modelInDir finds the .onnx file of a model folder (Hugging Face /
// Optimum layout): model.onnx, else its only .onnx file.
func modelInDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err == nil {
		return filepath.Join(dir, "model.onnx"), nil
	}
	found, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		return "", fmt.Errorf("model folder %s: want model.onnx or exactly one .onnx file, found %d", dir, len(found))
	}
	return found[0], nil
}

// LoadModel resolves ref — a preset name ("vgg19-fc7", or "vgg19" for the
// default VGG19 preset), the path of an .onnx file, or a model folder
// (model.onnx or one .onnx file, and its preprocessor_config.json, which
// sets the preprocessing unless o.Preprocess does) — and makes layer its
// graph output. layer is a candidate alias (fc6, fc7, pool5, avgpool, ...)
// or any tensor name: a graph output is used as is, an intermediate tensor
// by cutting the model there, in memory. With layer "", a preset reads its
// own layer, a file fc7 when it has one, else its only graph output.
// Weights in external data files stay where they are: ONNX Runtime reads
// them from the model's directory (Model.DataDir).
func LoadModel(ctx context.Context, ref, layer string, o LoadOptions) (*Model, error) {
	if ref == "" || ref == "vgg19" {
		ref = models.Default
	}
	path := ref
	if p, ok := models.Lookup(ref); ok {
		if layer == "" {
			layer = p.Layer
		}
		if o.Preprocess == "" {
			o.Preprocess = p.Preprocess
		}
		if o.Pool == "" {
			o.Pool = p.Pool
		}
		cached, err := cachedPreset(ctx, p, layer, o)
		if err != nil {
			return nil, err
		}
		path = cached
	} else if fi, err := os.Stat(ref); err == nil && fi.IsDir() {
		if path, err = modelInDir(ref); err != nil {
			return nil, err
		}
		if o.Preprocess == "" {
			if _, err := os.Stat(filepath.Join(ref, hfConfigName)); err == nil {
				o.Preprocess = filepath.Join(ref, hfConfigName)
			}
		}
	} else if !strings.HasSuffix(strings.ToLower(ref), ".onnx") {
		if err != nil {
			return nil, fmt.Errorf("model %q: not a preset (%s), a model folder nor an .onnx file", ref, presetNames())
		}
	}
	spec := imaging.ImageNet
	if o.Preprocess != "" {
		var err error
		if spec, err = ParsePreprocess(o.Preprocess); err != nil {
			return nil, fmt.Errorf("model %s: %w", ref, err)
		}
	}
	spec.FastJPEG = o.FastDecode
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	m, err := onnxgraph.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse model %s: %w", path, err)
	}
	rep := m.Inspect()
	if layer == "" {
		layer = defaultLayer(rep)
	}
	l, err := m.Resolve(layer)
	if err != nil {
		return nil, fmt.Errorf("model %s: layer %q: %w", path, layer, err)
	}
	if !(o.Pool == "" && len(rep.Outputs) == 1 && rep.Outputs[0].Name == l.Tensor && len(l.Shape) == 2 && batchIsDynamic(rep)) {
		cm, cl, err := m.CutModel(layer, onnxgraph.CutOptions{Pool: o.Pool})
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		if data, err = cm.Bytes(); err != nil {
			return nil, fmt.Errorf("cut model %s at %s: %w", path, layer, err)
		}
		l.Dim = cl.Dim
	}
	if l.Dim <= 0 {
		return nil, fmt.Errorf("model %s: the width of tensor %q is not known from the graph (`imgvec model inspect --all %s` shows the shapes)", path, l.Tensor, path)
	}
	files, err := m.ExternalFiles()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	dir := ""
	if len(files) > 0 {
		dir = filepath.Dir(path)
	}
	sum, err := modelSHA256(ctx, data, dir, files)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	name := l.Name
	if name != l.Tensor { // an alias: fc7, pool5, ...
		name = strings.ToLower(name)
	}
	return &Model{
		Name: ref, Path: path, Bytes: data, DataDir: dir, SHA256: sum,
		Layer: name, Pool: o.Pool, Dim: l.Dim, Spec: spec,
	}, nil
}

// CheckPool validates a pooling name: "", "cls" or "mean".
func CheckPool(pool string) error {
	switch pool {
	case "", onnxgraph.PoolCLS, onnxgraph.PoolMean:
		return nil
	}
	return fmt.Errorf("unknown pooling %q (want %s or %s)", pool, onnxgraph.PoolCLS, onnxgraph.PoolMean)
}

// defaultLayer is DefaultLayer when the model has that candidate, else its
// only graph output (an embedding export), else DefaultLayer (whose error
// lists what there is).
func defaultLayer(rep onnxgraph.Report) string {
	if _, ok := rep.Layer(DefaultLayer); !ok && len(rep.Outputs) == 1 {
		return rep.Outputs[0].Name
	}
	return DefaultLayer
}

// modelSHA256 hashes the model bytes; with external data files (under dir)
// it hashes that hash with each file's name and hash, streaming the files.
func modelSHA256(ctx context.Context, data []byte, dir string, files []string) (string, error) {
	sum := sha256.Sum256(data)
	if len(files) == 0 {
		return hex.EncodeToString(sum[:]), nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "onnx %x\n", sum)
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("external data: %w", err)
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("external data %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s %x\n", filepath.ToSlash(name), fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Identity is the model identity of vectors this model produces, given
// whether they are L2-normalised. It needs no ONNX Runtime session, so a dry
// run can diff against the sink without loading the runtime.
func (m *Model) Identity(normalized bool) schema.ModelIdentity {
	return schema.ModelIdentity{
		ModelSHA256: m.SHA256,
		Layer:       m.Layer,
		Pool:        m.Pool,
		Preprocess:  m.Spec.Version(),
		Dim:         m.Dim,
		Normalized:  normalized,
	}
}

func batchIsDynamic(rep onnxgraph.Report) bool {
	return len(rep.Inputs) == 1 && len(rep.Inputs[0].Shape) == 4 && rep.Inputs[0].Shape[0].Value < 0
}

func cachedPreset(ctx context.Context, p models.Preset, layer string, o LoadOptions) (string, error) {
	cache := o.CacheDir
	if cache == "" {
		var err error
		if cache, err = models.DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	if !o.Download {
		if path, ok := models.Cached(cache, p.Name, layer); ok {
			return path, nil
		}
		return "", fmt.Errorf("model %s is not in the cache %s; run `imgvec model fetch %s` first", p.Name, cache, p.Name)
	}
	r, err := models.FetchWith(ctx, p.Name, models.Options{CacheDir: cache, Layer: layer})
	if err != nil {
		return "", fmt.Errorf("fetch model %s: %w", p.Name, err)
	}
	return r.Path, nil
}

func presetNames() string {
	var names []string
	for _, p := range models.Presets() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}
