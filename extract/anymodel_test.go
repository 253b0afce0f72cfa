package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/extract/imaging"
	"github.com/imgvec/imgvec/extract/onnxgraph"
	"github.com/imgvec/imgvec/schema"
)

const (
	embedModel    = "../testdata/models/embed-tiny.onnx"
	vitModel      = "../testdata/models/vit-tiny.onnx"
	externalModel = "../testdata/models/external/vgg19-tiny.onnx"
)

// absImagesDir is imagesDir before any test changes directory.
var absImagesDir, _ = filepath.Abs(imagesDir)

// vectorsOf loads ref at layer and embeds landscape.jpg and portrait.jpg.
func vectorsOf(t *testing.T, ref, layer string, lo LoadOptions, o Options) (*Model, [][]float32) {
	t.Helper()
	requireRuntime(t)
	m, err := LoadModel(context.Background(), ref, layer, lo)
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var batch []*schema.Prepared
	for _, name := range []string{"landscape.jpg", "portrait.jpg"} {
		data, err := os.ReadFile(filepath.Join(absImagesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := x.Prepare(name, data)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Release(p)
		batch = append(batch, p)
	}
	res, err := x.Infer(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	var vs [][]float32
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		vs = append(vs, r.Vector)
	}
	return m, vs
}

func maxDelta(a, b [][]float32) float64 {
	d := 0.0
	for i := range a {
		for j := range a[i] {
			d = max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return d
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := modelSHA256(context.Background(), data, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLayerIsAnyTensorName(t *testing.T) {
	ctx := context.Background()
	// A graph output with a dynamic batch runs as it is: the file's bytes.
	logits, err := LoadModel(ctx, tinyModel, "logits", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if logits.Layer != "logits" || logits.Dim != 10 || logits.SHA256 != fileSHA(t, tinyModel) {
		t.Errorf("graph output: layer %q dim %d, sha %s", logits.Layer, logits.Dim, logits.SHA256)
	}
	// An intermediate tensor is cut there: the same graph as its alias.
	_, byAlias := vectorsOf(t, tinyModel, "fc7", LoadOptions{}, Options{})
	m, byName := vectorsOf(t, tinyModel, "/classifier/classifier.4/Relu_output_0", LoadOptions{}, Options{})
	if m.Layer != "/classifier/classifier.4/Relu_output_0" || m.Dim != 64 {
		t.Errorf("tensor layer %q dim %d", m.Layer, m.Dim)
	}
	if d := maxDelta(byAlias, byName); d != 0 {
		t.Errorf("fc7 by tensor name differs from the alias by %g", d)
	}
	// The Model Zoo's tensor name that `model inspect` shows.
	if zoo, err := LoadModel(ctx, zooModel, "vgg0_dense1_relu_fwd", LoadOptions{}); err != nil || zoo.Dim != 64 {
		t.Errorf("zoo tensor name: %v", err)
	}
	// An unknown name lists the aliases, the outputs and the closest tensors.
	_, err = LoadModel(ctx, tinyModel, "logit", LoadOptions{})
	if !errors.Is(err, onnxgraph.ErrNoSuchLayer) {
		t.Fatalf("unknown name: %v", err)
	}
	for _, want := range []string{"layers: pool5, fc6, fc7, fc8", "graph outputs: logits", "closest tensors: logits,", "model inspect --all"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown-name error lacks %q: %v", want, err)
		}
	}
}

func TestEmbeddingExports(t *testing.T) {
	// The only graph output is the default layer, used as it is.
	m, vs := vectorsOf(t, embedModel, "", LoadOptions{}, Options{})
	if m.Layer != "image_embeds" || m.Dim != 16 || len(vs[0]) != 16 || m.SHA256 != fileSHA(t, embedModel) {
		t.Errorf("embedding output: layer %q dim %d", m.Layer, m.Dim)
	}
	// [N, C, 1, 1] is flattened.
	p, vs := vectorsOf(t, embedModel, "pooled", LoadOptions{}, Options{})
	if p.Dim != 8 || len(vs[0]) != 8 {
		t.Errorf("pooled [N,8,1,1]: dim %d", p.Dim)
	}
	if _, err := LoadModel(context.Background(), embedModel, "pooled", LoadOptions{Pool: "cls"}); err == nil || !strings.Contains(err.Error(), "applies to token outputs") {
		t.Errorf("pooling a non-token tensor: %v", err)
	}
}

func TestTokenOutputPooling(t *testing.T) {
	ctx := context.Background()
	_, err := LoadModel(ctx, vitModel, "last_hidden_state", LoadOptions{})
	if !errors.Is(err, onnxgraph.ErrTokenOutput) || !strings.Contains(err.Error(), "cls") || !strings.Contains(err.Error(), "mean") {
		t.Fatalf("token output without pooling: %v", err)
	}
	cls, clsV := vectorsOf(t, vitModel, "last_hidden_state", LoadOptions{Pool: "cls"}, Options{NoNormalize: true})
	mean, _ := vectorsOf(t, vitModel, "last_hidden_state", LoadOptions{Pool: "mean"}, Options{NoNormalize: true})
	if cls.Dim != 8 || mean.Dim != 8 {
		t.Fatalf("pooled dims %d, %d", cls.Dim, mean.Dim)
	}
	// pooler_output is tanh(first token): the cls pooling must agree.
	_, pooler := vectorsOf(t, vitModel, "pooler_output", LoadOptions{}, Options{NoNormalize: true})
	for i := range clsV {
		for j := range clsV[i] {
			clsV[i][j] = float32(math.Tanh(float64(clsV[i][j])))
		}
	}
	if d := maxDelta(clsV, pooler); d > 1e-6 {
		t.Errorf("cls pooling differs from the first token by %g", d)
	}
	ic, im := cls.Identity(true), mean.Identity(true)
	if ic.Pool != "cls" || im.Pool != "mean" || ic.ID() == im.ID() {
		t.Errorf("pooling is not part of the identity: %+v / %+v", ic, im)
	}
	if _, err := LoadModel(ctx, vitModel, "last_hidden_state", LoadOptions{Pool: "max"}); err == nil || !strings.Contains(err.Error(), `unknown pooling "max"`) {
		t.Errorf("unknown pooling: %v", err)
	}
}

// Identities without pooling keep the ID they had before pooling existed,
// so existing databases keep their rows.
func TestIdentityWithoutPoolUnchanged(t *testing.T) {
	id := schema.ModelIdentity{ModelSHA256: strings.Repeat("ab", 32), Layer: "fc7", Preprocess: imaging.ImageNet.Version(), Dim: 4096, Normalized: true}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%s\n%d\n%t", id.ModelSHA256, id.Layer, id.Preprocess, id.Dim, id.Normalized)))
	if want := "fc7-" + hex.EncodeToString(h[:8]); id.ID() != want {
		t.Fatalf("ID %s, want the pre-pooling %s", id.ID(), want)
	}
	if imaging.ImageNet.Version() != "tv-resize256-crop224-pilbilinear-mean0.485,0.456,0.406-std0.229,0.224,0.225-v1" {
		t.Fatalf("the ImageNet preprocessing version changed: %s", imaging.ImageNet.Version())
	}
	id.Pool = "cls"
	if id.ID() == "fc7-"+hex.EncodeToString(h[:8]) {
		t.Fatal("pooling does not change the ID")
	}
}

func TestExternalDataFromAnyDirectory(t *testing.T) {
	requireRuntime(t)
	lib, err := LibraryPath() // found relative to the repository: pin it before Chdir
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMGVEC_ORT_LIB", lib)
	abs, err := filepath.Abs(externalModel)
	if err != nil {
		t.Fatal(err)
	}
	inline, want := vectorsOf(t, tinyModel, "fc7", LoadOptions{}, Options{})
	t.Chdir(t.TempDir())
	m, got := vectorsOf(t, abs, "fc7", LoadOptions{}, Options{})
	if m.DataDir != filepath.Dir(abs) || m.SHA256 == inline.SHA256 {
		t.Errorf("data dir %q, sha %s", m.DataDir, m.SHA256)
	}
	// Same seed, same weights: the vectors of the inline model.
	if d := maxDelta(want, got); d != 0 {
		t.Errorf("external-data model differs from the inline one by %g", d)
	}
	// The identity covers the data file.
	if dm, err := LoadModel(context.Background(), abs, "fc6", LoadOptions{}); err != nil || dm.SHA256 == m.SHA256 {
		t.Errorf("fc6: %v", err)
	}
}

func TestModelFolderAndPreprocess(t *testing.T) {
	ctx := context.Background()
	hf := "../testdata/models/hf"
	ids := map[string]bool{}
	for _, name := range []string{"clip", "convnext", "deit", "dinov2", "siglip", "vit"} {
		m, vs := vectorsOf(t, filepath.Join(hf, name), "", LoadOptions{}, Options{})
		if m.Layer != "image_embeds" || len(vs[0]) != 16 || m.Spec == imaging.ImageNet {
			t.Errorf("%s: layer %q, spec %s", name, m.Layer, m.Spec.Version())
		}
		ids[m.Identity(true).ID()] = true
	}
	// ConvNeXt's crop_pct 0.875 at 224 (resize 256, crop 224, bicubic,
	// ImageNet mean/std) is exactly DINOv2's recipe: same preprocessing,
	// same id; the other four differ.
	if len(ids) != 5 {
		t.Errorf("six processors gave %d model ids, want 5", len(ids))
	}
	// A recipe equal to a folder's config gives the same preprocessing version.
	clip, err := LoadModel(ctx, embedModel, "", LoadOptions{Preprocess: "clip"})
	if err != nil {
		t.Fatal(err)
	}
	folder, err := LoadModel(ctx, filepath.Join(hf, "clip"), "", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if clip.Spec.Version() != folder.Spec.Version() || clip.Identity(true).ID() != folder.Identity(true).ID() {
		t.Errorf("--preprocess clip %s, CLIP folder %s", clip.Spec.Version(), folder.Spec.Version())
	}
	// --preprocess wins over the folder's file; the default stays imagenet.
	if m, err := LoadModel(ctx, filepath.Join(hf, "clip"), "", LoadOptions{Preprocess: "imagenet"}); err != nil || m.Spec != imaging.ImageNet {
		t.Errorf("--preprocess imagenet on a folder: %v", err)
	}
	if m, err := LoadModel(ctx, embedModel, "", LoadOptions{}); err != nil || m.Spec != imaging.ImageNet {
		t.Errorf("default preprocessing: %v", err)
	}
	for _, bad := range []string{"clipp", "no-such.json"} {
		if _, err := LoadModel(ctx, embedModel, "", LoadOptions{Preprocess: bad}); err == nil {
			t.Errorf("--preprocess %s accepted", bad)
		}
	}
}
