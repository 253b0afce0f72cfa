package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Any tensor name as --layer, `model inspect --all`, and a model whose
// weights are in an external data file, used from another directory.
func TestE2EAnyLayerAndExternalData(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	r := mustCode(t, exitOK, tmp, "model", "inspect", "--all", e2eModel)
	if !strings.Contains(r.stdout, "/classifier/classifier.4/Relu_output_0  [-1 64]") {
		t.Errorf("inspect --all lacks the fc7 tensor:\n%s", r.stdout)
	}
	r = mustCode(t, exitFatal, tmp, "embed", "--model", e2eModel, "--layer", "fc7_relu", "--out", "x.jsonl", filepath.Join(e2eImages, "small.jpg"))
	if !strings.Contains(r.stderr, "layers: pool5, fc6, fc7, fc8") || !strings.Contains(r.stderr, "closest tensors:") {
		t.Errorf("unknown layer error:\n%s", r.stderr)
	}
	mustCode(t, exitOK, tmp, "embed", "--model", e2eModel, "--layer", "/classifier/classifier.4/Relu_output_0", "--out", "byname.jsonl", filepath.Join(e2eImages, "small.jpg"))
	mustCode(t, exitOK, tmp, "embed", "--model", e2eModel, "--layer", "fc7", "--out", "alias.jsonl", filepath.Join(e2eImages, "small.jpg"))

	ext := filepath.Join(filepath.Dir(e2eModel), "external", "vgg19-tiny.onnx")
	mustCode(t, exitOK, tmp, "model", "inspect", ext)
	mustCode(t, exitOK, tmp, "embed", "--model", ext, "--out", "ext.jsonl", filepath.Join(e2eImages, "small.jpg"))
	// The cut inlines the weights: the same bytes as cutting the inline model.
	mustCode(t, exitOK, tmp, "model", "cut", ext, "--layer", "fc7", "-o", "ext7.onnx")
	mustCode(t, exitOK, tmp, "model", "cut", e2eModel, "--layer", "fc7", "-o", "cut7.onnx")
	a, _ := os.ReadFile(filepath.Join(tmp, "ext7.onnx"))
	b, _ := os.ReadFile(filepath.Join(tmp, "cut7.onnx"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("cut of the external-data model (%d bytes) differs from the inline cut (%d bytes)", len(a), len(b))
	}
	vec := func(name string) string {
		data, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		// Vectors only: the model ids differ by design (other bytes, other layer names).
		var out []string
		for _, l := range strings.Split(string(data), ",") {
			if !strings.Contains(l, "model") {
				out = append(out, l)
			}
		}
		return strings.Join(out, ",")
	}
	if vec("byname.jsonl") != vec("alias.jsonl") || vec("ext.jsonl") != vec("alias.jsonl") {
		t.Errorf("vectors differ:\n%s\n%s\n%s", vec("byname.jsonl"), vec("alias.jsonl"), vec("ext.jsonl"))
	}
}

// Model folders (Hugging Face layout), --preprocess and `model list`.
func TestE2EModelFolderAndPreprocess(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	r := mustCode(t, exitOK, tmp, "model", "list")
	if !strings.Contains(r.stdout, "PREPROCESS") || !strings.Contains(r.stdout, "imagenet") {
		t.Errorf("model list lacks preprocessing:\n%s", r.stdout)
	}
	img := filepath.Join(e2eImages, "small.jpg")
	folder := filepath.Join(filepath.Dir(e2eModel), "hf", "clip")
	mustCode(t, exitOK, tmp, "embed", "--model", folder, "--out", "folder.jsonl", img)
	mustCode(t, exitOK, tmp, "embed", "--model", filepath.Join(folder, "model.onnx"), "--preprocess", "clip", "--out", "recipe.jsonl", img)
	a, _ := os.ReadFile(filepath.Join(tmp, "folder.jsonl"))
	b, _ := os.ReadFile(filepath.Join(tmp, "recipe.jsonl"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("CLIP folder and --preprocess clip differ:\n%s\n%s", a, b)
	}
	r = mustCode(t, exitUsage, tmp, "embed", "--model", folder, "--preprocess", "nope", "--out", "x.jsonl", img)
	if !strings.Contains(r.stderr, "unknown preprocessing recipe") {
		t.Errorf("bad --preprocess:\n%s", r.stderr)
	}
	vit := filepath.Join(filepath.Dir(e2eModel), "vit-tiny.onnx")
	r = mustCode(t, exitFatal, tmp, "embed", "--model", vit, "--layer", "last_hidden_state", "--preprocess", "vit", "--out", "x.jsonl", img)
	if !strings.Contains(r.stderr, "--pool") && !strings.Contains(r.stderr, "cls") {
		t.Errorf("token output without --pool:\n%s", r.stderr)
	}
	mustCode(t, exitOK, tmp, "embed", "--model", vit, "--layer", "last_hidden_state", "--pool", "mean", "--preprocess", "vit", "--out", "vit.jsonl", img)
}

// TestE2EDecodeFast: --decode fast changes the vectors of a JPEG large
// enough to scale (extract's TestFastDecode bounds by how much), and a bad
// mode is a usage error.
func TestE2EDecodeFast(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	img := filepath.Join(e2eImages, "large.jpg")
	mustCode(t, exitOK, tmp, "embed", "--model", e2eModel, "--out", "exact.jsonl", img)
	mustCode(t, exitOK, tmp, "embed", "--model", e2eModel, "--decode", "exact", "--out", "exact2.jsonl", img)
	mustCode(t, exitOK, tmp, "embed", "--model", e2eModel, "--decode", "fast", "--out", "fast.jsonl", img)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	if exact, fast := read("exact.jsonl"), read("fast.jsonl"); !bytes.Equal(exact, read("exact2.jsonl")) || bytes.Equal(exact, fast) {
		t.Errorf("default and --decode exact must agree, --decode fast differ:\n%s\n%s", exact, fast)
	}
	r := mustCode(t, exitUsage, tmp, "embed", "--model", e2eModel, "--decode", "quick", "--out", "x.jsonl", img)
	if !strings.Contains(r.stderr, `decode "quick": want exact or fast`) {
		t.Errorf("bad --decode:\n%s", r.stderr)
	}
}

// TestE2EModelQuantize: static int8 of the tiny model calibrated on the
// test images is written, compared with fp32 in the same run, and embeds
// at fc7 like any model; dynamic works; missing flags are usage errors.
func TestE2EModelQuantize(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	r := mustCode(t, exitOK, tmp, "model", "quantize", e2eModel, "-o", "int8.onnx", "--calibrate", e2eImages)
	for _, want := range []string{"wrote int8.onnx (static int8;", "img/s", "cosine       min 0.99", "top-10 overlap"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("quantize output lacks %q:\n%s", want, r.stdout)
		}
	}
	mustCode(t, exitOK, tmp, "embed", "--model", "int8.onnx", "--out", "v.jsonl", filepath.Join(e2eImages, "small.jpg"))
	r = mustCode(t, exitOK, tmp, "model", "quantize", e2eModel, "-o", "dyn.onnx", "--calibrate", e2eImages, "--method", "dynamic")
	if !strings.Contains(r.stdout, "dynamic int8") {
		t.Errorf("dynamic quantize:\n%s", r.stdout)
	}
	mustCode(t, exitUsage, tmp, "model", "quantize", e2eModel, "-o", "x.onnx")
	mustCode(t, exitUsage, tmp, "model", "quantize", e2eModel, "-o", "x.onnx", "--calibrate", e2eImages, "--method", "fp8")
	mustCode(t, exitUsage, tmp, "model", "quantize", e2eModel, "-o", "x.onnx", "--calibrate", e2eImages, "--min-max", "--percentile", "99.9")
}

// TestE2EDoctor: doctor reports the library, probes the CPU, and a device
// without its provider is one line saying so (exit 0).
func TestE2EDoctor(t *testing.T) {
	needBinary(t)
	r := mustCode(t, exitOK, t.TempDir(), "doctor", "--seconds", "0.5", "--device", "cpu,cuda:0")
	if !strings.Contains(r.stdout, "onnx runtime  ") || !strings.Contains(r.stdout, "version 1.30.0") {
		t.Errorf("doctor lacks the library:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^cpu +ok: [0-9.]+ img/s`).MatchString(r.stdout) {
		t.Errorf("doctor lacks the cpu probe:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^cuda:0 +(ok: [0-9.]+ img/s|unavailable: [^\n]+)$`).MatchString(r.stdout) {
		t.Errorf("doctor's cuda line is not one line:\n%s", r.stdout)
	}
	mustCode(t, exitUsage, t.TempDir(), "doctor", "--device", "tpu")
}

// TestE2EModelConvertFP16: a cut model converted to float16 embeds like any
// model (float32 in and out); --fp16 and -o are required.
func TestE2EModelConvertFP16(t *testing.T) {
	needBinary(t)
	tmp := t.TempDir()
	mustCode(t, exitOK, tmp, "model", "cut", e2eModel, "--layer", "fc7", "-o", "fc7.onnx")
	r := mustCode(t, exitOK, tmp, "model", "convert", "fc7.onnx", "--fp16", "-o", "fp16.onnx")
	if !strings.Contains(r.stdout, "float16") {
		t.Errorf("convert output:\n%s", r.stdout)
	}
	mustCode(t, exitOK, tmp, "embed", "--model", "fp16.onnx", "--out", "v.jsonl", filepath.Join(e2eImages, "small.jpg"))
	mustCode(t, exitUsage, tmp, "model", "convert", "fc7.onnx", "-o", "x.onnx")
	mustCode(t, exitUsage, tmp, "model", "convert", "fc7.onnx", "--fp16")
}
