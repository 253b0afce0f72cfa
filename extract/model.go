package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/models"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

// DefaultLayer is the layer read when none is named.
const DefaultLayer = "fc7"

// Model is an ONNX model ready to run: its graph output is the feature
// layer. SHA256 is the hash of exactly these bytes (the model identity).
type Model struct {
	Name   string // what the user named: a preset or a path
	Path   string // file the bytes came from
	Bytes  []byte // the (cut) model that runs
	SHA256 string
	Layer  string
	Dim    int
	Spec   imaging.Spec
}

// LoadOptions says how to resolve a preset.
type LoadOptions struct {
	CacheDir string // model cache; "" = models.DefaultCacheDir()
	// Download lets a preset that is not cached be downloaded. Presets
	// without a known sha256 still refuse to download unverified.
	Download bool
}

// LoadModel resolves ref — a preset name ("vgg19-fc7", or "vgg19" for the
// default VGG19 preset) or the path of an .onnx file — and makes layer
// (DefaultLayer when "") its graph output, cutting the model in memory when
// it is not already.
func LoadModel(ctx context.Context, ref, layer string, o LoadOptions) (*Model, error) {
	if ref == "" {
		ref = models.Default
	}
	if ref == "vgg19" {
		ref = models.Default
	}
	path := ref
	if p, ok := models.Lookup(ref); ok {
		if layer == "" {
			layer = p.Layer
		}
		cached, err := cachedPreset(ctx, p, layer, o)
		if err != nil {
			return nil, err
		}
		path = cached
	} else if !strings.HasSuffix(strings.ToLower(ref), ".onnx") {
		if _, err := os.Stat(ref); err != nil {
			return nil, fmt.Errorf("model %q: not a preset (%s) nor an .onnx file", ref, presetNames())
		}
	}
	if layer == "" {
		layer = DefaultLayer
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	m, err := onnxgraph.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse model %s: %w", path, err)
	}
	rep := m.Inspect()
	l, ok := rep.Layer(layer)
	if !ok {
		return nil, fmt.Errorf("model %s has no layer %q; candidates: %s (see `imgvec model inspect %s`)",
			path, layer, strings.Join(rep.LayerNames(), ", "), path)
	}
	if !(len(rep.Outputs) == 1 && rep.Outputs[0].Name == l.Tensor && batchIsDynamic(rep)) {
		if data, l, err = m.Cut(layer); err != nil {
			return nil, fmt.Errorf("cut model %s at %s: %w", path, layer, err)
		}
	}
	sum := sha256.Sum256(data)
	return &Model{
		Name: ref, Path: path, Bytes: data, SHA256: hex.EncodeToString(sum[:]),
		Layer: strings.ToLower(layer), Dim: l.Dim, Spec: imaging.ImageNet,
	}, nil
}

// Identity is the model identity of vectors this model produces, given
// whether they are L2-normalised. It needs no ONNX Runtime session, so a dry
// run can diff against the sink without loading the runtime.
func (m *Model) Identity(normalized bool) schema.ModelIdentity {
	return schema.ModelIdentity{
		ModelSHA256: m.SHA256,
		Layer:       m.Layer,
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
